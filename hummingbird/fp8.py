"""FP8 matmuls for the U-Net's transformer linears (opt-in: ``optimize(fp8=True)`` or ``HUMMINGBIRD_FP8=1``).

Each linear keeps its weight (state-dict keys and values unchanged) and gains a float8 e4m3 copy with one scale per
output feature; bf16 activations are scaled per token at run time and ``torch._scaled_mm`` multiplies the two
with float32 accumulation into a bf16 result. Inputs of any other dtype (the float32 precision fallback
included) use the plain weight. Tensor-core FP8 needs CUDA compute capability 8.9 (Ada, Hopper) or newer; PyTorch
also runs these matmuls on the CPU (slowly: for tests).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
from torch import Tensor, nn

FP8_ENV = "HUMMINGBIRD_FP8"
FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)
MIN_SCALE = 1e-12  # an all-zero row keeps a usable scale
MIN_CAPABILITY = (8, 9)


def fp8_requested() -> bool:
    """Whether ``HUMMINGBIRD_FP8`` asks for FP8 linears (1, true, yes or on; default off)."""
    return os.environ.get(FP8_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def fp8_supported(device: torch.device) -> bool:
    """Whether ``device`` runs float8 matmuls: the CPU, or an NVIDIA GPU of compute capability 8.9 or newer."""
    if device.type == "cpu":
        return True
    return (device.type == "cuda" and torch.version.hip is None
            and torch.cuda.get_device_capability(device) >= MIN_CAPABILITY)


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` [M, K] -> (float8 [M, K], float32 scales [M, 1]) with ``x ≈ q * scale`` and ``|q| <= 448``."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=MIN_SCALE) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


class Float8Linear(nn.Linear):
    """An ``nn.Linear`` that multiplies bf16 inputs in FP8 (row-wise scales); other dtypes run it as usual.

    The float8 weight is a non-persistent buffer, rebuilt from the weight whenever the weight is moved, cast or
    loaded.
    """

    weight_fp8: Tensor
    weight_scale: Tensor

    @staticmethod
    def fits(module: nn.Module) -> bool:
        """Whether ``module`` is a plain ``nn.Linear`` with sizes FP8 tensor cores take (multiples of 16)."""
        return type(module) is nn.Linear and module.in_features % 16 == 0 and module.out_features % 16 == 0

    @classmethod
    def sharing(cls, linear: nn.Linear) -> "Float8Linear":
        """An FP8 linear holding the very parameters of ``linear``."""
        fp8 = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        fp8.weight, fp8.bias = linear.weight, linear.bias
        fp8._quantize_weight()
        return fp8

    def _quantize_weight(self) -> None:
        weight, scale = quantize_rows(self.weight.detach())
        self.register_buffer("weight_fp8", weight, persistent=False)  # [out, in]
        self.register_buffer("weight_scale", scale.t().contiguous(), persistent=False)  # [1, out]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "Float8Linear":
        super()._apply(fn, recurse)  # .to(), .cuda(), .half(): the float8 copy follows the moved or cast weight
        self._quantize_weight()
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)  # load_state_dict: the float8 copy follows the new weight
        self._quantize_weight()

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.bfloat16:
            return super().forward(x)
        if x.shape[-1] != self.in_features:  # a reshape would silently regroup the values
            raise ValueError(f"expected inputs with {self.in_features} features, got shape {tuple(x.shape)}")
        rows, scale = quantize_rows(x.reshape(-1, self.in_features))
        bias = None if self.bias is None else self.bias.to(x.dtype)
        out = torch._scaled_mm(rows, self.weight_fp8.t(), scale_a=scale, scale_b=self.weight_scale, bias=bias,
                               out_dtype=x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)
