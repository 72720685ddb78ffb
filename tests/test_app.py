"""The real app in a subprocess, driven through gradio_client: every endpoint, validation, and the no-weights mode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from PIL import Image

from appserver import REPO, running_app
from hummingbird.video import probe_video, read_video, write_mp4

IMAGE = REPO / "examples" / "images" / "chelsea.png"
T2V = dict(prompt="A cute happy Corgi playing in park, sunset, animated style.", variant="0.9b", steps=2, frames=3,
           resolution="64x64", guidance=7.5, fps=8, seed=7, randomize_seed=False, upscale=False)
I2V = dict(prompt="a cat blinks", steps=2, frames=3, resolution="64x128", guidance=7.5, guidance_rescale=0.7,
           motion_fps=24, playback_fps=12, eta=1.0, reneg=True, negative_prompt="", aspect="crop", seed=3,
           randomize_seed=False, upscale=False)
# Results panel outputs: video, summary, before/after, mp4, upscaled, gif, settings, snippet (+ seed)
VIDEO, SUMMARY, COMPARE, MP4, UPSCALED, GIF, SETTINGS, SNIPPET, SEED = range(9)


@pytest.fixture(scope="module")
def tiny_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("tiny"), "--tiny") as url:
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def client(tiny_url: str, downloads: Path) -> Client:
    return Client(tiny_url, verbose=False, download_files=str(downloads))


def t2v(client: Client, **changes: Any) -> tuple[Any, ...]:
    return client.predict(**{**T2V, **changes}, api_name="/text_to_video")


def i2v(client: Client, **changes: Any) -> tuple[Any, ...]:
    return client.predict(**{"image": handle_file(str(IMAGE)), **I2V, **changes}, api_name="/image_to_video")


def assert_browser_mp4(path: str, frames: int, width: int, height: int, fps: float) -> None:
    info = probe_video(path)
    assert (info.codec, info.pix_fmt, info.profile, info.faststart) == ("h264", "yuv420p", "High", True)
    assert (info.frames, info.width, info.height) == (frames, width, height)
    assert info.fps == pytest.approx(fps)


def test_named_endpoints_are_documented(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/text_to_video", "/image_to_video", "/upscale_video"} <= set(api)
    params = [p["parameter_name"] for p in api["/text_to_video"]["parameters"]]
    assert params == list(T2V)
    assert [p["parameter_name"] for p in api["/image_to_video"]["parameters"]] == ["image", *I2V]


def test_text_to_video(client: Client) -> None:
    out = t2v(client)
    assert_browser_mp4(out[VIDEO], frames=3, width=64, height=64, fps=8)
    assert out[MP4] == out[VIDEO] and out[UPSCALED] is None and out[COMPARE] is None
    assert probe_video(out[GIF]).frames == 3
    name = Path(out[MP4]).name
    assert name == "hummingbird_t2v_tiny_seed7_s2_f3_64x64.mp4"  # descriptive, never the prompt
    settings = out[SETTINGS]
    assert {k: settings[k] for k in ("model", "steps", "frames", "fps", "seed", "upscale")} == {
        "model": "t2v-tiny", "steps": 2, "frames": 3, "fps": 8, "seed": 7, "upscale": "off"}
    assert settings["device"] == "cpu" and {"denoise", "decode", "mp4"} <= set(settings["timings_s"])
    assert out[SEED] == 7
    assert "noise" in out[SUMMARY] and "Seed **7**" in out[SUMMARY]


def test_randomized_seed_is_returned(client: Client) -> None:
    out = t2v(client, randomize_seed=True, frames=1, steps=1)
    assert isinstance(out[SEED], int) and out[SETTINGS]["seed"] == out[SEED]
    assert f"seed{out[SEED]}_" in Path(out[MP4]).name


def test_client_snippet_reproduces_the_result(client: Client, tiny_url: str) -> None:
    out = t2v(client, seed=11)
    snippet = out[SNIPPET]
    assert "api_name='/text_to_video'" in snippet and "seed=11" in snippet and tiny_url in snippet
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # noqa: S102 - running the shown snippet is the point of the test
    again, _ = read_video(scope["result"][0])
    first, _ = read_video(out[MP4])
    np.testing.assert_array_equal(again, first)


def test_text_to_video_with_upscale(client: Client) -> None:
    out = t2v(client, upscale=True, frames=2)
    assert_browser_mp4(out[VIDEO], frames=2, width=256, height=256, fps=8)
    assert out[UPSCALED] == out[VIDEO] and Path(out[MP4]).name.endswith("_64x64.mp4")
    assert_browser_mp4(out[MP4], frames=2, width=64, height=64, fps=8)
    assert out[SETTINGS]["upscale"]["output"] == "256x256"
    before, after = out[COMPARE]
    assert Image.open(before).size == Image.open(after).size == (256, 256)


def test_image_to_video(client: Client) -> None:
    out = i2v(client)
    assert_browser_mp4(out[VIDEO], frames=3, width=128, height=64, fps=12)  # the file uses the playback fps
    settings = out[SETTINGS]
    assert (settings["motion_fps"], settings["playback_fps"], settings["reneg"]) == (24, 12, True)
    assert settings["aspect"] == "crop" and settings["negative_prompt"] is None
    assert "image=handle_file(" in out[SNIPPET] and "api_name='/image_to_video'" in out[SNIPPET]


def test_image_to_video_padded_without_reneg(client: Client) -> None:
    out = i2v(client, aspect="pad", reneg=False, negative_prompt="blurry", resolution="64x64", frames=2)
    assert_browser_mp4(out[VIDEO], frames=2, width=64, height=64, fps=12)
    assert (out[SETTINGS]["reneg"], out[SETTINGS]["negative_prompt"]) == (False, "blurry")


def test_upscale_video(client: Client, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    source = write_mp4(rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8), tmp_path / "clip.mp4", 10)
    out = client.predict(media=handle_file(str(source)), model="animevideo", size="x2", api_name="/upscale_video")
    assert_browser_mp4(out[VIDEO], frames=4, width=128, height=96, fps=10)
    assert out[UPSCALED] == out[VIDEO] and out[MP4] is None
    assert out[SETTINGS]["upscale"] == {"model": "animevideo", "size": "x2", "output": "128x96"}


def test_upscale_image_gives_png(client: Client) -> None:
    out = client.predict(media=handle_file(str(IMAGE)), model="animevideo", size="x2", api_name="/upscale_video")
    assert out[VIDEO] is None and out[SETTINGS]["media"] == "image" and "print(result[4])" in out[SNIPPET]
    with Image.open(IMAGE) as source, Image.open(out[UPSCALED]) as result:
        assert result.format == "PNG" and result.size == (source.width * 2, source.height * 2)


T2V_BAD = [
    (dict(prompt="   "), "prompt", "must not be empty"),
    (dict(prompt="x" * 5000), "prompt", "too long"),
    (dict(steps=100), "steps", "between 1 and 8"),
    (dict(steps="abc"), "steps", "whole number"),
    (dict(frames=2.5), "frames", "whole number"),
    (dict(frames=27), "frames", "between 1 and 26"),
    (dict(resolution="65x64"), "resolution", "multiple of 64"),
    (dict(resolution="huge"), "resolution", "HEIGHTxWIDTH"),
    (dict(resolution=320), "resolution", "HEIGHTxWIDTH"),
    (dict(variant="2b"), "variant", "one of"),
    (dict(guidance=99), "guidance", "between 2 and 14"),
    (dict(fps=None), "fps", "whole number"),
    (dict(seed=-1), "seed", "between 0 and 2147483647"),
    (dict(seed=2**40), "seed", "between 0 and 2147483647"),
    (dict(upscale="yes"), "upscale", "true or false"),
]


@pytest.mark.parametrize(("changes", "param", "message"), T2V_BAD, ids=[f"{p}-{i}" for i, (_, p, _) in
                                                                           enumerate(T2V_BAD)])
def test_text_to_video_rejects_bad_values(client: Client, changes: dict, param: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        t2v(client, **changes)
    assert re.search(rf"- {param}: .*{message}", str(err.value)), str(err.value)


def test_every_bad_parameter_is_reported(client: Client) -> None:
    with pytest.raises(ValidationError) as err:
        t2v(client, steps=0, fps=100, resolution="1x1")
    text = str(err.value)
    assert "3 parameter(s) failed" in text and "- steps:" in text and "- fps:" in text and "- resolution:" in text


def test_image_to_video_rejects_bad_values(client: Client, tmp_path: Path) -> None:
    small, wide, broken = tmp_path / "small.png", tmp_path / "wide.png", tmp_path / "broken.png"
    Image.new("RGB", (200, 100)).save(small)
    Image.new("RGB", (800, 200)).save(wide)
    broken.write_bytes(b"not an image at all")
    cases = [
        (dict(image=None), "image", "required"),
        (dict(image=handle_file(str(small))), "image", "too small"),
        (dict(image=handle_file(str(wide))), "image", "elongated"),
        (dict(image=handle_file(str(broken))), "image", "cannot be used"),
        (dict(aspect="stretch"), "aspect", "one of 'crop', 'pad'"),
        (dict(motion_fps=100), "motion_fps", "between 15 and 30"),
        (dict(guidance_rescale=1.5), "guidance_rescale", "between 0 and 1"),
        (dict(reneg="on"), "reneg", "true or false"),
    ]
    for changes, param, message in cases:
        with pytest.raises(ValidationError) as err:
            i2v(client, **changes)
        assert re.search(rf"- {param}: .*{message}", str(err.value)), str(err.value)


def test_upscale_rejects_bad_values(client: Client, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0\0\0\x18ftypisom" + b"x" * 64)
    cases = [
        (dict(media=handle_file(str(broken))), "media", "neither an image nor a video"),
        (dict(media=handle_file(str(IMAGE)), model="hummingbird"), "model", "one of"),
        (dict(media=handle_file(str(IMAGE)), size="x3"), "size", "one of"),
    ]
    for changes, param, message in cases:
        with pytest.raises(ValidationError) as err:
            client.predict(**{"model": "animevideo", "size": "x4", **changes}, api_name="/upscale_video")
        assert re.search(rf"- {param}: .*{message}", str(err.value)), str(err.value)


def test_server_keeps_serving_after_bad_requests(client: Client) -> None:
    for changes in (dict(steps=-5), dict(prompt=""), dict(resolution=None)):
        with pytest.raises(ValidationError):
            t2v(client, **changes)
    assert_browser_mp4(t2v(client, frames=1, steps=1)[VIDEO], frames=1, width=64, height=64, fps=8)


@pytest.fixture(scope="module")
def faulty_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny app whose first generation runs out of memory and whose second produces NaN."""
    with running_app(tmp_path_factory.mktemp("faults"), "--tiny", env={"HUMMINGBIRD_INJECT": "oom:1,nan:1"}) as url:
        yield url


