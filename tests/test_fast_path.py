"""The fast path: reference attention, bf16 and FP8 tolerances, GroupNorm+SiLU fusion, optimize(), regional compile,
CUDA graphs, and GroupNorms on Triton kernels (run in Triton's interpreter where there is no GPU)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D, UpDecoderBlock2D

from hummingbird import fast, fp8, norms
from hummingbird.configs import I2V_TINY, T2V_TINY
from hummingbird.norms import TritonGroupNorm
from hummingbird.pipelines import T2VPipeline
from hummingbird.sr import RRDB, RRDBNet, Upscaler
from hummingbird.unet import (BasicTransformerBlock, GroupNormSiLU, HummingbirdUNet, ResBlock, SpatialTransformer,
                              TemporalConv2d, TemporalTransformer, attention_backend)
from hummingbird.vae import build_vae, decode_latents

BF16_TOLERANCE = 0.05  # relative L2 error of bf16 against float32 (U-Net output, decoded frames)
FP8_TOLERANCE = 0.08  # relative L2 error of the U-Net output with FP8 transformer linears against float32
SMALL = dict(frames=3, height=64, width=64, steps=2)


def _unet(config: dict[str, Any]) -> HummingbirdUNet:
    torch.manual_seed(0)
    unet = HummingbirdUNet(**config).eval().requires_grad_(False)
    for name, param in unet.named_parameters():
        if "temopral_conv.conv4" in name:  # zero-initialised: would hide the temporal convolutions
            param.normal_(0, 0.05)
    return unet


def _inputs(config: dict[str, Any], frames: int = 3) -> dict[str, torch.Tensor]:
    """16x16 latents: at 8x8 the deepest level is 1x1 and its GroupNorms of two values amplify any rounding."""
    gen = torch.Generator().manual_seed(1)
    inputs = dict(x=torch.randn(1, config["in_channels"], frames, 16, 16, generator=gen), timesteps=torch.tensor([500]),
                  context=torch.randn(1, 77 + 16 * frames, config["context_dim"], generator=gen))
    if config.get("time_cond_proj_dim"):
        inputs["timestep_cond"] = torch.randn(1, config["time_cond_proj_dim"], generator=gen)
    return inputs


def _relative_l2(reference: torch.Tensor, value: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())


@pytest.fixture(scope="module", params=["t2v", "i2v"])
def unet_case(request) -> tuple[dict[str, Any], dict[str, torch.Tensor], torch.Tensor]:
    """(U-Net config, inputs, float32 output with SDPA)."""
    config = (T2V_TINY if request.param == "t2v" else I2V_TINY).unet
    inputs = _inputs(config)
    with torch.no_grad():
        return config, inputs, _unet(config)(**inputs)


def test_reference_attention_equals_sdpa_in_float32(unet_case) -> None:
    config, inputs, expected = unet_case
    with torch.no_grad(), attention_backend("reference"):
        got = _unet(config)(**inputs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_attention_backend_is_scoped_and_checked() -> None:
    from hummingbird import unet as unet_module

    with attention_backend("reference"):
        assert unet_module._attention_backend == "reference"
    assert unet_module._attention_backend == "sdpa"
    with pytest.raises(ValueError, match="sdpa, reference"):
        with attention_backend("xformers"):
            pass


def test_bf16_unet_stays_within_tolerance(unet_case) -> None:
    config, inputs, expected = unet_case
    with torch.no_grad():
        got = torch.nn.Module.to(_unet(config), dtype=torch.bfloat16)(**inputs)
    assert got.dtype == torch.float32
    assert _relative_l2(expected, got) < BF16_TOLERANCE


def test_bf16_decode_stays_within_tolerance() -> None:
    torch.manual_seed(0)
    vae = build_vae(T2V_TINY.vae)
    latents = torch.randn(1, 4, 2, 8, 8)
    expected = decode_latents(vae, latents, 0.18215)
    got = decode_latents(vae.to(torch.bfloat16), latents, 0.18215)
    assert _relative_l2(expected, got) < BF16_TOLERANCE


def test_fused_norm_silu_is_bit_identical_in_float32(unet_case) -> None:
    config, inputs, expected = unet_case
    fused = _unet(config)
    keys = list(fused.state_dict())
    res_blocks = sum(isinstance(m, ResBlock) for m in fused.modules())
    assert fast.fuse_norm_silu(fused) == 2 * res_blocks + 4 * res_blocks + 1  # in/out, 4 temporal convs, out
    assert fast.fuse_norm_silu(fused) == 0
    assert list(fused.state_dict()) == keys
    assert isinstance(fused.out[0], GroupNormSiLU) and isinstance(fused.out[1], torch.nn.Identity)
    with torch.no_grad():
        assert torch.equal(fused(**inputs), expected)


def test_optimize_without_compile_changes_only_rounding() -> None:
    pipe = T2VPipeline.tiny(device="cpu", optimized=False)
    before = pipe("a corgi", seed=3, **SMALL)
    assert fast.optimize(pipe, compile=False) is pipe
    assert any(isinstance(m, TemporalConv2d) for m in pipe.unet.modules())
    after = pipe("a corgi", seed=3, **SMALL)
    assert np.abs(before.frames.astype(int) - after.frames.astype(int)).max() <= 1
    torch.testing.assert_close(after.latents, before.latents, atol=1e-5, rtol=1e-5)


def test_temporal_convs_compute_as_2d_with_the_same_weights() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(8, 16, (3, 1, 1), padding=(1, 0, 0))
    temporal = TemporalConv2d.sharing(conv)
    assert temporal.weight is conv.weight and list(temporal.state_dict()) == ["weight", "bias"]
    x = torch.randn(2, 8, 5, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(temporal(x), conv(x), atol=1e-6, rtol=1e-5)
        last = x.contiguous(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(temporal(last), conv(x), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match=r"only plain \(k, 1, 1\) temporal convolutions"):
        TemporalConv2d.sharing(torch.nn.Conv3d(8, 8, 3, padding=1))
    unet = _unet(T2V_TINY.unet)
    keys = list(unet.state_dict())
    temporal_layers = sum(m.use_temporal_conv for m in unet.modules() if isinstance(m, ResBlock))
    assert fast.temporal_convs_as_2d(unet) == 4 * temporal_layers > 0
    assert fast.temporal_convs_as_2d(unet) == 0 and list(unet.state_dict()) == keys
    inputs = _inputs(T2V_TINY.unet)
    with torch.no_grad():
        expected = _unet(T2V_TINY.unet)(**inputs)
        torch.testing.assert_close(unet(**inputs), expected, atol=1e-5, rtol=1e-5)
        fast.to_channels_last(unet)  # the NHWC layout flows through the temporal convolutions as well
        torch.testing.assert_close(unet(**inputs), expected, atol=1e-5, rtol=1e-5)


def test_optimize_compiles_regions_lazily_and_keeps_keys(monkeypatch) -> None:
    monkeypatch.setenv(fast.COMPILE_ENV, "1")
    pipe = T2VPipeline.tiny(device="cpu")
    keys = list(pipe.unet.state_dict()), list(pipe.vae.state_dict())
    fast.optimize(pipe)  # compile=None follows the environment; nothing is compiled before the first call
    assert (list(pipe.unet.state_dict()), list(pipe.vae.state_dict())) == keys
    compiled = [m for m in pipe.unet.modules() if m._compiled_call_impl is not None]
    expected = [m for m in pipe.unet.modules() if isinstance(m, (ResBlock, SpatialTransformer, TemporalTransformer))]
    assert compiled == expected and compiled
    assert all(isinstance(m, (UNetMidBlock2D, UpDecoderBlock2D))
               for m in pipe.vae.modules() if m._compiled_call_impl is not None)
    assert all(m._compiled_call_impl is None for m in pipe.vae.encoder.modules())
    assert any(isinstance(m, GroupNormSiLU) for m in pipe.unet.modules())


def test_compile_switch_and_modes(monkeypatch) -> None:
    monkeypatch.delenv(fast.COMPILE_ENV, raising=False)
    assert not fast.compile_requested()
    monkeypatch.setenv(fast.COMPILE_ENV, "true")
    assert fast.compile_requested()
    with pytest.raises(ValueError, match="mode"):
        fast.optimize(torch.nn.Linear(2, 2), mode="fastest")
    with pytest.raises(TypeError, match="nothing to optimize"):
        fast.optimize(object())


def test_compiled_regions_run_on_the_cpu_without_layout_conversion() -> None:
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        got = fast.optimize(net, compile=True)(x)  # the options reach inductor: an unknown one would fail here
    assert net.body[0]._compiled_call_impl is not None
    torch.testing.assert_close(got, expected)
    cpu, gpu = fast.compile_settings(torch.device("cpu"), "max-autotune-no-cudagraphs"), fast.compile_settings(
        torch.device("cuda"), "max-autotune-no-cudagraphs")
    assert cpu == {"options": {"max_autotune": True, "coordinate_descent_tuning": True, "layout_optimization": False}}
    assert gpu == {"mode": "max-autotune-no-cudagraphs"}


def test_sr_regions_and_channels_last() -> None:
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).eval()
    assert fast.regions(net) == list(net.body)
    assert all(isinstance(m, RRDB) for m in fast.regions(net))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = net(x)
        got = fast.to_channels_last(net)(x)
    assert net.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_optimize_takes_an_upscaler() -> None:
    upscaler = Upscaler(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4), "hummingbird", "cpu")
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    before = upscaler(frames)
    assert fast.networks(upscaler) == [upscaler.net]
    assert np.array_equal(fast.optimize(upscaler, compile=False)(frames), before)


def test_fp8_linear_shares_its_weights_and_follows_casts_and_loads() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48).requires_grad_(False)
    fp8_linear = fp8.Float8Linear.sharing(linear)
    assert fp8_linear.weight is linear.weight and fp8_linear.bias is linear.bias
    assert list(fp8_linear.state_dict()) == ["weight", "bias"]
    x = torch.randn(2, 5, 64)
    expected = linear(x)
    assert torch.equal(fp8_linear(x), expected)  # float32 input: the plain weight
    got = fp8_linear(x.bfloat16())
    assert got.dtype == torch.bfloat16 and got.shape == (2, 5, 48)
    assert 1e-3 < _relative_l2(expected, got) < BF16_TOLERANCE  # rounded to float8, but close
    with pytest.raises(ValueError, match="expected inputs with 64 features, got shape"):
        fp8_linear(torch.randn(4, 32, dtype=torch.bfloat16))  # 128 values: a reshape would make 2 rows of 64
    torch.nn.Module.to(fp8_linear, dtype=torch.bfloat16)
    assert (fp8_linear.weight_fp8.dtype, fp8_linear.weight_scale.dtype) == (fp8.FP8, torch.float32)
    torch.nn.Module.to(fp8_linear, dtype=torch.float32)
    assert fp8_linear.weight_fp8.dtype == fp8.FP8 and torch.equal(fp8_linear(x), linear(x))
    fp8_linear.load_state_dict({"weight": -linear.weight.detach(), "bias": linear.bias.detach()})
    assert _relative_l2(2 * linear.bias - expected, fp8_linear(x.bfloat16())) < BF16_TOLERANCE


def test_fp8_unet_stays_within_tolerance_and_keeps_keys(unet_case, monkeypatch) -> None:
    config, inputs, expected = unet_case
    unet = torch.nn.Module.to(_unet(config), dtype=torch.bfloat16)
    keys = list(unet.state_dict())
    monkeypatch.delenv(fp8.FP8_ENV, raising=False)
    fast.optimize(unet, compile=False)
    assert not any(isinstance(m, fp8.Float8Linear) for m in unet.modules())
    monkeypatch.setenv(fp8.FP8_ENV, "1")
    fast.optimize(unet, compile=False)
    swapped = [m for m in unet.modules() if isinstance(m, fp8.Float8Linear)]
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(swapped) >= 10 * len(blocks) > 0  # q, k, v, out of both attentions, the feed-forward's two
    assert list(unet.state_dict()) == keys
    with torch.no_grad():
        got = unet(**inputs)
    assert _relative_l2(expected, got) < FP8_TOLERANCE
    assert fast.use_fp8(unet) == 0  # once only


def test_fp8_on_a_device_without_it_is_refused_or_skipped(monkeypatch) -> None:
    monkeypatch.setattr(fast, "fp8_supported", lambda device: False)  # as on a GPU older than compute 8.9
    unet = _unet(T2V_TINY.unet)
    with pytest.raises(ValueError, match="cannot run FP8 matmuls: they need an NVIDIA GPU of compute capability"):
        fast.optimize(unet, compile=False, fp8=True)
    monkeypatch.setenv(fp8.FP8_ENV, "1")
    with pytest.warns(RuntimeWarning, match="HUMMINGBIRD_FP8 is set, but cpu cannot run FP8 matmuls"):
        fast.optimize(unet, compile=False)
    assert not any(isinstance(m, fp8.Float8Linear) for m in unet.modules())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fast_path_matches_cpu_float32(unet_case) -> None:
    config, inputs, expected = unet_case
    gpu = fast.optimize(torch.nn.Module.to(_unet(config), "cuda", torch.bfloat16), compile=False)
    with torch.no_grad():
        got = gpu(**{k: v.cuda() for k, v in inputs.items()}).cpu()
        with attention_backend("reference"), torch.autocast("cuda", torch.float16):
            reference = _unet(config).cuda()(**{k: v.cuda() for k, v in inputs.items()}).cpu()
    assert _relative_l2(expected, got) < BF16_TOLERANCE
    assert _relative_l2(expected, reference) < BF16_TOLERANCE


@pytest.mark.skipif(not torch.cuda.is_available() or not fp8.fp8_supported(torch.device("cuda")),
                    reason="needs a CUDA device with FP8")
def test_cuda_fp8_unet_matches_cpu_float32(unet_case) -> None:
    config, inputs, expected = unet_case
    gpu = fast.optimize(torch.nn.Module.to(_unet(config), "cuda", torch.bfloat16), compile=False, fp8=True)
    with torch.no_grad():
        got = gpu(**{k: v.cuda() for k, v in inputs.items()}).cpu()
    assert _relative_l2(expected, got) < FP8_TOLERANCE


def _graphed_unet(device: str, dtype: torch.dtype) -> tuple[HummingbirdUNet, dict[str, torch.Tensor]]:
    config = T2V_TINY.unet
    unet = torch.nn.Module.to(_unet(config), device, dtype)
    return unet, {k: v.to(device) for k, v in _inputs(config).items()}


def test_cuda_graphs_are_installed_once_and_keep_the_module_intact() -> None:
    unet, inputs = _graphed_unet("cpu", torch.float32)
    keys = list(unet.state_dict())
    with torch.no_grad():
        expected = unet(**inputs)
    graphed = fast.GraphedForward.install(unet)
    assert fast.GraphedForward.install(unet) is graphed and unet.forward is graphed
    assert list(unet.state_dict()) == keys
    with torch.no_grad():  # weights on the CPU: plain eager calls, nothing captured
        assert torch.equal(unet(**inputs), expected)
    assert not graphed.graphs
    twin = copy.deepcopy(unet)
    assert isinstance(twin.forward, fast.GraphedForward) and twin.forward.module is twin
    fast.GraphedForward.remove(unet)
    assert "forward" not in unet.__dict__


def test_optimize_installs_cuda_graphs_on_the_unet_only(monkeypatch) -> None:
    def graphed(module: torch.nn.Module) -> bool:
        return isinstance(module.__dict__.get("forward"), fast.GraphedForward)

    monkeypatch.delenv(fast.CUDA_GRAPHS_ENV, raising=False)
    monkeypatch.delenv(fast.COMPILE_ENV, raising=False)
    assert not graphed(T2VPipeline.tiny(device="cpu").unet)  # eager kernels: no graphs by default
    assert graphed(fast.optimize(_unet(T2V_TINY.unet), compile=True))  # compiled: graphs by default
    monkeypatch.setenv(fast.CUDA_GRAPHS_ENV, "1")
    pipe = T2VPipeline.tiny(device="cpu")
    assert graphed(pipe.unet) and not graphed(pipe.vae)
    plain = T2VPipeline(pipe.config, _unet(pipe.config.unet), pipe.text_encoder, pipe.vae, "cpu", optimized=False)
    assert not graphed(plain.unet)
    assert not graphed(fast.optimize(_unet(T2V_TINY.unet), cuda_graphs=False))
    monkeypatch.setenv(fast.CUDA_GRAPHS_ENV, "off")
    assert not graphed(fast.optimize(_unet(T2V_TINY.unet), compile=True))
    assert not fast.cuda_graphs_requested(True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_match_eager_calls() -> None:
    unet, inputs = _graphed_unet("cuda", torch.bfloat16)
    graphed = fast.GraphedForward.install(unet)
    later = {**inputs, "timesteps": torch.tensor([900], device="cuda"), "x": torch.randn_like(inputs["x"])}
    with torch.inference_mode():
        with fast.eager():
            expected, expected_later = unet(**inputs), unet(**later)
        assert not graphed.graphs
        first, second = unet(**inputs), unet(**later)  # capture, then replay with new inputs
        assert len(graphed.graphs) == 1 and list(graphed.graphs.values())[0] is not None
        torch.testing.assert_close(first, expected, atol=1e-2, rtol=1e-2)
        torch.testing.assert_close(second, expected_later, atol=1e-2, rtol=1e-2)
        assert _relative_l2(expected_later, second) < 1e-2 < _relative_l2(expected, second)
        unet(**{k: v[:, :, :2] if k == "x" else v for k, v in inputs.items()})  # another shape: another graph
        unet(**{k: v[:, :, :1] if k == "x" else v for k, v in inputs.items()})
        assert len(graphed.graphs) == fast.MAX_GRAPHS
        torch.nn.Module.to(unet, dtype=torch.float32)  # new weights storage: the old graphs are dropped
        assert _relative_l2(expected, unet(**inputs)) < BF16_TOLERANCE
        assert len(graphed.graphs) == 1
    with torch.enable_grad():
        unet(**inputs)  # autograd on: an eager call, nothing captured
    assert len(graphed.graphs) == 1


# ------------------------------------------------------------------------------------ Triton GroupNorms
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
kernels = pytest.mark.skipif(not norms.triton_available() or not (torch.cuda.is_available() or norms.interpreted()),
                             reason="needs triton, and a CUDA device or TRITON_INTERPRET=1")


def _expected(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, silu: bool) -> torch.Tensor:
    out = F.group_norm(x.double(), groups, weight.double(), bias.double(), 1e-6)
    return (F.silu(out) if silu else out).to(x.dtype)


@kernels
@pytest.mark.parametrize("layout, shape, silu", [
    ("contiguous", (2, 64, 48, 40), True),  # two segments per row, the second one partly masked
    ("contiguous", (1, 64, 2, 40, 60), False),  # one video: 32 rows cut into 5 segments each
    ("frames outer", (2, 3, 64, 5, 9), True),  # [N, F, C, h, w] seen as [N, C, F, h, w], read without a copy
    ("channels last", (2, 320, 6, 5), True),  # 10 channels a group, padded to 16 in a tile of 4 positions
    ("channels last", (1, 128, 3, 8, 9), False),  # NDHWC video: 14 segments, the last one partly masked
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_compute_group_norm(layout: str, shape: tuple[int, ...], silu: bool, dtype: torch.dtype) -> None:
    from hummingbird.norm_kernels import group_norm

    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=gen) * 3 + 40).to(DEVICE, dtype)  # far from zero: a stable variance is needed
    x = x.transpose(1, 2) if layout == "frames outer" else x
    memory = {4: torch.channels_last, 5: torch.channels_last_3d}[x.dim()] if layout == "channels last" else None
    x = x.contiguous(memory_format=memory) if memory else x
    weight, bias = (torch.randn(x.shape[1], generator=gen).to(DEVICE, dtype) for _ in range(2))
    got = group_norm(x, 32, weight, bias, 1e-6, silu=silu)
    assert got.is_contiguous(memory_format=memory or torch.contiguous_format)  # channels last stays so
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, _expected(x, 32, weight, bias, silu))


@kernels
def test_kernels_refuse_bad_input_and_the_module_falls_back_for_huge_samples() -> None:
    from hummingbird.norm_kernels import group_norm

    ones, zeros = torch.ones(48, device=DEVICE), torch.zeros(48, device=DEVICE)
    with pytest.raises(ValueError, match="C divisible by 32 groups"):
        group_norm(torch.zeros(1, 48, 4, device=DEVICE), 32, ones, zeros, 1e-6)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        group_norm(torch.zeros(1, 32, 4, dtype=torch.int32, device=DEVICE), 32, ones[:32], zeros[:32], 1e-6)
    with pytest.raises(ValueError, match="weight must hold 32 values"):
        group_norm(torch.zeros(1, 32, 4, device=DEVICE), 32, ones, zeros[:32], 1e-6)
    huge = torch.empty(1, 32, 2**26, device="meta")  # 2**31 values in one sample: beyond 32-bit indexing
    with pytest.raises(ValueError, match="under 2\\*\\*31 per sample"):
        group_norm(huge, 32, ones[:32].to("meta"), zeros[:32].to("meta"), 1e-6)
    norm = TritonGroupNorm.sharing(torch.nn.GroupNorm(32, 32, device="meta"), silu=True)
    with torch.no_grad():
        assert not norms.runs_kernel(huge) and norm(huge).shape == huge.shape  # PyTorch's GroupNorm instead


@kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_swapped_blocks_run_the_kernels_with_the_same_result(channels_last: bool, monkeypatch) -> None:
    """A ResBlock with its temporal convolutions and a temporal transformer (GroupNorm across frames)."""
    from hummingbird import norm_kernels

    calls: list[bool] = []
    group_norm = norm_kernels.group_norm

    def counted(*args, **kwargs):
        calls.append(kwargs["silu"])
        return group_norm(*args, **kwargs)

    monkeypatch.setattr(norm_kernels, "group_norm", counted)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # NHWC convolutions pick other algorithms
    unet = _unet(T2V_TINY.unet).to(DEVICE)
    res_block = next(m for m in unet.modules() if isinstance(m, ResBlock) and m.use_temporal_conv)
    transformer = next(m for m in unet.modules() if isinstance(m, TemporalTransformer))
    frames, channels = 2, res_block.in_layers[0].num_channels
    x = torch.randn(frames, channels, 8, 8, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    emb = torch.randn(frames, res_block.emb_layers[1].in_features, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = transformer(res_block(x, emb.to(DEVICE), frames), frames)
        fast.use_triton_norms(res_block), fast.use_triton_norms(transformer)
        if channels_last:  # NHWC activations reach every norm, and leave them, without a copy
            fast.to_channels_last(res_block), fast.to_channels_last(transformer)
            x = x.contiguous(memory_format=torch.channels_last)
        got = transformer(res_block(x, emb.to(DEVICE), frames), frames)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert calls == [True] * 6 + [False]  # in, out and 4 temporal norms with their SiLU; the transformer's without


# Compiles every variant of the kernels for Hopper (sm_90) with Triton's own compiler, down to a cubin: the GPU path
# the interpreter does not take (types of loop-carried values, what lowers to PTX). Needs no GPU.
_COMPILE_FOR_HOPPER = """
import itertools
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, compile
from hummingbird import norm_kernels

