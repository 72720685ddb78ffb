"""The Hummingbird 3-D U-Net: T2V 0.7B / 0.9B and I2V 0.9B in one class.

A port of the LVDM / VideoCrafter2 / DynamiCrafter ``UNetModel``. The module tree mirrors the official
checkpoints, so ``state_dict()`` keys equal the official ones without the ``model.diffusion_model.`` prefix
(in the official order, misspelt ``temopral_conv`` included) and loading is a strict ``load_state_dict``.
The network runs on frame-folded tensors ``[(B*F), C, h, w]`` (row ``b*F + f``); temporal modules unfold them.
Attention uses ``F.scaled_dot_product_attention``; :func:`attention_backend` switches to the reference kernel.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import TemporalConvLayer
from torch import Tensor, nn

TEXT_TOKENS = 77  # text tokens at the head of every context; image tokens follow (I2V)
IMAGE_TOKENS_PER_FRAME = 16  # I2V per-frame routing: frame f gets image tokens 16f .. 16f+15
INIT_ATTN_HEADS = 8  # init_attn head count, fixed in the reference code
GROUPS = 32
ATTENTION_BACKENDS = ("sdpa", "reference")
_attention_backend = "sdpa"


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """LDM sinusoid of ``t`` ([N] or scalar): ``[cos, sin]`` with frequencies ``10000^(-i/(dim/2))``, float32."""
    return get_timestep_embedding(torch.as_tensor(t).reshape(-1), dim, flip_sin_to_cos=True,
                                  downscale_freq_shift=0)


def guidance_embedding(w: Tensor | float | Sequence[float], dim: int = 256) -> Tensor:
    """T2V-Turbo guidance-scale embedding [N, dim] (float32): ``[sin, cos]`` of ``1000 w`` with frequencies
    ``10000^(-k/(dim/2 - 1))``. ``w`` is the guidance scale as shown to the user (no ``- 1``)."""
    if dim % 2 or dim < 4:
        raise ValueError(f"guidance embedding dim must be even and >= 4, got {dim}")
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1) * 1000.0
    half = dim // 2
    step = torch.log(torch.tensor(10000.0)) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=w.device) * -step.to(w.device))
    arg = w[:, None] * freqs[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def _project(layer: nn.Module, tokens: Tensor) -> Tensor:
    """Apply a Linear or a kernel-1 Conv1d/Conv2d projection to the last axis of ``tokens``."""
    return F.linear(tokens, layer.weight.flatten(1), layer.bias)


def _projection(in_dim: int, out_dim: int, linear: bool, conv: type[nn.Module]) -> nn.Module:
    return nn.Linear(in_dim, out_dim) if linear else conv(in_dim, out_dim, 1)


@contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Select how every CrossAttention computes ``softmax(q k^T / sqrt(d)) v`` inside the block.

    ``"sdpa"`` (the default): ``F.scaled_dot_product_attention`` (fused kernels). ``"reference"``: the reference's
    einsum kernel, explicit batched matmuls and softmax on 3-D ``(batch*heads, seq, dim)`` tensors (for baselines).
    """
    global _attention_backend
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend must be one of {', '.join(ATTENTION_BACKENDS)}, got {name!r}")
    previous, _attention_backend = _attention_backend, name
    try:
        yield
    finally:
        _attention_backend = previous


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Unmasked attention of [N, heads, L, d] tensors with the selected backend."""
    if _attention_backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    return _reference_attention(q, k, v)


def _reference_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """The reference einsum kernel: ``(b h) n d`` tensors, ``softmax(q k^T * d^-0.5) v``."""
    n, heads = q.shape[:2]
    q3, k3, v3 = (t.reshape(n * heads, t.shape[2], t.shape[3]) for t in (q, k, v))
    sim = torch.einsum("b i d, b j d -> b i j", q3, k3) * q.shape[-1] ** -0.5
    out = torch.einsum("b i j, b j d -> b i d", sim.softmax(dim=-1), v3)
    return out.view(n, heads, *out.shape[1:])


def group_norm_fp32_stats(norm: nn.GroupNorm, x: Tensor) -> Tensor:
    """``norm(x)`` with float32 statistics, returned in the dtype of ``x``.

    CUDA's half-precision GroupNorm kernels already accumulate in float32, so there ``x`` is normalised in its own
    dtype (no float32 copy of the activations); elsewhere, and under autocast (the reference's way), ``x`` and the
    affine parameters are upcast first.
    """
    if x.is_cuda and x.dtype in (torch.float16, torch.bfloat16) and not torch.is_autocast_enabled("cuda"):
        return F.group_norm(x, norm.num_groups, norm.weight.to(x.dtype), norm.bias.to(x.dtype), norm.eps)
    return F.group_norm(x.float(), norm.num_groups, norm.weight.float(), norm.bias.float(), norm.eps).to(x.dtype)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with float32 statistics, in the input dtype (ResBlock and output norms)."""

    def forward(self, x: Tensor) -> Tensor:
        return group_norm_fp32_stats(self, x)


class GroupNormSiLU(GroupNorm32):
    """GroupNorm then SiLU: one kernel under ``torch.compile``.

    Replaces a ``GroupNorm, SiLU`` pair (the SiLU becomes an Identity, so state-dict keys stay); in float32 the
    result is bit-identical to the pair.
    """

    @classmethod
    def sharing(cls, norm: nn.GroupNorm) -> "GroupNormSiLU":
        """A fused norm holding the very parameters of ``norm``."""
        fused = cls(norm.num_groups, norm.num_channels, norm.eps, affine=norm.affine, device="meta")
        fused.weight, fused.bias = norm.weight, norm.bias
        return fused

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(group_norm_fp32_stats(self, x))


class TemporalConv2d(nn.Conv3d):
    """A ``(k, 1, 1)`` Conv3d over ``[B, C, F, h, w]`` computed as a ``(k, 1)`` 2-D convolution over the view
    ``[B, C, F, h*w]``: the same weights (and keys) and, up to float rounding, the same result, on the better tuned
    2-D kernels."""

    @staticmethod
    def fits(conv: nn.Module) -> bool:
        """Whether ``conv`` is a plain ``(k, 1, 1)`` Conv3d: no spatial padding, stride, dilation or groups."""
        return (type(conv) is nn.Conv3d and conv.kernel_size[1:] == (1, 1) and conv.padding[1:] == (0, 0)
                and (conv.stride, conv.dilation, conv.groups, conv.padding_mode) == ((1, 1, 1), (1, 1, 1), 1, "zeros"))

    @classmethod
    def sharing(cls, conv: nn.Conv3d) -> "TemporalConv2d":
        """A 2-D-computed copy of ``conv`` holding its very parameters."""
        if not cls.fits(conv):
            raise ValueError(f"only plain (k, 1, 1) temporal convolutions compute as 2-D ones, not {conv}")
        temporal = cls(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding,
                       bias=conv.bias is not None, device="meta")
        temporal.weight, temporal.bias = conv.weight, conv.bias
        return temporal

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, h, w = x.shape
        out = F.conv2d(x.reshape(b, c, f, h * w), self.weight.squeeze(-1), self.bias, padding=self.padding[:2])
        return out.view(b, out.shape[1], f, h, w)


class CrossAttention(nn.Module):
    """Multi-head attention without biases on q/k/v; with ``image_cross_attention`` the context is split at
    77 tokens and a second attention over the image tokens (``to_k_ip``/``to_v_ip``, shared q) is added."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 image_cross_attention: bool = False) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))
        self.image_cross_attention = image_cross_attention
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner, bias=False)

    def _split_heads(self, x: Tensor) -> Tensor:
        """[N, L, heads*d] -> [N, heads, L, d] (a view)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def _attend(self, q: Tensor, context: Tensor, to_k: nn.Linear, to_v: nn.Linear) -> Tensor:
        k, v = self._split_heads(to_k(context)), self._split_heads(to_v(context))
        return attention(q, k, v)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        q = self._split_heads(self.to_q(x))
        if self.image_cross_attention:
            out = self._attend(q, context[:, :TEXT_TOKENS], self.to_k, self.to_v)
            out = out + self._attend(q, context[:, TEXT_TOKENS:], self.to_k_ip, self.to_v_ip)
        else:
            out = self._attend(q, x if context is None else context, self.to_k, self.to_v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class BasicTransformerBlock(nn.Module):
    """Self-attention, (cross-)attention, GEGLU feed-forward, each pre-LayerNorm with a residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None,
                 image_cross_attention: bool = False) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, heads, dim_head)
        self.ff = FeedForward(dim, mult=4, activation_fn="geglu")
        self.attn2 = CrossAttention(dim, heads, dim_head, context_dim, image_cross_attention)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Per-frame transformer over the h*w positions, cross-attending to the (per-frame) context."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int,
                 use_linear: bool, image_cross_attention: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(GROUPS, channels, eps=1e-6)
        self.proj_in = _projection(channels, inner, use_linear, nn.Conv2d)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, image_cross_attention)
            for _ in range(depth))
        self.proj_out = _projection(inner, channels, use_linear, nn.Conv2d)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = _project(self.proj_in, self.norm(x).flatten(2).transpose(1, 2))  # [(B F), h*w, inner]
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        tokens = _project(self.proj_out, tokens)
        return x + tokens.transpose(1, 2).reshape(n, c, h, w)


class TemporalTransformer(nn.Module):
    """Self-attention over the frames at every spatial position (no positional encoding, no mask).

    The GroupNorm takes statistics across frames; attn2 is a second self-attention.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, use_linear: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(GROUPS, channels, eps=1e-6)
        self.proj_in = _projection(channels, inner, use_linear, nn.Conv1d)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head) for _ in range(depth))
        self.proj_out = _projection(inner, channels, use_linear, nn.Conv1d)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        n, c, h, w = x.shape
        video = x.view(n // frames, frames, c, h, w)
        normed = self.norm(video.transpose(1, 2))  # [B, C, F, h, w]
        tokens = normed.permute(0, 3, 4, 2, 1).reshape(-1, frames, c)  # [(B h w), F, C]
        tokens = _project(self.proj_in, tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = _project(self.proj_out, tokens)
        out = tokens.view(n // frames, h, w, frames, c).permute(0, 3, 4, 1, 2)  # [B, F, C, h, w]
        return (video + out).reshape(n, c, h, w)


class ResBlock(nn.Module):
    """GN-SiLU-conv, + time embedding, GN-SiLU-dropout-conv, skip; then the temporal convolutions."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float,
                 temporal_conv: bool) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(GROUPS, channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(GroupNorm32(GROUPS, out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))
        self.use_temporal_conv = temporal_conv
        if temporal_conv:  # the official attribute name is misspelt
            self.temopral_conv = TemporalConvLayer(out_channels, out_channels, dropout=0.1,
                                                   norm_num_groups=GROUPS)

    def forward(self, x: Tensor, emb: Tensor, frames: int) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if self.use_temporal_conv:
            h = self.temopral_conv(h, num_frames=frames)
        return h


class Downsample(nn.Module):
    """Stride-2 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2 upsampling, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNetBlock(nn.Sequential):
    """A sequence of layers, each given the inputs it needs (the reference ``TimestepEmbedSequential``)."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor, frames: int) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = layer(x, frames)
            else:
                x = layer(x)
        return x


@dataclass(frozen=True)
class _LayerFactory:
    """Builds the ResBlocks and transformer pairs of one U-Net configuration."""

    emb_channels: int
    dropout: float
    temporal_conv: bool
    temporal_attention: bool
    head_channels: int
    depth: int
    context_dim: int
    use_linear: bool
    image_cross_attention: bool

    def res(self, channels: int, out_channels: int) -> ResBlock:
        return ResBlock(channels, self.emb_channels, out_channels, self.dropout, self.temporal_conv)

    def attention(self, channels: int) -> list[nn.Module]:
        heads = channels // self.head_channels
        layers: list[nn.Module] = [SpatialTransformer(channels, heads, self.head_channels, self.depth,
                                                      self.context_dim, self.use_linear,
                                                      self.image_cross_attention)]
        if self.temporal_attention:
            layers.append(TemporalTransformer(channels, heads, self.head_channels, self.depth, self.use_linear))
        return layers


def _embedding_mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


def _check_config(model_channels: int, channel_mult: Sequence[int], num_head_channels: int,
                  temporal_selfatt_only: bool) -> None:
    if not temporal_selfatt_only:
        raise ValueError("temporal_selfatt_only=False (temporal cross-attention) is not used by any "
                         "Hummingbird release and is not supported")
    if not channel_mult or num_head_channels <= 0:
        raise ValueError(f"channel_mult must be non-empty and num_head_channels positive, got "
                         f"{list(channel_mult)} / {num_head_channels}")
    for mult in channel_mult:
        width = mult * model_channels
        if width % GROUPS or width % num_head_channels:
            raise ValueError(f"level width {width} must be a multiple of {GROUPS} (GroupNorm groups) and of "
                             f"num_head_channels={num_head_channels}")


class HummingbirdUNet(ModelMixin, ConfigMixin):
    """The Hummingbird 3-D U-Net. ``forward(x, timesteps, context, fps, timestep_cond) -> [B, 4, F, h, w]``.

    T2V: epsilon-prediction with a guidance embedding (``time_cond_proj_dim=256``); the 0.7B has
    ``use_middle_block=False``. I2V: v-prediction, 8 input channels, decoupled image cross-attention.
    """

    @register_to_config
    def __init__(self, in_channels: int = 4, out_channels: int = 4, model_channels: int = 320,
                 channel_mult: Sequence[int] = (1, 2, 4, 4), num_res_blocks: int = 1,
                 attention_resolutions: Sequence[int] = (4, 2, 1), num_head_channels: int = 64,
                 transformer_depth: int = 1, context_dim: int = 1024, use_linear: bool = True,
                 temporal_conv: bool = True, temporal_attention: bool = True, temporal_selfatt_only: bool = True,
                 addition_attention: bool = True, fps_cond: bool = True, default_fps: int = 8,
                 time_cond_proj_dim: int | None = None, image_cross_attention: bool = False,
                 use_middle_block: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        _check_config(model_channels, channel_mult, num_head_channels, temporal_selfatt_only)
        emb_channels = 4 * model_channels
        factory = _LayerFactory(emb_channels, dropout, temporal_conv, temporal_attention, num_head_channels,
                                transformer_depth, context_dim, use_linear, image_cross_attention)
        self.time_embed = _embedding_mlp(model_channels, emb_channels)
        if fps_cond:
            self.fps_embedding = _embedding_mlp(model_channels, emb_channels)
        if time_cond_proj_dim:
            self.time_cond_proj = nn.Linear(time_cond_proj_dim, model_channels, bias=False)
        self.input_blocks = nn.ModuleList([UNetBlock(nn.Conv2d(in_channels, model_channels, 3, padding=1))])
        if addition_attention:
            self.init_attn = UNetBlock(TemporalTransformer(model_channels, INIT_ATTN_HEADS, num_head_channels,
                                                           transformer_depth, use_linear=False))
        skip_channels = self._build_input_blocks(factory)
        ch = skip_channels[-1]
        if use_middle_block:
            self.middle_block = UNetBlock(factory.res(ch, ch), *factory.attention(ch), factory.res(ch, ch))
        self.output_blocks = nn.ModuleList(self._output_blocks(factory, skip_channels))
        ch = channel_mult[0] * model_channels
        self.out = nn.Sequential(GroupNorm32(GROUPS, ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))

    def _build_input_blocks(self, factory: _LayerFactory) -> list[int]:
        """Append input blocks 1..; return the channel count of every skip tensor, h0 first."""
        cfg = self.config
        ch = cfg.model_channels
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [factory.res(ch, mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers += factory.attention(ch)
                self.input_blocks.append(UNetBlock(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(UNetBlock(Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2
        return skip_channels

    def _output_blocks(self, factory: _LayerFactory, skip_channels: list[int]) -> list[UNetBlock]:
        """Output blocks, deepest first; each consumes one skip tensor (LIFO)."""
        cfg = self.config
        skips = list(skip_channels)
        ch, ds = skips[-1], 2 ** (len(cfg.channel_mult) - 1)
        blocks = []
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers: list[nn.Module] = [factory.res(ch + skips.pop(), mult * cfg.model_channels)]
                ch = mult * cfg.model_channels
                if ds in cfg.attention_resolutions:
                    layers += factory.attention(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                blocks.append(UNetBlock(*layers))
        return blocks

    def forward(self, x: Tensor, timesteps: Tensor | int, context: Tensor, fps: Tensor | int | None = None,
                timestep_cond: Tensor | None = None) -> Tensor:
        """x [B, C_in, F, h, w]; timesteps [B] or scalar; context [B, L, context_dim]; fps int, [B] or None
        (``default_fps``); timestep_cond [B, time_cond_proj_dim] or None. Returns [B, out_channels, F, h, w]
        in the dtype of ``x``."""
        batch, _, frames, height, width = self._check_inputs(x, context)
        dtype = self.input_blocks[0][0].weight.dtype
        emb = self._embedding(timesteps, fps, timestep_cond, batch, x.device, dtype)
        emb = emb.repeat_interleave(frames, dim=0)
        context = self._frame_context(context.to(dtype), frames)
        h = x.to(dtype).transpose(1, 2).reshape(batch * frames, -1, height, width)
        skips = []
        for index, block in enumerate(self.input_blocks):
            h = block(h, emb, context, frames)
            if index == 0 and self.config.addition_attention:
                h = self.init_attn(h, emb, context, frames)
            skips.append(h)
        middle = self._modules.get("middle_block")  # absent in the 0.7B
        if middle is not None:
            h = middle(h, emb, context, frames)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb, context, frames)
        y = self.out(h)
        return y.view(batch, frames, -1, height, width).transpose(1, 2).contiguous().to(x.dtype)

    def _check_inputs(self, x: Tensor, context: Tensor) -> tuple[int, int, int, int, int]:
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be [B, {cfg.in_channels}, F, h, w], got {tuple(x.shape)}")
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if x.shape[3] % factor or x.shape[4] % factor:
            raise ValueError(f"latent height and width must be multiples of {factor}, got "
                             f"{x.shape[3]}x{x.shape[4]}")
        if context.ndim != 3 or context.shape[0] != x.shape[0] or context.shape[2] != cfg.context_dim:
            raise ValueError(f"context must be [{x.shape[0]}, L, {cfg.context_dim}], got {tuple(context.shape)}")
        if cfg.image_cross_attention and context.shape[1] <= TEXT_TOKENS:
            raise ValueError(f"image cross-attention needs {TEXT_TOKENS} text tokens followed by image tokens, "
                             f"got a context of {context.shape[1]} tokens")
        return tuple(x.shape)

    def _embedding(self, timesteps: Tensor | int, fps: Tensor | int | None, timestep_cond: Tensor | None,
                   batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Time (+ guidance) and fps embedding, [B, 4 * model_channels]."""
        cfg = self.config
        t_emb = timestep_embedding(_per_sample(timesteps, batch, "timesteps", device), cfg.model_channels)
        t_emb = t_emb.to(dtype)
        if timestep_cond is not None:
            if not cfg.time_cond_proj_dim:
                raise ValueError("timestep_cond given but this U-Net has no time_cond_proj (time_cond_proj_dim)")
            if tuple(timestep_cond.shape) != (batch, cfg.time_cond_proj_dim):
                raise ValueError(f"timestep_cond must be [{batch}, {cfg.time_cond_proj_dim}], "
                                 f"got {tuple(timestep_cond.shape)}")
            t_emb = t_emb + self.time_cond_proj(timestep_cond.to(device, dtype))
        emb = self.time_embed(t_emb)
        if cfg.fps_cond:
            fps = _per_sample(cfg.default_fps if fps is None else fps, batch, "fps", device)
            emb = emb + self.fps_embedding(timestep_embedding(fps, cfg.model_channels).to(dtype))
        return emb

    def _frame_context(self, context: Tensor, frames: int) -> Tensor:
        """[B, L, C] -> [(B F), L', C]: per-frame image tokens when L == 77 + 16 F (I2V), else repeated."""
        if self.config.image_cross_attention and context.shape[1] == TEXT_TOKENS + IMAGE_TOKENS_PER_FRAME * frames:
            text = context[:, :TEXT_TOKENS].repeat_interleave(frames, dim=0)
            image = context[:, TEXT_TOKENS:].reshape(-1, IMAGE_TOKENS_PER_FRAME, context.shape[2])
            return torch.cat([text, image], dim=1)
        return context.repeat_interleave(frames, dim=0)


def _per_sample(value: Tensor | int | float, batch: int, name: str, device: torch.device) -> Tensor:
    """A scalar or [B] value as a [B] tensor on ``device`` (a Python number is filled in on the device: no copy
    from the host, so the call can be captured in a CUDA graph)."""
    if not isinstance(value, Tensor):
        return torch.full((batch,), value, device=device)
    value = value.to(device)
    if value.ndim == 0:
        value = value.expand(batch)
    if tuple(value.shape) != (batch,):
        raise ValueError(f"{name} must be a scalar or shaped [{batch}], got {tuple(value.shape)}")
    return value
