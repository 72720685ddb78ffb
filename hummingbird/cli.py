"""Command line: ``python -m hummingbird COMMAND ...``.

Each command has a ``_add_<name>`` function that declares its arguments and a ``_run_<name>`` function
that does the work; ``main`` wires them together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


COMMANDS = ["golden", "inspect", "convert"]


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
