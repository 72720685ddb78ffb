"""Command line: ``python -m hummingbird COMMAND ...``.

Each command has a ``_add_<name>`` function that declares its arguments and a ``_run_<name>`` function
that does the work; ``main`` wires them together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import numpy as np


def _add_golden(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("golden", help="run the golden numerical fixtures under DIR")
    p.add_argument("dir", type=Path, help="folder holding fixture folders")
    p.add_argument("--kind", default=None,
                   help="comma-separated kinds to run (default: all), e.g. t2v_unet,security")


def _run_golden(args: argparse.Namespace) -> int:
    from hummingbird import golden

    if not args.dir.is_dir():
        print(f"error: {args.dir} is not a folder", file=sys.stderr)
        return 2
    kinds = {k.strip() for k in args.kind.split(",") if k.strip()} if args.kind else None
    return 0 if golden.run(args.dir, kinds) else 1


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="report what a checkpoint file holds (read safely, never run)")
    p.add_argument("file", type=Path, help="a release checkpoint: .pt, .ckpt, .pth, .bin or .safetensors")


def _run_inspect(args: argparse.Namespace) -> int:
    from hummingbird.checkpoints import CheckpointError, inspect

    try:
        print(inspect(args.file))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a release checkpoint into per-component safetensors files")
    p.add_argument("file", type=Path, help="*_merged_all.pt (T2V) or stage_1.ckpt (I2V)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--unet", type=Path, default=None, help="I2V unet.pt replacing the source U-Net")
    p.add_argument("--img-proj", type=Path, default=None, help="I2V img_proj.pt replacing the source resampler")
    p.add_argument("--reneg", type=Path, default=None, help="ReNeg negative embedding (reneg_checkpoint.bin)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files whose content differs")


def _run_convert(args: argparse.Namespace) -> int:
    from hummingbird.checkpoints import CheckpointError, convert

    try:
        out = convert(args.file, args.out, unet=args.unet, img_proj=args.img_proj, reneg=args.reneg,
                      overwrite=args.overwrite)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"converted {args.file.name} into {out}")
    return 0


def _add_generation_flags(p: argparse.ArgumentParser, steps: int, frames: int, guidance: float,
                          fps: int, fps_help: str) -> None:
    p.add_argument("--out", type=Path, required=True, help="output .mp4 file")
    p.add_argument("--weights", default=None,
                   help="release file, folder (release files, convert or save_pretrained output), hub repo id, "
                        "or 'tiny' for random tiny weights (default: the official hub repo)")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--frames", type=int, default=frames)
    p.add_argument("--height", type=int, default=320, help="multiple of 64 (320 is native)")
    p.add_argument("--width", type=int, default=512, help="multiple of 64 (512 is native)")
    p.add_argument("--guidance", type=float, default=guidance)
    p.add_argument("--fps", type=int, default=fps, help=fps_help)
    p.add_argument("--seed", type=int, default=None, help="random when left out; printed either way")


def _add_t2v(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("t2v", help="generate a video from a text prompt")
    p.add_argument("prompt")
    p.add_argument("--variant", choices=["0.9b", "0.7b"], default="0.9b")
    _add_generation_flags(p, steps=8, frames=26, guidance=7.5, fps=8,
                          fps_help="frame rate: conditioning and playback (8 is the trained value)")


def _add_i2v(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("i2v", help="animate an image")
    p.add_argument("image", type=Path)
    p.add_argument("prompt", nargs="?", default="")
    _add_generation_flags(p, steps=16, frames=16, guidance=7.5, fps=24,
                          fps_help="motion conditioning fs (24 in the release)")
    _add_i2v_flags(p)


def _add_i2v_flags(p: argparse.ArgumentParser, note: str = "") -> None:
    """The image-to-video options beyond the shared generation flags (``note`` prefixes each help)."""
    p.add_argument("--rescale", type=float, default=0.7, help=f"{note}guidance rescale (0 = off)")
    p.add_argument("--eta", type=float, default=1.0, help=f"{note}DDIM eta")
    p.add_argument("--playback-fps", type=int, default=8, help=f"{note}frame rate of the written file")
    p.add_argument("--no-reneg", action="store_true", help=f"{note}use the negative prompt instead of ReNeg")
    p.add_argument("--negative-prompt", default=None, help=f"{note}negative prompt (only with --no-reneg)")
    p.add_argument("--aspect", choices=["crop", "pad"], default="crop",
                   help=f"{note}fit the image by cropping to fill, or by letterboxing; never stretched")


def _i2v_options(args: argparse.Namespace) -> dict:
    """The I2VPipeline keyword arguments given by the i2v flags."""
    if args.negative_prompt and not args.no_reneg:
        raise ValueError("--negative-prompt needs --no-reneg: ReNeg and a negative prompt fill the same slot")
    return dict(guidance_rescale=args.rescale, eta=args.eta, reneg=not args.no_reneg,
                negative_prompt=args.negative_prompt, aspect=args.aspect)


def _progress_bar(description: str):
    """A tqdm bar per stage, fed by pipeline progress events."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def callback(event) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            bar = bars[event.stage] = tqdm(total=event.total, desc=f"{description} {event.stage}", leave=False)
        bar.n = event.step
        bar.refresh()
        if event.step >= event.total:
            bar.close()

    return callback


