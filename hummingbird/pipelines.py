"""Text-to-video and image-to-video pipelines.

Both are thin compositions of the model parts around one loop (:func:`hummingbird.schedulers.denoise`):
encode the conditioning, denoise from seeded noise, decode frame chunks with the VAE, convert to uint8.
Every stage reports progress through ``callback(ProgressEvent)`` and its time in ``result.timings``.
"""

from __future__ import annotations

import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPVisionModel

from hummingbird import __version__, checkpoints, configs, faults, pretrained
from hummingbird.configs import ModelConfig
from hummingbird.denoisers import i2v_predictor, t2v_predictor
from hummingbird.fast import optimize
from hummingbird.image import ASPECT_MODES, ImageConditioner, Resampler, preprocess_for_vae
from hummingbird.schedulers import MAX_T2V_STEPS, ConsistencySampler, DDIMSampler, denoise
from hummingbird.text import TextEncoder
from hummingbird.unet import HummingbirdUNet
from hummingbird.validation import (MAX_FRAMES, MAX_I2V_STEPS, MAX_SEED, check_float, check_int, check_seed,
                                    check_size, check_text)
from hummingbird.vae import build_vae, check_latents, decode_latents, encode_image, load_vae, to_uint8
from hummingbird.weights import is_converted_folder, resolve_i2v, resolve_t2v

# Frames decoded at once per 320x512 of frame area (bounds VAE decode memory).
DECODE_FRAMES_GPU, DECODE_FRAMES_CPU = 16, 4


@dataclass
class ProgressEvent:
    """A progress report: ``stage`` is "encode", "denoise" or "decode"; ``step`` of ``total`` are done."""

    stage: str
    step: int
    total: int


Callback = Callable[[ProgressEvent], None]


@dataclass
class GenerationResult:
    """Frames (uint8 [F, H, W, 3]), the seed used, seconds per stage and the settings of the run."""

    frames: np.ndarray
    seed: int
    timings: dict[str, float]
    settings: dict[str, Any]
    latents: torch.Tensor | None = field(default=None, repr=False)


class GenerationOutOfMemory(torch.OutOfMemoryError):
    """Out of memory during generation; the message says which settings to lower."""


class NonFiniteOutput(RuntimeError):
    """The model produced NaN or infinite values, even in the safest precision tried."""


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU (fp16 overflows in some activations of large frames), fp32 on CPU."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


