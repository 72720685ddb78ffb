"""Running the work: generations and upscales on the accelerator, their files, and errors a user can act on.

The accelerator functions take plain values only (ZeroGPU runs them in a worker process) and look the models
up in the app's shared state. Every job gets its own output folder and its own stop flag.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import spaces
import torch
from PIL import Image

from hummingbird.image import load_image
from hummingbird.pipelines import GenerationOutOfMemory, GenerationResult, NonFiniteOutput, ProgressEvent
from hummingbird.studio import state
from hummingbird.studio.errors import Stopped, StudioError, sentence
from hummingbird.studio.limits import MAX_UPSCALE_FRAMES, SR_SIZE_ARGS
from hummingbird.studio.requests import I2VRequest, T2VRequest, UpscaleRequest
from hummingbird.studio.results import Outcome, stem
from hummingbird.studio.snippet import FileArg, upscaled_calls
from hummingbird.studio.state import Studio
from hummingbird.video import read_video, write_gif, write_mp4
from hummingbird.weights import WeightsUnavailableError

Progress = Callable[..., Any]  # gr.Progress: progress((done, total), desc=..., unit=...)

_STAGE_TEXT = {"encode": ("Encoding the conditioning", "step"), "denoise": ("Denoising", "steps"),
               "decode": ("Decoding frames", "frames")}


def _no_progress(*_: Any, **__: Any) -> None:
    """Progress reports go nowhere."""


# ------------------------------------------------------------------------------------------- accelerator
def _unet_seconds(task: str, steps: int, frames: int, height: int, width: int) -> float:
    """A generous guess of the U-Net time on a ZeroGPU slice: about 1 s per 16-frame 320x512 pass."""
    passes = steps * (2 if task == "i2v" else 1)  # I2V runs classifier-free guidance: two passes per step
    return passes * frames * height * width / (16 * 320 * 512)


def generation_seconds(task: str, variant: str, kwargs: dict[str, Any], job: str,
                       progress: Progress | None = None) -> int:
    """Seconds to reserve on ZeroGPU for one generation (same arguments as :func:`_generate`)."""
    work = _unet_seconds(task, kwargs["steps"], kwargs["frames"], kwargs["height"], kwargs["width"])
    return int(min(180, 20 + 1.5 * work))


def upscale_seconds(model: str, frames: np.ndarray, scale: int, target: str | None, job: str,
                    progress: Progress | None = None) -> int:
    """Seconds to reserve on ZeroGPU for one upscale (same arguments as :func:`_upscale`)."""
    count, height, width = frames.shape[:3]
    return int(min(120, 10 + count * height * width / (320 * 512) * (0.2 if model == "animevideo" else 1.0)))


def _reporter(progress: Progress | None, job: str) -> Callable[[ProgressEvent], None]:
    """A pipeline callback that honours Stop and shows each stage as staged progress."""
    stops = state.current().stops

    def report(event: ProgressEvent) -> None:
        stops.check(job)
        text, unit = _STAGE_TEXT.get(event.stage, (event.stage, "steps"))
        if progress is not None:
            progress((event.step, event.total), desc=f"{text} {event.step}/{event.total}", unit=unit)

    return report


@spaces.GPU(duration=generation_seconds)
def _generate(task: str, variant: str, kwargs: dict[str, Any], job: str,
              progress: Progress | None = None) -> GenerationResult:
    """Run one generation on the accelerator."""
    models = state.current().models
    pipe = models.t2v(variant) if task == "t2v" else models.i2v()
    return pipe(**kwargs, callback=_reporter(progress, job))


@spaces.GPU(duration=upscale_seconds)
def _upscale(model: str, frames: np.ndarray, scale: int, target: str | None, job: str,
             progress: Progress | None = None) -> np.ndarray:
    """Upscale uint8 frames on the accelerator, reporting each finished frame."""
    app = state.current()

    def report(done: int, total: int) -> None:
        app.stops.check(job)
        if progress is not None:
            progress((done, total), desc=f"Upscaling frame {done}/{total}", unit="frames")

    return app.models.upscaler(model)(frames, scale=scale, target=target, callback=report)


def free_memory() -> None:
    """Give back the memory of a failed or stopped job."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _guarded(run: Callable[[], Any]) -> Any:
    """Turn out-of-memory, invalid-output and missing-weights failures into errors a user can act on."""
    try:
        return run()
    except Stopped:
        free_memory()
        raise
    except GenerationOutOfMemory as err:
        raise StudioError(sentence(err), "Out of memory") from None
    except torch.OutOfMemoryError:
        free_memory()
        raise StudioError("Out of GPU memory. Try fewer frames, a smaller size, or x2 instead of x4.",
                          "Out of memory") from None
    except NonFiniteOutput as err:
        raise StudioError(sentence(err), "Generation failed") from None
    except WeightsUnavailableError as err:
        raise StudioError(str(err), "Weights unavailable") from None


