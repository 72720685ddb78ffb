"""End-to-end pipeline behaviour on tiny models and on the release-format fixtures."""

import math

import numpy as np
import pytest
import torch

from hummingbird import checkpoints
from hummingbird.configs import ModelConfig
from hummingbird.denoisers import i2v_predictor
from hummingbird.golden import Fixture, run_fixture
from hummingbird.pipelines import I2VPipeline, ProgressEvent, T2VPipeline, draw_noise
from hummingbird.vae import to_uint8
from hummingbird.weights import WeightsUnavailableError

SMALL = dict(frames=3, height=64, width=64, steps=2)


@pytest.fixture(scope="module")
def t2v() -> T2VPipeline:
    return T2VPipeline.tiny(device="cpu")


@pytest.fixture(scope="module")
def i2v() -> I2VPipeline:
    return I2VPipeline.tiny(device="cpu")


@pytest.mark.parametrize("name", ["t2v_sampler_4step", "t2v_sampler_8step", "i2v_sampler_tiny",
                                  "t2v_checkpoint_tiny", "i2v_checkpoint_tiny"])
def test_golden_pipeline_fixtures(golden_dir, name):
    row = run_fixture(golden_dir / name)
    assert row.passed, row.detail


def test_t2v_output_seed_and_progress(t2v):
    events: list[ProgressEvent] = []
    result = t2v("a corgi in a park", seed=7, callback=events.append, **SMALL)
    assert result.frames.shape == (3, 64, 64, 3) and result.frames.dtype == np.uint8
    assert result.seed == 7 and result.settings["seed"] == 7
    assert set(result.timings) == {"encode", "denoise", "decode"}
    stages = [e.stage for e in events]
    assert stages[0] == "encode" and stages[-1] == "decode"
    assert [(e.step, e.total) for e in events if e.stage == "denoise"] == [(1, 2), (2, 2)]
    again = t2v("a corgi in a park", seed=7, **SMALL)
    other = t2v("a corgi in a park", seed=8, **SMALL)
    assert np.array_equal(result.frames, again.frames)
    assert not np.array_equal(result.frames, other.frames)


def test_t2v_random_seed_is_returned(t2v):
    result = t2v("waves", **SMALL)
    assert 0 <= result.seed < 2**31
    assert np.array_equal(t2v("waves", seed=result.seed, **SMALL).frames, result.frames)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt=""), "prompt must not be empty"),
    (dict(prompt="   "), "prompt must not be empty"),
    (dict(prompt=None), "prompt must be text"),
    (dict(height=100), "multiple of 64"),
    (dict(width=2048), "between 64 and 1024"),
    (dict(frames=0), "frames must be between 1 and 26"),
    (dict(frames=27), "frames must be between 1 and 26"),
    (dict(steps=0), "steps must be between 1 and 50"),
    (dict(steps=2.5), "steps must be a whole number"),
    (dict(steps=True), "steps must be a whole number"),
    (dict(guidance=math.nan), "guidance must be between"),
    (dict(guidance=math.inf), "guidance must be between"),
    (dict(fps=0), "fps must be between"),
    (dict(seed=-1), "seed must be between"),
    (dict(prompt="x" * 5000), "too long"),
])
def test_t2v_rejects_bad_arguments(t2v, kwargs, message):
    args = dict(prompt="a cat", **SMALL) | kwargs
    with pytest.raises(ValueError, match=message):
        t2v(**args)


@pytest.mark.parametrize("kwargs, message", [
    (dict(guidance_rescale=1.5), "guidance_rescale must be between 0 and 1"),
    (dict(eta=-0.1), "eta must be between 0 and 1"),
    (dict(aspect="stretch"), "aspect must be one of crop, pad, reference"),
    (dict(reneg="yes"), "reneg must be true or false"),
    (dict(steps=101), "steps must be between 1 and 100"),
])
def test_i2v_rejects_bad_arguments(i2v, kwargs, message):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        i2v(image, "x", **(SMALL | kwargs))


def test_i2v_rejects_bad_images(i2v, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for bad in (empty, b"not an image", np.zeros((1, 1, 3), np.uint8)):
        with pytest.raises(ValueError):
            i2v(bad, "x", **SMALL)


@pytest.mark.parametrize("aspect", ["crop", "pad"])
def test_i2v_aspect_modes_and_frame_counts(i2v, aspect):
    portrait = np.random.default_rng(0).integers(0, 255, (120, 60, 3), dtype=np.uint8)
    result = i2v(portrait, "a tower", aspect=aspect, seed=1, **SMALL)
    assert result.frames.shape == (3, 64, 64, 3)
    assert result.settings["aspect"] == aspect and result.settings["reneg"] is True


def test_i2v_reneg_and_negative_prompt_differ(i2v):
    image = np.full((64, 64, 3), 120, np.uint8)
    with_reneg = i2v(image, "x", seed=3, **SMALL).frames
    negative = i2v(image, "x", seed=3, reneg=False, negative_prompt="blurry", **SMALL).frames
    empty = i2v(image, "x", seed=3, reneg=False, **SMALL).frames
    assert not np.array_equal(with_reneg, negative) and not np.array_equal(negative, empty)


def test_batched_cfg_equals_two_calls(i2v):
    torch.manual_seed(0)
    width = i2v.config.text["width"]
    cond, uncond = torch.randn(1, 333, width), torch.randn(1, 333, width)
    latent, x = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16, 16)
    with torch.no_grad():
        batched = i2v_predictor(i2v.unet, cond, uncond, latent, 24, 7.5, 0.7, batched_cfg=True)(x, 500)
        separate = i2v_predictor(i2v.unet, cond, uncond, latent, 24, 7.5, 0.7, batched_cfg=False)(x, 500)
    # fp32 kernels round differently per batch size; guidance x7.5 magnifies that, nothing more
    assert (batched - separate).abs().max() <= 1e-4 * separate.abs().max()


