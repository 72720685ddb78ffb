"""Image conditioning: loading, frame preprocessing, CLIP tokens, Resampler and the golden fixture."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from conftest import MANIFESTS
from hummingbird.configs import I2V_09B, I2V_TINY, ModelConfig
from hummingbird.golden import Fixture, run_fixture
from hummingbird.image import (ImageConditioner, Resampler, aspect_ratio, build_vision_encoder, clip_preprocess,
                               load_image, openclip_vision_to_hf, preprocess_for_vae, preview)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixel data is a few bytes."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def disc(width: int, height: int, radius: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (0, 0, 0))
    cx, cy = width // 2, height // 2
    ImageDraw.Draw(image).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 255, 255))
    return image


def edge_bars(frame: torch.Tensor) -> set[str]:
    """Which frame edges are entirely black (-1)."""
    edges = {"top": frame[:, 0, :], "bottom": frame[:, -1, :], "left": frame[:, :, 0], "right": frame[:, :, -1]}
    return {name for name, pixels in edges.items() if bool((pixels == -1).all())}


# ------------------------------------------------------------------------------------------ golden

def test_golden_image_cond(golden_dir):
    row = run_fixture(golden_dir / "image_cond_tiny")
    assert row.passed, row.detail


# ------------------------------------------------------------------------------------------ frames

WHITE = {"landscape": (300, 100), "portrait": (100, 200), "square": (150, 150)}
EXPECTED_BARS = {
    ("landscape", "crop"): set(), ("landscape", "pad"): {"top", "bottom"}, ("landscape", "reference"): set(),
    ("portrait", "crop"): set(), ("portrait", "pad"): {"left", "right"},
    ("portrait", "reference"): {"left", "right"},
    ("square", "crop"): set(), ("square", "pad"): {"left", "right"}, ("square", "reference"): {"left", "right"},
}


@pytest.mark.parametrize("shape,aspect", sorted(EXPECTED_BARS))
def test_frame_shapes_and_bars(shape, aspect):
    image = Image.new("RGB", WHITE[shape], (255, 255, 255))
    frame = preprocess_for_vae(image, 64, 128, aspect)
    assert frame.shape == (3, 64, 128) and frame.dtype == torch.float32
    assert edge_bars(frame) == EXPECTED_BARS[(shape, aspect)]
    if aspect == "crop":
        assert bool((frame == 1).all())


def test_pad_and_reference_bar_widths():
    square = Image.new("RGB", (150, 150), (255, 255, 255))
    for aspect in ("pad", "reference"):
        frame = preprocess_for_vae(square, 64, 128, aspect)
        content = (frame[0] > -1).any(dim=0).nonzero().flatten()
        assert (content.min().item(), content.max().item()) == (32, 95)


@pytest.mark.parametrize("aspect", ["crop", "pad", "reference"])
@pytest.mark.parametrize("size", [(64, 64), (64, 128), (128, 64)])
def test_circle_stays_round(aspect, size):
    frame = preprocess_for_vae(disc(300, 150, 30), *size, aspect)
    white = frame[0] > 0
    rows, cols = white.any(dim=1).nonzero().flatten(), white.any(dim=0).nonzero().flatten()
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(height) - int(width)) <= 1, (height, width)


def test_crop_matches_reference_for_wide_images():
    image = Image.effect_noise((300, 100), 60).convert("RGB")
    assert torch.equal(preprocess_for_vae(image, 64, 128, "crop"), preprocess_for_vae(image, 64, 128, "reference"))


@settings(max_examples=25, deadline=None)
@given(w=st.integers(16, 300), h=st.integers(16, 300), aspect=st.sampled_from(["crop", "pad", "reference"]),
       height=st.sampled_from([16, 40, 64]), width=st.sampled_from([16, 64, 96]))
def test_preview_is_the_vae_frame(w, h, aspect, height, width):
    image = Image.effect_noise((w, h), 60).convert("RGB")
    shown = preview(image, height, width, aspect)
    assert shown.size == (width, height) and shown.mode == "RGB"
    expected = torch.from_numpy(np.array(shown)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(preprocess_for_vae(image, height, width, aspect), expected, atol=1e-6)


def test_frame_rejects_bad_arguments():
    image = Image.new("RGB", (32, 32))
    with pytest.raises(ValueError, match="aspect must be one of"):
        preview(image, 64, 64, "stretch")
    with pytest.raises(ValueError, match="height must be a positive integer"):
        preview(image, 0, 64)
    with pytest.raises(ValueError, match="too elongated"):
        preview(Image.new("RGB", (20000, 16)), 320, 512, "crop")
    assert preview(Image.new("RGB", (20000, 16)), 320, 512, "pad").size == (512, 320)


def test_aspect_ratio():
    assert aspect_ratio(Image.new("RGB", (512, 320))) == aspect_ratio(Image.new("RGB", (320, 512))) == 1.6


# ------------------------------------------------------------------------------------------ loading

def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 10, 20))
    image = load_image(encode(rgba, "PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((15, 5)) == (255, 255, 255) and image.getpixel((5, 5)) == (0, 0, 255)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    loaded = load_image(encode(image, "JPEG", exif=exif, quality=95))
    assert loaded.size == (20, 40)
    top, bottom = loaded.getpixel((10, 2)), loaded.getpixel((10, 37))
    assert top[2] > 200 and top[0] < 50 and bottom[0] > 200 and bottom[2] < 50


def test_cmyk_becomes_rgb():
    loaded = load_image(encode(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "TIFF"))
    assert loaded.mode == "RGB" and loaded.getpixel((5, 5)) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.full((20, 20), 0x8080, np.uint16)
    values[0, 0] = 65535
    loaded = load_image(encode(Image.fromarray(values), "PNG"))
    assert loaded.getpixel((5, 5)) == (128, 128, 128) and loaded.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency_and_grayscale():
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 10, 20))
    loaded = load_image(encode(palette, "PNG", transparency=0))
    assert loaded.getpixel((5, 5)) == (255, 0, 0) and loaded.getpixel((15, 5)) == (255, 255, 255)
    assert load_image(np.full((20, 30), 7, np.uint8)).getpixel((0, 0)) == (7, 7, 7)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert load_image(data).getpixel((3, 3)) == (255, 0, 0)


def test_paths_and_arrays(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(encode(Image.new("RGB", (30, 20), (1, 2, 3)), "PNG"))
    assert load_image(path).size == (30, 20) and load_image(str(path)).getpixel((0, 0)) == (1, 2, 3)
    rgba = np.zeros((20, 30, 4), np.uint8)
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match="must be uint8"):
        load_image(np.zeros((20, 30, 3), np.float32))
    with pytest.raises(ValueError, match="HxW, HxWx1, HxWx3 or HxWx4"):
        load_image(np.zeros((20, 30, 2), np.uint8))


@pytest.mark.parametrize("source,message", [
    (encode(Image.new("RGB", (1, 1)), "PNG"), "too small .*at least 16 px"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (b"", "empty"),
    (b"definitely not an image", "not an image"),
    (encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")[:300], "corrupt or truncated"),
    (encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")[:400], "corrupt or truncated"),
    (png_header_only(100, 100), "corrupt or truncated"),
    (png_header_only(30000, 30000), "too large"),
    (png_header_only(8000, 8000), r"too large \(8000x8000 px = 64.0 megapixels\)"),
    (12345, "unsupported image input"),
])
def test_bad_inputs_raise(source, message):
    with pytest.raises(ValueError, match=message):
        load_image(source)


def test_bad_files_raise(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_image(empty)
    with pytest.raises(ValueError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="not found"):
        load_image(tmp_path)


# ------------------------------------------------------------------------------------------ CLIP

def test_clip_preprocess_shapes_and_grey():
    frames = torch.zeros(2, 3, 320, 512)
    out = clip_preprocess(frames)
    assert out.shape == (2, 3, 224, 224)
    grey = (0.5 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711])
    assert torch.allclose(out, grey.view(1, 3, 1, 1).expand_as(out), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        clip_preprocess(torch.zeros(3, 320, 512))


def manifest_vision_sd() -> dict[str, torch.Tensor]:
    full = json.loads((MANIFESTS / "i2v_stage1_full.json").read_text())
    prefix = "embedder.model."
    return {k[len(prefix):]: torch.empty(shape, device="meta") for k, shape in full.items() if k.startswith(prefix)}


def test_release_vision_tower_converts_to_clip_vision_model():
    converted = openclip_vision_to_hf(manifest_vision_sd(), I2V_09B.vision)
    with torch.device("meta"):
        model = build_vision_encoder(I2V_09B.vision)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert sum(v.numel() for v in converted.values()) == 630_766_080  # the tower without proj


def test_vision_conversion_without_prefix_and_with_unknown_keys():
    sd = {k[len("visual."):]: v for k, v in manifest_vision_sd().items() if k.startswith("visual.")}
    assert len(openclip_vision_to_hf(sd, I2V_09B.vision)) == 7 + 32 * 16
    with pytest.raises(ValueError, match="unknown vision-tower keys"):
        openclip_vision_to_hf({**sd, "attnpool.weight": torch.empty(1, device="meta")}, I2V_09B.vision)
    with pytest.raises(ValueError, match="expects 31"):
        openclip_vision_to_hf(sd, dict(I2V_09B.vision, layers=31))


# ------------------------------------------------------------------------------------------ Resampler

def test_resampler_matches_release_manifest_on_meta():
    manifest = json.loads((MANIFESTS / "i2v_resampler.json").read_text())
    with torch.device("meta"):
        resampler = Resampler(**I2V_09B.resampler)
    shapes = {f"image_proj_model.{k}": list(v.shape) for k, v in resampler.state_dict().items()}
    assert shapes == manifest
    assert sum(p.numel() for p in resampler.parameters()) == 48_787_456


def fixture_parts(golden_dir):
    """Vision and resampler state dicts, vision cfg and resampler params of the tiny golden fixture."""
    fx = Fixture.load(golden_dir / "image_cond_tiny")
    sd = fx.weights()
    vision = {k[len("embedder.model."):]: v for k, v in sd.items() if k.startswith("embedder.model.")}
    resampler = {k[len("image_proj_model."):]: v for k, v in sd.items() if k.startswith("image_proj_model.")}
    config = ModelConfig.from_official(fx.name, fx.config["model"], fx.config["open_clip_model_cfg"])
    return vision, resampler, config.vision, config.resampler


def test_conditioner_tokens_and_dtype(golden_dir):
    model = ImageConditioner.from_state_dicts(*fixture_parts(golden_dir))
    frames = torch.rand(2, 3, 40, 64) * 2 - 1
    with torch.no_grad():
        tokens = model.image_tokens(torch.cat([frames, torch.zeros(1, 3, 40, 64)]))
        assert tokens.shape == (3, 256, 16)
        assert torch.allclose(model.image_tokens(frames[1:]), tokens[1:2], atol=1e-5)  # batch-independent
        assert torch.allclose(model.uncond_tokens(frames[:1]), tokens[2:], atol=1e-5)
        assert not torch.allclose(tokens[0], tokens[2], atol=1e-3)
        half = model.to(dtype=torch.bfloat16).image_tokens(frames)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), tokens[:2], atol=0.1)


def test_from_state_dicts_rejects_mismatched_weights(golden_dir):
    vision, resampler, vision_cfg, params = fixture_parts(golden_dir)
    with pytest.raises(ValueError, match="resampler weights do not match"):
        ImageConditioner.from_state_dicts(vision, resampler, vision_cfg, dict(params, depth=3))
    with pytest.raises(ValueError, match="vision tower weights do not match"):
        ImageConditioner.from_state_dicts(vision, resampler, dict(vision_cfg, patch_size=16), params)


def test_random_conditioner_is_seeded():
    frames = torch.rand(1, 3, 32, 48) * 2 - 1
    tokens = []
    for _ in range(2):
        torch.manual_seed(3)
        with torch.no_grad():
            tokens.append(ImageConditioner.random(I2V_TINY.vision, I2V_TINY.resampler).image_tokens(frames))
    assert tokens[0].shape == (1, 256, I2V_TINY.resampler["output_dim"])
    assert torch.isfinite(tokens[0]).all() and torch.equal(tokens[0], tokens[1])