# ------------------------------------------------------------------------------------------- files
def _timed(timings: dict[str, float], stage: str, work: Callable[[], Any]) -> Any:
    """Run ``work``, adding its seconds to ``timings[stage]``; return its result."""
    start = time.perf_counter()
    result = work()
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    return result


def _write_base(outcome: Outcome, progress: Progress) -> None:
    """Write the result's MP4 and GIF."""
    progress((0, 1), desc="Encoding the MP4", unit="files")
    outcome.mp4 = _timed(outcome.timings, "mp4", lambda: write_mp4(
        outcome.frames, outcome.folder / f"{outcome.stem}.mp4", outcome.fps))
    outcome.gif = _timed(outcome.timings, "gif", lambda: write_gif(
        outcome.frames, outcome.folder / f"{outcome.stem}.gif", outcome.fps))


def _apply_upscale(outcome: Outcome, model: str, size: str, job: str, progress: Progress) -> None:
    """Upscale the outcome's frames; save them (an MP4, or a PNG for a still image) and a before/after."""
    scale, target = SR_SIZE_ARGS[size]
    frames = outcome.frames
    big = _timed(outcome.timings, "upscale", lambda: _guarded(
        lambda: _upscale(model, frames, scale, target, job, progress)))
    height, width = big.shape[1:3]
    name = f"{outcome.stem}_{model}_{size}_{width}x{height}"
    if outcome.still:
        outcome.upscaled = outcome.folder / f"{name}.png"
        Image.fromarray(big[0]).save(outcome.upscaled)
    else:
        progress((0, 1), desc="Encoding the upscaled MP4", unit="files")
        outcome.upscaled = _timed(outcome.timings, "upscaled mp4", lambda: write_mp4(
            big, outcome.folder / f"{name}.mp4", outcome.fps))
    before = Image.fromarray(frames[0]).resize((width, height), Image.Resampling.BICUBIC)
    outcome.before_after = (before, Image.fromarray(big[0]))
    outcome.settings["upscale"] = {"model": model, "size": size, "output": f"{width}x{height}"}


def _generation_outcome(kind: str, result: GenerationResult, fps: float, folder: Path,
                        api_args: dict[str, Any]) -> Outcome:
    """The :class:`Outcome` of one generation, named and set up to reproduce through the API."""
    s = result.settings
    settings = {**s, "seed": result.seed, "upscale": "off"}
    if kind == "t2v":
        settings["reneg"] = "not applicable (T2V is guidance-distilled: no negative branch)"
    api_name = "text_to_video" if kind == "t2v" else "image_to_video"
    return Outcome(kind, folder, stem(kind, s["model"], result.seed, s["steps"], s["frames"], s["height"],
                                      s["width"]),
                   fps, result.frames, settings, dict(result.timings), [(api_name, api_args)], s["device"],
                   tiny="tiny" in s["model"])


def _finish(app: Studio, outcome: Outcome, upscale: bool, job: str, progress: Progress) -> Outcome:
    """Write the files (and the optional x4 upscale) of a generation."""
    _write_base(outcome, progress)
    if upscale:
        _apply_upscale(outcome, app.models.default_sr_model, "x4", job, progress)
    return outcome