def types(kernel, dtype):
    return {name: "constexpr" if param.is_constexpr else "*fp32" if name in ("stats_ptr", "moments_ptr")
            else f"*{dtype}" if name.endswith("_ptr") else "fp32" if name == "eps" else "i32"
            for name, param in zip(kernel.arg_names, kernel.params)}

def build(kernel, dtype, constants):
    constants = {name: value for name, value in constants.items() if name in kernel.arg_names}
    compiled = compile(ASTSource(kernel, types(kernel, dtype), constants), target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": norm_kernels.NUM_WARPS})
    assert compiled.asm["cubin"], (kernel, dtype, constants)

sizes = {"BLOCK": norm_kernels.BLOCK, "MAX_SPLITS": norm_kernels.MAX_SPLITS}
for dtype, chunked, silu in itertools.product(["bf16", "fp16", "fp32"], [False, True], [False, True]):
    for kernel in (norm_kernels._stats_kernel, norm_kernels._apply_kernel):
        build(kernel, dtype, {**sizes, "CHUNKED": chunked, "SILU": silu})
    for cpg, group_pad in ((4, 4), (10, 16), (40, 64)):  # channels last, 32 groups of 4, 10 and 40 channels
        tile = {"CPG": cpg, "GROUPS": 32, "GROUP_PAD": group_pad, "BLOCK_P": max(1, 2048 // (32 * group_pad)),
                "SILU": silu}
        for kernel in (norm_kernels._cl_stats_kernel, norm_kernels._cl_apply_kernel):
            build(kernel, dtype, tile)
    build(norm_kernels._cl_merge_kernel, dtype, {"CPG": 10, "GROUPS": 32, "SEGMENT_PAD": 64})
print("compiled")
"""


@pytest.mark.skipif(not norms.triton_available(), reason="needs triton")
def test_triton_norm_code_compiles_for_hopper_without_a_gpu() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", _COMPILE_FOR_HOPPER], env={**env, "TRITON_DEFAULT_FP_FUSION": "1"},
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "compiled", proc.stderr[-3000:]


def test_unet_norms_are_swapped_keeping_keys_and_results(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # on the CPU the swapped norms compute as before
    config = T2V_TINY.unet
    unet = _unet(config)
    keys, inputs = list(unet.state_dict()), _inputs(config)
    norm_count = sum(isinstance(m, torch.nn.GroupNorm) for m in unet.modules())
    with torch.no_grad():
        expected = unet(**inputs)
        assert fast.use_triton_norms(unet) == norm_count
        got = unet(**inputs)
    assert fast.use_triton_norms(unet) == 0 and list(unet.state_dict()) == keys
    swapped = [m for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert all(isinstance(m, TritonGroupNorm) for m in swapped)
    assert sum(m.silu for m in swapped) == fast.fuse_norm_silu(_unet(config))  # every GroupNorm, SiLU pair
    assert torch.equal(got, expected)


def test_vae_norms_take_in_their_silus(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    torch.manual_seed(0)
    vae = build_vae(T2V_TINY.vae)
    keys, latents = list(vae.state_dict()), torch.randn(1, 4, 2, 8, 8)
    with torch.no_grad():
        expected = decode_latents(vae, latents, 0.18215)
        fast.use_triton_norms(vae)
        got = decode_latents(vae, latents, 0.18215)
    assert list(vae.state_dict()) == keys
    resnets = [m for m in vae.modules() if isinstance(m, ResnetBlock2D)]
    assert resnets and all(m.norm1.silu and m.norm2.silu and isinstance(m.nonlinearity, torch.nn.Identity)
                           for m in resnets)
    assert vae.decoder.conv_norm_out.silu and isinstance(vae.decoder.conv_act, torch.nn.Identity)
    assert not vae.decoder.mid_block.attentions[0].group_norm.silu
    assert all(isinstance(m, TritonGroupNorm) for m in vae.modules() if isinstance(m, torch.nn.GroupNorm))
    assert torch.equal(got, expected)


def test_switch_and_sharing(monkeypatch) -> None:
    monkeypatch.delenv(norms.TRITON_NORMS_ENV, raising=False)
    assert not norms.triton_norms_requested()
    pipe = T2VPipeline.tiny(device="cpu")
    assert not any(isinstance(m, TritonGroupNorm) for m in pipe.unet.modules())
    monkeypatch.setenv(norms.TRITON_NORMS_ENV, "on")
    fast.optimize(pipe, compile=False)
    assert any(isinstance(m, TritonGroupNorm) for m in pipe.unet.modules())
    assert any(isinstance(m, TritonGroupNorm) for m in pipe.vae.modules())
    norm = torch.nn.GroupNorm(4, 8)
    shared = TritonGroupNorm.sharing(norm)
    assert shared.weight is norm.weight and shared.bias is norm.bias and not shared.silu
    with pytest.raises(ValueError, match="only affine GroupNorms"):
        TritonGroupNorm.sharing(torch.nn.GroupNorm(4, 8, affine=False))


def test_triton_norms_compile_in_one_graph() -> None:
    """Inside torch.compile the norms are plain PyTorch (no graph break): inductor fuses them itself."""
    norm = TritonGroupNorm.sharing(torch.nn.GroupNorm(4, 8), silu=True).eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(norm, fullgraph=True)(x), F.silu(F.group_norm(x, 4, norm.weight,
                                                                                                norm.bias)))


@pytest.mark.skipif(not torch.cuda.is_available() or not norms.triton_available(), reason="needs CUDA and triton")
def test_cuda_unet_with_triton_norms_matches_cpu_float32() -> None:
    config = T2V_TINY.unet
    inputs = _inputs(config)
    with torch.no_grad():
        expected = _unet(config)(**inputs)
        gpu = fast.optimize(torch.nn.Module.to(_unet(config), "cuda", torch.bfloat16), compile=False,
                            triton_norms=True)
        got = gpu(**{k: v.cuda() for k, v in inputs.items()}).cpu()
    assert _relative_l2(expected, got) < BF16_TOLERANCE
