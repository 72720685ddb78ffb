"""GroupNorms on Triton kernels (opt-in: ``optimize(triton_norms=True)`` or ``HUMMINGBIRD_TRITON_NORMS=1``).

:class:`TritonGroupNorm` takes the place of a GroupNorm (and of the SiLU after it) with the same parameters and
state-dict keys. On CUDA activations in eager inference it runs :func:`hummingbird.norm_kernels.group_norm`;
everywhere else (the CPU, autograd, autocast, inside ``torch.compile``, which fuses norms itself) it computes what
the module it replaced computed.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hummingbird.unet import GroupNorm32, GroupNormSiLU, group_norm_fp32_stats

TRITON_NORMS_ENV = "HUMMINGBIRD_TRITON_NORMS"
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def triton_norms_requested() -> bool:
    """Whether ``HUMMINGBIRD_TRITON_NORMS`` asks for Triton GroupNorms (1, true, yes or on; default off)."""
    return os.environ.get(TRITON_NORMS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def triton_available() -> bool:
    """Whether the ``triton`` package is installed (it comes with PyTorch's CUDA wheels)."""
    return importlib.util.find_spec("triton") is not None


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``): on CPU tensors, for tests."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def fits_int32(x: Tensor) -> bool:
    """Whether one sample of ``x`` has fewer than 2**31 values (the kernels index a sample in 32 bits)."""
    return math.prod(x.shape[1:]) < 2**31


def runs_kernel(x: Tensor) -> bool:
    """Whether :class:`TritonGroupNorm` computes ``x`` with the Triton kernels."""
    if torch.compiler.is_compiling():  # first, so that compiled code never looks further: inductor fuses norms
        return False
    return ((x.is_cuda or interpreted()) and x.dtype in KERNEL_DTYPES and fits_int32(x)
            and not (torch.is_grad_enabled() and x.requires_grad)
            and not torch.is_autocast_enabled(x.device.type) and triton_available())


class TritonGroupNorm(nn.GroupNorm):
    """An affine GroupNorm, optionally followed by SiLU, on Triton kernels where :func:`runs_kernel` says so."""

    def __init__(self, *args: Any, silu: bool = False, fp32_stats: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.silu = silu
        self.fp32_stats = fp32_stats  # elsewhere, compute as GroupNorm32 (else as nn.GroupNorm)

    @staticmethod
    def fits(module: nn.Module) -> bool:
        """Whether ``module`` is an affine GroupNorm not yet replaced."""
        return isinstance(module, nn.GroupNorm) and module.affine and not isinstance(module, TritonGroupNorm)

    @classmethod
    def sharing(cls, norm: nn.GroupNorm, silu: bool = False) -> "TritonGroupNorm":
        """A Triton norm holding the very parameters of ``norm``; ``silu`` adds the SiLU that followed it (a
        :class:`~hummingbird.unet.GroupNormSiLU` brings its own)."""
        if not cls.fits(norm):
            raise ValueError(f"only affine GroupNorms run on Triton kernels, not {norm}")
        fused = cls(norm.num_groups, norm.num_channels, norm.eps, silu=silu or isinstance(norm, GroupNormSiLU),
                    fp32_stats=isinstance(norm, GroupNorm32), device="meta")
        fused.weight, fused.bias = norm.weight, norm.bias
        return fused

    def forward(self, x: Tensor) -> Tensor:
        if runs_kernel(x):
            from hummingbird.norm_kernels import group_norm  # imports triton

            return group_norm(x, self.num_groups, self.weight, self.bias, self.eps, silu=self.silu)
        if self.fp32_stats:
            out = group_norm_fp32_stats(self, x)
        else:
            out = F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        return F.silu(out) if self.silu else out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, silu={self.silu}"
