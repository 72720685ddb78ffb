"""Whole requests of the three endpoints: every parameter checked, each problem reported under its name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hummingbird.pipelines import I2VPipeline, T2VPipeline
from hummingbird.studio import fields, uploads
from hummingbird.studio.fields import Problems, collect
from hummingbird.studio.limits import ASPECTS, MAX_UPSCALE_OUTPUT_PIXELS, PROMPT_TOKENS, SR_SIZE_ARGS, T2V_VARIANTS
from hummingbird.studio.models import weights_message
from hummingbird.studio.state import Studio
from hummingbird.text import count_tokens
from hummingbird.weights import WeightsUnavailableError

T2V_PARAMS = ("prompt", "variant", "steps", "frames", "resolution", "guidance", "fps", "seed", "randomize_seed",
              "upscale")
I2V_PARAMS = ("image", "prompt", "steps", "frames", "resolution", "guidance", "guidance_rescale", "motion_fps",
              "playback_fps", "eta", "reneg", "negative_prompt", "aspect", "seed", "randomize_seed", "upscale")
UPSCALE_PARAMS = ("media", "model", "size")


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
    size: str
    frames: int
    height: int
    width: int
    out_height: int
    out_width: int

    @property
    def scale(self) -> int:
        """The network's upscaling factor."""
        return SR_SIZE_ARGS[self.size][0]

    @property
    def target(self) -> str | None:
        """The size the result is fitted to afterwards, if any."""
        return SR_SIZE_ARGS[self.size][1]


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


def check_t2v(app: Studio, prompt: Any, variant: Any, steps: Any, frames: Any, resolution: Any, guidance: Any,
              fps: Any, seed: Any, randomize_seed: Any, upscale: Any) -> tuple[T2VRequest | None, Problems]:
    """Parse and check text-to-video settings; the request, or the problems per parameter."""
    lim, models, problems = app.limits, app.models, Problems()
    v = collect({
        "prompt": lambda: fields.text("prompt", prompt, required=True),
        "variant": lambda: fields.choice("variant", variant, [value for _, value in T2V_VARIANTS]),
        "steps": lambda: fields.number("steps", steps, lim.t2v_steps),
        "frames": lambda: fields.number("frames", frames, lim.t2v_frames),
        "resolution": lambda: fields.size(resolution),
        "guidance": lambda: fields.number("guidance", guidance, lim.t2v_guidance),
        "fps": lambda: fields.number("fps", fps, lim.t2v_fps),
        "randomize_seed": lambda: fields.flag("randomize_seed", randomize_seed),
        "seed": lambda: fields.seed(seed, lim.t2v_seed, randomize_seed),
        "upscale": lambda: fields.flag("upscale", upscale),
    }, problems)
    pipeline_values = {k: v[k] for k in ("prompt", "steps", "frames", "guidance", "fps") if k in v}
    if "resolution" in v:
        pipeline_values.update(height=v["resolution"][0], width=v["resolution"][1])
    _model_rules(T2VPipeline.validate, {"prompt": "a bird"}, pipeline_values,
                 {"height": "resolution", "width": "resolution"}, problems)
    if "variant" in v and (missing := models.problem(models.t2v_key(v["variant"]))):
        problems["variant"] = weights_message("t2v", missing, v["variant"])
    if problems:
        return None, problems
    return T2VRequest(v["prompt"], v["variant"], v["steps"], v["frames"], *v["resolution"], v["guidance"],
                      v["fps"], v["seed"], v["upscale"]), problems