def test_runtime_failures_are_explained_and_survived(faulty_url: str, tmp_path: Path) -> None:
    client = Client(faulty_url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(AppError, match="Out of memory generating .* try fewer frames, a smaller size"):
        t2v(client)
    with pytest.raises(AppError, match=r"invalid values \(NaN or infinity\).*try another seed"):
        t2v(client)
    assert_browser_mp4(t2v(client)[VIDEO], frames=3, width=64, height=64, fps=8)


@pytest.fixture(scope="module")
def offline_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("offline")
    nowhere = workdir / "missing"
    env = {"HUMMINGBIRD_T2V_WEIGHTS": str(nowhere / "t2v"), "HUMMINGBIRD_I2V_WEIGHTS": str(nowhere / "i2v"),
           "HUMMINGBIRD_SR_WEIGHTS": str(nowhere / "sr"), "HUMMINGBIRD_TINY": "", "HF_HOME": str(workdir / "hf")}
    with running_app(workdir, env=env) as url:
        yield url


def test_without_weights_the_app_explains_and_still_upscales(offline_url: str, tmp_path: Path) -> None:
    client = Client(offline_url, verbose=False, download_files=str(tmp_path))
    texts = [str(c["props"].get("value")) for c in client.config["components"] if c.get("type") == "markdown"]
    page = "\n".join(texts)
    for what, env in (("Text-to-video", "HUMMINGBIRD_T2V_WEIGHTS"), ("Image-to-video", "HUMMINGBIRD_I2V_WEIGHTS")):
        assert re.search(rf"{what}.*weights are not available.*huggingface-cli download.*{env}", page), page
    assert "bundled Real-ESRGAN" in page and "HUMMINGBIRD_SR_WEIGHTS" in page
    with pytest.raises(ValidationError, match="variant: Text-to-video 0.9B weights are not available"):
        client.predict(**T2V, api_name="/text_to_video")
    with pytest.raises(ValidationError, match="image: Image-to-video weights are not available"):
        client.predict(image=handle_file(str(IMAGE)), **I2V, api_name="/image_to_video")
    rng = np.random.default_rng(1)
    source = write_mp4(rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8), tmp_path / "clip.mp4", 8)
    out = client.predict(media=handle_file(str(source)), model="animevideo", size="x4", api_name="/upscale_video")
    assert_browser_mp4(out[VIDEO], frames=2, width=192, height=128, fps=8)
