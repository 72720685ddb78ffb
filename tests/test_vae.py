"""KL-f8 VAE: LDM conversion, loading, per-frame decode, posterior encode, uint8 frames."""

import json

import numpy as np
import pytest
import torch
from conftest import MANIFESTS
from PIL import Image

from hummingbird.configs import I2V_09B, T2V_TINY
from hummingbird.golden import Fixture, run_fixture
from hummingbird.vae import build_vae, decode_latents, encode_image, ldm_vae_to_diffusers, load_vae, to_uint8

SCALE = 0.18215


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    return build_vae(T2V_TINY.vae)


@pytest.fixture(scope="module")
def i2v_fixture(golden_dir):
    return Fixture.load(golden_dir / "i2v_checkpoint_tiny")


def test_golden_vae_decode(golden_dir):
    for path in sorted(golden_dir.glob("vae_decode*")):
        row = run_fixture(path)
        assert row.passed, f"{row.name}: {row.detail}"


def test_chunked_decode_matches_per_frame(tiny_vae):
    latents = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    whole = decode_latents(tiny_vae, latents, SCALE)
    assert whole.shape == (2, 3, 3, 16, 16) and whole.dtype == torch.float32
    per_frame = torch.stack([tiny_vae.decode(latents[:, :, f] / SCALE).sample for f in range(3)], dim=2)
    for chunk in (1, 4, 100):
        torch.testing.assert_close(decode_latents(tiny_vae, latents, SCALE, chunk_size=chunk), per_frame,
                                   rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(whole, per_frame, rtol=1e-5, atol=1e-5)


def test_decode_rejects_bad_input(tiny_vae):
    with pytest.raises(ValueError, match="latents must be"):
        decode_latents(tiny_vae, torch.zeros(1, 4, 4, 4), SCALE)
    with pytest.raises(ValueError, match="chunk_size"):
        decode_latents(tiny_vae, torch.zeros(1, 4, 1, 4, 4), SCALE, chunk_size=0)


def test_to_uint8_truncates_and_puts_channels_last():
    values = torch.tensor([-3.0, -1.0, 0.0, 254.9 / 127.5 - 1, 1.0, 2.0])
    video = values.view(1, 1, 1, 1, 6).expand(1, 3, 2, 1, 6)
    frames = to_uint8(video)
    assert frames.dtype == torch.uint8 and frames.shape == (1, 2, 1, 6, 3)
    assert frames[0, 1, 0, :, 2].tolist() == [0, 0, 127, 254, 255, 255]
    with pytest.raises(ValueError, match="video must be"):
        to_uint8(torch.zeros(1, 4, 1, 2, 2))


def test_encode_noise_and_mean(tiny_vae):
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    noise = torch.randn(2, 4, 2, 2, generator=gen)
    mean = encode_image(tiny_vae, image, sample=False, scale_factor=SCALE)
    assert mean.shape == (2, 4, 2, 2)
    torch.testing.assert_close(encode_image(tiny_vae, image, torch.zeros_like(noise), scale_factor=SCALE), mean)
    with torch.no_grad():
        moments_mean, logvar = tiny_vae.quant_conv(tiny_vae.encoder(image)).chunk(2, dim=1)
    expected = (moments_mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * noise) * SCALE
    torch.testing.assert_close(encode_image(tiny_vae, image, noise, scale_factor=SCALE), expected)
    with pytest.raises(ValueError, match="explicit posterior noise"):
        encode_image(tiny_vae, image, scale_factor=SCALE)
    with pytest.raises(ValueError, match="noise must have"):
        encode_image(tiny_vae, image, noise[:1], scale_factor=SCALE)
    with pytest.raises(ValueError, match="multiples of 8"):
        encode_image(tiny_vae, image[..., :12], sample=False, scale_factor=SCALE)


def _fixture_vae_input(image: torch.Tensor, size: int) -> torch.Tensor:
    """The fixture's documented preprocessing: shorter side to ``size`` (PIL bilinear), centre crop, [-1, 1]."""
    pil = Image.fromarray(image.numpy())
    w, h = pil.size
    nw, nh = (int(size * w / h), size) if w > h else (size, int(size * h / w))
    pil = pil.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - size) / 2)), int(round((nh - size) / 2))
    pixels = np.array(pil.crop((left, top, left + size, top + size)))
    return (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5


def test_full_vae_encodes_like_the_reference(i2v_fixture):
    fx = i2v_fixture
    sd = torch.load(fx.file("stage_1.ckpt"), weights_only=True)["state_dict"]
    vae_sd = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    params = fx.config["model"]["params"]["first_stage_config"]["params"]
    vae = load_vae(vae_sd, dict(params["ddconfig"], embed_dim=params["embed_dim"]))
    image = _fixture_vae_input(fx["image"], fx.call["height"])
    latent = encode_image(vae, image, fx["vae_posterior_noise"][:1], scale_factor=SCALE)
    torch.testing.assert_close(latent, fx["image_latent"], rtol=1e-4, atol=1e-4)
    frame0 = decode_latents(vae, fx["final_latents"][:, :, :1], SCALE)[0, :, 0]
    torch.testing.assert_close(frame0, fx["decoded_frame0"], rtol=1e-3, atol=1e-4)


def test_decoder_only_state_dict(golden_dir):
    fx = Fixture.load(golden_dir / "vae_decode_tiny")
    sd = fx.weights()
    ddconfig = dict(fx.config["first_stage_config"]["params"]["ddconfig"], embed_dim=4)
    vae = load_vae(sd, ddconfig)
    assert vae.encoder is None and vae.quant_conv is None
    assert not any(p.is_meta for p in vae.state_dict().values())
    with pytest.raises(ValueError, match="no encoder"):
        encode_image(vae, torch.zeros(1, 3, 64, 64), sample=False, scale_factor=SCALE)
    with pytest.raises(ValueError, match="do not fit"):
        load_vae({k: v for k, v in sd.items() if k != "decoder.conv_in.bias"}, ddconfig)
    with pytest.raises(ValueError, match="do not fit"):
        load_vae(sd, dict(ddconfig, ch=64))
    with pytest.raises(ValueError, match="unrecognised LDM VAE keys"):
        load_vae({**sd, "decoder.extra.weight": torch.zeros(1)}, ddconfig)
    with pytest.raises(ValueError, match="incomplete"):
        load_vae({k: v for k, v in sd.items() if k != "decoder.up.1.upsample.conv.bias"}, ddconfig)
    with pytest.raises(ValueError, match="prefix"):
        ldm_vae_to_diffusers({"first_stage_model." + k: v for k, v in sd.items()})


def test_conversion_covers_the_full_vae():
    manifest = json.loads((MANIFESTS / "i2v_stage1_full.json").read_text())
    prefix = "first_stage_model."
    sd = {k[len(prefix):]: torch.empty(s, device="meta") for k, s in manifest.items() if k.startswith(prefix)}
    converted = ldm_vae_to_diffusers(sd)
    assert len(converted) == len(sd) == 248
    with torch.device("meta"):
        model = build_vae(I2V_09B.vae)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_ddconfig_limits():
    with pytest.raises(ValueError, match="attn_resolutions"):
        build_vae(dict(T2V_TINY.vae, attn_resolutions=[32]))
    with pytest.raises(ValueError, match="embed_dim"):
        build_vae(dict(T2V_TINY.vae, embed_dim=8))
