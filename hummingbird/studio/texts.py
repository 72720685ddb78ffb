"""The app's fixed texts: header, notices, hints and the small lines that follow the controls."""

from __future__ import annotations

import torch

from hummingbird.studio.limits import MAX_UPSCALE_FRAMES, MAX_UPSCALE_INPUT_SIDE, fmt
from hummingbird.studio.results import device_label

LICENSE_NOTICE = (
    "Hummingbird models by AMD: the upstream licence terms differ per artefact (RAIL-MS on GitHub, GPL-3.0 on the "
    "T2V model card, AGPL-3.0 on the I2V model card); read them before using the outputs. The bundled Real-ESRGAN "
    "stand-in weights are BSD-3-Clause. Shown timings are measured on this machine, not marketing figures.")
MEDIA_HINT = (f"Upload a video or an image (at most {MAX_UPSCALE_FRAMES} frames, longer side at most "
              f"{MAX_UPSCALE_INPUT_SIDE} px).")
RENEG_INFO = ("Replaces the empty/negative prompt of classifier-free guidance with AMD's learned negative "
              "embedding")
RENEG_MISSING = "Unavailable: reneg_checkpoint.bin was not found next to the I2V weights"


def header(tiny: bool) -> str:
    """Title, device line, and the CPU and tiny-mode warnings."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = ["# 🐦 Hummingbird Studio",
             "AMD Hummingbird: text-to-video (0.9B / 0.7B), image-to-video (0.9B) and x4 upscaling.",
             f"Models run on **{device_label(device)}**."]
    if device == "cpu":
        lines.append("No GPU found: generation is slow on a CPU. Keep frames and steps low, and leave the x4 "
                     "upscale off.")
    if tiny:
        lines.append("⚠️ **Tiny mode: the models have tiny random weights, so every video is noise.** Defaults "
                     "are 64x64 and 4 frames to keep runs quick; this mode exists to test the app end to end.")
    return "\n\n".join(lines)


def status_line(problem: str | None, ready: str) -> str:
    """A tab's first line: what is missing, or how to start."""
    return f"⚠️ **Not available here.** {problem}" if problem else ready


def duration(frames: float, fps: float) -> str:
    """How long ``frames`` play at ``fps``."""
    return f"{int(frames)} frames at {fmt(fps)} fps = {frames / fps:.1f} s of video"


def short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
