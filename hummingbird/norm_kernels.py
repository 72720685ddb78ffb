"""GroupNorm (optionally followed by SiLU) as Triton kernels, for ``[N, C, *]`` activations.

PyTorch's eager GroupNorm computes each (sample, group) row's moments with one thread block doing Welford updates
element by element (the slowest part of the eager U-Net's norms), then normalises in a second kernel, and a SiLU
costs a third pass; a channels-last input is first copied to NCHW. Here each row is cut into up to
:data:`MAX_SPLITS` segments so that every multiprocessor has work even for 32 rows:

1. ``_stats_kernel``: per segment, the mean and the sum of squared deviations (exact within each block of
   :data:`BLOCK` values, blocks merged with Chan's formula), in float32;
2. ``_apply_kernel``: merges its row's segments (same formula), then normalises its segment, applies the affine
   parameters and the SiLU in float32, and stores in the input's dtype.

Channels-last activations (NHWC, NDHWC) are read in place by the ``_cl_`` kernels, whose tiles hold whole
positions (every group's channels, each group padded to a power of two): moments per segment and group, a merge
per sample, then the normalisation with each channel's scale and shift computed once per program.

The activations are read twice and written once. Imported only when a kernel runs (it needs ``triton``); with
``TRITON_INTERPRET=1`` Triton runs these kernels on CPU tensors, which is how the tests check them without a GPU.
"""

from __future__ import annotations

import contextlib
import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from hummingbird.norms import KERNEL_DTYPES, fits_int32

BLOCK = 2048  # values per load: 8 per thread of 8 warps
MAX_SPLITS = 256  # segments per row at most (a power of two: the apply kernel loads them as one vector)
TARGET_PROGRAMS = 1024  # enough programs for every multiprocessor of a large GPU, several times over
NUM_WARPS = 8


@triton.jit
def _offsets(index, sample_base, chunk_len, chunk_stride, CHUNKED: tl.constexpr):
    """Memory offsets of a row's values ``index``: one contiguous run, or runs of ``chunk_len`` values
    ``chunk_stride`` apart (the frames of a ``[N, F, C, *]`` tensor viewed as ``[N, C, F, *]``)."""
    if CHUNKED:
        chunk = index // chunk_len
        return sample_base + chunk.to(tl.int64) * chunk_stride + (index - chunk * chunk_len)
    return sample_base + index


