"""Every bound, default and choice the app offers; the UI and the server-side checks read the same table."""

from __future__ import annotations

from dataclasses import dataclass

from hummingbird.validation import MAX_SEED

PROMPT_TOKENS = 75
MIN_IMAGE_SIDE = 128
MAX_IMAGE_ASPECT = 3.0
MAX_UPSCALE_FRAMES = 64
MAX_UPSCALE_INPUT_SIDE = 1024
MAX_UPSCALE_OUTPUT_PIXELS = 160_000_000  # all frames together, about 60 frames of 1280x2048

T2V_VARIANTS = [("0.9B (best quality)", "0.9b"), ("0.7B (faster)", "0.7b")]
ASPECTS = [("Crop to fill", "crop"), ("Pad (letterbox)", "pad")]
SR_MODELS = {"hummingbird": "Hummingbird VSR x4 (SR.pth)", "x4plus": "Real-ESRGAN x4plus (photos)",
             "anime": "Real-ESRGAN x4plus anime 6B", "animevideo": "Real-ESRGAN animevideo v3 (fastest)"}
SR_SIZES = [("x4", "x4"), ("x2", "x2"), ("Fit 3840x2160 (x4, then resized to fit)", "fit-3840x2160")]
SR_SIZE_ARGS = {"x4": (4, None), "x2": (2, None), "fit-3840x2160": (4, "4k")}
NATIVE_SIZE = "320x512"
SIZES = [("320x512 (native)", "320x512"), ("320x576 (experimental)", "320x576"),
         ("512x320 portrait (experimental)", "512x320"), ("384x384 (experimental)", "384x384"),
         ("256x256 (experimental)", "256x256")]
TINY_SIZES = [("64x64 (tiny mode)", "64x64"), ("64x128 (tiny mode)", "64x128"), ("128x128 (tiny mode)", "128x128"),
              ("320x512", "320x512")]


@dataclass(frozen=True)
class Range:
    """One numeric control: bounds, default and step (UI and server-side checks read the same numbers)."""

    low: float
    high: float
    default: float
    step: float = 1

    @property
    def whole(self) -> bool:
        """Whether the control takes whole numbers only."""
        return float(self.step).is_integer()


@dataclass(frozen=True)
class Limits:
    """Every bound and default of the UI; ``tiny`` mode has small defaults so runs take seconds on a CPU."""

    t2v_steps: Range = Range(1, 8, 8)
    t2v_frames: Range = Range(8, 26, 26)
    t2v_guidance: Range = Range(2, 14, 7.5, 0.1)
    t2v_fps: Range = Range(4, 24, 8)
    t2v_seed: Range = Range(0, MAX_SEED, 0)
    i2v_steps: Range = Range(1, 60, 16)
    i2v_frames: Range = Range(8, 26, 16)
    i2v_guidance: Range = Range(1, 15, 7.5, 0.5)
    i2v_rescale: Range = Range(0, 1, 0.7, 0.05)
    i2v_eta: Range = Range(0, 1, 1.0, 0.05)
    i2v_motion: Range = Range(15, 30, 24)
    i2v_playback: Range = Range(4, 24, 8)
    i2v_seed: Range = Range(0, MAX_SEED, 123)
    sizes: tuple[tuple[str, str], ...] = tuple(SIZES)
    default_size: str = NATIVE_SIZE
    tiny: bool = False

    @classmethod
    def for_tiny(cls) -> Limits:
        """Small defaults for tiny random models (so a run takes seconds on a CPU)."""
        return cls(t2v_steps=Range(1, 8, 2), t2v_frames=Range(1, 26, 4), i2v_steps=Range(1, 60, 2),
                   i2v_frames=Range(1, 26, 4), sizes=tuple(TINY_SIZES), default_size="64x64", tiny=True)


def fmt(value: float) -> str:
    """A number without a useless ``.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)
