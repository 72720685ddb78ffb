"""Video super-resolution: Hummingbird VSR (BasicSR RRDBNet) and the bundled Real-ESRGAN stand-ins.

Networks (``sr.md`` §1): :class:`RRDBNet` with BasicSR key names and :class:`SRVGGNetCompact` with
Real-ESRGAN key names. :class:`Upscaler` runs one of them on uint8 RGB frames the way our pipeline needs it
(RGB in [0, 1], clamp, x255, round), batched, optionally tiled, with an optional resize to x2 or to fit 4K.
:func:`reference_enhance` reproduces the reference video script's BGR frame I/O for the golden fixtures.

Which bundled network ``model="auto"`` picks without an ``SR.pth``: ``x4plus`` (RealESRGAN_x4plus), the only
bundled network trained on natural photographs, and the same RRDBNet class and code path as Hummingbird VSR.
PSNR does not decide between them: on the example photograph (cat, 300x448, bicubic x4 down then x4 up)
bicubic upscaling scores 30.16 dB, ``animevideo`` 27.99, ``x4plus`` 27.36 and ``anime`` 27.20. GAN-trained
Real-ESRGAN networks trade PSNR for sharpness, and on clean bicubic downscales every one of them scores below
bicubic. By eye, ``x4plus`` keeps a natural look (fur, soft shading) where both anime networks draw dark outlines
and flat cartoon areas. ``x4plus`` costs 5.9 TFLOP per 320x512 frame, 29x ``animevideo`` (203 GFLOP), so pick
``animevideo`` when speed matters more than a natural look, e.g. on a CPU.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("hummingbird", "x4plus", "anime", "animevideo")
AUTO_BUNDLED = "x4plus"
TARGETS = {"4k": (3840, 2160)}
MAX_PIXELS_GPU = 1 << 20
MAX_PIXELS_CPU = 1 << 18
MIN_TILE = 32


# --------------------------------------------------------------------------------------------- networks

class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; returns ``x5 * 0.2 + x``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, ``out * 0.2 + x``."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """BasicSR's ESRGAN generator; scale 2 and 1 pixel-unshuffle the input by 2 and 4 first."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, scale: int = 4) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        self.unshuffle = unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    @property
    def input_multiple(self) -> int:
        """Input sides must be multiples of this (the pixel-unshuffle factor)."""
        return self.unshuffle

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact VGG-style net (PReLU): body convs, pixel-shuffle, plus a nearest-upsampled input."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4) -> None:
        super().__init__()
        self.scale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def input_multiple(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def _require_keys(sd: dict[str, torch.Tensor], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise ValueError(f"not a {what} state dict: missing {', '.join(missing)}")


def rrdbnet_from_state_dict(sd: dict[str, torch.Tensor]) -> RRDBNet:
    """Build an :class:`RRDBNet` whose sizes are inferred from ``sd`` (``sr.md`` §1.1) and load it strictly."""
    _require_keys(sd, ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.weight"), "RRDBNet")
    first = sd["conv_first.weight"]
    in_to_scale = {3: 4, 12: 2, 48: 1}
    if first.shape[1] not in in_to_scale:
        raise ValueError(f"conv_first takes {first.shape[1]} channels; expected 3 (x4), 12 (x2) or 48 (x1)")
    blocks = {int(k.split(".")[1]) for k in sd if k.startswith("body.")}
    net = RRDBNet(num_in_ch=3, num_out_ch=sd["conv_last.weight"].shape[0], num_feat=first.shape[0],
                  num_block=len(blocks), num_grow_ch=sd["body.0.rdb1.conv1.weight"].shape[0],
                  scale=in_to_scale[first.shape[1]])
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return net.eval()


def srvgg_from_state_dict(sd: dict[str, torch.Tensor], upscale: int = 4) -> SRVGGNetCompact:
    """Build an :class:`SRVGGNetCompact` whose sizes are inferred from ``sd`` and load it strictly."""
    _require_keys(sd, ("body.0.weight", "body.1.weight"), "SRVGGNetCompact")
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    out_ch = sd[f"body.{last}.weight"].shape[0] // (upscale * upscale)
    net = SRVGGNetCompact(num_in_ch=sd["body.0.weight"].shape[1], num_out_ch=out_ch,
                          num_feat=sd["body.0.weight"].shape[0], num_conv=last // 2 - 1, upscale=upscale)
    net.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return net.eval()


def load_hummingbird_sr(path: str | Path) -> RRDBNet:
    """Hummingbird VSR (``SR.pth``, BasicSR: ``params_ema`` first, strict) as an :class:`RRDBNet` in float32."""
    from hummingbird.checkpoints import load_basicsr

    return rrdbnet_from_state_dict(load_basicsr(path))


def load_bundled(name: str) -> nn.Module:
    """One of the Real-ESRGAN networks bundled as ncnn files (``x4plus``, ``anime``, ``animevideo``)."""
    from hummingbird import ncnn

    converted = ncnn.bundled_state_dict(name)
    if converted.arch == "RRDBNet":
        return rrdbnet_from_state_dict(converted.state_dict)
    return srvgg_from_state_dict(converted.state_dict, upscale=converted.config["upscale"])


# ------------------------------------------------------------------------------------- reference I/O

class ReferenceResult(NamedTuple):
    """What the reference video script computes for a batch of BGR frames."""

    model_input: torch.Tensor   # [N, 3, H+p, W+p] RGB float
    model_output: torch.Tensor  # [N, 3, s(H+p), s(W+p)] raw network output
    frames_bgr: torch.Tensor    # [N, sH, sW, 3] uint8 BGR


def reference_enhance(net: nn.Module, frames_bgr: torch.Tensor, pre_pad: int = 0) -> ReferenceResult:
    """The reference frame I/O: BGR uint8 -> RGB [0,1], reflect pre-pad, net (float32), crop, clamp, round."""
    _check_frames(frames_bgr)
    if pre_pad < 0 or pre_pad >= min(frames_bgr.shape[1:3]):
        raise ValueError(f"pre_pad must be in [0, {min(frames_bgr.shape[1:3])}), got {pre_pad}")
    x = torch.as_tensor(frames_bgr).float().div(255.0).flip(-1).permute(0, 3, 1, 2).contiguous()
    if pre_pad:
        x = F.pad(x, (0, pre_pad, 0, pre_pad), mode="reflect")
    with torch.no_grad():
        out = net(x)
    return ReferenceResult(x, out, reference_postprocess(out, pre_pad * net.scale))


def reference_postprocess(output: torch.Tensor, crop: int = 0) -> torch.Tensor:
    """Raw RGB network output -> uint8 BGR frames: crop right/bottom, clamp, x255, round half to even."""
    kept = output[:, :, :output.shape[2] - crop, :output.shape[3] - crop]
    return kept.clamp(0, 1).flip(1).permute(0, 2, 3, 1).mul(255.0).round().to(torch.uint8)


# ------------------------------------------------------------------------------------------- upscaler

def _check_frames(frames: np.ndarray | torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got shape {tuple(frames.shape)}")
    if str(frames.dtype) not in ("uint8", "torch.uint8"):
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must not be empty, got shape {tuple(frames.shape)}")


def fit_size(height: int, width: int, box: tuple[int, int]) -> tuple[int, int]:
    """The largest even size with the aspect of (height, width) inside ``box`` (long side, short side)."""
    long_side, short_side = box
    limit = (long_side, short_side) if width >= height else (short_side, long_side)
    factor = min(limit[0] / width, limit[1] / height)
    out_h, out_w = min(limit[1], round(height * factor)), min(limit[0], round(width * factor))
    return max(2, out_h // 2 * 2), max(2, out_w // 2 * 2)


def tile_process(run: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, tile: int,
                 tile_pad: int) -> torch.Tensor:
    """``RealESRGANer.tile_process``: upscale padded tiles and paste their centres, no blending."""
    batch, channels, height, width = x.shape
    output = x.new_zeros(batch, channels, height * scale, width * scale)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            top_pad, left_pad = max(top - tile_pad, 0), max(left - tile_pad, 0)
            patch = run(x[:, :, top_pad:min(bottom + tile_pad, height), left_pad:min(right + tile_pad, width)])
            y0, x0 = (top - top_pad) * scale, (left - left_pad) * scale
            output[:, :, top * scale:bottom * scale, left * scale:right * scale] = \
                patch[:, :, y0:y0 + (bottom - top) * scale, x0:x0 + (right - left) * scale]
    return output


class Upscaler:
    """A super-resolution network ready to upscale uint8 RGB frames.

    ``max_pixels_per_batch`` caps the input pixels of one network call (tile padding included); it picks
    the batch size and, when one frame alone is larger, a tile size. ``optimized=False`` leaves the network off
    :func:`hummingbird.fast.optimize`'s fast path.
    """

    def __init__(self, net: nn.Module, name: str, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, max_pixels_per_batch: int | None = None,
                 optimized: bool = True) -> None:
        self.device = torch.device(device) if device is not None else _default_device()
        self.dtype = dtype or (torch.float16 if self.device.type == "cuda" else torch.float32)
        self.net = net.eval().requires_grad_(False).to(self.device, self.dtype)
        self.name = name
        gpu = self.device.type != "cpu"
        self.max_pixels_per_batch = max_pixels_per_batch or (MAX_PIXELS_GPU if gpu else MAX_PIXELS_CPU)
        if optimized:  # channels-last + cuDNN autotuning on GPU; regional compile with HUMMINGBIRD_COMPILE=1
            from hummingbird.fast import optimize  # here, not at the top: fast imports this module

            optimize(self)

    @classmethod
    def load(cls, model: str = "auto", weights: str | Path | None = None, device: torch.device | str | None = None,
             dtype: torch.dtype | None = None) -> "Upscaler":
        """Load Hummingbird VSR from ``weights`` (an ``SR.pth``) or a bundled Real-ESRGAN network.

        ``model="auto"`` is Hummingbird VSR when ``weights`` is given, else the bundled ``x4plus``.
        """
        if model not in ("auto", *MODELS):
            raise ValueError(f"unknown SR model {model!r}; choose auto or one of {', '.join(MODELS)}")
        if weights is not None and model not in ("auto", "hummingbird"):
            raise ValueError(f"weights= is a Hummingbird SR.pth and cannot be combined with model={model!r}")
        if model == "hummingbird" and weights is None:
            raise ValueError("model='hummingbird' needs weights= (the SR.pth file)")
        if weights is not None:
            return cls(load_hummingbird_sr(weights), "hummingbird", device, dtype)
        name = AUTO_BUNDLED if model == "auto" else model
        return cls(load_bundled(name), name, device, dtype)

    @property
    def scale(self) -> int:
        """The network's own upscaling factor."""
        return self.net.scale

    def output_size(self, height: int, width: int, scale: int = 4, target: str | None = None) -> tuple[int, int]:
        """The (height, width) that :meth:`__call__` returns for frames of (height, width)."""
        if target is not None:
            if target not in TARGETS:
                raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
            if scale != 4:
                raise ValueError("scale and target are exclusive: leave scale at 4 when target is set")
            return fit_size(height * self.scale, width * self.scale, TARGETS[target])
        if scale not in (2, 4):
            raise ValueError(f"scale must be 2 or 4, got {scale}")
        return height * scale, width * scale

    def enhance(self, x: torch.Tensor, tile: int = 0, tile_pad: int = 10) -> torch.Tensor:
        """Run the network on RGB [N, 3, H, W] in [0, 1]; float32 [N, 3, sH, sW] clamped to [0, 1]."""
        if tile < 0 or tile_pad < 0:
            raise ValueError(f"tile and tile_pad must be >= 0, got {tile} and {tile_pad}")
        x = x.to(self.device, self.dtype)
        with torch.no_grad():
            if tile and (tile < x.shape[2] or tile < x.shape[3]):
                out = tile_process(self._forward, x, self.scale, tile, tile_pad)
            else:
                out = self._forward(x)
        return out.float().clamp_(0, 1)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on any size: reflect-pads to its input multiple and crops the result back."""
        multiple = self.net.input_multiple
        pad_h, pad_w = -x.shape[2] % multiple, -x.shape[3] % multiple
        if pad_h or pad_w:
            mode = "reflect" if min(x.shape[2:]) > multiple else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = self.net(x)
        return out[:, :, :out.shape[2] - pad_h * self.scale, :out.shape[3] - pad_w * self.scale]

    def plan(self, height: int, width: int, tile: int = 0, tile_pad: int = 10) -> tuple[int, int]:
        """(batch size, tile size) that keep one network call under ``max_pixels_per_batch``."""
        cap = self.max_pixels_per_batch
        if not tile and height * width > cap:
            tile = max(MIN_TILE, math.isqrt(cap) - 2 * tile_pad)
        if tile:
            pixels = min(height, tile + 2 * tile_pad) * min(width, tile + 2 * tile_pad)
        else:
            pixels = height * width
        return max(1, cap // pixels), tile

    def __call__(self, frames: np.ndarray | torch.Tensor, scale: int = 4, target: str | None = None,
                 tile: int = 0, tile_pad: int = 10, batch_size: int | None = None,
                 callback: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Upscale uint8 RGB frames [F, H, W, 3] to uint8 [F, H', W', 3] (x4, x2, or fitted to ``target``).

        ``tile`` 0 lets the memory cap decide; ``batch_size`` None likewise. ``callback(done, total)``
        is called once per finished frame.
        """
        _check_frames(frames)
        count, height, width = frames.shape[:3]
        out_h, out_w = self.output_size(height, width, scale, target)
        auto_batch, tile = self.plan(height, width, tile, tile_pad)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        step = batch_size or auto_batch
        result = np.empty((count, out_h, out_w, 3), dtype=np.uint8)
        for start in range(0, count, step):
            chunk = _tensor(frames[start:start + step]).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
            out = _resize(self.enhance(chunk, tile, tile_pad), out_h, out_w)
            torch.from_numpy(result[start:start + len(chunk)]).copy_(_to_uint8(out))  # one copy to the host
            _report(callback, start, len(chunk), count)
        return result


def _report(callback: Callable[[int, int], None] | None, start: int, finished: int, total: int) -> None:
    """Call ``callback(done, total)`` once for each of ``finished`` frames after ``start``."""
    if callback is not None:
        for done in range(start + 1, start + finished + 1):
            callback(done, total)


def _tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Frames as a tensor; numpy input is copied (it may be read-only)."""
    return frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames))


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of float frames (a no-op at the same size), clamped to [0, 1]."""
    if tuple(x.shape[2:]) == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1] -> uint8 [N, H, W, 3] (a view, on the same device), rounded (not truncated)."""
    return x.mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1)
