"""ReNeg: the learned negative text embedding of I2V classifier-free guidance (spec ``reneg.md``).

The file is read by :func:`hummingbird.checkpoints.load_reneg` (re-exported here). ReNeg replaces only the
77 text tokens of the unconditional context; the image half stays the zero-image tokens.
"""

from __future__ import annotations

import torch

from hummingbird.checkpoints import RENEG_TOKENS, load_reneg

__all__ = ["load_reneg", "reneg_uncond_context"]


def reneg_uncond_context(reneg: torch.Tensor, uc_image_tokens: torch.Tensor) -> torch.Tensor:
    """``cat([ReNeg broadcast to the batch, uc_image_tokens], dim=1)``: ``[B, 77 + N, C]``."""
    if reneg.ndim != 3 or reneg.shape[1] != RENEG_TOKENS:
        raise ValueError(f"ReNeg embedding must be [1 or B, {RENEG_TOKENS}, C], got {list(reneg.shape)}")
    if uc_image_tokens.ndim != 3 or uc_image_tokens.shape[2] != reneg.shape[2]:
        raise ValueError(f"image tokens {list(uc_image_tokens.shape)} do not match the ReNeg width "
                         f"{reneg.shape[2]} ([B, N, C] expected)")
    batch = uc_image_tokens.shape[0]
    if reneg.shape[0] not in (1, batch):
        raise ValueError(f"ReNeg batch {reneg.shape[0]} cannot broadcast to batch {batch}")
    text = reneg.to(device=uc_image_tokens.device, dtype=uc_image_tokens.dtype).expand(batch, -1, -1)
    return torch.cat([text, uc_image_tokens], dim=1)
