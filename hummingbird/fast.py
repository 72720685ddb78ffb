"""The fast path: :func:`optimize` puts a pipeline, an upscaler or a network on it, in place.

bf16 weights, fused SDPA attention, batched classifier-free guidance, GroupNorms in the activations' dtype on
GPU (statistics still in float32) and the chunked VAE decode are already the pipelines' defaults on GPU. On top of
them :func:`optimize`, keeping every state-dict key:

- turns on cuDNN autotuning (process-wide) for CUDA networks: the convolutions run at fixed shapes;
- computes the U-Net's temporal ``(3, 1, 1)`` 3-D convolutions as ``(3, 1)`` 2-D ones over ``(F, h*w)``
  (:class:`~hummingbird.unet.TemporalConv2d`): the same weights and result, faster kernels;
- stores SR networks channels-last on CUDA (``channels_last=True`` does it for every network): plain convolution
  stacks without norms, and the fp16 tensor-core convolutions of cuDNN are NHWC;
- with ``cuda_graphs`` (default: with ``compile``, or ``HUMMINGBIRD_CUDA_GRAPHS=1``) replays the U-Net from CUDA
  graphs (:class:`GraphedForward`): one graph per input shape, captured at its first call on a CUDA device without
  autograd, so one denoising step costs one launch instead of ~2,000. Eager bf16 kernels at the release sizes
  keep the GPU busy anyway (graphs gained 2 % there, and capturing costs seconds per new shape); compiled ones
  are short enough for the launches to show;
- with ``compile`` (default: ``HUMMINGBIRD_COMPILE=1``) fuses each GroupNorm+SiLU pair (float32 statistics, as
  before) and compiles regionally: each repeated block class (U-Net ResBlocks and transformers, the VAE decoder's
  blocks, RRDB blocks) is compiled once per input shape, not the whole graph. ``mode="reduce-overhead"`` gives
  the compiled regions their own CUDA graphs instead. On the CPU, regions keep the activations' layout
  (:func:`compile_settings`);
- with ``fp8`` (default: ``HUMMINGBIRD_FP8=1``) multiplies the U-Net's transformer linears in FP8
  (:mod:`hummingbird.fp8`), on GPUs that have FP8 tensor cores;
- with ``triton_norms`` (default: ``HUMMINGBIRD_TRITON_NORMS=1``) runs the U-Net's and the VAE's GroupNorms, and
  the SiLUs after them, as Triton kernels in eager mode (:mod:`hummingbird.norms`).

The outputs are unchanged up to float rounding (the order of the sums in the 2-D temporal convolutions, in the
cuDNN algorithms that autotuning picks and, with Triton norms, in the statistics), except with compile and FP8.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import Decoder, Encoder
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UpDecoderBlock2D
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from hummingbird.fp8 import FP8_ENV, Float8Linear, fp8_requested, fp8_supported
from hummingbird.norms import TritonGroupNorm, triton_available, triton_norms_requested
from hummingbird.sr import RRDB, RRDBNet, SRVGGNetCompact
from hummingbird.unet import (BasicTransformerBlock, GroupNormSiLU, HummingbirdUNet, ResBlock, SpatialTransformer,
                              TemporalConv2d, TemporalTransformer)

COMPILE_ENV = "HUMMINGBIRD_COMPILE"
CUDA_GRAPHS_ENV = "HUMMINGBIRD_CUDA_GRAPHS"
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Modules compiled as regions: every instance of a class shares its compiled code per input shape.
REGION_TYPES = (ResBlock, SpatialTransformer, TemporalTransformer, UNetMidBlock2D, UpDecoderBlock2D, RRDB)
# Distinct input shapes one region class may see: U-Net levels x skip widths x frame counts x CFG batch.
RECOMPILE_LIMIT = 64
MAX_GRAPHS = 2  # CUDA graphs kept per network (each holds the activation memory of one call shape)

Target = TypeVar("Target")
_SWITCH_ON, _SWITCH_OFF = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def compile_requested() -> bool:
    """Whether ``HUMMINGBIRD_COMPILE`` asks for ``torch.compile`` (1, true, yes or on; default off)."""
    return os.environ.get(COMPILE_ENV, "").strip().lower() in _SWITCH_ON


def cuda_graphs_requested(compile: bool) -> bool:
    """Whether CUDA graphs are wanted: as ``HUMMINGBIRD_CUDA_GRAPHS`` says (1/0, true/false, yes/no, on/off), else
    with ``compile`` only (eager kernels are long enough to hide the launches; compiled ones are not)."""
    value = os.environ.get(CUDA_GRAPHS_ENV, "").strip().lower()
    return value in _SWITCH_ON or (compile and value not in _SWITCH_OFF)


def optimize(target: Target, compile: bool | None = None, mode: str | None = None,
             cuda_graphs: bool | None = None, channels_last: bool | None = None, fp8: bool | None = None,
             triton_norms: bool | None = None) -> Target:
    """Put ``target`` (a pipeline, an ``Upscaler`` or an ``nn.Module``) on the fast path in place; return it.

    ``compile`` None follows ``HUMMINGBIRD_COMPILE``, ``cuda_graphs`` None :func:`cuda_graphs_requested`; ``mode``
    is the ``torch.compile`` mode of the regions; ``channels_last`` None means SR networks only. ``fp8`` None
    follows ``HUMMINGBIRD_FP8`` and skips, with a warning, a device without FP8; ``fp8=True`` there is an error.
    ``triton_norms`` None follows ``HUMMINGBIRD_TRITON_NORMS``.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"mode must be one of {COMPILE_MODES}, got {mode!r}")
    compile = compile_requested() if compile is None else compile
    cuda_graphs = cuda_graphs_requested(compile) if cuda_graphs is None else cuda_graphs
    triton_norms = triton_norms_requested() if triton_norms is None else triton_norms
    for network in networks(target):
        device = _device(network)
        if isinstance(network, HummingbirdUNet):
            temporal_convs_as_2d(network)
            if fp8 or (fp8 is None and fp8_requested()):
                _fp8_if_possible(network, device, asked_explicitly=bool(fp8))
        if triton_norms and isinstance(network, (HummingbirdUNet, AutoencoderKL)):
            if device.type == "cuda" and not triton_available():
                warnings.warn("Triton GroupNorms were asked for, but the triton package is not installed: the "
                              "GroupNorms stay on PyTorch's kernels", RuntimeWarning, stacklevel=2)
            use_triton_norms(network)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if channels_last or (channels_last is None and isinstance(network, (RRDBNet, SRVGGNetCompact))):
                to_channels_last(network)
        if compile:
            fuse_norm_silu(network)
            compile_regions(network, mode)
        if cuda_graphs and mode != "reduce-overhead" and isinstance(network, HummingbirdUNet):
            GraphedForward.install(network)
    return target


