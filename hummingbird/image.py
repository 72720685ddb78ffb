"""I2V image conditioning: image input, frame preprocessing, CLIP vision tokens and the Resampler.

The path follows the release (``i2v.md`` §3–5): the conditioning image becomes a ``[-1, 1]`` frame of
the video size (for the VAE), the same frame is squashed to 224² for the OpenCLIP ViT-H/14 vision
tower (257 tokens before ``ln_post``), and the Resampler turns those into 16 tokens per video frame.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.initialization import no_init_weights

ImageSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray, Image.Image]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # files treated as images by the commands
MIN_SIDE = 16
"""Smallest accepted shorter side of an input image, in pixels."""
MAX_PIXELS = 50_000_000
"""Largest accepted image area (decompression-bomb guard), checked from the header before decoding."""
ASPECT_MODES = ("crop", "pad", "reference")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_ALPHA_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # "I" (int32) holds 16-bit data in practice
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError)


# ---------------------------------------------------------------------------------------------
# Image input


def load_image(source: ImageSource) -> Image.Image:
    """Load and normalise an image to 8-bit RGB.

    ``source`` is a file path, encoded bytes, a uint8/uint16 array (HxW, HxWx1, HxWx3, HxWx4) or a
    PIL image. EXIF orientation is applied, animated images give their first frame, transparency
    (RGBA, LA, palette or colour-key) is composited on **white**, CMYK and grayscale become RGB and
    16-bit images are scaled (not clipped) to 8 bits. The size is checked before any pixel is decoded:
    the shorter side must be at least :data:`MIN_SIDE` px and the area at most :data:`MAX_PIXELS`.
    Raises ValueError for anything that is not a usable image.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(_decode(source))
    if isinstance(source, np.ndarray):
        return _to_rgb(_from_array(source))
    with _open_encoded(source) as raw:
        return _to_rgb(_decode(raw))


def aspect_ratio(image: Image.Image) -> float:
    """Long side over short side (>= 1), e.g. 1.6 for 512x320 and for 320x512."""
    width, height = image.size
    if min(width, height) == 0:
        raise ValueError(f"image is empty ({width}x{height} px)")
    return max(width, height) / min(width, height)


def _check_size(width: int, height: int) -> None:
    """Refuse empty, tiny and huge images (from the header size, before decoding)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image is empty ({width}x{height} px)")
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"image is too small ({width}x{height} px); the shorter side must be at least "
                         f"{MIN_SIDE} px")
    if width * height > MAX_PIXELS:
        raise ValueError(f"image is too large ({width}x{height} px = {width * height / 1e6:.1f} megapixels); "
                         f"the limit is {MAX_PIXELS / 1e6:g} megapixels")


def _open_encoded(source: str | os.PathLike | bytes | bytearray) -> Image.Image:
    """Open a path or encoded bytes lazily (header only); the caller closes it."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data:
            raise ValueError("image data is empty (0 bytes)")
        stream, label = io.BytesIO(data), "image data"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"image file not found: {path.name}")
        if path.stat().st_size == 0:
            raise ValueError(f"image file is empty (0 bytes): {path.name}")
        stream, label = path, f"image file {path.name}"
    else:
        raise ValueError(f"unsupported image input of type {type(source).__name__}; expected a path, "
                         "bytes, a numpy array or a PIL image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is lower
            return Image.open(stream)
    except Image.DecompressionBombError:
        raise ValueError(f"image is too large (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels); "
                         f"the limit is {MAX_PIXELS / 1e6:g} megapixels") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"{label} is not an image in a supported format") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{label} is corrupt or truncated: {exc}") from None


def _decode(image: Image.Image) -> Image.Image:
    """Size check, then decode the first frame and apply the EXIF orientation."""
    _check_size(*image.size)
    try:
        image.seek(0)
        image.load()
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS as exc:
        raise ValueError(f"image data is corrupt or truncated: {exc}") from None


