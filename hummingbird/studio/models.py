"""The models of the app: each loaded once, on first use, with the reason kept when one is unavailable."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hummingbird.pipelines import I2VPipeline, T2VPipeline
from hummingbird.sr import AUTO_BUNDLED, Upscaler
from hummingbird.studio.limits import SR_MODELS, T2V_VARIANTS
from hummingbird.weights import I2V_FILES, I2V_REPO, T2V_FILES, T2V_REPO, WeightsUnavailableError, resolve_sr

ENV_WEIGHTS = {"t2v": "HUMMINGBIRD_T2V_WEIGHTS", "i2v": "HUMMINGBIRD_I2V_WEIGHTS", "sr": "HUMMINGBIRD_SR_WEIGHTS"}


def weights_message(kind: str, detail: str, variant: str = "0.9b") -> str:
    """What is missing for ``kind`` ("t2v" or "i2v"), why, and how to get it."""
    if kind == "t2v":
        what, repo, files = f"Text-to-video {variant.upper()}", T2V_REPO, T2V_FILES[variant]
    else:
        what, repo, files = "Image-to-video", I2V_REPO, " ".join(I2V_FILES.values())
    return (f"{what} weights are not available: {detail.strip()} To get them, run `huggingface-cli download "
            f"{repo} {files} --local-dir weights/`, then start the app with {ENV_WEIGHTS[kind]}=weights/ . "
            "To try the interface without weights, run `python app.py --tiny` (random weights: noise output).")


class ModelStore:
    """Loads each model once, on first use (the defaults at start-up), and remembers why one is unavailable."""

    def __init__(self, tiny: bool, sources: dict[str, str | None], dtype: torch.dtype | None = None) -> None:
        self.tiny = tiny
        self.sources = sources
        self.dtype = dtype  # None: each pipeline's default for its device
        self._loaded: dict[str, Any] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()
        self.sr_weights: Path | None = None
        self.sr_note = ""

    @classmethod
    def from_env(cls, tiny: bool, dtype: torch.dtype | None = None) -> ModelStore:
        """A store reading the weights sources from the ``HUMMINGBIRD_*_WEIGHTS`` variables."""
        return cls(tiny, {kind: os.environ.get(name) or None for kind, name in ENV_WEIGHTS.items()}, dtype)

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
            return self._get(self.t2v_key(variant), lambda: T2VPipeline.tiny(dtype=self.dtype))
        return self._get(self.t2v_key(variant),
                         lambda: T2VPipeline.from_release(self.sources["t2v"], variant=variant, dtype=self.dtype))

    def i2v(self) -> I2VPipeline:
        """The I2V pipeline."""
        if self.tiny:
            return self._get(self.i2v_key, lambda: I2VPipeline.tiny(dtype=self.dtype))
        return self._get(self.i2v_key, lambda: I2VPipeline.from_release(self.sources["i2v"], dtype=self.dtype))

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

    def t2v_variants(self) -> tuple[list[str], str | None]:
        """The T2V variants that loaded (or were not tried yet), and what is missing for the others."""
        missing = {value: self.problem(self.t2v_key(value)) for _, value in T2V_VARIANTS}
        notes = " ".join(weights_message("t2v", why, value) for value, why in missing.items() if why)
        return [value for value, why in missing.items() if why is None], notes or None

    def i2v_has_reneg(self) -> bool:
        """False only when the loaded I2V model has no ReNeg embedding."""
        pipe = self.loaded(self.i2v_key)
        return pipe is None or pipe.has_reneg

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
        """Find Hummingbird VSR's ``SR.pth``; else note the bundled fallback."""
        try:
            self.sr_weights = resolve_sr(self.sources["sr"])
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
