"""The SD KL-f8 VAE as diffusers ``AutoencoderKL``: LDM weight conversion, per-frame video decode, image encode.

The LDM autoencoder of the release (GroupNorm eps 1e-6, single-head mid attention, asymmetric-padded
downsampling, no tanh) is exactly diffusers' ``AutoencoderKL``; only the weight names differ.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

_ENCODER_PREFIXES = ("encoder.", "quant_conv.")
_LEVEL_KEY = re.compile(r"^(?:encoder\.down|decoder\.up)\.(\d+)\.", re.MULTILINE)
_RESNET = r"(?:norm1|conv1|norm2|conv2|nin_shortcut)"
_LDM_KEY = re.compile(
    r"(?:(?:encoder|decoder)\.(?:conv_in|conv_out|norm_out)"
    r"|(?:post_)?quant_conv"
    rf"|encoder\.down\.\d+\.(?:block\.\d+\.{_RESNET}|downsample\.conv)"
    rf"|decoder\.up\.\d+\.(?:block\.\d+\.{_RESNET}|upsample\.conv)"
    rf"|(?:encoder|decoder)\.mid\.(?:block_[12]\.{_RESNET}|attn_1\.(?:norm|q|k|v|proj_out)))"
    r"\.(?:weight|bias)")


def _check_ddconfig(ddconfig: Mapping[str, Any]) -> None:
    """Reject LDM ``ddconfig`` options that diffusers' ``AutoencoderKL`` cannot express."""
    missing = {"ch", "ch_mult", "num_res_blocks", "z_channels"} - set(ddconfig)
    if missing:
        raise ValueError(f"VAE ddconfig lacks {sorted(missing)}")
    if ddconfig.get("attn_resolutions"):
        raise ValueError(f"VAE attn_resolutions must be empty (attention only in the mid block), "
                         f"got {ddconfig['attn_resolutions']}")
    if not ddconfig.get("double_z", True):
        raise ValueError("VAE ddconfig.double_z must be true (KL autoencoder)")
    embed_dim = ddconfig.get("embed_dim", ddconfig["z_channels"])
    if embed_dim != ddconfig["z_channels"]:
        raise ValueError(f"VAE embed_dim {embed_dim} must equal z_channels {ddconfig['z_channels']}")


def vae_config(ddconfig: Mapping[str, Any], scale_factor: float = 0.18215) -> dict[str, Any]:
    """diffusers ``AutoencoderKL`` keyword arguments for an LDM ``ddconfig`` (``embed_dim`` may be included)."""
    _check_ddconfig(ddconfig)
    levels = len(ddconfig["ch_mult"])
    return dict(in_channels=int(ddconfig.get("in_channels", 3)), out_channels=int(ddconfig.get("out_ch", 3)),
                down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
                block_out_channels=tuple(int(ddconfig["ch"]) * int(m) for m in ddconfig["ch_mult"]),
                layers_per_block=int(ddconfig["num_res_blocks"]), latent_channels=int(ddconfig["z_channels"]),
                norm_num_groups=32, sample_size=int(ddconfig.get("resolution", 256)), scaling_factor=scale_factor)


def build_vae(ddconfig: Mapping[str, Any]) -> AutoencoderKL:
    """A randomly initialised ``AutoencoderKL`` with the architecture of an LDM ``ddconfig``."""
    return AutoencoderKL(**vae_config(ddconfig)).eval()


def _levels(sd: Mapping[str, torch.Tensor]) -> int:
    """Number of resolution levels (``len(ch_mult)``) named by the LDM keys."""
    found = _LEVEL_KEY.findall("\n".join(sd))
    return 1 + max((int(level) for level in found), default=0)


