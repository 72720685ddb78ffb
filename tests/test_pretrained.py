"""save_pretrained / from_pretrained: diffusers-style folders that load without any release file."""

import json

import numpy as np
import pytest
import torch

from hummingbird.pipelines import I2VPipeline, T2VPipeline
from hummingbird.weights import WeightsUnavailableError

SMALL = dict(frames=2, height=64, width=64, steps=2, seed=11)


def files(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_t2v_round_trip_gives_identical_videos(tmp_path):
    pipe = T2VPipeline.tiny(device="cpu")
    folder = pipe.save_pretrained(tmp_path / "t2v")
    assert files(folder) == ["model_index.json", "text_encoder/config.json", "text_encoder/model.safetensors",
                             "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                             "vae/diffusion_pytorch_model.safetensors"]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "T2VPipeline" and index["vae"] == ["diffusers", "AutoencoderKL"]
    loaded = T2VPipeline.from_pretrained(folder, device="cpu")
    assert loaded.config == pipe.config and loaded.vae.encoder is not None
    expected, got = pipe("a corgi", **SMALL), loaded("a corgi", **SMALL)
    assert np.array_equal(expected.frames, got.frames) and torch.equal(expected.latents, got.latents)


def test_i2v_round_trip_gives_identical_videos(tmp_path):
    pipe = I2VPipeline.tiny(device="cpu")
    folder = pipe.save_pretrained(tmp_path / "i2v")
    for part in ("image_encoder/model.safetensors", "resampler/config.json", "resampler/model.safetensors",
                 "reneg/model.safetensors", "schedule/model.safetensors"):
        assert (folder / part).is_file()
    assert json.loads((folder / "resampler/config.json").read_text()) == pipe.config.resampler
    loaded = I2VPipeline.from_pretrained(folder, device="cpu", dtype=torch.float32)
    assert torch.equal(loaded.reneg, pipe.reneg)
    assert all(torch.equal(loaded.schedule[key], value) for key, value in pipe.schedule.items())
    image = np.random.default_rng(1).integers(0, 255, (72, 90, 3), dtype=np.uint8)
    for reneg in (True, False):
        expected = pipe(image, "waves", reneg=reneg, **SMALL)
        got = loaded(image, "waves", reneg=reneg, **SMALL)
        assert np.array_equal(expected.frames, got.frames) and torch.equal(expected.latents, got.latents)


def test_optional_parts_stay_absent(tmp_path):
    i2v = I2VPipeline.tiny(device="cpu")
    i2v.reneg = None
    loaded = I2VPipeline.from_pretrained(i2v.save_pretrained(tmp_path / "i2v"), device="cpu")
    assert not loaded.has_reneg and json.loads((tmp_path / "i2v/model_index.json").read_text())["reneg"] == [None, None]
    t2v = T2VPipeline.tiny(device="cpu")
    t2v.vae.encoder = t2v.vae.quant_conv = None  # a decode-only VAE, as some state dicts hold
    loaded = T2VPipeline.from_pretrained(t2v.save_pretrained(tmp_path / "t2v"), device="cpu")
    assert loaded.vae.encoder is None and loaded.vae.quant_conv is None
    assert np.array_equal(loaded("a", **SMALL).frames, t2v("a", **SMALL).frames)


def test_loading_the_wrong_folder_says_why(tmp_path):
    folder = T2VPipeline.tiny(device="cpu").save_pretrained(tmp_path / "t2v")
    with pytest.raises(ValueError, match="holds a T2VPipeline; load it with T2VPipeline.from_pretrained"):
        I2VPipeline.from_pretrained(folder)
    with pytest.raises(WeightsUnavailableError, match="no model_index.json"):
        T2VPipeline.from_pretrained(tmp_path / "nothing")


def test_from_release_and_the_commands_accept_a_pretrained_folder(tmp_path):
    import subprocess
    import sys

    from hummingbird.pipelines import T2VPipeline
    from hummingbird.video import probe_video

    folder = T2VPipeline.tiny(device="cpu").save_pretrained(tmp_path / "tiny")
    assert T2VPipeline.from_release(folder, device="cpu").name == "t2v-tiny"
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "hummingbird", "t2v", "a kite", "--weights", str(folder), "--out",
                           str(out), "--frames", "2", "--height", "64", "--width", "64", "--steps", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert probe_video(out).frames == 2