def check_i2v(app: Studio, image: Any, prompt: Any, steps: Any, frames: Any, resolution: Any, guidance: Any,
              guidance_rescale: Any, motion_fps: Any, playback_fps: Any, eta: Any, reneg: Any, negative_prompt: Any,
              aspect: Any, seed: Any, randomize_seed: Any, upscale: Any) -> tuple[I2VRequest | None, Problems]:
    """Parse and check image-to-video settings; the request, or the problems per parameter."""
    lim, problems = app.limits, Problems()
    v = collect({
        "image": lambda: uploads.image_to_animate(app.uploads, image),
        "prompt": lambda: fields.text("prompt", prompt, required=False),
        "steps": lambda: fields.number("steps", steps, lim.i2v_steps),
        "frames": lambda: fields.number("frames", frames, lim.i2v_frames),
        "resolution": lambda: fields.size(resolution),
        "guidance": lambda: fields.number("guidance", guidance, lim.i2v_guidance),
        "guidance_rescale": lambda: fields.number("guidance_rescale", guidance_rescale, lim.i2v_rescale),
        "motion_fps": lambda: fields.number("motion_fps", motion_fps, lim.i2v_motion),
        "playback_fps": lambda: fields.number("playback_fps", playback_fps, lim.i2v_playback),
        "eta": lambda: fields.number("eta", eta, lim.i2v_eta),
        "reneg": lambda: fields.flag("reneg", reneg),
        "negative_prompt": lambda: fields.text("negative_prompt", negative_prompt, required=False),
        "aspect": lambda: fields.choice("aspect", aspect, [value for _, value in ASPECTS]),
        "randomize_seed": lambda: fields.flag("randomize_seed", randomize_seed),
        "seed": lambda: fields.seed(seed, lim.i2v_seed, randomize_seed),
        "upscale": lambda: fields.flag("upscale", upscale),
    }, problems)
    pipeline_values = {k: v[k] for k in ("prompt", "steps", "frames", "guidance", "guidance_rescale", "eta")
                       if k in v}
    if "motion_fps" in v:
        pipeline_values["fps"] = v["motion_fps"]
    if "resolution" in v:
        pipeline_values.update(height=v["resolution"][0], width=v["resolution"][1])
    _model_rules(I2VPipeline.validate, {}, pipeline_values,
                 {"height": "resolution", "width": "resolution", "fps": "motion_fps"}, problems)
    _check_i2v_model(app, v.get("reneg"), problems)
    if problems:
        return None, problems
    return I2VRequest(v["image"], v["prompt"], v["steps"], v["frames"], *v["resolution"], v["guidance"],
                      v["guidance_rescale"], v["motion_fps"], v["playback_fps"], v["eta"], v["reneg"],
                      None if v["reneg"] else v["negative_prompt"] or None, v["aspect"], v["seed"],
                      v["upscale"]), problems


def _check_i2v_model(app: Studio, reneg: bool | None, problems: Problems) -> None:
    """Problems that come from the I2V model itself: missing weights, or no ReNeg embedding."""
    models = app.models
    if missing := models.problem(models.i2v_key):
        problems["image"] = weights_message("i2v", missing)
    elif reneg and not models.i2v_has_reneg():
        problems["reneg"] = ("the ReNeg embedding (reneg_checkpoint.bin) is not available: turn ReNeg off and "
                             "optionally write a negative prompt")


def check_upscale(app: Studio, media: Any, model: Any, size: Any) -> tuple[UpscaleRequest | None, Problems]:
    """Parse and check an upscale request (an uploaded video or image); the request, or the problems."""
    settings, problems = check_upscale_settings(app, model, size)
    found = collect({"media": lambda: uploads.media_to_upscale(app.uploads, media)}, problems).get("media")
    if settings is None or found is None:
        return None, problems
    model, size = settings
    scale, target = SR_SIZE_ARGS[size]
    try:
        out_h, out_w = app.models.upscaler(model).output_size(found.height, found.width, scale, target)
    except WeightsUnavailableError as err:
        problems["model"] = str(err)
        return None, problems
    if found.frames * out_h * out_w > MAX_UPSCALE_OUTPUT_PIXELS:
        problems["media"] = (f"{found.frames} frames of {out_w}x{out_h} px is more than this app upscales at once "
                             f"({MAX_UPSCALE_OUTPUT_PIXELS / 1e6:g} megapixels in all): trim the video or pick x2")
        return None, problems
    return UpscaleRequest(found.path, found.is_video, model, size, found.frames, found.height, found.width, out_h,
                          out_w), problems


def check_upscale_settings(app: Studio, model: Any, size: Any) -> tuple[tuple[str, str] | None, Problems]:
    """Parse and check the upscaler choice and output size; (model, size), or the problems."""
    problems = Problems()
    v = collect({"model": lambda: fields.choice("model", model, app.models.sr_models),
                 "size": lambda: fields.choice("size", size, list(SR_SIZE_ARGS))}, problems)
    return (None if problems else (v["model"], v["size"])), problems


def answers(problems: Problems, names: tuple[str, ...]) -> list[tuple[bool, str]]:
    """(valid, message) per input, in input order: the validator's answer."""
    return [(name not in problems, problems.get(name, "")) for name in names]


def long_prompt_warning(prompt: str) -> str | None:
    """A warning when the prompt is longer than the text encoder reads, else None."""
    tokens = count_tokens(prompt) if prompt else 0
    if tokens > PROMPT_TOKENS:
        return f"The prompt has {tokens} tokens; only the first {PROMPT_TOKENS} are used."
    return None


def describe_media(app: Studio, media: Any, model: Any, size: Any) -> str | None:
    """A line about an uploaded file and the size it will be upscaled to (None when nothing is uploaded)."""
    if not media:
        return None
    req, problems = check_upscale(app, media, model, size)
    if req is None:
        return "⚠️ " + "; ".join(problems.values())
    what = f"{req.frames}-frame video" if req.is_video else "image"
    return f"{what}, {req.width}x{req.height} → {req.out_width}x{req.out_height} (width x height)."
