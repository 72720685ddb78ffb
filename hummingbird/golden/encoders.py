"""Checkers for the ``text_encoder`` and ``vae_decode`` fixtures."""

from __future__ import annotations

from typing import Any

import torch

from hummingbird.golden import Fixture
from hummingbird.text import TextEncoder, tokenize
from hummingbird.vae import decode_latents, load_vae, to_uint8


def _text_cfg(config: dict[str, Any]) -> dict[str, Any]:
    """The OpenCLIP ``text_cfg`` of a fixture config (under ``cond_stage_config`` or at the top level)."""
    clip_cfg = config.get("cond_stage_config", {}).get("open_clip_model_cfg") or config["open_clip_model_cfg"]
    if "text_cfg" not in clip_cfg:  # {arch name: model cfg}
        clip_cfg = next(iter(clip_cfg.values()))
    return clip_cfg["text_cfg"]


def _ddconfig(config: dict[str, Any]) -> dict[str, Any]:
    """The LDM ``ddconfig`` plus ``embed_dim`` of a fixture's ``first_stage_config``."""
    params = config["first_stage_config"]["params"]
    return dict(params["ddconfig"], embed_dim=params.get("embed_dim", params["ddconfig"]["z_channels"]))


def check_text_encoder(fx: Fixture) -> None:
    """Tokenise ``call.prompts`` and encode ``input_ids`` with the penultimate-layer text tower."""
    fx.compare("tokenized_ids", tokenize(fx.call["prompts"]), tolerance={"atol": 0.0, "rtol": 0.0})
    encoder = TextEncoder.from_openclip_state_dict(fx.weights(), _text_cfg(fx.config))
    fx.compare("embeddings", encoder.encode_ids(fx["input_ids"]))


def check_vae_decode(fx: Fixture) -> None:
    """Decode ``latents`` frame by frame; check the uint8 post-processing on the stored and on our video."""
    scale = float(fx.call.get("scale_factor", fx.config.get("scale_factor", 0.18215)))
    vae = load_vae(fx.weights(), _ddconfig(fx.config), scale)
    video = decode_latents(vae, fx["latents"], scale)
    fx.compare("video", video)
    fx.compare("frames_uint8", to_uint8(video))
    from_stored = torch.equal(to_uint8(fx["video"]), fx["frames_uint8"])
    fx.record("frames_uint8 (from stored video)", from_stored, "" if from_stored else "post-processing differs")