def test_noise_is_device_independent_and_ordered():
    a = draw_noise(5, [(1, 2), (3,)])
    b = draw_noise(5, [(1, 2), (3,)])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (1, 2) and a[1].shape == (3,)


def test_converted_folder_reproduces_release_file(golden_dir, tmp_path):
    fx = Fixture.load(golden_dir / "t2v_checkpoint_tiny")
    config = ModelConfig.from_official("fixture", fx.config["model"], fx.config["open_clip_model_cfg"])
    folder = checkpoints.convert(fx.file(), tmp_path / "converted", config=config)
    args = dict(prompt="a red fox", steps=2, frames=2, height=64, width=64, seed=11)
    from_file = T2VPipeline.from_release(fx.file(), config=config, device="cpu")(**args)
    from_folder = T2VPipeline.from_release(folder, device="cpu")(**args)
    assert np.array_equal(from_file.frames, from_folder.frames)


def test_missing_weights_offline_say_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli download amd/AMD-Hummingbird-T2V"):
        T2VPipeline.from_release(None, variant="0.7b")
    with pytest.raises(WeightsUnavailableError, match="stage_1.ckpt"):
        I2VPipeline.from_release(tmp_path)
    with pytest.raises(ValueError, match="variant"):
        T2VPipeline.from_release(tmp_path, variant="2b")


def test_injected_nan_is_retried_in_a_safer_precision():
    from hummingbird import faults

    pipe = T2VPipeline.tiny(device="cpu", dtype=torch.bfloat16)
    faults.inject("nan")
    result = pipe("a lighthouse", seed=2, **SMALL)
    assert result.settings["precision_fallback"] == "float32"
    assert pipe.dtype == torch.bfloat16
    assert torch.isfinite(result.latents).all()


def test_injected_nan_in_float32_is_explained_not_hidden(t2v):
    from hummingbird import faults
    from hummingbird.pipelines import NonFiniteOutput

    faults.inject("nan")
    with pytest.raises(NonFiniteOutput, match="invalid values"):
        t2v("a lighthouse", seed=2, **SMALL)
    assert t2v("a lighthouse", seed=2, **SMALL).frames.shape == (3, 64, 64, 3)


def test_decode_frames_equals_the_float_decode_converted_on_the_host(t2v, monkeypatch):
    from hummingbird import pipelines

    monkeypatch.setattr(pipelines, "DECODE_FRAMES_CPU", 0.1)  # 4 frames per chunk at 64x64: chunks 4 + 2
    latents = torch.randn(1, 4, 6, 8, 8, generator=torch.Generator().manual_seed(3))
    events: list[ProgressEvent] = []
    frames = t2v.decode_frames(latents, events.append)
    assert frames.dtype == torch.uint8 and frames.shape == (1, 6, 64, 64, 3) and frames.is_contiguous()
    assert torch.equal(frames, to_uint8(t2v.decode(latents)))
    assert [(e.stage, e.step, e.total) for e in events] == [("decode", 4, 6), ("decode", 6, 6)]


def test_non_finite_latents_or_decode_are_refused(t2v):
    from hummingbird.pipelines import NonFiniteOutput

    latents = torch.zeros(1, 4, 2, 8, 8)
    latents[0, 0, 1, 2, 3] = float("inf")
    with pytest.raises(NonFiniteOutput, match="latents hold NaN or infinity"):
        t2v.decode_frames(latents)
    with pytest.raises(ValueError, match=r"latents must be \[B, 4, F, h, w\], got \(4, 2, 8, 8\)"):
        t2v.decode_frames(latents[0])
    broken = T2VPipeline.tiny(device="cpu", dtype=torch.bfloat16)
    with torch.no_grad():
        broken.vae.decoder.conv_out.bias[0] = float("nan")
    with pytest.raises(NonFiniteOutput, match="decoded video holds NaN"):
        broken.decode_frames(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(NonFiniteOutput, match="invalid values .* even in float32"):
        broken("a lighthouse", seed=2, **SMALL)  # retried in float32 first
    assert broken.dtype == torch.bfloat16


def test_injected_oom_says_what_to_lower_and_the_next_run_works(i2v):
    from hummingbird import faults

    image = np.full((64, 64, 3), 90, np.uint8)
    faults.inject("oom")
    with pytest.raises(torch.OutOfMemoryError, match="fewer frames, a smaller size"):
        i2v(image, "x", seed=1, **SMALL)
    assert i2v(image, "x", seed=1, **SMALL).frames.shape == (3, 64, 64, 3)


def test_package_exports_the_entry_points():
    import hummingbird

    assert hummingbird.T2VPipeline is T2VPipeline and hummingbird.I2VPipeline is I2VPipeline
    from hummingbird import Upscaler
    from hummingbird.sr import Upscaler as direct

    assert Upscaler is direct