@triton.jit
def _stats_kernel(x_ptr, stats_ptr, row_len, segment_len, groups, sample_stride, group_stride, chunk_len,
                  chunk_stride, CHUNKED: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    segment = tl.program_id(1)
    start = segment * segment_len
    end = tl.minimum(start + segment_len, row_len)
    base = (row // groups).to(tl.int64) * sample_stride + (row % groups).to(tl.int64) * group_stride
    mean = 0.0
    m2 = 0.0
    count = 0.0
    for offset in range(start, end, BLOCK):
        index = offset + tl.arange(0, BLOCK)
        inside = index < end
        where = _offsets(index, base, chunk_len, chunk_stride, CHUNKED)
        values = tl.load(x_ptr + where, mask=inside, other=0.0).to(tl.float32)
        n = tl.minimum(end - offset, BLOCK).to(tl.float32)
        block_mean = tl.sum(values, axis=0) / n
        deviation = tl.where(inside, values - block_mean, 0.0)
        total = count + n
        delta = block_mean - mean
        mean += delta * (n / total)
        m2 += tl.sum(deviation * deviation, axis=0) + delta * delta * (count * n / total)
        count = total
    out = stats_ptr + (row * tl.num_programs(1) + segment) * 2
    tl.store(out, mean)
    tl.store(out + 1, m2)


@triton.jit
def _apply_kernel(x_ptr, y_ptr, weight_ptr, bias_ptr, stats_ptr, row_len, segment_len, groups, sample_stride,
                  group_stride, chunk_len, chunk_stride, spatial, channels_per_group, eps, CHUNKED: tl.constexpr,
                  SILU: tl.constexpr, MAX_SPLITS: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    segment = tl.program_id(1)
    segments = tl.num_programs(1)
    each = tl.arange(0, MAX_SPLITS)
    present = each < segments
    partial = stats_ptr + (row * segments + each) * 2
    means = tl.load(partial, mask=present, other=0.0)
    m2s = tl.load(partial + 1, mask=present, other=0.0)
    counts = tl.where(present, tl.minimum(row_len - each * segment_len, segment_len), 0).to(tl.float32)
    mean = tl.sum(means * counts, axis=0) / row_len
    spread = tl.where(present, means - mean, 0.0)
    variance = (tl.sum(m2s, axis=0) + tl.sum(counts * spread * spread, axis=0)) / row_len
    rstd = 1.0 / tl.sqrt(variance + eps)
    group = row % groups
    base = (row // groups).to(tl.int64) * sample_stride + group.to(tl.int64) * group_stride
    out_base = row.to(tl.int64) * row_len  # the output is contiguous: each row is one run
    frame_span = row_len // channels_per_group  # values of one channel in the output
    start = segment * segment_len
    end = tl.minimum(start + segment_len, row_len)
    for offset in range(start, end, BLOCK):
        index = offset + tl.arange(0, BLOCK)
        inside = index < end
        values = tl.load(x_ptr + _offsets(index, base, chunk_len, chunk_stride, CHUNKED), mask=inside,
                         other=0.0).to(tl.float32)
        if CHUNKED:  # index runs frame by frame; the output runs channel by channel
            frame = index // chunk_len
            within = index - frame * chunk_len
            channel = within // spatial
            out_index = channel * frame_span + frame * spatial + (within - channel * spatial)
        else:
            channel = index // spatial
            out_index = index
        channel += group * channels_per_group
        scale = tl.load(weight_ptr + channel, mask=inside, other=0.0).to(tl.float32) * rstd
        shift = tl.load(bias_ptr + channel, mask=inside, other=0.0).to(tl.float32)
        out = (values - mean) * scale + shift
        if SILU:
            out = out * tl.sigmoid(out)
        tl.store(y_ptr + out_base + out_index, out.to(y_ptr.dtype.element_ty), mask=inside)


# ------------------------------------------------------------------------ channels last: [N, positions, C]
@triton.jit
def _tile(CPG: tl.constexpr, BLOCK_P: tl.constexpr, GROUPS: tl.constexpr, GROUP_PAD: tl.constexpr):
    """Offsets (position, group, channel in group) of a tile of ``BLOCK_P`` positions, and its in-group mask."""
    p = tl.arange(0, BLOCK_P)[:, None, None]
    g = tl.arange(0, GROUPS)[None, :, None]
    j = tl.arange(0, GROUP_PAD)[None, None, :]
    return p, g * CPG + j, j < CPG


@triton.jit
def _cl_stats_kernel(x_ptr, stats_ptr, positions, segment_len, channels, CPG: tl.constexpr,
                     GROUPS: tl.constexpr, GROUP_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
    sample = tl.program_id(0)
    segment = tl.program_id(1)
    start = segment * segment_len
    end = tl.minimum(start + segment_len, positions)
    p, channel, in_group = _tile(CPG, BLOCK_P, GROUPS, GROUP_PAD)
    x_sample = x_ptr + sample.to(tl.int64) * positions * channels
    mean = tl.zeros([GROUPS], dtype=tl.float32)
    m2 = tl.zeros([GROUPS], dtype=tl.float32)
    count = 0.0
    for offset in range(start, end, BLOCK_P):
        inside = (offset + p < end) & in_group
        values = tl.load(x_sample + (offset + p) * channels + channel, mask=inside, other=0.0).to(tl.float32)
        n = (tl.minimum(end - offset, BLOCK_P) * CPG).to(tl.float32)  # values of each group in this tile
        block_mean = tl.sum(tl.sum(values, axis=2), axis=0) / n
        deviation = tl.where(inside, values - block_mean[None, :, None], 0.0)
        total = count + n
        delta = block_mean - mean
        mean += delta * (n / total)
        m2 += tl.sum(tl.sum(deviation * deviation, axis=2), axis=0) + delta * delta * (count * n / total)
        count = total
    out = stats_ptr + ((sample * tl.num_programs(1) + segment) * GROUPS + tl.arange(0, GROUPS)) * 2
    tl.store(out, mean)
    tl.store(out + 1, m2)


@triton.jit
def _cl_merge_kernel(stats_ptr, moments_ptr, positions, segment_len, segments, eps, CPG: tl.constexpr,
                     GROUPS: tl.constexpr, SEGMENT_PAD: tl.constexpr):
    sample = tl.program_id(0)
    each = tl.arange(0, SEGMENT_PAD)[:, None]
    group = tl.arange(0, GROUPS)[None, :]
    present = each < segments
    partial = stats_ptr + ((sample * segments + each) * GROUPS + group) * 2
    means = tl.load(partial, mask=present, other=0.0)
    m2s = tl.load(partial + 1, mask=present, other=0.0)
    counts = tl.where(present, tl.minimum(positions - each * segment_len, segment_len) * CPG, 0).to(tl.float32)
    row_len = (positions * CPG).to(tl.float32)
    mean = tl.sum(means * counts, axis=0) / row_len
    spread = tl.where(present, means - mean[None, :], 0.0)
    variance = (tl.sum(m2s, axis=0) + tl.sum(counts * spread * spread, axis=0)) / row_len
    out = moments_ptr + (sample * GROUPS + tl.arange(0, GROUPS)) * 2
    tl.store(out, mean)
    tl.store(out + 1, 1.0 / tl.sqrt(variance + eps))


@triton.jit
def _cl_apply_kernel(x_ptr, y_ptr, weight_ptr, bias_ptr, moments_ptr, positions, segment_len, channels,
                     CPG: tl.constexpr, SILU: tl.constexpr, GROUPS: tl.constexpr, GROUP_PAD: tl.constexpr,
                     BLOCK_P: tl.constexpr):
    sample = tl.program_id(0)
    segment = tl.program_id(1)
    start = segment * segment_len
    end = tl.minimum(start + segment_len, positions)
    p, channel, in_group = _tile(CPG, BLOCK_P, GROUPS, GROUP_PAD)
    moments = moments_ptr + (sample * GROUPS + tl.arange(0, GROUPS)) * 2
    mean = tl.load(moments)[None, :, None]
    rstd = tl.load(moments + 1)[None, :, None]
    scale = tl.load(weight_ptr + channel, mask=in_group, other=0.0).to(tl.float32) * rstd
    shift = tl.load(bias_ptr + channel, mask=in_group, other=0.0).to(tl.float32) - mean * scale
    offset_sample = sample.to(tl.int64) * positions * channels
    for offset in range(start, end, BLOCK_P):
        inside = (offset + p < end) & in_group
        where = offset_sample + (offset + p) * channels + channel
        out = tl.load(x_ptr + where, mask=inside, other=0.0).to(tl.float32) * scale + shift
        if SILU:
            out = out * tl.sigmoid(out)
        tl.store(y_ptr + where, out.to(y_ptr.dtype.element_ty), mask=inside)


def plan(rows: int, row_len: int, block: int = BLOCK) -> tuple[int, int]:
    """(segments per row, values per segment): whole blocks per segment, about :data:`TARGET_PROGRAMS` programs."""
    blocks = triton.cdiv(row_len, block)
    segments = max(1, min(blocks, MAX_SPLITS, triton.cdiv(TARGET_PROGRAMS, rows)))
    segment_len = triton.cdiv(blocks, segments) * block
    return triton.cdiv(row_len, segment_len), segment_len


def group_norm(x: Tensor, num_groups: int, weight: Tensor, bias: Tensor, eps: float, silu: bool = False) -> Tensor:
    """``F.group_norm(x, num_groups, weight, bias, eps)``, then ``F.silu`` when ``silu``: float32 statistics and
    arithmetic, the result in ``x``'s dtype. ``x`` is ``[N, C, *]`` and is read as it lies in memory when it is
    contiguous, channels-last (channels innermost: NHWC, NDHWC; the result keeps that layout), or a
    ``[N, F, C, *]`` tensor with its dimensions 1 and 2 swapped (the result is contiguous); other layouts are
    copied first. ``weight`` and ``bias`` hold ``C`` contiguous values."""
    if x.dim() < 2 or x.shape[1] % num_groups:
        raise ValueError(f"expected an [N, C, ...] tensor with C divisible by {num_groups} groups, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype not in KERNEL_DTYPES or not fits_int32(x):
        raise ValueError(f"expected float16, bfloat16 or float32 values, under 2**31 per sample; got {x.dtype}, "
                         f"shape {tuple(x.shape)}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value.shape != (x.shape[1],) or value.device != x.device:
            raise ValueError(f"{name} must hold {x.shape[1]} values on {x.device}, got shape {tuple(value.shape)} "
                             f"on {value.device}")
    weight, bias = weight.contiguous(), bias.contiguous()
    if x.numel() == 0:
        return torch.empty_like(x)
    channels_last = (x.dim() >= 3 and not x.is_contiguous() and x.movedim(1, -1).is_contiguous()
                     and num_groups & (num_groups - 1) == 0)  # the group count is a tile dimension
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():  # Triton launches on the current one
        if channels_last:
            return _channels_last(x, num_groups, weight, bias, eps, silu)
        return _rows(x, num_groups, weight, bias, eps, silu)


def _channels_last(x: Tensor, num_groups: int, weight: Tensor, bias: Tensor, eps: float, silu: bool) -> Tensor:
    """Channels innermost: each program normalises tiles of whole positions (every group at once)."""
    batch, channels = x.shape[:2]
    positions, per_group = math.prod(x.shape[2:]), channels // num_groups
    group_pad = triton.next_power_of_2(per_group)
    block_p = max(1, BLOCK // (num_groups * group_pad))
    segments, segment_len = plan(batch, positions, block_p)
    stats = torch.empty((batch, segments, num_groups, 2), device=x.device, dtype=torch.float32)
    moments = torch.empty((batch, num_groups, 2), device=x.device, dtype=torch.float32)
    y = torch.empty_like(x)  # channels last as well
    tile = dict(CPG=per_group, GROUPS=num_groups, GROUP_PAD=group_pad, BLOCK_P=block_p, num_warps=NUM_WARPS)
    _cl_stats_kernel[(batch, segments)](x, stats, positions, segment_len, channels, **tile)
    _cl_merge_kernel[(batch,)](stats, moments, positions, segment_len, segments, eps, CPG=per_group,
                               GROUPS=num_groups, SEGMENT_PAD=triton.next_power_of_2(segments))
    _cl_apply_kernel[(batch, segments)](x, y, weight, bias, moments, positions, segment_len, channels, SILU=silu,
                                        **tile)
    return y


def _rows(x: Tensor, num_groups: int, weight: Tensor, bias: Tensor, eps: float, silu: bool) -> Tensor:
    """Channels outside the positions: each (sample, group) row is one run, or one run per frame."""
    frames_outer = x.dim() >= 4 and not x.is_contiguous() and x.transpose(1, 2).is_contiguous()
    if not (x.is_contiguous() or frames_outer):
        x = x.contiguous()
    batch, channels = x.shape[:2]
    spatial = math.prod(x.shape[3:] if frames_outer else x.shape[2:])
    frames = x.shape[2] if frames_outer else 1
    per_group = channels // num_groups
    rows, row_len, chunk_len = batch * num_groups, per_group * spatial * frames, per_group * spatial
    y = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    segments, segment_len = plan(rows, row_len)
    stats = torch.empty((rows, segments, 2), device=x.device, dtype=torch.float32)
    layout = (num_groups, channels * spatial * frames, chunk_len, chunk_len, channels * spatial)
    _stats_kernel[(rows, segments)](x, stats, row_len, segment_len, *layout, CHUNKED=frames_outer, BLOCK=BLOCK,
                                    num_warps=NUM_WARPS)
    _apply_kernel[(rows, segments)](x, y, weight, bias, stats, row_len, segment_len, *layout, spatial, per_group,
                                    eps, CHUNKED=frames_outer, SILU=silu, MAX_SPLITS=MAX_SPLITS, BLOCK=BLOCK,
                                    num_warps=NUM_WARPS)
    return y