def _fp8_if_possible(unet: HummingbirdUNet, device: torch.device, asked_explicitly: bool) -> None:
    """FP8 linears where ``device`` runs them; elsewhere an error if ``fp8=True`` asked, else a warning."""
    if fp8_supported(device):
        use_fp8(unet)
    elif asked_explicitly:
        raise ValueError(f"{device} cannot run FP8 matmuls: they need an NVIDIA GPU of compute capability 8.9 or "
                         "newer (Ada, Hopper, Blackwell) or the CPU")
    else:
        warnings.warn(f"{FP8_ENV} is set, but {device} cannot run FP8 matmuls: the U-Net stays in "
                      f"{next(unet.parameters()).dtype}", RuntimeWarning, stacklevel=3)


def networks(target: Any) -> list[nn.Module]:
    """The networks :func:`optimize` acts on: a module itself, else a pipeline's U-Net and VAE or an upscaler's net."""
    if isinstance(target, nn.Module):
        return [target]
    found = [getattr(target, name, None) for name in ("unet", "vae", "net")]
    found = [module for module in found if isinstance(module, nn.Module)]
    if not found:
        raise TypeError(f"nothing to optimize in a {type(target).__name__}: expected a module, a pipeline "
                        "or an upscaler")
    return found


def to_channels_last(network: nn.Module) -> nn.Module:
    """Store every 2-D convolution's weight channels-last (NHWC), in place: those convolutions then run and return
    NHWC. So are the temporal convolutions computed as 2-D ones; other weights keep their layout (a 3-D
    convolution cannot take a channels-last input)."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
        elif isinstance(module, TemporalConv2d):  # its 2-D weight view is then channels-last too
            module.to(memory_format=torch.channels_last_3d)
    return network


def temporal_convs_as_2d(network: nn.Module) -> int:
    """Replace each plain ``(k, 1, 1)`` ``nn.Conv3d`` by a :class:`TemporalConv2d` sharing its parameters; return
    the count.

    State-dict keys stay; results change only by float rounding (the sums run in another order).
    """
    return _replace(network, TemporalConv2d)


def use_fp8(network: nn.Module) -> int:
    """Swap every linear of the U-Net's transformer blocks (attention and feed-forward) for a
    :class:`~hummingbird.fp8.Float8Linear` sharing its parameters, in place; return the count. Sizes that are not
    multiples of 16 (which FP8 tensor cores cannot take) stay as they are."""
    return sum(_replace(block, Float8Linear) for block in list(network.modules())
               if isinstance(block, BasicTransformerBlock))


def use_triton_norms(network: nn.Module) -> int:
    """Swap every affine GroupNorm of ``network`` for a :class:`~hummingbird.norms.TritonGroupNorm` sharing its
    parameters, in place, taking in the SiLU that follows it (in ``nn.Sequential`` pairs and in the VAE's blocks,
    whose SiLU becomes an Identity); return the count. State-dict keys stay."""
    fuse_norm_silu(network)
    fused = 0
    for module in list(network.modules()):
        if (isinstance(module, ResnetBlock2D) and isinstance(module.nonlinearity, nn.SiLU)
                and module.time_emb_proj is None and module.upsample is None and module.downsample is None):
            module.norm1 = TritonGroupNorm.sharing(module.norm1, silu=True)
            module.norm2 = TritonGroupNorm.sharing(module.norm2, silu=True)
            module.nonlinearity, fused = nn.Identity(), fused + 2  # applied after norm1 and norm2 only
        elif (isinstance(module, (Encoder, Decoder)) and isinstance(module.conv_act, nn.SiLU)
              and TritonGroupNorm.fits(module.conv_norm_out)):
            module.conv_norm_out = TritonGroupNorm.sharing(module.conv_norm_out, silu=True)
            module.conv_act, fused = nn.Identity(), fused + 1
    return fused + _replace(network, TritonGroupNorm)


def _replace(root: nn.Module, kind: type[TemporalConv2d] | type[Float8Linear] | type[TritonGroupNorm]) -> int:
    """Replace every descendant of ``root`` that ``kind.fits`` by ``kind.sharing(it)``; return the count."""
    replaced = 0
    for parent in list(root.modules()):
        for name, child in parent.named_children():
            if kind.fits(child):
                setattr(parent, name, kind.sharing(child))
                replaced += 1
    return replaced


def fuse_norm_silu(network: nn.Module) -> int:
    """Replace each ``GroupNorm, SiLU`` pair of an ``nn.Sequential`` by ``GroupNormSiLU, Identity``; return the count.

    The fused norm shares the parameters, so state-dict keys and float32 results are unchanged.
    """
    fused = 0
    for sequence in [m for m in network.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            norm, act = sequence[index], sequence[index + 1]
            if isinstance(norm, nn.GroupNorm) and not isinstance(norm, GroupNormSiLU) and isinstance(act, nn.SiLU):
                sequence[index], sequence[index + 1] = GroupNormSiLU.sharing(norm), nn.Identity()
                fused += 1
    return fused


def regions(network: nn.Module) -> list[nn.Module]:
    """The outermost :data:`REGION_TYPES` modules of ``network`` (of a VAE: its decoder's), else the network."""
    root = network.decoder if isinstance(network, AutoencoderKL) else network
    return _outermost(root) or [root]


def _outermost(module: nn.Module) -> list[nn.Module]:
    found: list[nn.Module] = []
    for child in module.children():
        found += [child] if isinstance(child, REGION_TYPES) else _outermost(child)
    return found


def compile_regions(network: nn.Module, mode: str | None = None) -> list[nn.Module]:
    """``torch.compile`` each region of ``network`` in place (lazily: code is generated on the first call)."""
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = max(limit, RECOMPILE_LIMIT)
    compiled = regions(network)
    settings = compile_settings(_device(network), mode)
    for region in compiled:
        region.compile(dynamic=False, **settings)
    return compiled


def compile_settings(device: torch.device, mode: str | None) -> dict[str, Any]:
    """``torch.compile`` arguments for regions on ``device``: on the CPU without inductor's channels-last layout
    conversion, which made the compiled U-Net 1.26x slower than eager there (1.04x faster without it)."""
    if device.type != "cpu":
        return {"mode": mode}
    from torch._inductor import list_mode_options  # here: importing inductor takes a second

    return {"options": {**list_mode_options(mode or "default"), "layout_optimization": False}}


# ------------------------------------------------------------------------------------ CUDA graphs
_graphs_paused = False


@contextmanager
def eager() -> Iterator[None]:
    """Run every :class:`GraphedForward` eagerly inside the block (no capture, no replay)."""
    global _graphs_paused
    previous, _graphs_paused = _graphs_paused, True
    try:
        yield
    finally:
        _graphs_paused = previous


class _Graph:
    """One captured call: its static inputs (flat, tensors only) and output."""

    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: list[torch.Tensor], output: Any) -> None:
        self.graph, self.inputs, self.output = graph, inputs, output

    def __call__(self, tensors: list[torch.Tensor]) -> Any:
        for static, value in zip(self.inputs, tensors):
            static.copy_(value)
        self.graph.replay()
        return tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, self.output)