def _finish(result, out: Path, fps: int) -> None:
    from hummingbird.video import write_mp4

    write_mp4(result.frames, out, fps)
    timing = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
    print(f"wrote {out} ({len(result.frames)} frames, seed {result.seed}; {timing})")


def _run_t2v(args: argparse.Namespace) -> int:
    return _guarded(lambda: _t2v(args))


def _t2v(args: argparse.Namespace) -> None:
    from hummingbird.pipelines import T2VPipeline, load_pipeline

    T2VPipeline.validate(args.prompt, args.steps, args.frames, args.height, args.width, args.guidance, args.fps,
                         args.seed)
    pipe = load_pipeline("t2v", args.weights, variant=args.variant)
    result = pipe(args.prompt, steps=args.steps, frames=args.frames, height=args.height, width=args.width,
                  guidance=args.guidance, fps=args.fps, seed=args.seed, callback=_progress_bar("t2v"))
    _finish(result, args.out, args.fps)


def _run_i2v(args: argparse.Namespace) -> int:
    return _guarded(lambda: _i2v(args))


def _i2v(args: argparse.Namespace) -> None:
    from hummingbird.pipelines import I2VPipeline, load_pipeline

    options = dict(steps=args.steps, frames=args.frames, height=args.height, width=args.width,
                   guidance=args.guidance, fps=args.fps, seed=args.seed, **_i2v_options(args))
    I2VPipeline.validate(args.image, args.prompt, **options)
    pipe = load_pipeline("i2v", args.weights)
    result = pipe(args.image, args.prompt, callback=_progress_bar("i2v"), **options)
    _finish(result, args.out, args.playback_fps)


def _guarded(action: Callable[[], None]) -> int:
    """Run a generation command; bad input and missing weights end with a message and exit status 2."""
    from hummingbird.weights import WeightsUnavailableError

    try:
        action()
    except (ValueError, WeightsUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", conflict_handler="resolve",
                       help="generate videos for a prompt file (VBench naming); runs as is under accelerate launch",
                       description="One {prompt}-{k}.mp4 per prompt and sample, plus a JSONL manifest; restarting "
                                   "skips finished videos. --steps, --frames and --fps default to the task's "
                                   "(t2v 8, 26, 8; i2v 16, 16, 24).")
    p.add_argument("--task", choices=["t2v", "i2v"], required=True)
    p.add_argument("--prompts", type=Path, required=True,
                   help='.txt (one prompt per line) or .jsonl ({"prompt": ..., "image": ...} per line)')
    p.add_argument("--images", type=Path, default=None,
                   help="i2v: image folder; with a .txt, each image is named after its prompt (VBench-I2V)")
    p.add_argument("--samples", type=int, default=5, help="videos per prompt (VBench uses 5)")
    p.add_argument("--variant", choices=["0.9b", "0.7b"], default="0.9b", help="t2v model size")
    _add_generation_flags(p, steps=None, frames=None, guidance=7.5, fps=None,
                          fps_help="t2v: frame rate, conditioning and playback; i2v: motion conditioning fs")
    p.add_argument("--out", type=Path, required=True, help="output folder: videos and manifest")
    p.add_argument("--seed", type=int, default=0, help="base seed; each video's seed derives from it, its prompt and k")
    _add_i2v_flags(p, note="i2v: ")


