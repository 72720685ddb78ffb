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


COMMANDS = ["golden"]


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