class GraphedForward:
    """A module's ``forward`` replayed from CUDA graphs, one per call signature (shapes, dtypes, other values).

    The first call of a signature runs eagerly on a side stream (warm-up: cuDNN autotuning, lazy compilation),
    then captures the call into a graph; later calls copy their tensors into the graph's inputs and replay it.
    Calls run eagerly when autograd or autocast is on, the weights are not on CUDA, an argument is not hashable,
    inside :func:`eager`, or when capturing failed for that signature (out of memory included; with a warning,
    once). Moving or casting the module drops its graphs. At most :data:`MAX_GRAPHS` are kept (least recently used
    dropped first).
    """

    WARMUP_CALLS = 2

    def __init__(self, module: nn.Module, max_graphs: int = MAX_GRAPHS) -> None:
        self.module, self.max_graphs = module, max_graphs
        self.eager_forward: Callable[..., Any] = type(module).forward.__get__(module)
        self.graphs: OrderedDict[Any, _Graph | None] = OrderedDict()  # None: capture failed, run eagerly
        self._weights: tuple[int, torch.dtype] | None = None

    @classmethod
    def install(cls, module: nn.Module) -> "GraphedForward":
        """Route ``module.forward`` through graphs (once; the state dict is untouched)."""
        current = module.__dict__.get("forward")
        if isinstance(current, GraphedForward):
            return current
        graphed = cls(module)
        module.forward = graphed
        return graphed

    def __deepcopy__(self, memo: dict[int, Any]) -> "GraphedForward":
        """A copy routes the copied module through graphs of its own (none captured yet)."""
        return type(self)(copy.deepcopy(self.module, memo), self.max_graphs)

    @staticmethod
    def remove(module: nn.Module) -> None:
        """Back to the plain ``forward`` (graphs freed)."""
        if isinstance(module.__dict__.get("forward"), GraphedForward):
            del module.forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if (_graphs_paused or torch.is_grad_enabled() or torch.is_autocast_enabled("cuda")
                or not self._weights_on_cuda()):
            return self.eager_forward(*args, **kwargs)
        leaves, spec = tree_flatten((args, kwargs))
        key = self._key(leaves, spec)
        if key is None:
            return self.eager_forward(*args, **kwargs)
        if key not in self.graphs:
            self._capture(key, args, kwargs)
        self.graphs.move_to_end(key)
        graph = self.graphs[key]
        if graph is None:
            return self.eager_forward(*args, **kwargs)
        return graph([leaf for leaf in leaves if isinstance(leaf, torch.Tensor)])

    def _weights_on_cuda(self) -> bool:
        first = next(self.module.parameters(), None)
        if first is None or first.device.type != "cuda":
            return False
        weights = (first.data_ptr(), first.dtype)  # .to() and assign-loading give every weight new storage
        if weights != self._weights:  # moved, cast or reloaded: the graphs point at old memory
            self.graphs.clear()
            self._weights = weights
        return True

    @staticmethod
    def _key(leaves: list[Any], spec: Any) -> Any:
        parts: list[Any] = [str(spec), torch.is_inference_mode_enabled()]
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                parts.append((tuple(leaf.shape), leaf.dtype, leaf.device, leaf.stride()))
            else:
                try:
                    hash(leaf)
                except TypeError:
                    return None
                parts.append(leaf)
        return tuple(parts)

    def _capture(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        static_args, static_kwargs = tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v,
                                              (args, kwargs))
        device = _device(self.module)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(self.WARMUP_CALLS):
                self.eager_forward(*static_args, **static_kwargs)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                output = self.eager_forward(*static_args, **static_kwargs)
        except RuntimeError as exc:  # out of memory included: the eager call needs less
            del graph
            self.graphs[key] = None
            torch.cuda.empty_cache()
            warnings.warn(f"CUDA graph capture of {type(self.module).__name__} failed, running it eagerly: {exc}",
                          RuntimeWarning, stacklevel=3)
            return
        inputs = [leaf for leaf in tree_flatten((static_args, static_kwargs))[0] if isinstance(leaf, torch.Tensor)]
        self.graphs[key] = _Graph(graph, inputs, output)
        while sum(g is not None for g in self.graphs.values()) > self.max_graphs:
            oldest = next(k for k, g in self.graphs.items() if g is not None)
            del self.graphs[oldest]


def _device(network: nn.Module) -> torch.device:
    return next(network.parameters()).device