# ---------------------------------------------------------------- shared machinery
def draw_noise(seed: int, shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Noise tensors drawn in order from one CPU generator: identical on every device."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(tuple(shape), generator=generator) for shape in shapes]


def _build_unet(params: dict[str, Any], state_dict: dict[str, torch.Tensor] | None) -> HummingbirdUNet:
    """The U-Net with the given weights (built on the meta device, so nothing is initialised twice)."""
    if state_dict is None:
        return HummingbirdUNet(**params)
    with torch.device("meta"):
        unet = HummingbirdUNet(**params)
    unet.load_state_dict(state_dict, strict=True, assign=True)
    return unet


class _Pipeline:
    """What both pipelines share: devices, prompt encoding, chunked VAE decode, timing and progress.

    The constructor puts the modules on :func:`hummingbird.fast.optimize`'s fast path unless ``optimized=False``.
    """

    def __init__(self, config: ModelConfig, unet: HummingbirdUNet, text_encoder: TextEncoder, vae: Any,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 optimized: bool = True) -> None:
        self.config = config
        self.unet, self.text_encoder, self.vae = unet.eval(), text_encoder, vae.eval()
        self.to(device, dtype)
        if optimized:  # 2-D temporal convs, cuDNN autotuning on GPU; compile + CUDA graphs with HUMMINGBIRD_COMPILE=1
            optimize(self)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def is_tiny(self) -> bool:
        """Random tiny weights: the output is noise."""
        return "tiny" in self.config.name

    def _modules(self) -> list[Any]:
        return [self.unet, self.text_encoder, self.vae]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "_Pipeline":
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = dtype or default_dtype(self.device)
        for module in self._modules():
            if isinstance(module, torch.nn.Module):  # nn.Module.to: diffusers' override only adds a warning
                torch.nn.Module.to(module, self.device, self.dtype)
            else:
                module.to(self.device, self.dtype)
        return self

    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Text embeddings [N, 77, C] (penultimate layer + final norm)."""
        return self.text_encoder.encode(prompts).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, callback: Callback | None = None) -> torch.Tensor:
        """VAE-decode [B, 4, F, h, w] latents to a float video [B, 3, F, H, W] on the CPU."""
        return torch.cat([part.cpu() for part in self._decoded_chunks(latents, callback)], dim=2)

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor, callback: Callback | None = None) -> torch.Tensor:
        """VAE-decode [B, 4, F, h, w] latents to uint8 frames [B, F, H, W, 3] on the CPU (what a run returns).

        Each chunk is checked and converted on the device, so only bytes cross to the host. Raises
        :class:`NonFiniteOutput` when the latents or the decoded video hold NaN or infinity.
        """
        check_latents(self.vae, latents)
        if not torch.isfinite(latents).all():
            raise NonFiniteOutput("the latents hold NaN or infinity")
        batch, _, count, height, width = latents.shape
        scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        frames = torch.empty((batch, count, height * scale, width * scale, 3), dtype=torch.uint8)
        start, finite = 0, []
        for part in self._decoded_chunks(latents, callback):
            finite.append(torch.isfinite(part).all())
            frames[:, start:start + part.shape[2]].copy_(to_uint8(part))  # one copy, straight into place
            start += part.shape[2]
        if not torch.stack(finite).all():
            raise NonFiniteOutput("the decoded video holds NaN or infinity")
        return frames

    def _decoded_chunks(self, latents: torch.Tensor, callback: Callback | None) -> Iterator[torch.Tensor]:
        """Float32 video chunks [B, 3, f, H, W] on the device, sized to bound the VAE's memory."""
        frames, area = latents.shape[2], latents.shape[3] * latents.shape[4] * 64
        per_chunk = DECODE_FRAMES_GPU if self.device.type == "cuda" else DECODE_FRAMES_CPU
        chunk = max(1, int(per_chunk * 320 * 512 / area))
        for start in range(0, frames, chunk):
            part = latents[:, :, start:start + chunk].to(self.device, self.dtype)
            yield decode_latents(self.vae, part, self.config.scale_factor)
            _report(callback, "decode", min(start + chunk, frames), frames)

    def _generate(self, run: Callable[[], tuple[torch.Tensor, torch.Tensor]], what: str,
                  settings: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run sampling + decoding; on NaN/Inf retry in safer precisions (fp16 -> bf16 -> fp32), and turn an
        out-of-memory error into one that says what to lower. Returns (latents, uint8 frames)."""
        original = self.dtype
        try:
            for dtype in _fallback_dtypes(original):
                if dtype != self.dtype:
                    self.to(self.device, dtype)
                    settings["precision_fallback"] = str(dtype).replace("torch.", "")
                try:
                    return run()
                except NonFiniteOutput:
                    continue
            raise NonFiniteOutput(f"the model produced invalid values (NaN or infinity) for {what}, even in "
                                  "float32; try another seed or fewer steps")
        except torch.OutOfMemoryError as exc:
            _free_memory()
            raise GenerationOutOfMemory(f"out of memory generating {what} on {self.device}: try fewer frames, a "
                                        "smaller size, or turn off the x4 upscale") from exc
        finally:
            if self.dtype != original:
                self.to(self.device, original)

    def _settings(self, **values: Any) -> dict[str, Any]:
        return {"model": self.name, **values, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", "")}

    @contextmanager
    def _timed(self, timings: dict[str, float], stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write a diffusers-style folder: one subfolder per component (safetensors + config) and
        ``model_index.json``, written last. The weights keep the pipeline's dtype."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        entries = self._save_components(out)
        index = {"_class_name": type(self).__name__, "_hummingbird_version": __version__, **entries,
                 "config": self.config.to_dict()}
        pretrained.write_json(out / pretrained.PIPELINE_INDEX, index)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None) -> "_Pipeline":
        """Load a folder written by :meth:`save_pretrained` (no release file needed)."""
        folder = Path(directory)
        index = pretrained.read_index(folder, cls.__name__)
        config = ModelConfig.from_dict(index["config"])
        return cls(config, device=device, dtype=dtype, **cls._load_components(folder, config, index))

    def _save_components(self, out: Path) -> dict[str, list[str | None]]:
        """Save the U-Net, text encoder and VAE under ``out``; return their ``model_index.json`` entries."""
        self.unet.save_pretrained(out / "unet")
        self.text_encoder.model.save_pretrained(out / "text_encoder")
        self.vae.save_pretrained(out / "vae")
        return {"unet": ["hummingbird.unet", "HummingbirdUNet"], "text_encoder": ["transformers", "CLIPTextModel"],
                "vae": ["diffusers", "AutoencoderKL"]}

    @classmethod
    def _load_components(cls, folder: Path, config: ModelConfig, index: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments read from the subfolders written by :meth:`_save_components`."""
        unet = _build_unet(config.unet, load_file(folder / "unet" / SAFETENSORS_WEIGHTS_NAME))
        text = CLIPTextModel.from_pretrained(folder / "text_encoder").requires_grad_(False)
        return {"unet": unet, "text_encoder": TextEncoder(text), "vae": pretrained.load_vae_folder(folder / "vae")}


def _fallback_dtypes(dtype: torch.dtype) -> list[torch.dtype]:
    order = [torch.float16, torch.bfloat16, torch.float32]
    return order[order.index(dtype):] if dtype in order else [dtype]


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _injected_faults(latents: torch.Tensor) -> torch.Tensor:
    """Apply the faults armed in :mod:`hummingbird.faults` (tests only arm them)."""
    return latents * float("nan") if faults.take("nan") else latents


def _check_oom_injection() -> None:
    if faults.take("oom"):
        raise torch.OutOfMemoryError("injected out-of-memory fault")


def _report(callback: Callback | None, stage: str, step: int, total: int) -> None:
    if callback is not None:
        callback(ProgressEvent(stage, step, total))


def _step_reporter(callback: Callback | None, total: int):
    return None if callback is None else (lambda index, *_: _report(callback, "denoise", index + 1, total))


def _new_seed(seed: int | None) -> int:
    return secrets.randbelow(MAX_SEED + 1) if seed is None else int(seed)


def _loaded_core(config: ModelConfig, components: dict[str, Any]) -> dict[str, Any]:
    """U-Net, text encoder and VAE built from release-layout state dicts (the parts both pipelines share)."""
    return {"unet": _build_unet(config.unet, components["unet"]),
            "text_encoder": TextEncoder.from_openclip_state_dict(components["text_encoder"], config.text),
            "vae": load_vae(components["vae"], config.vae)}


def _random_core(config: ModelConfig) -> dict[str, Any]:
    """U-Net, text encoder and VAE with random weights (draws from the global RNG)."""
    return {"unet": HummingbirdUNet(**config.unet), "text_encoder": TextEncoder.random(config.text),
            "vae": build_vae(config.vae)}


def _read_release(path: Path) -> tuple[ModelConfig | None, dict[str, Any]]:
    if is_converted_folder(path):
        return checkpoints.load_converted(path)
    return None, checkpoints.split_components(checkpoints.read_state_dict(path))


# ---------------------------------------------------------------- text to video
class T2VPipeline(_Pipeline):
    """Hummingbird text-to-video (0.9B or 0.7B): T2V-Turbo consistency sampling, guidance as an embedding."""

    @classmethod
    def from_components(cls, config: ModelConfig, components: dict[str, dict[str, torch.Tensor]],
                        device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "T2VPipeline":
        return cls(config, device=device, dtype=dtype, **_loaded_core(config, components))

    @classmethod
    def from_release(cls, source: str | os.PathLike | None = None, variant: str = "0.9b",
                     config: ModelConfig | None = None, device: torch.device | str | None = None,
                     dtype: torch.dtype | None = None) -> "T2VPipeline":
        """Load a release file (``09B_merged_all.pt`` / ``07B_merged_all.pt``), a folder written by
        ``convert`` or ``save_pretrained``, or the hub repo ``amd/AMD-Hummingbird-T2V`` (the default)."""
        if pretrained.is_pretrained_folder(source):
            return cls.from_pretrained(source, device, dtype)
        path = resolve_t2v(source, variant)
        stored_config, components = _read_release(path)
        config = checkpoints.infer_config(components, config or stored_config)
        if config.unet.get("use_middle_block", True) != (variant == "0.9b") and config.name.startswith("t2v-0"):
            found = "0.9b" if config.unet.get("use_middle_block", True) else "0.7b"
            raise ValueError(f"{path} holds the {found} model, but variant={variant!r} was asked for")
        return cls.from_components(config, components, device, dtype)

    @classmethod
    def tiny(cls, seed: int = 0, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
             optimized: bool = True) -> "T2VPipeline":
        """Random tiny weights with every structural flag of the release: for tests and smoke runs."""
        config = configs.T2V_TINY
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            core = _random_core(config)
        return cls(config, device=device, dtype=dtype, optimized=optimized, **core)

    @staticmethod
    def validate(prompt: Any, steps: Any = 8, frames: Any = 26, height: Any = 320, width: Any = 512,
                 guidance: Any = 7.5, fps: Any = 8, seed: Any = None) -> None:
        """Raise ValueError with what is allowed when an argument is out of range."""
        check_text("prompt", prompt, required=True)
        check_int("steps", steps, 1, MAX_T2V_STEPS)
        check_int("frames", frames, 1, MAX_FRAMES)
        check_size(height, width)
        check_float("guidance", guidance, 0.0, 20.0)
        check_int("fps", fps, 1, 60)
        check_seed(seed)

    @torch.no_grad()
    def sample(self, context: torch.Tensor, latents: torch.Tensor, noises: Sequence[torch.Tensor], steps: int,
               guidance: float, fps: int, on_step: Callable[..., None] | None = None) -> torch.Tensor:
        """Consistency sampling from ``latents`` [B, 4, F, h, w]; returns the last denoised latent."""
        sampler = ConsistencySampler(steps)
        predict = t2v_predictor(self.unet, context, guidance, fps)
        noises = [n.to(self.device) for n in noises]
        return denoise(sampler, predict, latents.to(self.device), noises, on_step)

    def __call__(self, prompt: str, steps: int = 8, frames: int = 26, height: int = 320, width: int = 512,
                 guidance: float = 7.5, fps: int = 8, seed: int | None = None, callback: Callback | None = None,
                 latents: torch.Tensor | None = None,
                 noises: Sequence[torch.Tensor] | None = None) -> GenerationResult:
        """Generate a video for ``prompt``. ``latents``/``noises`` override the seeded noise."""
        self.validate(prompt, steps, frames, height, width, guidance, fps, seed)
        seed = _new_seed(seed)
        shape = (1, 4, frames, height // 8, width // 8)
        if latents is None or noises is None:
            drawn = draw_noise(seed, [shape] * (steps + 1))
            latents, noises = drawn[0] if latents is None else latents, noises or drawn[1:]
        timings: dict[str, float] = {}
        settings = self._settings(task="t2v", prompt=prompt, steps=steps, frames=frames, height=height,
                                  width=width, guidance=guidance, fps=fps, seed=seed)

        def run() -> tuple[torch.Tensor, torch.Tensor]:
            with self._timed(timings, "encode"):
                context = self.encode_prompt([prompt])
                _report(callback, "encode", 1, 1)
            with self._timed(timings, "denoise"):
                _check_oom_injection()
                out = self.sample(context, latents, noises, steps, guidance, fps, _step_reporter(callback, steps))
                out = _injected_faults(out)
            with self._timed(timings, "decode"):
                return out, self.decode_frames(out, callback)

        out, video = self._generate(run, f"{frames} frames at {height}x{width}", settings)
        return GenerationResult(video[0].numpy(), seed, timings, settings, out.cpu())


# ---------------------------------------------------------------- image to video
def default_i2v_schedule() -> dict[str, torch.Tensor]:
    """Zero-terminal-SNR scaled-linear schedule and the dynamic-rescale ``scale_arr`` (spec i2v.md §8)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              rescale_betas_zero_snr=True)
    scale_arr = torch.cat([torch.linspace(1.0, 0.7, 400), torch.full((1000,), 0.7)])
    return {"alphas_cumprod": scheduler.alphas_cumprod.float(), "scale_arr": scale_arr}


class I2VPipeline(_Pipeline):
    """Hummingbird image-to-video 0.9B: v-prediction DDIM with CFG, guidance rescale and ReNeg."""

    batched_cfg = True  # both guidance branches in one U-Net call (same result as two calls, faster)

    def __init__(self, config: ModelConfig, unet: HummingbirdUNet, text_encoder: TextEncoder, vae: Any,
                 image_conditioner: ImageConditioner, schedule: dict[str, torch.Tensor],
                 reneg: torch.Tensor | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, optimized: bool = True) -> None:
        self.image_conditioner = image_conditioner
        self.schedule = schedule
        self.reneg = reneg
        super().__init__(config, unet, text_encoder, vae, device, dtype, optimized)

    def _modules(self) -> list[Any]:
        return super()._modules() + [self.image_conditioner]

    @property
    def has_reneg(self) -> bool:
        return self.reneg is not None

    @classmethod
    def from_components(cls, config: ModelConfig, components: dict[str, Any],
                        device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "I2VPipeline":
        image = ImageConditioner.from_state_dicts(components["image_encoder"], components["resampler"],
                                                  config.vision, config.resampler)
        schedule = dict(default_i2v_schedule())
        schedule.update({k: v.float() for k, v in components.get("schedule", {}).items()
                         if k in ("alphas_cumprod", "scale_arr")})
        reneg = components.get("reneg", {}).get(checkpoints.TENSOR_KEY)
        return cls(config, image_conditioner=image, schedule=schedule, reneg=reneg, device=device, dtype=dtype,
                   **_loaded_core(config, components))

    @classmethod
    def from_release(cls, source: str | os.PathLike | None = None, config: ModelConfig | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "I2VPipeline":
        """Load ``stage_1.ckpt`` with the ``unet.pt`` / ``img_proj.pt`` overrides and ``reneg_checkpoint.bin``
        found beside it, a folder written by ``convert`` or ``save_pretrained``, or the hub repo
        ``amd/AMD-Hummingbird-I2V``."""
        if pretrained.is_pretrained_folder(source):
            return cls.from_pretrained(source, device, dtype)
        files = resolve_i2v(source)
        if isinstance(files, Path):
            stored_config, components = checkpoints.load_converted(files)
        else:
            stored_config, components = _read_release(files.stage_1)
            if files.unet is not None:
                components["unet"] = checkpoints.read_state_dict(files.unet)
            if files.img_proj is not None:
                components["resampler"] = checkpoints.read_state_dict(files.img_proj)
            if files.reneg is not None:
                components["reneg"] = {checkpoints.TENSOR_KEY: checkpoints.load_reneg(files.reneg)}
        config = checkpoints.infer_config(components, config or stored_config)
        return cls.from_components(config, components, device, dtype)

    @classmethod
    def tiny(cls, seed: int = 0, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
             optimized: bool = True) -> "I2VPipeline":
        """Random tiny weights with every structural flag of the release: for tests and smoke runs."""
        config = configs.I2V_TINY
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            core = _random_core(config)
            image = ImageConditioner.random(config.vision, config.resampler)
            reneg = torch.randn(1, 77, config.text["width"])
        return cls(config, image_conditioner=image, schedule=default_i2v_schedule(), reneg=reneg, device=device,
                   dtype=dtype, optimized=optimized, **core)

    @staticmethod
    def validate(image: Any = None, prompt: Any = "", steps: Any = 16, frames: Any = 16, height: Any = 320,
                 width: Any = 512, guidance: Any = 7.5, guidance_rescale: Any = 0.7, fps: Any = 24,
                 eta: Any = 1.0, reneg: Any = True, negative_prompt: Any = None, aspect: Any = "crop",
                 seed: Any = None) -> None:
        """Raise ValueError with what is allowed when an argument is out of range (the image is checked
        when it is read)."""
        check_text("prompt", prompt, required=False)
        check_int("steps", steps, 1, MAX_I2V_STEPS)
        check_int("frames", frames, 1, MAX_FRAMES)
        check_size(height, width)
        check_float("guidance", guidance, 1.0, 20.0)
        check_float("guidance_rescale", guidance_rescale, 0.0, 1.0)
        check_int("fps", fps, 1, 60)
        check_float("eta", eta, 0.0, 1.0)
        if not isinstance(reneg, bool):
            raise ValueError(f"reneg must be true or false, got {reneg!r}")
        check_text("negative_prompt", negative_prompt, required=False)
        if aspect not in ASPECT_MODES:
            raise ValueError(f"aspect must be one of {', '.join(ASPECT_MODES)}, got {aspect!r}")
        check_seed(seed)

    @torch.no_grad()
    def prepare_image(self, image: Any, height: int, width: int, aspect: str,
                      posterior_noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning frame [1, 3, H, W] in [-1, 1] and its scaled VAE latent [1, 4, H/8, W/8]."""
        frame = preprocess_for_vae(image, height, width, aspect)[None]
        latent = encode_image(self.vae, frame.to(self.device, self.dtype), noise=posterior_noise.to(self.device),
                              sample=True, scale_factor=self.config.scale_factor)
        return frame, latent.float()

    @torch.no_grad()
    def contexts(self, frame: torch.Tensor, prompt: str, reneg: bool,
                 negative_prompt: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditional and unconditional cross-attention contexts [1, 77 + tokens, C]."""
        frame = frame.to(self.device, self.dtype)
        tokens = self.image_conditioner.image_tokens(frame).float()
        uc_tokens = self.image_conditioner.uncond_tokens(frame).float()
        if reneg:
            if self.reneg is None:
                raise ValueError("the ReNeg embedding (reneg_checkpoint.bin) is not loaded; pass reneg=False")
            negative = self.reneg.float().to(tokens.device).expand(tokens.shape[0], -1, -1)
        else:
            negative = self.encode_prompt([negative_prompt or ""])
        text = self.encode_prompt([prompt])
        return torch.cat([text, tokens], dim=1), torch.cat([negative, uc_tokens], dim=1)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, uncond: torch.Tensor, image_latent: torch.Tensor, x_T: torch.Tensor,
               noises: Sequence[torch.Tensor], steps: int, guidance: float, guidance_rescale: float, fps: int,
               eta: float, on_step: Callable[..., None] | None = None) -> torch.Tensor:
        """DDIM sampling from ``x_T`` [B, 4, F, h, w] with the checkpoint's noise schedule."""
        sampler = DDIMSampler(self.schedule["alphas_cumprod"], steps, eta, self.schedule.get("scale_arr"))
        predict = i2v_predictor(self.unet, cond, uncond, image_latent, fps, guidance, guidance_rescale,
                                self.batched_cfg)
        noises = [n.to(self.device) for n in noises]
        return denoise(sampler, predict, x_T.to(self.device), noises, on_step)

    def __call__(self, image: Any, prompt: str = "", steps: int = 16, frames: int = 16, height: int = 320,
                 width: int = 512, guidance: float = 7.5, guidance_rescale: float = 0.7, fps: int = 24,
                 eta: float = 1.0, reneg: bool = True, negative_prompt: str | None = None, aspect: str = "crop",
                 seed: int | None = None, callback: Callback | None = None,
                 noises: Sequence[torch.Tensor] | None = None) -> GenerationResult:
        """Animate ``image`` (path, bytes, array or PIL image) following ``prompt``.

        16 frames is the trained length: the per-frame image tokens only line up at 16 frames; other counts
        run as the reference does (every frame attends to all image tokens) and are experimental. ``fps`` is the
        motion conditioning (24 in the release), not the playback rate. ``noises`` = [posterior [1, 4, h, w],
        x_T, one per step] overrides the seeded noise.
        """
        self.validate(image, prompt, steps, frames, height, width, guidance, guidance_rescale, fps, eta, reneg,
                      negative_prompt, aspect, seed)
        seed = _new_seed(seed)
        latent_hw = (height // 8, width // 8)
        if noises is None:
            noises = draw_noise(seed, [(1, 4, *latent_hw)] + [(1, 4, frames, *latent_hw)] * (steps + 1))
        timings: dict[str, float] = {}
        settings = self._settings(task="i2v", prompt=prompt, steps=steps, frames=frames, height=height,
                                  width=width, guidance=guidance, guidance_rescale=guidance_rescale, fps=fps,
                                  eta=eta, reneg=reneg, negative_prompt=None if reneg else negative_prompt,
                                  aspect=aspect, seed=seed)

        def run() -> tuple[torch.Tensor, torch.Tensor]:
            with self._timed(timings, "encode"):
                frame, image_latent = self.prepare_image(image, height, width, aspect, noises[0])
                cond, uncond = self.contexts(frame, prompt, reneg, negative_prompt)
                _report(callback, "encode", 1, 1)
            with self._timed(timings, "denoise"):
                _check_oom_injection()
                out = self.sample(cond, uncond, image_latent, noises[1], noises[2:], steps, guidance,
                                  guidance_rescale, fps, eta, _step_reporter(callback, steps))
                out = _injected_faults(out)
            with self._timed(timings, "decode"):
                return out, self.decode_frames(out, callback)

        out, video = self._generate(run, f"{frames} frames at {height}x{width}", settings)
        return GenerationResult(video[0].numpy(), seed, timings, settings, out.cpu())

    def _save_components(self, out: Path) -> dict[str, list[str | None]]:
        """The shared components plus the CLIP vision tower, Resampler, noise schedule and ReNeg (when loaded)."""
        entries = super()._save_components(out)
        self.image_conditioner.vision.save_pretrained(out / "image_encoder")
        pretrained.save_tensors(out / "resampler", self.image_conditioner.resampler.state_dict(),
                                self.config.resampler)
        pretrained.save_tensors(out / "schedule", self.schedule)
        if self.reneg is not None:
            pretrained.save_tensors(out / "reneg", {checkpoints.TENSOR_KEY: self.reneg})
        return {**entries, "image_encoder": ["transformers", "CLIPVisionModel"],
                "resampler": ["hummingbird.image", "Resampler"], "schedule": ["safetensors", "tensors"],
                "reneg": ["safetensors", "tensors"] if self.reneg is not None else [None, None]}

    @classmethod
    def _load_components(cls, folder: Path, config: ModelConfig, index: dict[str, Any]) -> dict[str, Any]:
        parts = super()._load_components(folder, config, index)
        vision = CLIPVisionModel.from_pretrained(folder / "image_encoder")
        with torch.device("meta"):
            resampler = Resampler(**config.resampler)
        resampler.load_state_dict(pretrained.load_tensors(folder / "resampler"), strict=True, assign=True)
        has_reneg = index.get("reneg", [None])[0] is not None
        reneg = pretrained.load_tensors(folder / "reneg")[checkpoints.TENSOR_KEY] if has_reneg else None
        return {**parts, "image_conditioner": ImageConditioner(vision, resampler).eval(),
                "schedule": pretrained.load_tensors(folder / "schedule"), "reneg": reneg}


def load_pipeline(task: str, weights: str | os.PathLike | None, variant: str = "0.9b",
                  device: torch.device | str | None = None) -> "T2VPipeline | I2VPipeline":
    """The ``task`` ("t2v" or "i2v") pipeline: random tiny weights for "tiny", else anything ``from_release``
    accepts (``variant`` picks the T2V release file)."""
    cls = T2VPipeline if task == "t2v" else I2VPipeline
    if weights == "tiny":
        return cls.tiny(device=device)
    if task == "t2v":
        return T2VPipeline.from_release(weights, variant=variant, device=device)
    return I2VPipeline.from_release(weights, device=device)
