"""Model-output functions for the samplers: ``predict(x, t)`` for T2V and for I2V with guidance."""

from __future__ import annotations

from typing import Callable

import torch

from hummingbird.schedulers import guided
from hummingbird.unet import HummingbirdUNet, guidance_embedding

Predictor = Callable[[torch.Tensor, int], torch.Tensor]


def _timesteps(t: int, batch: int, device: torch.device) -> torch.Tensor:
    return torch.full((batch,), t, dtype=torch.long, device=device)


def _fps_tensor(fps: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    fps = torch.as_tensor(fps, dtype=torch.long, device=device)
    return fps.expand(batch) if fps.ndim == 0 else fps


def t2v_predictor(unet: HummingbirdUNet, context: torch.Tensor, guidance: float,
                  fps: int | torch.Tensor) -> Predictor:
    """One U-Net call per step; the guidance scale enters as the w-embedding (no CFG)."""
    batch, device, dtype = context.shape[0], unet.device, unet.dtype
    w_emb = guidance_embedding(torch.full((batch,), float(guidance))).to(device, dtype)
    context = context.to(device, dtype)
    fps = _fps_tensor(fps, batch, device)

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        out = unet(x.to(dtype), _timesteps(t, batch, device), context, fps=fps, timestep_cond=w_emb)
        return out.float()

    return predict


def i2v_predictor(unet: HummingbirdUNet, cond: torch.Tensor, uncond: torch.Tensor | None,
                  image_latent: torch.Tensor, fs: int | torch.Tensor, scale: float, rescale: float,
                  batched_cfg: bool = True) -> Predictor:
    """v-prediction with the first-frame latent concatenated, and classifier-free guidance.

    ``cond``/``uncond`` are [B, 77 + tokens, C] contexts; ``image_latent`` is [B, 4, h, w]. With guidance the
    two branches run as one batch of 2B (``batched_cfg``) or as two calls; both give the same result.
    """
    batch, device, dtype = cond.shape[0], unet.device, unet.dtype
    cond = cond.to(device, dtype)
    use_cfg = uncond is not None and scale != 1.0
    fs = _fps_tensor(fs, batch, device)
    latent = image_latent.to(device, dtype)

    def model(x: torch.Tensor, t: int, context: torch.Tensor, fs_: torch.Tensor) -> torch.Tensor:
        concat = latent.repeat(x.shape[0] // batch, 1, 1, 1)[:, :, None].expand(-1, -1, x.shape[2], -1, -1)
        x_in = torch.cat([x.to(dtype), concat], dim=1)
        return unet(x_in, _timesteps(t, x.shape[0], device), context, fps=fs_).float()

    if not use_cfg:
        return lambda x, t: model(x, t, cond, fs)
    uncond = uncond.to(device, dtype).expand(batch, -1, -1)
    both, fs_both = torch.cat([cond, uncond]), torch.cat([fs, fs])

    def predict(x: torch.Tensor, t: int) -> torch.Tensor:
        if batched_cfg:
            v_cond, v_uncond = model(torch.cat([x, x]), t, both, fs_both).chunk(2)
        else:
            v_cond, v_uncond = model(x, t, cond, fs), model(x, t, uncond, fs)
        return guided(v_cond, v_uncond, scale, rescale)

    return predict
