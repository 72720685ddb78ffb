"""The example prompts and images shown under the generation tabs."""

from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def _lines(name: str) -> list[str]:
    """The non-comment lines of an examples file (none when it is missing)."""
    path = EXAMPLES_DIR / name
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def t2v_prompts() -> list[str]:
    """Example text-to-video prompts."""
    return _lines("t2v_prompts.txt")


def i2v_examples() -> list[list[str]]:
    """Example [image path, prompt] rows whose image exists."""
    rows = []
    for line in _lines("i2v_examples.txt"):
        name, _, caption = (part.strip() for part in line.partition("|"))
        if (EXAMPLES_DIR / "images" / name).is_file():
            rows.append([str(EXAMPLES_DIR / "images" / name), caption])
    return rows