# ------------------------------------------------------------------------------------------- jobs
def text_to_video(app: Studio, req: T2VRequest, session: str, progress: Progress | None = None) -> Outcome:
    """Generate a checked text-to-video request and write its files."""
    progress = progress or _no_progress
    kwargs = dict(prompt=req.prompt, steps=req.steps, frames=req.frames, height=req.height, width=req.width,
                  guidance=req.guidance, fps=req.fps, seed=req.seed)
    with app.stops.job(session) as job, app.outputs.reserve(session) as folder:
        result = _guarded(lambda: _generate("t2v", req.variant, kwargs, job, progress))
        outcome = _generation_outcome("t2v", result, req.fps, folder, dict(
            prompt=req.prompt, variant=req.variant, steps=req.steps, frames=req.frames,
            resolution=f"{req.height}x{req.width}", guidance=req.guidance, fps=req.fps, seed=result.seed,
            randomize_seed=False, upscale=req.upscale))
        return _finish(app, outcome, req.upscale, job, progress)


def image_to_video(app: Studio, req: I2VRequest, session: str, progress: Progress | None = None) -> Outcome:
    """Generate a checked image-to-video request and write its files."""
    progress = progress or _no_progress
    kwargs = dict(image=np.asarray(req.image), prompt=req.prompt, steps=req.steps, frames=req.frames,
                  height=req.height, width=req.width, guidance=req.guidance, guidance_rescale=req.guidance_rescale,
                  fps=req.motion_fps, eta=req.eta, reneg=req.reneg, negative_prompt=req.negative_prompt,
                  aspect=req.aspect, seed=req.seed)
    with app.stops.job(session) as job, app.outputs.reserve(session) as folder:
        result = _guarded(lambda: _generate("i2v", "0.9b", kwargs, job, progress))
        result.settings["motion_fps"] = result.settings.pop("fps")
        result.settings["playback_fps"] = req.playback_fps
        outcome = _generation_outcome("i2v", result, req.playback_fps, folder, dict(
            image=FileArg.UPLOADED, prompt=req.prompt, steps=req.steps, frames=req.frames,
            resolution=f"{req.height}x{req.width}", guidance=req.guidance, guidance_rescale=req.guidance_rescale,
            motion_fps=req.motion_fps, playback_fps=req.playback_fps, eta=req.eta, reneg=req.reneg,
            negative_prompt=req.negative_prompt or "", aspect=req.aspect, seed=result.seed, randomize_seed=False,
            upscale=req.upscale))
        return _finish(app, outcome, req.upscale, job, progress)


def upscale_file(app: Studio, req: UpscaleRequest, session: str, progress: Progress | None = None) -> Outcome:
    """Upscale a checked uploaded video or image and write the result."""
    progress = progress or _no_progress
    timings: dict[str, float] = {}
    if req.is_video:
        try:
            frames, fps = _timed(timings, "read", lambda: read_video(req.path, max_frames=MAX_UPSCALE_FRAMES))
        except ValueError as err:
            raise StudioError(sentence(err), "Unreadable video") from None
    else:
        frames, fps = np.asarray(load_image(req.path))[None], 1.0
    settings: dict[str, Any] = {"task": "upscale", "input": f"{req.width}x{req.height}"}
    settings.update({"frames": len(frames), "fps": round(fps, 3)} if req.is_video else {"media": "image"})
    calls = [("upscale_video", {"media": FileArg.UPLOADED, "model": req.model, "size": req.size})]
    device = _guarded(lambda: str(app.models.upscaler(req.model).device))
    with app.stops.job(session) as job, app.outputs.reserve(session) as folder:
        outcome = Outcome("upscale", folder, f"hummingbird_upscaled_{req.width}x{req.height}", fps, frames,
                          settings, timings, calls, device, still=not req.is_video)
        _apply_upscale(outcome, req.model, req.size, job, progress)
        return outcome


def upscale_last(app: Studio, last: dict[str, Any] | None, model: str, size: str, session: str,
                 progress: Progress | None = None) -> Outcome:
    """Upscale the frames of the session's last result (kept in its state) without generating them again."""
    if not last:
        raise StudioError("Generate a video first: there is no result to upscale yet.", "Nothing to upscale")
    progress = progress or _no_progress
    with app.stops.job(session) as job, app.outputs.reserve(session) as folder:
        outcome = Outcome.from_state(last, folder, upscaled_calls(last["api_calls"], model, size))
        _apply_upscale(outcome, model, size, job, progress)
        return outcome