def _from_array(array: np.ndarray) -> Image.Image:
    """A uint8 (or uint16, scaled to 8 bits) HxW / HxWxC array as a PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0])
    if array.dtype == np.uint16:
        array = _scale_16_to_8(array)
    elif array.dtype != np.uint8:
        raise ValueError(f"image array must be uint8 (or uint16), got {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 (x / 257, rounded)."""
    return np.rint(np.clip(values.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit scaled down, transparency composited on white, other modes converted."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = Image.fromarray(_scale_16_to_8(np.asarray(image)), "L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# ---------------------------------------------------------------------------------------------
# The video frame (VAE input)


def preview(image: ImageSource, height: int, width: int, aspect: str = "crop") -> Image.Image:
    """The exact ``width`` x ``height`` RGB frame that conditions the video.

    ``aspect``:
      - ``"crop"``: cover resize (scale = max(H/h, W/w)) and centre crop; never stretches, no bars.
      - ``"pad"``: contain resize (scale = min(H/h, W/w)) and centre on black (-1 in [-1, 1]).
      - ``"reference"``: the release's torchvision ``Resize(min(H, W))`` + ``CenterCrop((H, W))``,
        which zero-pads (black bars) any image narrower than the target aspect.
    All resizing is PIL bilinear (antialiased when shrinking).
    """
    _check_video_size(height, width)
    if aspect not in ASPECT_MODES:
        raise ValueError(f"aspect must be one of {ASPECT_MODES}, got {aspect!r}")
    image = load_image(image)
    if aspect == "crop":
        return _cover(image, height, width)
    if aspect == "pad":
        return _contain(image, height, width)
    return _reference(image, height, width)


def preprocess_for_vae(image: ImageSource, height: int, width: int, aspect: str = "crop") -> torch.Tensor:
    """The conditioning frame as float32 ``[3, height, width]`` in [-1, 1] (see :func:`preview`)."""
    return _to_unit_range(preview(image, height, width, aspect))


def _check_video_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if height * width > MAX_PIXELS:
        raise ValueError(f"frame size {width}x{height} exceeds {MAX_PIXELS / 1e6:g} megapixels")


def _to_unit_range(image: Image.Image) -> torch.Tensor:
    """torchvision ``ToTensor`` then ``Normalize(0.5, 0.5)``."""
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    return (pixels.float().div(255) - 0.5) / 0.5


def _reference(image: Image.Image, height: int, width: int) -> Image.Image:
    """torchvision ``Resize(min(H, W))`` (PIL bilinear) then ``CenterCrop((H, W))`` with zero padding."""
    w, h = image.size
    short, long = min(w, h), max(w, h)
    size = min(height, width)
    new_long = size * long // short
    new_size = (size, new_long) if w <= h else (new_long, size)
    return _center_crop(_resize(image, new_size), height, width)


def _cover(image: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the frame is covered (the binding side exact, the other rounded down) and centre crop."""
    w, h = image.size
    if w * height >= width * h:  # at least as wide as the frame: height binds
        new_size = (height * w // h, height)
    else:
        new_size = (width, width * h // w)
    return _center_crop(_resize(image, new_size), height, width)


def _contain(image: Image.Image, height: int, width: int) -> Image.Image:
    """Resize to fit inside the frame (the other side rounded) and centre on black."""
    w, h = image.size
    if w * height >= width * h:  # wider than the frame: width binds
        new_size = (width, max(1, min(height, round(width * h / w))))
    else:
        new_size = (max(1, min(width, round(height * w / h))), height)
    return _center_crop(_resize(image, new_size), height, width)


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """PIL bilinear resize; refuses intermediates over :data:`MAX_PIXELS` (absurd aspect ratios)."""
    if size == image.size:
        return image
    if size[0] * size[1] > MAX_PIXELS:
        raise ValueError(f"a {image.width}x{image.height} image is too elongated for this frame "
                         f"(it would be resized to {size[0]}x{size[1]} px)")
    return image.resize(size, Image.Resampling.BILINEAR)


def _center_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    """torchvision ``CenterCrop``: zero-pad (left/top get the floor half) when smaller, then crop."""
    w, h = image.size
    if w < width or h < height:
        canvas = Image.new("RGB", (max(w, width), max(h, height)), (0, 0, 0))
        canvas.paste(image, (max(width - w, 0) // 2, max(height - h, 0) // 2))
        image, (w, h) = canvas, canvas.size
    if (w, h) == (width, height):
        return image
    left, top = int(round((w - width) / 2.0)), int(round((h - height) / 2.0))
    return image.crop((left, top, left + width, top + height))


# ---------------------------------------------------------------------------------------------
# CLIP preprocessing


def clip_preprocess(frames: torch.Tensor, size: int = 224) -> torch.Tensor:
    """``[B, 3, H, W]`` frames in [-1, 1] to the CLIP input ``[B, 3, size, size]``.

    Equivalent to ``kornia.geometry.resize(x, (size, size), "bicubic", align_corners=True,
    antialias=True)`` (a Gaussian pre-blur with reflect border when shrinking, then torch bicubic;
    the aspect is squashed), then ``(x + 1) / 2`` and the CLIP mean/std normalisation.
    """
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [B, 3, H, W], got {tuple(frames.shape)}")
    x = _kornia_resize(frames, (size, size))
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _kornia_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """kornia's antialiased bicubic resize (``align_corners=True``)."""
    height, width = x.shape[-2:]
    if (height, width) == size:
        return x
    factors = (height / size[0], width / size[1])
    if max(factors) > 1:
        x = _gaussian_blur(x, [max((f - 1.0) / 2.0, 0.001) for f in factors])
    return F.interpolate(x, size=size, mode="bicubic", align_corners=True)


def _gaussian_blur(x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Separable Gaussian blur with reflect border; kernel int(max(4σ, 3)) bumped to odd, per axis."""
    channels = x.shape[1]
    for axis, sigma in zip((-1, -2), reversed(sigmas)):  # kornia blurs along x first, then y
        kernel = _gaussian_kernel(sigma, x.dtype, x.device)
        pad = kernel.numel() // 2
        if axis == -1:
            weight, padding = kernel.view(1, 1, 1, -1), (pad, pad, 0, 0)
        else:
            weight, padding = kernel.view(1, 1, -1, 1), (0, 0, pad, pad)
        x = F.conv2d(F.pad(x, padding, mode="reflect"), weight.expand(channels, 1, -1, -1), groups=channels)
    return x


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian over offsets -(k-1)/2 … (k-1)/2."""
    size = int(max(4.0 * sigma, 3))
    size += 1 - size % 2
    offsets = torch.arange(size, dtype=dtype, device=device) - size // 2
    gauss = torch.exp(-offsets.pow(2) / (2.0 * sigma ** 2))
    return gauss / gauss.sum()


# ---------------------------------------------------------------------------------------------
# CLIP vision tower

_VISION_TOP_KEYS = {
    "class_embedding": "embeddings.class_embedding",
    "conv1.weight": "embeddings.patch_embedding.weight",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight",
    "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight",  # loaded but unused: the tokens are taken before it
    "ln_post.bias": "post_layernorm.bias",
}
_VISION_BLOCK_KEYS = {
    "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
_TEXT_LEFTOVERS = re.compile(r"^(token_embedding\.weight|positional_embedding|ln_final\.(weight|bias)|"
                             r"text_projection|logit_scale)$")
_BLOCK_KEY = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+?)[._](weight|bias)$")


def vision_config(vision_cfg: dict[str, Any]) -> CLIPVisionConfig:
    """transformers config for an OpenCLIP ``vision_cfg`` (exact GELU, LayerNorm eps 1e-5)."""
    width, head_width = int(vision_cfg["width"]), int(vision_cfg.get("head_width", 64))
    if width % head_width:
        raise ValueError(f"vision width {width} is not a multiple of head_width {head_width}")
    image_size = vision_cfg.get("image_size", 224)
    if isinstance(image_size, (list, tuple)):
        if len(set(image_size)) != 1:
            raise ValueError(f"only square vision inputs are supported, got image_size {image_size}")
        image_size = image_size[0]
    return CLIPVisionConfig(
        hidden_size=width, intermediate_size=int(width * vision_cfg.get("mlp_ratio", 4.0)),
        num_hidden_layers=int(vision_cfg["layers"]), num_attention_heads=width // head_width,
        patch_size=int(vision_cfg["patch_size"]), image_size=int(image_size), num_channels=3,
        hidden_act="gelu", layer_norm_eps=1e-5)


def build_vision_encoder(vision_cfg: dict[str, Any]) -> CLIPVisionModel:
    """The vision tower as a ``CLIPVisionModel``, weights left uninitialised (load them next)."""
    with no_init_weights():
        return CLIPVisionModel(vision_config(vision_cfg)).eval()


def openclip_vision_to_hf(sd: dict[str, torch.Tensor], vision_cfg: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Convert OpenCLIP vision-tower keys (with or without ``visual.``) to ``CLIPVisionModel`` keys.

    ``proj`` and the text-side leftovers of the release file are dropped (``ln_post`` becomes the
    unused ``post_layernorm``); any other
    unknown key, a wrong block count or a wrong width raises ValueError.
    """
    if any(key.startswith("visual.") for key in sd):
        stray = [k for k in sd if not k.startswith("visual.") and not _TEXT_LEFTOVERS.match(k)]
        if stray:
            raise ValueError(f"unexpected keys next to the vision tower: {sorted(stray)[:5]}")
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    width, layers = int(vision_cfg["width"]), int(vision_cfg["layers"])
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if key in _VISION_TOP_KEYS:
            out[_VISION_TOP_KEYS[key]] = value
        elif key != "proj" and not _convert_block_key(key, value, width, out):
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown vision-tower keys: {sorted(unknown)[:5]}")
    _check_block_count(out, layers)
    return out


def _convert_block_key(key: str, value: torch.Tensor, width: int, out: dict[str, torch.Tensor]) -> bool:
    """Map one ``transformer.resblocks.i.*`` tensor into ``out``; False when the key is not one."""
    match = _BLOCK_KEY.match(key)
    if match is None:
        return False
    index, name, kind = match.groups()
    prefix = f"encoder.layers.{index}."
    if name == "attn.in_proj":
        if value.shape[0] != 3 * width:
            raise ValueError(f"{key} has shape {tuple(value.shape)}, expected first dim {3 * width} "
                             f"(3 x width {width})")
        for part, chunk in zip(("q", "k", "v"), value.chunk(3, dim=0)):
            out[f"{prefix}self_attn.{part}_proj.{kind}"] = chunk
        return True
    if name in _VISION_BLOCK_KEYS:
        out[f"{prefix}{_VISION_BLOCK_KEYS[name]}.{kind}"] = value
        return True
    return False


def _check_block_count(out: dict[str, torch.Tensor], layers: int) -> None:
    found = {int(k.split(".")[2]) for k in out if k.startswith("encoder.layers.")}
    if found != set(range(layers)):
        raise ValueError(f"vision tower has blocks {sorted(found)}, the config expects {layers}")


# ---------------------------------------------------------------------------------------------
# Resampler (image_proj_model)


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm → Linear → GELU → Linear, no biases (keys ``0``, ``1``, ``3``)."""
    inner = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(),
                         nn.Linear(inner, dim, bias=False))


class PerceiverAttention(nn.Module):
    """Latents attend to ``cat(image tokens, latents)``; q and k both scaled by dim_head^-1/4."""

    def __init__(self, dim: int, dim_head: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        batch, length, _ = latents.shape
        q = self._split_heads(self.to_q(latents))
        k, v = (self._split_heads(t) for t in self.to_kv(torch.cat((x, latents), dim=1)).chunk(2, dim=-1))
        scale = self.dim_head ** -0.25
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
        out = (weight @ v).transpose(1, 2).reshape(batch, length, -1)
        return self.to_out(out)


class Resampler(nn.Module):
    """The I2V image projector: CLIP tokens → ``num_queries * video_length`` context tokens."""

    def __init__(self, *, dim: int, depth: int, dim_head: int, heads: int, num_queries: int,
                 embedding_dim: int, output_dim: int, ff_mult: int = 4, video_length: int | None = None) -> None:
        super().__init__()
        self.num_tokens = num_queries * (video_length or 1)
        self.latents = nn.Parameter(torch.randn(1, self.num_tokens, dim) / dim ** 0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), _feed_forward(dim, ff_mult)])
            for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, embedding_dim]`` → ``[B, num_tokens, output_dim]``."""
        latents = self.latents.repeat(x.shape[0], 1, 1)
        x = self.proj_in(x)
        for attention, feed_forward in self.layers:
            latents = attention(x, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))


# ---------------------------------------------------------------------------------------------
# Image conditioner


class ImageConditioner(nn.Module):
    """CLIP vision tower + Resampler: ``[-1, 1]`` frames → image context tokens."""

    def __init__(self, vision: CLIPVisionModel, resampler: Resampler) -> None:
        super().__init__()
        self.vision = vision
        self.resampler = resampler

    @classmethod
    def from_state_dicts(cls, vision_sd: dict[str, torch.Tensor], resampler_sd: dict[str, torch.Tensor],
                         vision_cfg: dict[str, Any], resampler_params: dict[str, Any]) -> "ImageConditioner":
        """Build from an OpenCLIP vision state dict (``embedder.model.`` stripped) and a bare Resampler one."""
        vision = build_vision_encoder(vision_cfg)
        _load_exact(vision, openclip_vision_to_hf(vision_sd, vision_cfg), "vision tower")
        resampler = Resampler(**resampler_params)
        _load_exact(resampler, resampler_sd, "resampler")
        return cls(vision, resampler).eval()

    @classmethod
    def random(cls, vision_cfg: dict[str, Any], resampler_params: dict[str, Any]) -> "ImageConditioner":
        """Randomly initialised (from torch's global RNG): for tests and smoke runs."""
        return cls(CLIPVisionModel(vision_config(vision_cfg)), Resampler(**resampler_params)).eval()

    def clip_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """All vision tokens before ``ln_post``: ``[B, 257, width]``."""
        param = self.resampler.latents
        pixels = clip_preprocess(frames.to(param.device, torch.float32), self.vision.config.image_size)
        return self.vision(pixel_values=pixels.to(param.dtype)).last_hidden_state

    def image_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Resampler tokens of ``[B, 3, H, W]`` frames in [-1, 1]: ``[B, num_tokens, output_dim]``."""
        return self.resampler(self.clip_tokens(frames))

    def uncond_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Unconditional image tokens: those of an all-zero (mid-grey) frame shaped like ``frames``."""
        return self.image_tokens(torch.zeros_like(frames))


def _load_exact(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Strict load with a ValueError naming missing, unexpected and mis-shaped keys."""
    expected = module.state_dict()
    missing = sorted(expected.keys() - sd.keys())
    unexpected = sorted(sd.keys() - expected.keys())
    shapes = [f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{what} weights do not match the config: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}")
    module.load_state_dict(sd, strict=True)
