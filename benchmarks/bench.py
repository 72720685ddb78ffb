"""Speed benchmark: the reference-equivalent baseline against our fast path, at the release sizes.

    python -m benchmarks.bench [--parts t2v09,vae,...] [--runs 5] [--warmup 2] [--check] [--json out.json]

Weights are random (nothing is downloaded); every shape is the release's. Each case runs in two modes:

- ``baseline``, as the reference code runs: float32 weights under float16 autocast (on CUDA), attention
  on 3-D ``(batch*heads, seq, dim)`` tensors with an explicit softmax, two U-Net calls per CFG step, a per-frame
  VAE decode and a per-frame SR pass, no cuDNN autotuning;
- ``fast``, our default path: the pipelines' dtype (bf16 on GPU), SDPA, batched CFG, the chunked VAE decode and
  batched SR, then :func:`hummingbird.fast.optimize` with its defaults (``--compile`` or ``HUMMINGBIRD_COMPILE=1``
  compiles it);
- ``--modes`` adds variants of the fast path, each on its own copy of the weights: ``graphs`` (CUDA graphs),
  ``compiled`` (regional ``torch.compile`` and CUDA graphs), ``channels-last`` (every 2-D convolution NHWC),
  ``fp8`` (the U-Net's transformer linears in FP8), ``triton-norms`` (the U-Net's and VAE's GroupNorms with their
  SiLUs as Triton kernels), ``autotune`` (compiled with ``max-autotune``: Triton templates for convolutions and
  matmuls, minutes of autotuning), and combinations joined by ``+`` (``compiled+fp8``).

Per mode: the median of ``--runs`` timed runs after ``--warmup`` untimed ones (CUDA events on GPU, perf_counter on
CPU), the first call's time (CUDA-graph capture and compilation included), the peak allocated GPU memory, and
TFLOP/s from FLOPs counted once per case by ``FlopCounterMode``. ``--profile DIR`` writes each fast mode's
busiest kernels.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from hummingbird import configs
from hummingbird.configs import ModelConfig
from hummingbird.fast import compile_requested, optimize
from hummingbird.image import ImageConditioner
from hummingbird.pipelines import (GenerationResult, I2VPipeline, NonFiniteOutput, T2VPipeline, default_dtype,
                                  default_i2v_schedule)
from hummingbird.sr import RRDBNet, Upscaler
from hummingbird.text import TextEncoder
from hummingbird.unet import HummingbirdUNet, attention_backend, guidance_embedding
from hummingbird.vae import build_vae, decode_latents, to_uint8

PARTS = ("t2v09", "t2v07", "vae", "i2v", "sr", "e2e")
# Fast-path variants, combinable with "+" in a mode name: name -> hummingbird.fast.optimize keyword arguments.
VARIANTS: dict[str, dict[str, Any]] = {
    "graphs": {"cuda_graphs": True},
    "compiled": {"compile": True},
    "channels-last": {"channels_last": True},
    "fp8": {"fp8": True},
    "triton-norms": {"triton_norms": True},
    "autotune": {"compile": True, "mode": "max-autotune-no-cudagraphs"},
}
CHECK_DTYPE = torch.bfloat16  # the GPU fast path's dtype, also checked on CPU
PROMPT = "A cute happy Corgi playing in park, sunset, animated style."
HUMMINGBIRD_VSR = dict(num_feat=32, num_block=10, num_grow_ch=16, scale=4)
TINY_VSR = dict(num_feat=8, num_block=1, num_grow_ch=4, scale=4)
T2V_07B_TINY = configs.T2V_TINY.replace(name="t2v-0.7b-tiny", unet=dict(configs.T2V_TINY.unet, use_middle_block=False))

Run = Callable[[], Any]
Case = Iterator[tuple[str, Run]]  # yields ("baseline", run), then (mode, run) for each fast mode


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures."""

    device: str
    tiny: bool
    runs: int
    warmup: int
    frames: int
    height: int
    width: int
    t2v_frames: int
    t2v_steps: int
    i2v_steps: int
    compile: bool
    modes: tuple[str, ...] = ("fast",)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    @property
    def fast_dtype(self) -> torch.dtype:
        return default_dtype(self.torch_device)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The reference's float16 autocast on CUDA; none on CPU (the reference never ran there)."""
        return torch.float16 if self.cuda else None

    def latent(self, frames: int) -> tuple[int, ...]:
        return (1, 4, frames, self.height // 8, self.width // 8)

    def options(self, mode: str) -> dict[str, Any]:
        """:func:`optimize` keyword arguments of a fast mode (``fast`` or variants joined by ``+``)."""
        options: dict[str, Any] = {"compile": self.compile}
        for variant in mode.split("+") if mode != "fast" else ():
            options.update(VARIANTS[variant])
        return options

    def to_json(self) -> dict[str, Any]:
        autocast = None if self.autocast_dtype is None else _name(self.autocast_dtype)
        return {**asdict(self), "fast_dtype": _name(self.fast_dtype), "baseline_autocast": autocast}


# ------------------------------------------------------------------------------------ model set-up
def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def model_config(name: str, tiny: bool) -> ModelConfig:
    """The preset behind a part: ``t2v09``, ``t2v07`` or ``i2v`` (tiny ones with ``tiny``)."""
    presets = {"t2v09": (configs.T2V_09B, configs.T2V_TINY), "t2v07": (configs.T2V_07B, T2V_07B_TINY),
               "i2v": (configs.I2V_09B, configs.I2V_TINY)}
    return presets[name][tiny]


@contextmanager
def building_on(device: torch.device) -> Iterator[None]:
    """Create modules directly on ``device`` (the random initialisation runs there), from a fixed seed."""
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        yield


def random_unet(config: ModelConfig, device: torch.device) -> HummingbirdUNet:
    """A float32 U-Net of ``config`` with random weights; the zero-initialised last temporal convs are woken."""
    with building_on(device):
        unet = HummingbirdUNet(**config.unet).eval().requires_grad_(False)
        for name, param in unet.named_parameters():
            if "temopral_conv.conv4" in name:
                param.normal_(0.0, 0.02)
    return unet


def unet_inputs(config: ModelConfig, s: Settings) -> dict[str, torch.Tensor]:
    """One T2V denoising call's inputs: noise, t = 999, 77 text tokens, fps 8 and the w = 7.5 embedding."""
    gen = torch.Generator().manual_seed(1)
    inputs = dict(x=torch.randn(s.latent(s.frames), generator=gen), timesteps=torch.tensor([999]),
                  context=torch.randn(1, 77, config.unet["context_dim"], generator=gen),
                  fps=torch.tensor([config.unet["default_fps"]]), timestep_cond=guidance_embedding(7.5))
    return {key: value.to(s.torch_device) for key, value in inputs.items()}


def to_fast(module: torch.nn.Module, s: Settings, mode: str = "fast",
            dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A copy of ``module`` in the fast dtype, optimized as ``mode`` says."""
    fast = torch.nn.Module.to(copy.deepcopy(module), dtype=dtype or s.fast_dtype)
    return optimize(fast, **s.options(mode))


class _PerFrameDecode:
    """The reference VAE decode: one frame at a time, the float video copied to the CPU and converted there."""

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor, callback: Any = None) -> torch.Tensor:
        video = decode_latents(self.vae, latents.to(self.device), self.config.scale_factor, chunk_size=1).cpu()
        if not (torch.isfinite(latents).all() and torch.isfinite(video).all()):
            raise NonFiniteOutput("the baseline produced NaN or infinity")
        return to_uint8(video)


class BaselineT2V(_PerFrameDecode, T2VPipeline):
    """T2V as the reference runs it (per-frame VAE decode)."""


class BaselineI2V(_PerFrameDecode, I2VPipeline):
    """I2V as the reference runs it: per-frame VAE decode and two U-Net calls per CFG step."""

    batched_cfg = False


def baseline_t2v(s: Settings) -> BaselineT2V:
    config = model_config("t2v09", s.tiny)
    unet = random_unet(config, s.torch_device)
    with building_on(s.torch_device):
        text, vae = TextEncoder.random(config.text), build_vae(config.vae)
    return BaselineT2V(config, unet, text, vae, s.device, torch.float32, optimized=False)


def baseline_i2v(s: Settings) -> BaselineI2V:
    config = model_config("i2v", s.tiny)
    unet = random_unet(config, s.torch_device)
    schedule = default_i2v_schedule()
    with building_on(s.torch_device):
        text, vae = TextEncoder.random(config.text), build_vae(config.vae)
        image = ImageConditioner.random(config.vision, config.resampler)
        reneg = torch.randn(1, 77, config.text["width"])
    return BaselineI2V(config, unet, text, vae, image, schedule, reneg, s.device, torch.float32, optimized=False)


def fast_t2v(pipe: T2VPipeline, s: Settings, mode: str = "fast") -> T2VPipeline:
    """The default T2V pipeline on copies of the modules of ``pipe``, optimized as ``mode`` says."""
    fast = T2VPipeline(pipe.config, *copy.deepcopy((pipe.unet, pipe.text_encoder, pipe.vae)), s.device,
                       optimized=False)
    return optimize(fast, **s.options(mode))


def fast_i2v(pipe: I2VPipeline, s: Settings, mode: str = "fast") -> I2VPipeline:
    """The default I2V pipeline on copies of the modules of ``pipe``, optimized as ``mode`` says."""
    modules = copy.deepcopy((pipe.unet, pipe.text_encoder, pipe.vae, pipe.image_conditioner))
    fast = I2VPipeline(pipe.config, *modules, pipe.schedule, pipe.reneg, s.device, optimized=False)
    return optimize(fast, **s.options(mode))


def without_fallback(result: GenerationResult) -> GenerationResult:
    """Refuse a run that produced non-finite values and re-ran in another precision: its time is not the mode's."""
    if "precision_fallback" in result.settings:
        raise RuntimeError(f"non-finite output; the pipeline re-ran in {result.settings['precision_fallback']}")
    return result


@contextmanager
def cudnn_autotuning(enabled: bool) -> Iterator[None]:
    previous, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def as_baseline(run: Run, s: Settings, autocast: bool = True) -> Run:
    """``run`` the reference way: reference attention, no cuDNN autotuning and (``autocast``) float16 autocast."""
    use_autocast = autocast and s.autocast_dtype is not None

    def baseline() -> Any:
        with ExitStack() as stack:
            stack.enter_context(attention_backend("reference"))
            stack.enter_context(cudnn_autotuning(False))
            if use_autocast:
                stack.enter_context(torch.autocast(s.torch_device.type, dtype=s.autocast_dtype))
            return run()

    return baseline


# ------------------------------------------------------------------------------------------ cases
def unet_case(part: str, s: Settings) -> Case:
    config = model_config(part, s.tiny)
    unet = random_unet(config, s.torch_device)
    inputs = unet_inputs(config, s)
    yield "baseline", as_baseline(lambda: unet(**inputs), s)
    for mode in s.modes:
        fast = to_fast(unet, s, mode)
        yield mode, lambda: fast(**inputs)


def vae_case(s: Settings) -> Case:
    pipe = baseline_t2v(s)
    latents = torch.randn(s.latent(s.frames), generator=torch.Generator().manual_seed(2))
    yield "baseline", as_baseline(lambda: pipe.decode_frames(latents), s)
    for mode in s.modes:
        fast = fast_t2v(pipe, s, mode)
        yield mode, lambda: fast.decode_frames(latents)


def i2v_case(s: Settings) -> Case:
    pipe = baseline_i2v(s)
    gen = torch.Generator().manual_seed(3)
    tokens = pipe.image_conditioner.resampler.num_tokens + 77
    cond, uncond = (torch.randn(1, tokens, pipe.config.text["width"], generator=gen) for _ in range(2))
    image_latent = torch.randn(1, 4, s.height // 8, s.width // 8, generator=gen)
    noises = [torch.randn(s.latent(s.frames), generator=gen) for _ in range(s.i2v_steps + 1)]
    args = (cond, uncond, image_latent, noises[0], noises[1:], s.i2v_steps, 7.5, 0.7, 24, 1.0)
    yield "baseline", as_baseline(lambda: pipe.sample(*args), s)
    for mode in s.modes:
        fast = fast_i2v(pipe, s, mode)
        yield mode, lambda: fast.sample(*args)


def sr_case(s: Settings) -> Case:
    with building_on(s.torch_device):
        net = RRDBNet(**(TINY_VSR if s.tiny else HUMMINGBIRD_VSR))
    frames = np.random.default_rng(4).integers(0, 256, (s.frames, s.height, s.width, 3), dtype=np.uint8)
    upscaler = Upscaler(net, "hummingbird", s.device, optimized=False)
    yield "baseline", as_baseline(lambda: upscaler(frames, batch_size=1), s, autocast=False)
    for mode in s.modes:
        fast = optimize(Upscaler(copy.deepcopy(net), "hummingbird", s.device, optimized=False), **s.options(mode))
        yield mode, lambda: fast(frames)


def e2e_t2v_case(s: Settings) -> Case:
    pipe = baseline_t2v(s)
    kwargs = dict(prompt=PROMPT, steps=s.t2v_steps, frames=s.t2v_frames, height=s.height, width=s.width, seed=0)
    yield "baseline", as_baseline(lambda: without_fallback(pipe(**kwargs)), s)
    for mode in s.modes:
        fast = fast_t2v(pipe, s, mode)
        yield mode, lambda: without_fallback(fast(**kwargs))


def e2e_i2v_case(s: Settings) -> Case:
    pipe = baseline_i2v(s)
    image = np.random.default_rng(5).integers(0, 256, (s.height, s.width, 3), dtype=np.uint8)
    kwargs = dict(image=image, prompt=PROMPT, steps=s.i2v_steps, frames=s.frames, height=s.height, width=s.width,
                  seed=0)
    yield "baseline", as_baseline(lambda: without_fallback(pipe(**kwargs)), s)
    for mode in s.modes:
        fast = fast_i2v(pipe, s, mode)
        yield mode, lambda: without_fallback(fast(**kwargs))


# part -> [(case name, description, case)]
CASES: dict[str, list[tuple[str, str, Callable[[Settings], Case]]]] = {
    "t2v09": [("t2v09", "{t2v09} U-Net, one call, {frames} frames", lambda s: unet_case("t2v09", s))],
    "t2v07": [("t2v07", "{t2v07} U-Net, one call, {frames} frames", lambda s: unet_case("t2v07", s))],
    "vae": [("vae", "VAE decode of {frames} frames to uint8 on the CPU", vae_case)],
    "i2v": [("i2v", "{i2v} {i2v_steps}-step CFG loop, {frames} frames", i2v_case)],
    "sr": [("sr", "{sr} x4 of {frames} uint8 frames", sr_case)],
    "e2e": [("e2e-t2v", "{t2v09} prompt -> frames, {t2v_steps} steps, {t2v_frames} frames", e2e_t2v_case),
            ("e2e-i2v", "{i2v} image -> frames, {i2v_steps} steps, {frames} frames", e2e_i2v_case)],
}


def describe(what: str, s: Settings) -> str:
    """A case description with the settings and model names filled in."""
    names = {part: model_config(part, s.tiny).name for part in ("t2v09", "t2v07", "i2v")}
    return what.format(**asdict(s), **names, sr="rrdbnet-tiny" if s.tiny else "Hummingbird VSR")


# -------------------------------------------------------------------------------------- measuring
def _sync(s: Settings) -> None:
    if s.cuda:
        torch.cuda.synchronize(s.torch_device)


def count_flops(run: Run) -> int:
    """FLOPs of one call of ``run`` (2 per multiply-add; matmuls, convolutions and attention)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        run()
    return counter.get_total_flops()


def _time_ms(run: Run, s: Settings) -> float:
    if not s.cuda:
        start = time.perf_counter()
        run()
        return (time.perf_counter() - start) * 1000.0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def measure(run: Run, s: Settings, flops: int) -> dict[str, Any]:
    """The first call's ms, then the median ms of ``s.runs`` runs after ``s.warmup`` more, peak allocated MB (GPU)
    and achieved TFLOP/s."""
    with torch.inference_mode():
        first = _time_ms(run, s)
        for _ in range(s.warmup - 1):
            run()
        _sync(s)
        if s.cuda:
            torch.cuda.reset_peak_memory_stats(s.torch_device)
        times = [_time_ms(run, s) for _ in range(s.runs)]
    median = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(s.torch_device) / 2**20 if s.cuda else None
    return {"median_ms": median, "first_ms": first, "peak_mb": peak, "tflops": flops / (median / 1000.0) / 1e12,
            "times_ms": times}


def profile(run: Run, s: Settings, path: Path, rows: int = 30) -> None:
    """Write the busiest operators and kernels of one call of ``run`` (by self time on the device) to ``path``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if s.cuda else [])
    with torch.inference_mode(), profiler(activities=activities) as prof:
        run()
        _sync(s)
    sort = "self_cuda_time_total" if s.cuda else "self_cpu_time_total"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(prof.key_averages().table(sort_by=sort, row_limit=rows) + "\n")


def run_case(name: str, make: Callable[[Settings], Case], s: Settings, log: Callable[[str], None],
             profile_dir: Path | None = None) -> dict[str, Any]:
    """Every mode of one case; FLOPs are counted on the baseline. Speed-ups are baseline time / mode time."""
    flops, modes = None, {}
    for mode, run in make(s):
        if flops is None:
            flops = count_flops(run)
        modes[mode] = measure(run, s, flops)
        log(f"  {mode:24s} {modes[mode]['median_ms']:10.1f} ms   (first call {modes[mode]['first_ms']:.0f} ms)")
        if profile_dir is not None and mode != "baseline":
            profile(run, s, profile_dir / f"{name}-{mode}.txt")
        del run
        _free(s)
    base = modes["baseline"]["median_ms"]
    speedups = {mode: base / result["median_ms"] for mode, result in modes.items() if mode != "baseline"}
    return {"gflop": flops / 1e9, **modes, "speedups": speedups, "speedup": speedups[s.modes[0]]}


def _free(s: Settings) -> None:
    """Hand back the memory of models that are gone before building the next ones."""
    gc.collect()
    if s.cuda:
        torch.cuda.empty_cache()


def relative_l2(reference: torch.Tensor, value: torch.Tensor) -> float:
    reference, value = reference.double(), value.double()
    return float((value - reference).norm() / reference.norm())


@contextmanager
def strict_float32() -> Iterator[None]:
    """No TF32 in float32 matmuls and convolutions (the float32 reference of the check)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.inference_mode()
def check(s: Settings) -> dict[str, Any]:
    """Relative L2 error against float32 (no TF32) of one T2V 0.9B U-Net call (``frames`` frames) and one VAE
    decode of them: for the baseline (float16 autocast on CUDA) and every fast mode, in :data:`CHECK_DTYPE`."""
    config = model_config("t2v09", s.tiny)
    unet = random_unet(config, s.torch_device)
    inputs = unet_inputs(config, s)
    with building_on(s.torch_device):
        vae = build_vae(config.vae).requires_grad_(False)
    latents = torch.randn(s.latent(s.frames), generator=torch.Generator().manual_seed(2)).to(s.torch_device)
    with strict_float32():
        unet_expected = unet(**inputs)
        vae_expected = decode_latents(vae, latents, config.scale_factor)
    errors = {"baseline": {"unet": relative_l2(unet_expected, as_baseline(lambda: unet(**inputs), s)()),
                           "vae": relative_l2(vae_expected, as_baseline(
                               lambda: decode_latents(vae, latents, config.scale_factor), s)())}}
    for mode in s.modes:
        fast_unet, fast_vae = to_fast(unet, s, mode, CHECK_DTYPE), to_fast(vae, s, mode, CHECK_DTYPE)
        errors[mode] = {"unet": relative_l2(unet_expected, fast_unet(**inputs)),
                        "vae": relative_l2(vae_expected, decode_latents(fast_vae, latents, config.scale_factor))}
        del fast_unet, fast_vae
        _free(s)
    first = errors[s.modes[0]]
    return {"dtype": _name(CHECK_DTYPE), "unet_rel_l2": first["unet"], "vae_rel_l2": first["vae"], "modes": errors}


# ---------------------------------------------------------------------------------------- report
def device_name(s: Settings) -> str:
    return torch.cuda.get_device_name(s.torch_device) if s.cuda else "cpu"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def title(s: Settings) -> str:
    sizes = "TINY random models (not a speed figure)" if s.tiny else "release sizes, random weights"
    return (f"{device_name(s)}, torch {torch.__version__}, {sizes}, {s.height}x{s.width}, "
            f"fast: {_name(s.fast_dtype)}{' + compile' if s.compile else ''}, modes: {', '.join(s.modes)}")


def table(report: dict[str, Any], s: Settings) -> str:
    """The report's results as a fixed-width text table, one row per case: the baseline's median, then each fast
    mode's median and speed-up (baseline / mode), TFLOP/s and peak MB of the first fast mode."""
    modes = list(s.modes)
    widths = {mode: max(16, len(mode) + 3) for mode in modes}
    header = f"{'case':8s} {'what':46s} {'baseline ms':>11s}" + "".join(
        f" {mode + ' ms':>{widths[mode]}s} {'speed-up':>8s}" for mode in modes) + \
        f" {'TFLOP/s b/f':>13s} {'peak MB b/f':>13s}"
    lines = [title(s), header, "-" * len(header)]
    for name, row in report["results"].items():
        base, fast = row["baseline"], row[modes[0]]
        cells = "".join(f" {row[mode]['median_ms']:{widths[mode]}.1f} {row['speedups'][mode]:7.2f}x" for mode in modes)
        tflops = f"{base['tflops']:.3g}/{fast['tflops']:.3g}"
        peak = f"{_cell(base['peak_mb'], '.0f')}/{_cell(fast['peak_mb'], '.0f')}"
        lines.append(f"{name:8s} {row['what'][:46]:46s} {base['median_ms']:11.1f}{cells} {tflops:>13s} {peak:>13s}")
    return "\n".join(lines)


def benchmark(s: Settings, parts: Sequence[str], run_check: bool, log: Callable[[str], None],
              save: Callable[[dict[str, Any]], None], profile_dir: Path | None = None) -> dict[str, Any]:
    """Run the check (if asked) and every case of ``parts``; ``save`` the report so far after each; return it."""
    report: dict[str, Any] = {"device": device_name(s), "torch": torch.__version__, "cuda": torch.version.cuda,
                              "settings": {**s.to_json(), "parts": list(parts)}, "results": {}}
    if run_check:
        report["check"] = check(s)
        for mode, errors in report["check"]["modes"].items():
            log(f"check ({'float16 autocast' if mode == 'baseline' else report['check']['dtype']} {mode} vs float32): "
                f"U-Net rel L2 {errors['unet']:.4f}, VAE decode rel L2 {errors['vae']:.4f}")
        save(report)
    for part in parts:
        for name, what, make in CASES[part]:
            what = describe(what, s)
            log(f"{name}: {what}")
            report["results"][name] = {"part": part, "what": what, **run_case(name, make, s, log, profile_dir)}
            save(report)
            _free(s)
    return report


# ------------------------------------------------------------------------------------------- CLI
def parse_parts(text: str) -> list[str]:
    parts = list(PARTS) if text == "all" else [p for p in text.replace(",", " ").split() if p]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts must be 'all' or some of {', '.join(PARTS)}, got {text!r}")
    return parts


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m for m in text.replace(",", " ").split() if m))
    valid = [m == "fast" or all(v in VARIANTS for v in m.split("+")) for m in modes]
    if not modes or not all(valid):
        raise argparse.ArgumentTypeError(f"modes must be fast or variants of {', '.join(VARIANTS)} (joined by + to "
                                         f"combine them), got {text!r}")
    return modes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", type=parse_parts, default=list(PARTS), help=f"comma list of {', '.join(PARTS)} or all")
    p.add_argument("--modes", type=parse_modes, default=("fast",),
                   help=f"fast-path modes to time against the baseline, comma list of fast or variants of "
                        f"{', '.join(VARIANTS)} joined by + (e.g. compiled+fp8)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per mode (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before timing, the first call included")
    p.add_argument("--frames", type=int, help="frames of the U-Net, VAE, I2V and SR cases (16; tiny 2)")
    p.add_argument("--t2v-frames", type=int, help="frames of the T2V end-to-end case (26; tiny 2)")
    p.add_argument("--t2v-steps", type=int, help="steps of the T2V end-to-end case (8; tiny 2)")
    p.add_argument("--i2v-steps", type=int, help="steps of the I2V loop and end-to-end cases (16; tiny 2)")
    p.add_argument("--height", type=int, help="video height in pixels (320; tiny 128)")
    p.add_argument("--width", type=int, help="video width in pixels (512; tiny 128)")
    p.add_argument("--device", help="cuda (default when available) or cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path (also HUMMINGBIRD_COMPILE=1)")
    p.add_argument("--check", action="store_true", help="print the bf16 fast path's error against float32 first")
    p.add_argument("--tiny", action="store_true", help="tiny random models: exercises the code, measures nothing")
    p.add_argument("--json", type=Path, help="write the report to this file")
    p.add_argument("--profile", type=Path, metavar="DIR", help="write each fast mode's busiest kernels to DIR")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 1:
        p.error("--runs and --warmup must be >= 1")
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.check and not args.tiny and torch.device(args.device).type != "cuda":
        p.error("--check at the release sizes needs a GPU; use --tiny on CPU")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    tiny = args.tiny
    return Settings(device=args.device, tiny=tiny, runs=args.runs, warmup=args.warmup,
                    frames=args.frames or (2 if tiny else 16), height=args.height or (128 if tiny else 320),
                    width=args.width or (128 if tiny else 512), t2v_frames=args.t2v_frames or (2 if tiny else 26),
                    t2v_steps=args.t2v_steps or (2 if tiny else 8), i2v_steps=args.i2v_steps or (2 if tiny else 16),
                    compile=args.compile or compile_requested(), modes=args.modes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    s = settings_from(args)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def save(report: dict[str, Any]) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")

    log(title(s))
    report = benchmark(s, args.parts, args.check, log, save, args.profile)
    print(table(report, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
