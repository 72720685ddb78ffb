"""Model presets: the official release configurations and tiny ones for tests.

A :class:`ModelConfig` bundles the configuration of every component of one release, in the official
vocabulary: ``unet`` holds :class:`~hummingbird.unet.HummingbirdUNet` keyword arguments (the yaml
``unet_config.params`` names plus ``use_middle_block``), ``vae`` the LDM ``ddconfig``, ``text`` and
``vision`` the OpenCLIP ``text_cfg`` / ``vision_cfg``, ``resampler`` the I2V image projector params.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

# yaml keys that only matter for training or are fixed to one value in every release
_IGNORED_UNET_KEYS = {"use_checkpoint", "temporal_length", "dropout_rate"}
_REQUIRED_FALSE_UNET_KEYS = {"use_relative_position", "use_causal_attention", "use_scale_shift_norm",
                             "resblock_updown"}


@dataclass(frozen=True)
class ModelConfig:
    """Configuration of a whole Hummingbird model (T2V when ``vision`` is None, else I2V)."""

    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any]
    vision: dict[str, Any] | None = None
    resampler: dict[str, Any] | None = None
    scale_factor: float = 0.18215
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return "i2v" if self.vision is not None else "t2v"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return cls(**copy.deepcopy(data))

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_official(cls, name: str, model: dict[str, Any],
                      open_clip_model_cfg: dict[str, Any]) -> "ModelConfig":
        """Build from a yaml ``model:`` section and an OpenCLIP model json (as in the fixtures)."""
        params = model.get("params", model)
        unet_cfg = params["unet_config"]
        ddconfig = dict(params["first_stage_config"]["params"]["ddconfig"])
        ddconfig["embed_dim"] = params["first_stage_config"]["params"].get("embed_dim", 4)
        clip_cfg = open_clip_model_cfg
        if "text_cfg" not in clip_cfg:  # {arch name: cfg}
            clip_cfg = next(iter(clip_cfg.values()))
        resampler = None
        vision = None
        if "image_proj_stage_config" in params:
            resampler = dict(params["image_proj_stage_config"]["params"])
            vision = dict(clip_cfg["vision_cfg"])
        return cls(name=name, unet=unet_params_from_official(unet_cfg.get("params", unet_cfg),
                                                               unet_cfg.get("target", "")),
                   vae=ddconfig, text=dict(clip_cfg["text_cfg"]), vision=vision, resampler=resampler,
                   scale_factor=float(params.get("scale_factor", 0.18215)))


def unet_params_from_official(params: dict[str, Any], target: str = "") -> dict[str, Any]:
    """Map yaml ``unet_config.params`` (and its ``target``) to HummingbirdUNet keyword arguments."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in _IGNORED_UNET_KEYS:
            continue
        if key in _REQUIRED_FALSE_UNET_KEYS:
            if value:
                raise ValueError(f"unet_config.params.{key}={value!r} is not used by any Hummingbird release")
            continue
        if key == "fs_condition":
            key = "fps_cond"
        if key == "default_fs":
            key = "default_fps"
        out[key] = list(value) if isinstance(value, tuple) else value
    out.setdefault("use_middle_block", "_07B" not in target)
    return out


_UNET_COMMON: dict[str, Any] = dict(
    out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=1,
    channel_mult=[1, 2, 4, 4], num_head_channels=64, transformer_depth=1, context_dim=1024,
    use_linear=True, temporal_conv=True, temporal_attention=True, temporal_selfatt_only=True,
    addition_attention=True, fps_cond=True,
)

_SD_VAE: dict[str, Any] = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128,
                               ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0,
                               embed_dim=4)
_OPENCLIP_H_TEXT: dict[str, Any] = dict(context_length=77, vocab_size=49408, width=1024, heads=16, layers=24)
_OPENCLIP_H_VISION: dict[str, Any] = dict(image_size=224, layers=32, width=1280, head_width=80, patch_size=14)

T2V_09B = ModelConfig(
    name="t2v-0.9b",
    unet=dict(_UNET_COMMON, in_channels=4, default_fps=8, time_cond_proj_dim=256, use_middle_block=True),
    vae=dict(_SD_VAE), text=dict(_OPENCLIP_H_TEXT))

T2V_07B = T2V_09B.replace(name="t2v-0.7b", unet=dict(T2V_09B.unet, use_middle_block=False))

I2V_09B = ModelConfig(
    name="i2v-0.9b",
    unet=dict(_UNET_COMMON, in_channels=8, default_fps=24, image_cross_attention=True, dropout=0.1,
              use_middle_block=True),
    vae=dict(_SD_VAE), text=dict(_OPENCLIP_H_TEXT), vision=dict(_OPENCLIP_H_VISION),
    resampler=dict(dim=1024, depth=4, dim_head=64, heads=12, num_queries=16, embedding_dim=1280,
                   output_dim=1024, ff_mult=4, video_length=16))

# Tiny random models for tests and smoke runs: every structural flag of the release, small widths.
_UNET_TINY: dict[str, Any] = dict(_UNET_COMMON, model_channels=32, channel_mult=[1, 2, 2, 2],
                                  num_head_channels=8, context_dim=32)
_VAE_TINY: dict[str, Any] = dict(_SD_VAE, ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1)
_TEXT_TINY: dict[str, Any] = dict(_OPENCLIP_H_TEXT, width=32, heads=2, layers=3)

T2V_TINY = ModelConfig(
    name="t2v-tiny",
    unet=dict(_UNET_TINY, in_channels=4, default_fps=8, time_cond_proj_dim=256, use_middle_block=True),
    vae=_VAE_TINY, text=_TEXT_TINY)

I2V_TINY = ModelConfig(
    name="i2v-tiny",
    unet=dict(_UNET_TINY, in_channels=8, default_fps=24, image_cross_attention=True, use_middle_block=True),
    vae=_VAE_TINY, text=_TEXT_TINY,
    vision=dict(image_size=224, layers=2, width=32, head_width=16, patch_size=14),
    resampler=dict(dim=32, depth=2, dim_head=8, heads=4, num_queries=16, embedding_dim=32, output_dim=32,
                   ff_mult=4, video_length=16))

PRESETS: dict[str, ModelConfig] = {c.name: c for c in (T2V_09B, T2V_07B, I2V_09B, T2V_TINY, I2V_TINY)}