def ldm_vae_to_diffusers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LDM VAE state dict (``first_stage_model.`` removed) -> diffusers ``AutoencoderKL`` keys.

    Uses diffusers' own LDM converter; every input key must be an LDM VAE name and map to one output key.
    """
    if any(key.startswith(("first_stage_model.", "vae.")) for key in sd):
        raise ValueError("strip the 'first_stage_model.' prefix before converting the VAE state dict")
    unknown = [key for key in sd if not _LDM_KEY.fullmatch(key)]
    if unknown:
        raise ValueError(f"unrecognised LDM VAE keys: {unknown[:8]}{' ...' if len(unknown) > 8 else ''}")
    levels = _levels(sd)
    try:
        out = convert_ldm_vae_checkpoint(dict(sd), {"down_block_types": [None] * levels,
                                                    "up_block_types": [None] * levels})
    except KeyError as exc:
        raise ValueError(f"incomplete LDM VAE state dict: {exc.args[0]!r} is missing") from exc
    if len(out) != len(sd):
        raise ValueError(f"LDM VAE conversion gave {len(out)} tensors for {len(sd)} keys")
    return out


def _is_decoder_only(sd: Mapping[str, torch.Tensor]) -> bool:
    return not any(key.startswith(_ENCODER_PREFIXES) for key in sd)


def load_vae(sd: Mapping[str, torch.Tensor], ddconfig: Mapping[str, Any],
             scale_factor: float = 0.18215) -> AutoencoderKL:
    """An ``AutoencoderKL`` holding LDM VAE weights (prefix removed), loaded strictly.

    A decode-only state dict (no ``encoder.*`` / ``quant_conv.*`` keys at all) gives a VAE without encoder:
    its ``encoder`` and ``quant_conv`` are None and :func:`encode_image` refuses it.
    """
    converted = ldm_vae_to_diffusers(sd)
    with torch.device("meta"):
        vae = AutoencoderKL(**vae_config(ddconfig, scale_factor))
    if _is_decoder_only(converted):
        vae.encoder = None
        vae.quant_conv = None
    try:
        vae.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"VAE weights do not fit the ddconfig: {exc}") from exc
    return vae.eval().requires_grad_(False)


def check_latents(vae: AutoencoderKL, latents: torch.Tensor) -> None:
    """Refuse anything but video latents [B, C, F, h, w] with the VAE's latent channels."""
    channels = vae.config.latent_channels
    if latents.ndim != 5 or latents.shape[1] != channels:
        raise ValueError(f"latents must be [B, {channels}, F, h, w], got {tuple(latents.shape)}")


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, scale_factor: float,
                   chunk_size: int | None = None) -> torch.Tensor:
    """Video latents [B, 4, F, h, w] -> video [B, 3, F, 8h, 8w] in float32; every frame is decoded independently.

    ``latents / scale_factor`` go through the 2-D VAE ``chunk_size`` frames at a time (all B·F at once when
    None): a smaller chunk bounds memory and changes nothing but float rounding.
    """
    check_latents(vae, latents)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    b, c, f, h, w = latents.shape
    frames = (latents.float() / scale_factor).permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    param = next(vae.decoder.parameters())
    frames = frames.to(device=param.device, dtype=param.dtype)
    chunks = frames.split(chunk_size or b * f)
    video = torch.cat([vae.decode(chunk).sample.float() for chunk in chunks])
    return video.reshape(b, f, *video.shape[1:]).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def encode_image(vae: AutoencoderKL, image: torch.Tensor, noise: torch.Tensor | None = None,
                 sample: bool = True, *, scale_factor: float) -> torch.Tensor:
    """Image [B, 3, H, W] in [-1, 1] -> scaled latent [B, 4, H/8, W/8] in float32.

    With ``sample`` the posterior is sampled with the given standard-normal ``noise`` [B, 4, H/8, W/8]:
    ``(mean + exp(logvar / 2) * noise) * scale_factor`` with logvar clamped to [-30, 20]; otherwise its mean.
    """
    if vae.encoder is None:
        raise ValueError("this VAE was loaded from a decode-only state dict and has no encoder")
    if image.ndim != 4 or image.shape[1] != vae.config.in_channels or image.shape[-2] % 8 or image.shape[-1] % 8:
        raise ValueError(f"image must be [B, {vae.config.in_channels}, H, W] with H, W multiples of 8, "
                         f"got {tuple(image.shape)}")
    param = next(vae.encoder.parameters())
    posterior = vae.encode(image.to(device=param.device, dtype=param.dtype)).latent_dist
    mean = posterior.mean.float()
    if not sample:
        return mean * scale_factor
    if noise is None:
        raise ValueError("sample=True needs an explicit posterior noise tensor (or use sample=False for the mean)")
    if noise.shape != mean.shape:
        raise ValueError(f"noise must have the latent shape {tuple(mean.shape)}, got {tuple(noise.shape)}")
    std = torch.exp(0.5 * posterior.logvar.float())  # diffusers clamps logvar to [-30, 20]
    return (mean + std * noise.to(device=mean.device, dtype=mean.dtype)) * scale_factor


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Video [B, 3, F, H, W] in [-1, 1] -> uint8 frames [B, F, H, W, 3], truncating (no rounding)."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be [B, 3, F, H, W], got {tuple(video.shape)}")
    frames = (video.float().clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0
    return frames.to(torch.uint8).permute(0, 2, 3, 4, 1)
