"""Checks of single parameter values as they arrive from the UI or the API (any JSON value at all)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from hummingbird.studio.errors import StudioError
from hummingbird.studio.limits import NATIVE_SIZE, PROMPT_TOKENS, Range, fmt
from hummingbird.validation import MAX_PROMPT_CHARS, MAX_SEED


class Problems(dict):
    """Parameter name -> message, for the per-parameter validator answer and the handler's own check."""

    def summary(self) -> str:
        """All problems in one line."""
        return "; ".join(f"{name}: {message}" for name, message in self.items())


class InvalidSettings(StudioError):
    """The handler's own check failed (the validator normally answers first, per parameter)."""

    def __init__(self, problems: Problems) -> None:
        super().__init__(f"Invalid settings: {problems.summary()}", "Invalid settings")
        self.problems = problems


def collect(checks: dict[str, Callable[[], Any]], problems: Problems) -> dict[str, Any]:
    """Run each named check; keep the values that pass and the messages of those that fail."""
    values = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except ValueError as err:
            problems[name] = str(err)
    return values


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that quote what was sent."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def number(name: str, value: Any, limits: Range) -> float | int:
    """``value`` as an int (whole-number ranges) or float inside ``limits``, else ValueError."""
    kind = "a whole number" if limits.whole else "a number"
    low, high = fmt(limits.low), fmt(limits.high)
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not finite:
        raise ValueError(f"{name} must be {kind} between {low} and {high}, got {shown(value)}")
    if limits.whole and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {shown(value)}")
    if not limits.low <= value <= limits.high:  # exact for ints of any size
        raise ValueError(f"{name} must be between {low} and {high}, got "
                         f"{fmt(value) if isinstance(value, float) else shown(value)}")
    return int(value) if limits.whole else float(value)


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else ValueError."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {shown(value)}")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` if it is a real boolean, else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {shown(value)}")
    return value


def text(name: str, value: Any, required: bool) -> str:
    """Stripped text (empty allowed unless ``required``), else ValueError."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is too long ({len(value)} characters; at most {MAX_PROMPT_CHARS}, and only the "
                         f"first {PROMPT_TOKENS} tokens are used)")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode text (it holds a lone surrogate code point)") from None
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty: describe the video you want")
    return value.strip()


def size(value: Any) -> tuple[int, int]:
    """``"320x512"`` (height x width) -> (320, 512)."""
    parts = value.lower().replace("×", "x").split("x") if isinstance(value, str) and len(value) <= 16 else []
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ValueError(f"resolution must be HEIGHTxWIDTH such as {NATIVE_SIZE!r}, got {shown(value)}")
    return int(parts[0]), int(parts[1])


def seed(value: Any, limits: Range, randomize: Any) -> int | None:
    """The seed to use: None (draw one) when randomizing or when no seed was given."""
    if randomize is True or value is None:
        return None
    return int(number("seed", value, limits))


def random_seed() -> int:
    """A fresh random seed."""
    return secrets.randbelow(MAX_SEED + 1)