def _run_batch(args: argparse.Namespace) -> int:
    return _guarded(lambda: _batch(args))


def _batch(args: argparse.Namespace) -> None:
    from hummingbird.batch import BatchJob, run

    options = dict(steps=args.steps, frames=args.frames, height=args.height, width=args.width,
                   guidance=args.guidance, fps=args.fps)
    if args.task == "i2v":
        options.update(_i2v_options(args))
    run(BatchJob(task=args.task, prompts=args.prompts, out=args.out, images=args.images, samples=args.samples,
                 seed=args.seed, weights=args.weights, variant=args.variant,
                 options={key: value for key, value in options.items() if value is not None},
                 playback_fps=args.playback_fps if args.task == "i2v" else None))


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")


def _add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolve a video or an image (x4, x2 or to fit 4K)")
    p.add_argument("input", type=Path, help="video (.mp4, ...) or image (.png, .jpg)")
    p.add_argument("--out", type=Path, required=True, help="output .mp4 for a video, image file for an image")
    p.add_argument("--model", choices=["auto", "hummingbird", "x4plus", "anime", "animevideo"], default="auto",
                   help="auto: Hummingbird VSR when --weights is given, else Real-ESRGAN x4plus")
    p.add_argument("--weights", type=Path, default=None, help="Hummingbird VSR SR.pth")
    p.add_argument("--scale", type=int, choices=[2, 4], default=4)
    p.add_argument("--target", choices=["4k"], default=None, help="fit the result inside 3840x2160 instead")
    p.add_argument("--tile", type=int, default=0, help="tile size in input pixels (0: chosen automatically)")


def _run_upscale(args: argparse.Namespace) -> int:
    try:
        _upscale(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _upscale(args: argparse.Namespace) -> None:
    from hummingbird.sr import Upscaler

    is_video = _media_kind(args.input, args.out)
    frames, fps = _read_media(args.input, is_video)
    upscaler = Upscaler.load(args.model, weights=args.weights)
    out_h, out_w = upscaler.output_size(frames.shape[1], frames.shape[2], args.scale, args.target)
    print(f"{upscaler.name}: {len(frames)} frame(s) {frames.shape[2]}x{frames.shape[1]} -> {out_w}x{out_h} "
          f"on {upscaler.device}", file=sys.stderr)
    result = upscaler(frames, scale=args.scale, target=args.target, tile=args.tile, callback=_progress_line)
    _write_media(result, args.out, fps, is_video)
    print(f"wrote {args.out}", file=sys.stderr)


def _media_kind(source: Path, out: Path) -> bool:
    """True for a video input, False for an image; the output suffix must match the kind."""
    from hummingbird.image import IMAGE_SUFFIXES

    suffix = source.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        raise ValueError(f"unsupported input {source.name}: expected a video {VIDEO_SUFFIXES} or image "
                         f"{IMAGE_SUFFIXES}")
    is_video = suffix in VIDEO_SUFFIXES
    wanted = (".mp4",) if is_video else IMAGE_SUFFIXES
    if out.suffix.lower() not in wanted:
        raise ValueError(f"--out must end in {' or '.join(wanted)} for this input, got {out.name}")
    return is_video


def _read_media(source: Path, is_video: bool) -> tuple[np.ndarray, float | None]:
    """uint8 RGB frames [F, H, W, 3] and the fps (None for an image)."""
    import numpy as np
    from PIL import Image

    from hummingbird.video import read_video

    if is_video:
        return read_video(source)
    if not source.is_file():
        raise FileNotFoundError(f"no such image file: {source}")
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"))[None], None


def _write_media(frames: np.ndarray, out: Path, fps: float | None, is_video: bool) -> None:
    from PIL import Image

    from hummingbird.video import write_mp4

    if is_video:
        write_mp4(frames, out, fps)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[0]).save(out)


def _progress_line(done: int, total: int) -> None:
    print(f"\rupscaling frame {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


COMMANDS = ["golden", "inspect", "convert", "t2v", "i2v", "upscale", "batch"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hummingbird",
                                     description="Hummingbird text/image-to-video tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        globals()[f"_add_{name}"](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return globals()[f"_run_{args.command}"](args)
