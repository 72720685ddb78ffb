"""The Hummingbird 3-D U-Net: official key layout, golden parity, batching, context routing, dtypes, I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import MANIFESTS

from hummingbird.configs import I2V_09B, I2V_TINY, T2V_07B, T2V_09B, T2V_TINY
from hummingbird.golden import discover, run_fixture
from hummingbird.unet import HummingbirdUNet

PREFIX = "model.diffusion_model."


def _tiny(unet: dict[str, Any], seed: int = 0) -> HummingbirdUNet:
    torch.manual_seed(seed)
    model = HummingbirdUNet(**unet).eval()
    with torch.no_grad():  # the zero-initialised last temporal convs would hide that path
        for name, param in model.named_parameters():
            if "temopral_conv.conv4" in name:
                param.normal_(0, 0.05)
    return model


def _t2v_inputs(batch: int = 2, frames: int = 3, size: int = 8) -> dict[str, Any]:
    torch.manual_seed(1)
    return dict(x=torch.randn(batch, 4, frames, size, size), timesteps=torch.tensor([999, 259][:batch]),
                context=torch.randn(batch, 77, 32), fps=torch.tensor([8, 16][:batch]),
                timestep_cond=torch.randn(batch, 256))


@pytest.mark.parametrize("config, manifest, count", [
    (T2V_09B, "t2v_unet_09B.json", 945_209_220),
    (T2V_07B, "t2v_unet_07B.json", 772_091_780),
    (I2V_09B, "i2v_unet_09B.json", 961_522_820),
])
def test_presets_match_official_manifests(config, manifest: str, count: int) -> None:
    with torch.device("meta"):
        model = HummingbirdUNet(**config.unet)
    expected = {key.removeprefix(PREFIX): shape
                for key, shape in json.loads((MANIFESTS / manifest).read_text()).items()}
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert set(expected) - set(ours) == set()
    assert set(ours) - set(expected) == set()
    assert [k for k in ours if ours[k] != expected[k]] == []
    assert list(ours) == list(expected)
    assert model.num_parameters() == count


def test_golden_fixtures_pass(golden_dir: Path) -> None:
    folders = discover(golden_dir, {"t2v_unet", "i2v_unet"})
    assert folders
    for folder in folders:
        row = run_fixture(folder)
        assert row.passed, f"{row.name}: {row.detail}"


def test_batch_elements_are_independent() -> None:
    model = _tiny(T2V_TINY.unet)
    inputs = _t2v_inputs()
    with torch.no_grad():
        both = model(**inputs)
        second = model(**{k: v[1:] for k, v in inputs.items()})
    assert both.shape == (2, 4, 3, 8, 8)
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(both[0], both[1])


def test_conditioning_forms_are_equivalent() -> None:
    model = _tiny(T2V_TINY.unet)
    inputs = _t2v_inputs(batch=2)
    inputs["timesteps"] = torch.tensor([500, 500])
    with torch.no_grad():
        reference = model(**dict(inputs, fps=torch.tensor([8, 8])))
        assert torch.equal(model(**dict(inputs, fps=8)), reference)
        assert torch.equal(model(**dict(inputs, fps=None)), reference)  # default_fps is 8
        assert torch.equal(model(**dict(inputs, fps=8, timesteps=500)), reference)
        assert not torch.allclose(model(**dict(inputs, fps=24)), reference)


def _attn2_context_shapes(model: HummingbirdUNet, frames: int) -> tuple[torch.Size, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    x, context = torch.randn(1, 8, frames, 8, 8), torch.randn(1, 77 + 256, 32)
    seen: list[torch.Tensor] = []
    attn2 = model.input_blocks[1][1].transformer_blocks[0].attn2
    handle = attn2.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    with torch.no_grad():
        out = model(x, torch.tensor([700]), context, fps=torch.tensor([24]))
    handle.remove()
    assert out.shape == (1, 4, frames, 8, 8) and torch.isfinite(out).all()
    return seen[0].shape, seen[0], context


def test_i2v_routes_image_tokens_per_frame_only_for_16_frames() -> None:
    model = _tiny(I2V_TINY.unet)
    shape, frame_context, context = _attn2_context_shapes(model, 16)
    assert shape == (16, 77 + 16, 32)
    torch.testing.assert_close(frame_context[3], torch.cat([context[0, :77], context[0, 77 + 48:77 + 64]]))
    shape, frame_context, context = _attn2_context_shapes(model, 8)
    assert shape == (8, 333, 32)
    torch.testing.assert_close(frame_context[5], context[0])


def test_bfloat16_forward_stays_close_to_float32() -> None:
    model = _tiny(T2V_TINY.unet)
    inputs = _t2v_inputs(batch=1, frames=2, size=16)  # 2x2 at the deepest level: GroupNorms stay well posed
    with torch.no_grad():
        reference = model(**inputs)
        model.bfloat16()
        got = model(**inputs)
        half_inputs = model(**dict(inputs, x=inputs["x"].bfloat16()))
    assert got.dtype == torch.float32 and half_inputs.dtype == torch.bfloat16
    assert torch.isfinite(got).all()
    assert (got - reference).norm() <= 0.05 * reference.norm()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = _tiny(dict(T2V_TINY.unet, use_middle_block=False))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = HummingbirdUNet.from_pretrained(tmp_path)
    assert not loaded.config.use_middle_block and "middle_block" not in dict(loaded.named_children())
    inputs = _t2v_inputs()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), model(**inputs))


@pytest.mark.parametrize("change, message", [
    (dict(x=torch.randn(2, 8, 3, 8, 8)), "x must be"),
    (dict(x=torch.randn(2, 4, 3, 12, 8)), "multiples of 8"),
    (dict(context=torch.randn(2, 77, 16)), "context must be"),
    (dict(timesteps=torch.tensor([1, 2, 3])), "timesteps must be"),
    (dict(fps=torch.tensor([8, 8, 8])), "fps must be"),
    (dict(timestep_cond=torch.randn(2, 128)), "timestep_cond must be"),
])
def test_bad_inputs_raise_value_error(change: dict[str, Any], message: str) -> None:
    model = _tiny(T2V_TINY.unet)
    with pytest.raises(ValueError, match=message), torch.no_grad():
        model(**dict(_t2v_inputs(), **change))


def test_unsupported_or_inconsistent_config_raises() -> None:
    with pytest.raises(ValueError, match="temporal_selfatt_only"):
        HummingbirdUNet(**dict(T2V_TINY.unet, temporal_selfatt_only=False))
    with pytest.raises(ValueError, match="multiple of"):
        HummingbirdUNet(**dict(T2V_TINY.unet, num_head_channels=12))
    with pytest.raises(ValueError, match="time_cond_proj"):
        _tiny(I2V_TINY.unet)(torch.randn(1, 8, 2, 8, 8), 10, torch.randn(1, 333, 32),
                             timestep_cond=torch.randn(1, 256))
