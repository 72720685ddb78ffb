"""A finished result and what the results panel shows of it: summary, settings card, files, snippet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hummingbird.studio.limits import fmt
from hummingbird.studio.snippet import ApiCalls, client_snippet


@dataclass
class Outcome:
    """One finished result, ready for the shared results panel."""

    kind: str  # "t2v", "i2v" or "upscale"
    folder: Path
    stem: str
    fps: float
    frames: np.ndarray
    settings: dict[str, Any]
    timings: dict[str, float]
    api_calls: ApiCalls
    device: str
    tiny: bool = False
    still: bool = False  # one image, not a video
    mp4: Path | None = None
    gif: Path | None = None
    upscaled: Path | None = None
    before_after: tuple[Image.Image, Image.Image] | None = None

    def state(self) -> dict[str, Any]:
        """What the session keeps to upscale this result later without generating it again."""
        return {"frames": self.frames, "fps": self.fps, "stem": self.stem, "settings": self.settings,
                "kind": self.kind, "device": self.device, "tiny": self.tiny, "api_calls": self.api_calls,
                "mp4": self.mp4, "gif": self.gif, "still": self.still, "upscaled": self.upscaled}

    @classmethod
    def from_state(cls, last: dict[str, Any], folder: Path, api_calls: ApiCalls) -> Outcome:
        """A new outcome for the result kept by :meth:`state`, its new files going to ``folder``."""
        return cls(last["kind"], folder, last["stem"], last["fps"], last["frames"], dict(last["settings"]), {},
                   api_calls, last["device"], last["tiny"], last["still"], mp4=last["mp4"], gif=last["gif"])


def stem(kind: str, model: str, seed: int, steps: int, frames: int, height: int, width: int) -> str:
    """Descriptive, prompt-free file name, e.g. ``hummingbird_t2v_09B_seed0_s8_f26_320x512``."""
    tag = "tiny" if "tiny" in model else model.split("-")[-1].replace(".", "").upper()
    return f"hummingbird_{kind}_{tag}_seed{seed}_s{steps}_f{frames}_{height}x{width}"


def device_label(device: str) -> str:
    """``device``, with the GPU's name when it is one."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def summary(outcome: Outcome) -> str:
    """The one-paragraph readout: what was made, how long each stage took, on what, with which seed."""
    count, height, width = outcome.frames.shape[:3]
    stages = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.timings.items())
    total = sum(outcome.timings.values())
    what = (f"**Image · {width}x{height}**" if outcome.still else
            f"**{count} frames · {width}x{height} · {fmt(round(outcome.fps, 3))} fps "
            f"({count / outcome.fps:.1f} s of video)**")
    lines = [f"{what} done in {total:.1f} s on {device_label(outcome.device)} ({stages})."]
    if outcome.upscaled is not None:
        lines.append(f"Upscaled to {outcome.settings['upscale']['output']} (width x height).")
    if "seed" in outcome.settings:
        lines.append(f"Seed **{outcome.settings['seed']}**.")
    if fallback := outcome.settings.get("precision_fallback"):
        lines.append(f"The first try in {outcome.settings['dtype']} gave invalid values (NaN or infinity), so this "
                     f"result was made in {fallback}.")
    if outcome.tiny:
        lines.insert(0, "⚠️ **Tiny random model: this output is noise** (the app runs in `--tiny` mode).\n\n")
    return " ".join(lines)


def _file(path: Path | None) -> str | None:
    """A path as the string Gradio returns, or None."""
    return str(path) if path is not None else None


def panel_values(outcome: Outcome, target: str) -> tuple[Any, ...]:
    """The results panel's values (plain values: the API returns them), in this order: video, summary,
    before/after, MP4, upscaled file, GIF, settings card, client snippet, session state."""
    card = {**outcome.settings, "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()}}
    upscaled_video = outcome.upscaled if outcome.upscaled and outcome.upscaled.suffix == ".mp4" else None
    return (_file(upscaled_video or outcome.mp4),
            summary(outcome),
            outcome.before_after,
            _file(outcome.mp4),
            _file(outcome.upscaled),
            _file(outcome.gif),
            card,
            client_snippet(outcome.api_calls, target, outcome.still),
            outcome.state())
