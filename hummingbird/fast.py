"""The fast path: :func:`optimize` puts a pipeline, an upscaler or a network on it, in place.

bf16 weights, fused SDPA attention, batched classifier-free guidance and the chunked VAE decode are already the
pipelines' defaults on GPU. On top of them :func:`optimize`, keeping every state-dict key:

- turns on cuDNN autotuning (process-wide) for CUDA networks: the VAE and SR convolutions run at fixed shapes;
- makes SR networks channels-last on CUDA: plain convolution stacks without norms, and the fp16 tensor-core
  convolutions of cuDNN are NHWC. The U-Net and VAE stay NCHW in eager mode, where every GroupNorm would copy a
  channels-last activation back to NCHW; inside compiled regions inductor chooses the layout itself;
- with ``compile`` (default: the environment variable ``HUMMINGBIRD_COMPILE=1``) fuses each GroupNorm+SiLU pair
  (float32 statistics, as before) and compiles regionally: each repeated block class (U-Net ResBlocks and
  transformers, the VAE decoder's blocks, RRDB blocks) is compiled once per input shape, not the whole graph;
- ``mode="reduce-overhead"`` adds CUDA graphs to the compiled regions (off by default).

Without compile the outputs are unchanged (bit for bit on CPU; on CUDA up to the rounding of the cuDNN algorithm
that autotuning picks). FP8 is not used: it would need torchao.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import torch
from diffusers import AutoencoderKL
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UpDecoderBlock2D
from torch import nn

from hummingbird.sr import RRDB, RRDBNet, SRVGGNetCompact
from hummingbird.unet import GroupNormSiLU, ResBlock, SpatialTransformer, TemporalTransformer

COMPILE_ENV = "HUMMINGBIRD_COMPILE"
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Modules compiled as regions: every instance of a class shares its compiled code per input shape.
REGION_TYPES = (ResBlock, SpatialTransformer, TemporalTransformer, UNetMidBlock2D, UpDecoderBlock2D, RRDB)
# Distinct input shapes one region class may see: U-Net levels x skip widths x frame counts x CFG batch.
RECOMPILE_LIMIT = 64

Target = TypeVar("Target")


def compile_requested() -> bool:
    """Whether ``HUMMINGBIRD_COMPILE`` asks for ``torch.compile`` (1, true, yes or on)."""
    return os.environ.get(COMPILE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def optimize(target: Target, compile: bool | None = None, mode: str | None = None) -> Target:
    """Put ``target`` (a pipeline, an ``Upscaler`` or an ``nn.Module``) on the fast path in place; return it.

    ``compile`` None follows ``HUMMINGBIRD_COMPILE``; ``mode`` is the ``torch.compile`` mode of the regions.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode must be one of {COMPILE_MODES}, got {mode!r}")
    compile = compile_requested() if compile is None else compile
    for network in networks(target):
        if _device(network).type == "cuda":
            torch.backends.cudnn.benchmark = True
            if isinstance(network, (RRDBNet, SRVGGNetCompact)):
                channels_last(network)
        if compile:
            fuse_norm_silu(network)
            compile_regions(network, mode)
    return target


def networks(target: Any) -> list[nn.Module]:
    """The networks :func:`optimize` acts on: a module itself, else a pipeline's U-Net and VAE or an upscaler's net."""
    if isinstance(target, nn.Module):
        return [target]
    found = [getattr(target, name, None) for name in ("unet", "vae", "net")]
    found = [module for module in found if isinstance(module, nn.Module)]
    if not found:
        raise TypeError(f"nothing to optimize in a {type(target).__name__}: expected a module, a pipeline "
                        "or an upscaler")
    return found


def channels_last(network: nn.Module) -> nn.Module:
    """Store the 4-D weights channels-last (NHWC), in place: the convolutions then run and return NHWC."""
    return network.to(memory_format=torch.channels_last)


def fuse_norm_silu(network: nn.Module) -> int:
    """Replace each ``GroupNorm, SiLU`` pair of an ``nn.Sequential`` by ``GroupNormSiLU, Identity``; return the count.

    The fused norm shares the parameters, so state-dict keys and float32 results are unchanged.
    """
    fused = 0
    for sequence in [m for m in network.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            norm, act = sequence[index], sequence[index + 1]
            if isinstance(norm, nn.GroupNorm) and not isinstance(norm, GroupNormSiLU) and isinstance(act, nn.SiLU):
                sequence[index], sequence[index + 1] = GroupNormSiLU.sharing(norm), nn.Identity()
                fused += 1
    return fused


def regions(network: nn.Module) -> list[nn.Module]:
    """The outermost :data:`REGION_TYPES` modules of ``network`` (of a VAE: its decoder's), else the network."""
    root = network.decoder if isinstance(network, AutoencoderKL) else network
    return _outermost(root) or [root]


def _outermost(module: nn.Module) -> list[nn.Module]:
    found: list[nn.Module] = []
    for child in module.children():
        found += [child] if isinstance(child, REGION_TYPES) else _outermost(child)
    return found


def compile_regions(network: nn.Module, mode: str | None = None) -> list[nn.Module]:
    """``torch.compile`` each region of ``network`` in place (lazily: code is generated on the first call)."""
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
    compiled = regions(network)
    for region in compiled:
        region.compile(mode=mode, dynamic=False)
    return compiled


def _device(network: nn.Module) -> torch.device:
    return next(network.parameters()).device
