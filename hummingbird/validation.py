"""Argument rules shared by the pipelines, the commands and the app: each check raises a ValueError that says
what is allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MAX_FRAMES = 26
MIN_SIDE, MAX_SIDE = 64, 1024
MAX_SEED = 2**31 - 1
MAX_PROMPT_CHARS = 2000
MAX_I2V_STEPS = 100


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int) -> None:
    if not is_int(value):
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def check_float(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number between {low:g} and {high:g}, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value}")


def check_text(name: str, value: Any, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is too long ({len(value)} characters; at most {MAX_PROMPT_CHARS}, "
                         "and only the first 75 tokens are used)")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")


def check_size(height: Any, width: Any) -> None:
    for name, value in (("height", height), ("width", width)):
        check_int(name, value, MIN_SIDE, MAX_SIDE)
        if value % 64:
            raise ValueError(f"{name} must be a multiple of 64 (the U-Net downsamples the 1/8 latent three "
                             f"times), got {value}; 320x512 is the trained size")


def check_seed(seed: Any) -> None:
    if seed is not None:
        check_int("seed", seed, 0, MAX_SEED)
