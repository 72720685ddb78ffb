"""Golden checker for the I2V image-conditioning path (kind ``i2v_image_cond``)."""

from __future__ import annotations

import torch

from hummingbird.configs import ModelConfig
from hummingbird.golden import Fixture
from hummingbird.image import ImageConditioner, clip_preprocess, preprocess_for_vae

_VISION_PREFIX = "embedder.model."
_RESAMPLER_PREFIX = "image_proj_model."


def _strip(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def check_image_cond(fx: Fixture) -> None:
    """Reference frames, CLIP input, CLIP tokens and resampler tokens (conditional and unconditional)."""
    config = ModelConfig.from_official(fx.name, fx.config["model"], fx.config["open_clip_model_cfg"])
    height, width = fx.call["video_size"]
    frames = torch.stack([preprocess_for_vae(fx[name].numpy(), height, width, aspect="reference")
                          for name in fx.call["image_order"]])
    fx.compare("vae_input", frames)
    fx.compare("clip_input_first", clip_preprocess(frames[:1], config.vision["image_size"]))

    sd = fx.weights()
    model = ImageConditioner.from_state_dicts(_strip(sd, _VISION_PREFIX), _strip(sd, _RESAMPLER_PREFIX),
                                              config.vision, config.resampler)
    fx.compare("clip_tokens", model.clip_tokens(frames))
    fx.compare("image_tokens", model.image_tokens(frames))
    zeros = torch.zeros_like(frames[:1])
    fx.compare("uc_clip_tokens", model.clip_tokens(zeros))
    fx.compare("uc_image_tokens", model.uncond_tokens(frames[:1]))
