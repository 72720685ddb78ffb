"""The app under abuse: bad values and files from scripts, path tricks, faults, crowds and a long run.

Everything runs against the real app (``python app.py --tiny``) in a subprocess, through gradio_client or, for
what gradio_client cannot send (NaN, lone surrogates, paths that are not uploads), raw HTTP.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from gradio_client.utils import QueueError, Status
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from appserver import REPO, AppServer, running_server
from hummingbird.pipelines import T2VPipeline
from hummingbird.video import read_video, write_mp4

FAKE_TOKEN = "hf_FAKEtoken0123456789abcdefSECRET"
OUTPUT_TTL_S = 5
MAX_UPLOAD_MB = 1
QUEUE_SIZE = 8
T2V = dict(prompt="a bird over the sea", variant="0.9b", steps=1, frames=1, resolution="64x64", guidance=7.5, fps=8,
           seed=7, randomize_seed=False, upscale=False)
I2V = dict(prompt="a cat blinks", steps=1, frames=1, resolution="64x64", guidance=7.5, guidance_rescale=0.7,
           motion_fps=24, playback_fps=8, eta=1.0, reneg=True, negative_prompt="", aspect="crop", seed=3,
           randomize_seed=False, upscale=False)
UPSCALE = dict(model="animevideo", size="x2")
SUMMARY, MP4, UPSCALED, GIF, SETTINGS, SEED = 1, 3, 4, 5, 6, 8  # output positions (the session state is not one)
SLOW = dict(steps=8, frames=26, resolution="128x128")  # tens of seconds on a CPU: long enough to stop or queue


# ============================================================================================ servers
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The tiny app with a short output lifetime, a 1 MB upload cap, a queue of eight and a (fake) secret in its
    environment."""
    env = {"HF_TOKEN": FAKE_TOKEN, "HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN, "HUMMINGBIRD_QUEUE_SIZE": str(QUEUE_SIZE),
           "HUMMINGBIRD_OUTPUT_TTL": str(OUTPUT_TTL_S), "HUMMINGBIRD_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB)}
    with running_server(tmp_path_factory.mktemp("hardening"), "--tiny", env=env) as app:
        yield app


@pytest.fixture(scope="module")
def client(server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The tiny app in bfloat16 whose next generations run out of memory once and then produce NaN three times
    (twice in one request: bfloat16 and its float32 retry; then once, recovered)."""
    env = {"HUMMINGBIRD_INJECT": "oom:1,nan:3", "HUMMINGBIRD_DTYPE": "bfloat16"}
    with running_server(tmp_path_factory.mktemp("faulty"), "--tiny", env=env) as app:
        yield app


def t2v(client: Client, **changes: Any) -> tuple[Any, ...]:
    return client.predict(**{**T2V, **changes}, api_name="/text_to_video")


def i2v(client: Client, image: Any, **changes: Any) -> tuple[Any, ...]:
    return client.predict(image=image, **{**I2V, **changes}, api_name="/image_to_video")


def upscale(client: Client, media: Any, **changes: Any) -> tuple[Any, ...]:
    return client.predict(media=media, **{**UPSCALE, **changes}, api_name="/upscale_video")


def assert_healthy(server: AppServer) -> None:
    """The process is up and answers."""
    assert server.alive(), server.log.read_text()[-3000:]
    assert httpx.get(f"{server.url}config", timeout=10).status_code == 200


def raw_call(server: AppServer, api: str, data: list[Any]) -> tuple[int, Any]:
    """POST ``data`` to ``/gradio_api/call/<api>`` as Python's json writes it (NaN, Infinity and lone surrogates
    included); (status, detail) of a refusal, or (200, the streamed events) once the call ran."""
    response = httpx.post(f"{server.url}gradio_api/call/{api}", content=json.dumps({"data": data}),
                          headers={"content-type": "application/json"}, timeout=30)
    if response.status_code != 200:
        return response.status_code, response.json().get("detail")
    event_id = response.json()["event_id"]
    return 200, httpx.get(f"{server.url}gradio_api/call/{api}/{event_id}", timeout=120).text


def problems(detail: list[dict[str, Any]]) -> dict[str, str]:
    """Parameter -> message of a validator's refusal."""
    return {item["parameter_name"]: item["message"] for item in detail if not item["is_valid"]}


# ============================================================================================ bad files
def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A tiny PNG whose header claims 100000x100000 pixels (a decompression bomb)."""
    data = bytearray(png_bytes(Image.new("1", (64, 64))))
    struct.pack_into(">II", data, 16, 100_000, 100_000)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_file(folder: Path, name: str, content: bytes | Callable[[Path], Any]) -> str:
    """Write ``content`` (bytes, or a writer of the path) to ``folder/name``; the path."""
    path = folder / name
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    return str(path)


def exif_rotated(path: Path, width: int = 200, height: int = 136) -> None:
    """A ``width`` x ``height`` JPEG whose EXIF orientation (6) shows it rotated by 90 degrees."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(noise(height, width)).save(path, format="JPEG", exif=exif.tobytes())


BAD_IMAGES: list[tuple[str, bytes | Callable[[Path], Any], str]] = [
    ("empty.png", b"", r"empty \(0 bytes\)"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, "cannot be used"),
    ("text.png", b"hello, this is not a picture\n" * 10, "not an image in a supported format"),
    ("truncated.png", png_bytes(Image.fromarray(noise(200, 200)))[:3000], "corrupt or truncated"),
    ("one.png", png_bytes(Image.new("RGB", (1, 1))), "too small"),
    ("small.png", png_bytes(Image.new("RGB", (200, 100))), "too small"),
    ("wide.png", png_bytes(Image.new("RGB", (900, 200))), "too elongated"),
    ("bomb.png", bomb_png(), "too large"),
]
ODD_IMAGES: list[tuple[str, Callable[[Path], Any]]] = [
    ("animated.gif", lambda p: Image.fromarray(noise(144, 192)).save(
        p, save_all=True, append_images=[Image.fromarray(noise(144, 192, 1))], duration=100, loop=0)),
    ("cmyk.jpg", lambda p: Image.new("CMYK", (192, 144), (0, 128, 255, 10)).save(p)),
    ("sixteen.png", lambda p: Image.fromarray(np.linspace(0, 65535, 192 * 144).astype(np.uint16).reshape(144, 192))
     .save(p)),
    ("rgba.png", lambda p: Image.fromarray(np.dstack([noise(144, 192), np.full((144, 192), 90, np.uint8)]))
     .save(p)),
    ("rotated.jpg", exif_rotated),
    ("gray.png", lambda p: Image.fromarray(noise(144, 192)[:, :, 0]).save(p)),
]


# ============================================================================================ bad values
T2V_BAD: list[tuple[dict[str, Any], str, str]] = [
    (dict(prompt=""), "prompt", "must not be empty"),
    (dict(prompt=" \n\t "), "prompt", "must not be empty"),
    (dict(prompt=None), "prompt", "must not be empty"),
    (dict(prompt="x" * 200_000), "prompt", "too long .200000 characters"),
    (dict(prompt="a\x00b"), "prompt", "NUL"),
    (dict(steps="8"), "steps", "whole number between 1 and 8, got '8'"),
    (dict(steps=2.5), "steps", "whole number"),
    (dict(steps=-3), "steps", "between 1 and 8"),
    (dict(steps=10**30), "steps", "between 1 and 8"),
    (dict(steps=True), "steps", "whole number"),
    (dict(steps=[1, 2]), "steps", "whole number"),
    (dict(frames=0), "frames", "between 1 and 26"),
    (dict(frames=None), "frames", "whole number"),
    (dict(resolution="abc"), "resolution", "HEIGHTxWIDTH"),
    (dict(resolution="65x64"), "resolution", "multiple of 64"),
    (dict(resolution="64x64x64"), "resolution", "HEIGHTxWIDTH"),
    (dict(resolution="²x64"), "resolution", "HEIGHTxWIDTH"),
    (dict(resolution="9" * 5000 + "x64"), "resolution", "HEIGHTxWIDTH"),
    (dict(resolution="99999x99999"), "resolution", "between 64 and 1024"),
    (dict(resolution=320), "resolution", "HEIGHTxWIDTH"),
    (dict(guidance=-1), "guidance", "between 2 and 14"),
    (dict(guidance="7.5"), "guidance", "a number between 2 and 14"),
    (dict(fps=0), "fps", "between 4 and 24"),
    (dict(seed=-1), "seed", "between 0 and 2147483647"),
    (dict(seed=2**63), "seed", "between 0 and 2147483647"),
    (dict(seed=1.5), "seed", "whole number"),
    (dict(randomize_seed="no"), "randomize_seed", "true or false"),
    (dict(upscale=None), "upscale", "true or false"),
    (dict(variant=""), "variant", "one of '0.9b', '0.7b'"),
    (dict(variant="x" * 100_000), "variant", "one of '0.9b', '0.7b'; got 'xxx"),
]
I2V_BAD: list[tuple[dict[str, Any], str, str]] = [
    (dict(aspect="stretch"), "aspect", "one of 'crop', 'pad'"),
    (dict(eta=2), "eta", "between 0 and 1"),
    (dict(guidance_rescale=-0.1), "guidance_rescale", "between 0 and 1"),
    (dict(motion_fps=100), "motion_fps", "between 15 and 30"),
    (dict(playback_fps=0), "playback_fps", "between 4 and 24"),
    (dict(negative_prompt="n" * 3000), "negative_prompt", "too long"),
    (dict(reneg="yes"), "reneg", "true or false"),
    (dict(steps=61), "steps", "between 1 and 60"),
]
RAW_BAD: list[tuple[int, Any, str, str]] = [  # what gradio_client refuses to send (T2V argument index)
    (5, float("nan"), "guidance", "a number between 2 and 14, got nan"),
    (2, float("inf"), "steps", "whole number between 1 and 8, got inf"),
    (6, float("-inf"), "fps", "whole number between 4 and 24, got -inf"),
    (7, float("nan"), "seed", "got nan"),
    (0, "a \ud800 lone surrogate", "prompt", "not valid Unicode"),
]


def assert_refused(err: pytest.ExceptionInfo, param: str, message: str) -> None:
    assert re.search(rf"- {param}: [^\n]*{message}", str(err.value)), str(err.value)[:2000]
    assert len(str(err.value)) < 2000  # a huge value is quoted, not echoed


@pytest.mark.parametrize(("changes", "param", "message"), T2V_BAD, ids=[f"t2v-{p}-{i}" for i, (_, p, _) in
                                                                           enumerate(T2V_BAD)])
def test_bad_text_to_video_values_are_refused(client: Client, server: AppServer, changes: dict, param: str,
                                              message: str) -> None:
    with pytest.raises(ValidationError) as err:
        t2v(client, **changes)
    assert_refused(err, param, message)
    assert_healthy(server)


@pytest.mark.parametrize(("changes", "param", "message"), I2V_BAD, ids=[f"i2v-{p}" for _, p, _ in I2V_BAD])
def test_bad_image_to_video_values_are_refused(client: Client, server: AppServer, changes: dict, param: str,
                                               message: str) -> None:
    with pytest.raises(ValidationError) as err:
        i2v(client, handle_file(str(REPO / "examples" / "images" / "chelsea.png")), **changes)
    assert_refused(err, param, message)
    assert_healthy(server)


@pytest.mark.parametrize(("index", "value", "param", "message"), RAW_BAD, ids=[p for _, _, p, _ in RAW_BAD])
def test_values_json_clients_can_send_are_refused(server: AppServer, index: int, value: Any, param: str,
                                                  message: str) -> None:
    data = list(T2V.values())
    data[index] = value
    status, detail = raw_call(server, "text_to_video", data)
    assert status == 422 and re.search(message, problems(detail)[param]), detail
    assert_healthy(server)


@pytest.mark.parametrize(("name", "content", "message"), BAD_IMAGES, ids=[n for n, _, _ in BAD_IMAGES])
def test_bad_images_are_refused(client: Client, server: AppServer, tmp_path: Path, name: str,
                                content: bytes, message: str) -> None:
    image = handle_file(make_file(tmp_path, name, content))
    with pytest.raises(ValidationError) as err:
        i2v(client, image)
    assert_refused(err, "image", message)
    if name in ("empty.png", "corrupt.png", "text.png", "truncated.png", "bomb.png"):
        with pytest.raises(ValidationError) as err:
            upscale(client, handle_file(make_file(tmp_path, name, content)))
        assert_refused(err, "media", "empty|neither an image nor a video|corrupt|too large")
    assert_healthy(server)


def _long_video(path: Path) -> None:
    write_mp4(np.zeros((70, 16, 16, 3), np.uint8), path, 24)


def _wide_video(path: Path) -> None:
    write_mp4(np.zeros((2, 32, 1040, 3), np.uint8), path, 24)


BAD_MEDIA: list[tuple[str, bytes | Callable[[Path], Any], str]] = [
    ("broken.mp4", b"\0\0\0\x18ftypisom" + b"x" * 64, "neither an image nor a video"),
    ("noise.bin", bytes(range(256)) * 16, "neither an image nor a video"),
    ("long.mp4", _long_video, "has more than 64 frames; at most 64"),
    ("wide.mp4", _wide_video, "1040x32 px; the longer side must be at most 1024"),
    ("wide.png", png_bytes(Image.new("RGB", (1100, 300))), "1100x300 px; the longer side must be at most 1024"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_MEDIA, ids=[n for n, _, _ in BAD_MEDIA])
def test_bad_media_to_upscale_are_refused(client: Client, server: AppServer, tmp_path: Path, name: str,
                                         content: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        upscale(client, handle_file(make_file(tmp_path, name, content)))
    assert_refused(err, "media", message)
    assert_healthy(server)


def test_bad_upscale_choices_and_missing_files_are_refused(client: Client, server: AppServer) -> None:
    image = str(REPO / "examples" / "images" / "chelsea.png")
    for media, changes, param, message in [(None, {}, "media", "required"),
                                           (handle_file(image), dict(model="hummingbird"), "model", "one of"),
                                           (handle_file(image), dict(model=None), "model", "one of"),
                                           (handle_file(image), dict(size="x3"), "size", "one of")]:
        with pytest.raises(ValidationError) as err:
            upscale(client, media, **changes)
        assert_refused(err, param, message)
    with pytest.raises(ValidationError) as err:
        i2v(client, None)
    assert_refused(err, "image", "required")
    assert_healthy(server)


@pytest.mark.parametrize(("name", "write"), ODD_IMAGES, ids=[n for n, _ in ODD_IMAGES])
def test_odd_but_valid_images_are_animated(client: Client, tmp_path: Path, name: str, write: Callable) -> None:
    out = i2v(client, handle_file(make_file(tmp_path, name, write)))
    assert Path(out[MP4]).is_file() and out[SEED] == I2V["seed"]


def test_unicode_prompts_are_used_as_written(client: Client) -> None:
    prompt = "🐦 colibrí über dem Meer — 蜂鸟 \u202eRTL\u202c e\u0301"
    assert t2v(client, prompt=prompt)[SETTINGS]["prompt"] == prompt


def test_exif_rotation_is_applied_before_upscaling(client: Client, tmp_path: Path) -> None:
    out = upscale(client, handle_file(make_file(tmp_path, "rotated.jpg", lambda p: exif_rotated(p, 40, 24))))
    with Image.open(out[UPSCALED]) as result:
        assert result.size == (48, 80)  # shown 24x40 (rotated), then x2


def test_uploads_over_the_cap_are_refused(client: Client, server: AppServer, tmp_path: Path) -> None:
    big = make_file(tmp_path, "big.png", os.urandom((MAX_UPLOAD_MB + 1) * 2**20))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        upscale(client, handle_file(big))
    with open(big, "rb") as file:  # a script that skips the client's own check
        response = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("big.png", file)}, timeout=30)
    assert response.status_code in (400, 413) and "size" in response.text.lower(), response.text[:500]
    assert_healthy(server)


def test_files_outside_the_upload_folder_are_never_read(server: AppServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(Image.fromarray(noise(160, 160))))
    server.cache.mkdir(exist_ok=True)
    (server.cache / "to_secret.png").symlink_to(secret)
    (server.cache / "to_passwd").symlink_to("/etc/passwd")

    def file_data(path: str, **extra: str) -> dict[str, Any]:
        return {"path": path, "meta": {"_type": "gradio.FileData"}, **extra}

    attempts = ["../../etc/passwd", "/etc/passwd", file_data("../../etc/passwd"), file_data("/etc/passwd"),
                file_data(str(secret)), file_data(str(server.cache / ".." / secret.name)),
                file_data("file:///etc/passwd", url="file:///etc/passwd"),
                file_data("x.png", url=f"file://{secret}"),
                file_data(str(server.cache / "to_secret.png")), file_data(str(server.cache / "to_passwd"))]
    for attempt in attempts:
        for api, data in (("upscale_video", [attempt, *UPSCALE.values()]),
                          ("image_to_video", [attempt, *I2V.values()])):
            status, detail = raw_call(server, api, data)
            assert status in (400, 422), (attempt, status, detail)
            text = json.dumps(detail)
            assert "root:" not in text and "upscaled" not in text, (attempt, text)
            assert re.search("not uploaded by a user|valid dictionary|'meta' field must be explicitly provided|"
                             "must be a file uploaded to this app", text), (attempt, text)
    assert_healthy(server)


# ============================================================================================ faults
def test_storage_failure_is_explained_and_survived(client: Client, server: AppServer) -> None:
    outputs = server.cache / "hummingbird"
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.write_text("a file where the output folders belong")
    try:
        with pytest.raises(AppError, match="could not store the result") as err:
            t2v(client)
        assert err.value.title == "Server storage problem"
    finally:
        outputs.unlink()
    assert Path(t2v(client)[MP4]).is_file()


def test_out_of_memory_and_nan_are_recovered_from(faulty: AppServer, tmp_path: Path) -> None:
    client = Client(faulty.url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(AppError, match=r"Out of memory generating 1 frames at 64x64 .* try fewer frames, a "
                                       r"smaller size") as err:
        t2v(client)
    assert err.value.title == "Out of memory"
    with pytest.raises(AppError, match=r"invalid values \(NaN or infinity\).*even in float32; try another seed") \
            as err:
        t2v(client)
    assert err.value.title == "Generation failed"
    recovered = t2v(client)  # NaN in bfloat16 once more: retried in float32
    assert recovered[SETTINGS]["precision_fallback"] == "float32"
    assert "gave invalid values (NaN or infinity), so this result was made in float32" in recovered[SUMMARY]
    clean = t2v(client)
    assert "precision_fallback" not in clean[SETTINGS] and clean[SETTINGS]["dtype"] == "bfloat16"
    assert read_video(clean[MP4])[0].shape == (1, 64, 64, 3)


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_full_queue_is_explained_and_stop_frees_the_worker(server: AppServer) -> None:
    slow_client, *waiting_clients, late_client = (Client(server.url, verbose=False, download_files=False)
                                                  for _ in range(QUEUE_SIZE + 2))
    slow = slow_client.submit(**{**T2V, **SLOW}, api_name="/text_to_video")
    _wait_for(lambda: slow.status().code == Status.PROCESSING, 60, "the slow job to start")
    waiting = [c.submit(**T2V, api_name="/text_to_video") for c in waiting_clients]
    _wait_for(lambda: all(job.status().code == Status.IN_QUEUE for job in waiting), 30, "the queue to fill")
    with pytest.raises(QueueError, match="Queue is full"):
        late_client.predict(**T2V, api_name="/text_to_video")
    stopped_at = time.monotonic()  # the page's Stop button skips the (full) queue; so does this call
    response = httpx.post(f"{server.url}gradio_api/run/stop", json={"data": [], "session_hash":
                                                                   slow_client.session_hash}, timeout=30)
    assert response.status_code == 200, response.text
    with pytest.raises(AppError, match="Stopped: the job was cancelled"):
        slow.result(timeout=60)
    assert [job.result(timeout=60)[SEED] for job in waiting] == [T2V["seed"]] * QUEUE_SIZE  # nothing lost
    assert time.monotonic() - stopped_at < 30  # the stopped job gave the worker back at once
    assert_healthy(server)


# ============================================================================================ crowds
def test_concurrent_clients_each_get_their_own_video(server: AppServer, tmp_path: Path) -> None:
    jobs = [dict(T2V, prompt=f"prompt number {i}: a {word} at dawn", seed=1000 + 37 * i, frames=2)
            for i, word in enumerate(["fox", "boat", "kite", "tree", "cat", "car", "moon", "bell"])]

    def run(job: dict[str, Any]) -> tuple[Any, ...]:
        folder = tmp_path / str(job["seed"])
        return Client(server.url, verbose=False, download_files=str(folder)).predict(**job,
                                                                                    api_name="/text_to_video")

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    assert len({Path(out[MP4]).name for out in results}) == len(jobs)
    pipe = T2VPipeline.tiny()
    for job, out in zip(jobs, results, strict=True):
        assert out[SEED] == job["seed"] and out[SETTINGS]["prompt"] == job["prompt"]
        expected = pipe(job["prompt"], steps=1, frames=2, height=64, width=64, guidance=7.5, fps=8, seed=job["seed"])
        reference = write_mp4(expected.frames, tmp_path / f"expected_{job['seed']}.mp4", 8)
        np.testing.assert_array_equal(read_video(out[MP4])[0], read_video(reference)[0])


# ============================================================================================ fuzzing
def _junk() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                     st.lists(st.integers(0, 9), max_size=3))


def _mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A valid (cheap) value most of the time, anything at all otherwise."""
    return st.tuples(st.integers(0, 9), valid, _junk()).map(lambda drawn: drawn[1] if drawn[0] < 9 else drawn[2])


T2V_FUZZ = st.fixed_dictionaries(dict(
    prompt=_mostly(st.text(min_size=1, max_size=60)), variant=_mostly(st.sampled_from(["0.9b", "0.7b"])),
    steps=_mostly(st.just(1)), frames=_mostly(st.integers(1, 2)), resolution=_mostly(st.just("64x64")),
    guidance=_mostly(st.floats(2, 14)), fps=_mostly(st.integers(4, 24)),
    seed=_mostly(st.integers(0, 2**31 - 1)), randomize_seed=_mostly(st.booleans()), upscale=_mostly(st.just(False))))
I2V_FUZZ = st.fixed_dictionaries(dict(
    prompt=_mostly(st.text(max_size=60)), steps=_mostly(st.just(1)), frames=_mostly(st.just(1)),
    resolution=_mostly(st.sampled_from(["64x64", "64x128"])), guidance=_mostly(st.floats(1, 15)),
    guidance_rescale=_mostly(st.floats(0, 1)), motion_fps=_mostly(st.integers(15, 30)),
    playback_fps=_mostly(st.integers(4, 24)), eta=_mostly(st.floats(0, 1)), reneg=_mostly(st.booleans()),
    negative_prompt=_mostly(st.text(max_size=30)), aspect=_mostly(st.sampled_from(["crop", "pad"])),
    seed=_mostly(st.integers(0, 2**31 - 1)), randomize_seed=_mostly(st.booleans()), upscale=_mostly(st.just(False))))
UPSCALE_FUZZ = st.fixed_dictionaries(dict(model=_mostly(st.sampled_from(["animevideo", "x4plus"])),
                                          size=_mostly(st.sampled_from(["x2", "x4"]))))
FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(values=T2V_FUZZ)
def test_fuzzed_text_to_video_succeeds_or_is_refused(client: Client, values: dict[str, Any]) -> None:
    try:
        out = client.predict(**values, api_name="/text_to_video")
    except ValidationError as err:
        event("refused")
        assert re.search(r"parameter\(s\) failed validation:\n- \w+: ", str(err)), str(err)
        return
    event("generated")
    assert isinstance(out[SEED], int) and out[SETTINGS]["seed"] == out[SEED]
    if values["randomize_seed"] is False:
        assert out[SEED] == values["seed"]


@settings(FUZZ, max_examples=20)
@given(values=I2V_FUZZ)
def test_fuzzed_image_to_video_succeeds_or_is_refused(client: Client, values: dict[str, Any]) -> None:
    try:
        out = i2v(client, handle_file(str(REPO / "examples" / "images" / "chelsea.png")), **values)
    except ValidationError as err:
        event("refused")
        assert re.search(r"parameter\(s\) failed validation:\n- \w+: ", str(err)), str(err)
        return
    event("generated")
    assert isinstance(out[SEED], int) and out[SETTINGS]["playback_fps"] == values["playback_fps"]


@settings(FUZZ, max_examples=10)
@given(values=UPSCALE_FUZZ, side=st.integers(16, 40))
def test_fuzzed_upscale_succeeds_or_is_refused(client: Client, tmp_path_factory: pytest.TempPathFactory,
                                               values: dict[str, Any], side: int) -> None:
    image = tmp_path_factory.mktemp("fuzz") / "image.png"
    Image.fromarray(noise(side, side + 8, side)).save(image)
    try:
        out = client.predict(media=handle_file(str(image)), **values, api_name="/upscale_video")
    except ValidationError as err:
        event("refused")
        assert re.search(r"- (model|size): .*one of", str(err)), str(err)
        return
    event("upscaled")
    with Image.open(out[UPSCALED]) as result:
        assert result.size == ((side + 8) * int(values["size"][1]), side * int(values["size"][1]))


# ============================================================================================ soak
def _server_path(value: Any) -> str:
    """The server-side path of a returned file (the client was told not to download it)."""
    return value["path"] if isinstance(value, dict) else value


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _disk_bytes(folder: Path) -> tuple[int, int]:
    """(bytes of all files, number of our output folders) under Gradio's cache."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    outputs = folder / "hummingbird"
    folders = sum(1 for _ in outputs.glob("*/*")) if outputs.is_dir() else 0
    return sum(p.stat().st_size for p in files), folders


def test_soak_keeps_open_files_and_disk_bounded(server: AppServer) -> None:
    requests, workers = 200, 2
    clients = [Client(server.url, verbose=False, download_files=False) for _ in range(workers)]
    for c in clients:
        t2v(c)  # warm up: every lazy import and cache is in place before the baseline
    fds_before, (disk_before, _) = _open_files(server.pid), _disk_bytes(server.cache)
    sizes: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        out = t2v(clients[index % workers], seed=index, frames=1 + index % 2, prompt=f"soak {index}")
        assert out[SEED] == index
        with lock:
            sizes.append(sum(Path(_server_path(out[i])).stat().st_size for i in (MP4, GIF)))

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(requests)))
    assert len(sizes) == requests
    elapsed = time.monotonic() - started
    disk_peak, folders_peak = _disk_bytes(server.cache)
    time.sleep(OUTPUT_TTL_S + 1)
    t2v(clients[0])  # a new request sweeps outputs older than the TTL
    fds_after, (disk_after, folders_after) = _open_files(server.pid), _disk_bytes(server.cache)
    print(f"soak: {requests} requests in {elapsed:.0f} s; open files {fds_before} -> {fds_after}; "
          f"cache bytes {disk_before} -> peak {disk_peak} ({folders_peak} output folders) -> {disk_after} "
          f"({folders_after} output folders)")
    assert fds_after <= fds_before + 5
    assert folders_after <= 2  # the last request's, and at most one more still within the TTL
    assert disk_after <= disk_before + 2 * max(sizes)  # without the clean-up: about requests * mean(sizes)
    assert_healthy(server)


# ============================================================================================ secrets
def test_no_secret_reaches_the_log_or_the_answers(client: Client, server: AppServer) -> None:
    out = t2v(client, prompt="print the token")
    assert FAKE_TOKEN not in str(out)
    log = server.log.read_text()
    assert log.strip(), "the app wrote nothing to its log"
    assert FAKE_TOKEN not in log and "FAKEtoken" not in log
