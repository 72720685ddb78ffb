"""The batch command: VBench naming, prompt files, resumable runs, one process and two under accelerate launch."""

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hummingbird.batch import (MAX_STEM_BYTES, BatchJob, Entry, _drop_torn_line, read_entries, read_manifest, run,
                               shard_path, video_stem, work_list)
from hummingbird.cli import main
from hummingbird.pipelines import I2VPipeline
from hummingbird.video import probe_video

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["a corgi running on a beach", "a red/blue ball", "  "] + ["a very long prompt " * 20]
SMALL = ["--steps", "1", "--frames", "2", "--height", "64", "--width", "64"]
SAMPLES = 2


# ---------------------------------------------------------------- naming, seeds, prompt files
@given(st.text(min_size=1), st.text(min_size=1))
@settings(max_examples=300, deadline=None)
def test_different_prompts_never_share_a_safe_name(a, b):
    for prompt in (a, b):
        stem = video_stem(prompt)
        assert "/" not in stem and "\x00" not in stem and not stem.startswith(".")
        assert 0 < len(f"{stem}-99.mp4".encode()) <= 255
    assert a == b or video_stem(a) != video_stem(b)


def test_names_keep_plain_prompts_and_make_others_safe(tmp_path):
    assert video_stem("A cute happy Corgi, sunset, 4k") == "A cute happy Corgi, sunset, 4k"
    tricky = ["a/b", "a_b", "a\\b", "a\nb", ".hidden", "..", " padded ", "x" * 300, "x" * 299 + "y",
              "é" * 150, video_stem("a/b")]
    stems = [video_stem(prompt) for prompt in tricky]
    assert len(set(stems)) == len(tricky)
    assert all(len(stem.encode()) <= MAX_STEM_BYTES for stem in stems)
    for stem in stems:  # every name can be created, and the files stay distinct
        (tmp_path / f"{stem}-0.mp4").write_bytes(b"")
    assert len(list(tmp_path.iterdir())) == len(tricky)


def test_seeds_depend_on_base_prompt_and_sample_only():
    items = work_list([Entry("a"), Entry("b")], samples=3, base_seed=5)
    assert [(i.index, i.prompt, i.sample, i.video) for i in items[:4]] == [
        (0, "a", 0, "a-0.mp4"), (1, "a", 1, "a-1.mp4"), (2, "a", 2, "a-2.mp4"), (3, "b", 0, "b-0.mp4")]
    again = {i.video: i.seed for i in work_list([Entry("b"), Entry("c"), Entry("a")], samples=3, base_seed=5)}
    assert all(again[i.video] == i.seed for i in items)
    assert len({i.seed for i in items}) == len(items)
    assert work_list([Entry("a")], 1, 6)[0].seed != items[0].seed


def test_txt_prompts_and_vbench_i2v_images(tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n\n  a dog  \na cat\n", encoding="utf-8")
    assert read_entries(prompts, "t2v") == [Entry("a cat"), Entry("a dog")]
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a cat.png", "a dog.JPG", "notes.txt"):
        (images / name).write_bytes(b"x")
    assert read_entries(prompts, "i2v", images) == [Entry("a cat", images / "a cat.png"),
                                                    Entry("a dog", images / "a dog.JPG")]
    with pytest.raises(ValueError, match="needs --images"):
        read_entries(prompts, "i2v")
    with pytest.raises(ValueError, match="only for --task i2v"):
        read_entries(prompts, "t2v", images)
    (images / "a cat.webp").write_bytes(b"x")
    with pytest.raises(ValueError, match="several images are named after the prompt 'a cat'"):
        read_entries(prompts, "i2v", images)
    prompts.write_text("a cow\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 prompt\(s\) have no image.*'a cow'"):
        read_entries(prompts, "i2v", images)


def test_jsonl_prompts_and_their_errors(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "cat.png").write_bytes(b"x")
    (images / "dog.png").write_bytes(b"x")
    prompts = tmp_path / "p.jsonl"
    lines = [{"prompt": "a cat", "image": "cat.png", "dimension": "subject"},
             {"prompt": "the same cat", "image": str(images / "cat.png")}]
    prompts.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    assert read_entries(prompts, "i2v", images) == [Entry("a cat", images / "cat.png"),
                                                    Entry("the same cat", images / "cat.png")]
    with pytest.raises(ValueError, match="relative: give --images"):
        read_entries(prompts, "i2v")
    with pytest.raises(ValueError, match='p.jsonl line 1: "image" is only for --task i2v'):
        read_entries(prompts, "t2v")
    cases = {'{"prompt": "a", "image": "cat.png"}\n{"prompt": 3}\n': 'line 2: expected an object with a non-empty',
             '{"prompt": "a", "image": "cow.png"}\n': "line 1: image not found",
             '{"prompt": "a", "image": "cat.png"}\n{"prompt": "a", "image": "dog.png"}': "comes with two images",
             "{nope\n": "line 1: not valid JSON",
             "\n\n": "holds no prompts"}
    for text, message in cases.items():
        prompts.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            read_entries(prompts, "i2v", images)
    with pytest.raises(ValueError, match="must be .txt"):
        read_entries(tmp_path / "images" / "cat.png", "t2v")
    with pytest.raises(ValueError, match="not found"):
        read_entries(tmp_path / "missing.txt", "t2v")


def test_manifest_ignores_and_repairs_a_torn_line(tmp_path):
    (tmp_path / "a-0.mp4").write_bytes(b"x")
    (tmp_path / "b-0.mp4").write_bytes(b"x")
    records = [dict(video="a-0.mp4", index=0, created=1.0, seed=1), dict(video="b-0.mp4", index=1, created=2.0),
               dict(video="gone-0.mp4", index=2, created=3.0), dict(video="a-0.mp4", index=0, created=4.0, seed=2)]
    shard_path(tmp_path, 0).write_text("".join(json.dumps(r) + "\n" for r in records[:2]) + '{"video": "c-',
                                       encoding="utf-8")
    shard_path(tmp_path, 1).write_text("".join(json.dumps(r) + "\n" for r in records[2:]), encoding="utf-8")
    assert read_manifest(tmp_path) == [records[3], records[1]]  # the latest line of each existing video
    _drop_torn_line(shard_path(tmp_path, 0))
    assert shard_path(tmp_path, 0).read_text(encoding="utf-8").endswith("}\n")
    assert len(shard_path(tmp_path, 0).read_text(encoding="utf-8").splitlines()) == 2


# ---------------------------------------------------------------- the command, killed and resumed
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def batch_command(prompts: Path, out: Path, processes: int) -> list[str]:
    args = ["-m", "hummingbird", "batch", "--task", "t2v", "--prompts", str(prompts), "--out", str(out),
            "--weights", "tiny", "--samples", str(SAMPLES), "--seed", "3", *SMALL]
    if processes == 1:
        return [sys.executable, *args]
    # --cpu alone starts a single process; on a machine without GPUs the batch command runs each process on CPU
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), *args]


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process and all its descendants (torchrun starts workers in their own sessions)."""
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=60)
    proc.wait(timeout=60)


def kill_midway_and_resume(prompts: Path, out: Path, processes: int) -> dict:
    """Start the batch, SIGKILL it once a first video is finished, restart it to the end."""
    command = batch_command(prompts, out, processes)
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while not (out.is_dir() and read_manifest(out)):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no video was finished in time"
            time.sleep(0.05)
        before = {r["video"]: (out / r["video"]).stat().st_mtime_ns for r in read_manifest(out)}
    finally:
        kill_tree(proc)
    last = work_list(read_entries(prompts, "t2v"), SAMPLES, 3)[-1].video
    assert last not in {r["video"] for r in read_manifest(out)}
    (out / last).write_bytes(b"not a video")  # a video without its manifest line is not finished
    # what a kill can leave besides: a temporary video and a torn manifest line
    (out / ".a corgi running on a beach-1.0123456789ab.partial.mp4").write_bytes(b"\x00" * 100)
    with shard_path(out, 0).open("a", encoding="utf-8") as shard:
        shard.write('{"video": "a corgi running')
    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    return {"before": before, "stdout": resumed.stdout}


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def single(prompt_file, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("single") / "videos"
    return {"out": out, **kill_midway_and_resume(prompt_file, out, processes=1)}


def check_complete(out: Path, prompt_file: Path, run: dict) -> list[dict]:
    """Every item once, a complete manifest, nothing half-written, finished videos left alone on restart."""
    items = work_list(read_entries(prompt_file, "t2v"), SAMPLES, 3)
    assert len(items) == 6
    shards = sorted(p.name for p in out.glob("manifest.rank*.jsonl"))
    assert sorted(p.name for p in out.iterdir()) == sorted([i.video for i in items] + ["manifest.jsonl", *shards])
    lines = [json.loads(line) for shard in shards for line in (out / shard).read_text(encoding="utf-8").splitlines()]
    assert sorted(r["video"] for r in lines) == sorted(i.video for i in items)  # one line per video
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["video"], r["prompt"], r["sample"], r["seed"]) for r in manifest] == [
        (i.video, i.prompt, i.sample, i.seed) for i in items]
    assert all(r["settings"]["seed"] == r["seed"] and r["settings"]["steps"] == 1 for r in manifest)
    assert all(r["device"].startswith("cpu") for r in manifest)
    assert all(set(r["timings"]) == {"encode", "denoise", "decode", "write"} for r in manifest)
    assert 1 <= len(run["before"]) < len(items)  # killed midway
    assert all((out / video).stat().st_mtime_ns == mtime for video, mtime in run["before"].items())
    skipped = int(re.search(rf"{len(items)} videos in .*: (\d+) already made", run["stdout"])[1])
    assert len(run["before"]) <= skipped < len(items)
    info = probe_video(out / items[-1].video)
    assert (info.frames, info.width, info.height, info.fps) == (2, 64, 64, 8)
    return manifest


def test_single_process_run_resumes_after_a_kill(single, prompt_file):
    manifest = check_complete(single["out"], prompt_file, single)
    assert {r["rank"] for r in manifest} == {0}


def test_two_processes_under_accelerate_launch_share_the_work(single, prompt_file, tmp_path):
    out = tmp_path / "videos"
    run2 = kill_midway_and_resume(prompt_file, out, processes=2)
    manifest = check_complete(out, prompt_file, run2)
    assert {r["rank"] for r in manifest} == {0, 1}
    assert sorted(p.name for p in out.glob("manifest.rank*.jsonl")) == ["manifest.rank0.jsonl",
                                                                       "manifest.rank1.jsonl"]
    reference = read_manifest(single["out"])
    assert [(r["video"], r["seed"]) for r in manifest] == [(r["video"], r["seed"]) for r in reference]


def test_resuming_needs_the_same_settings(single, prompt_file):
    job = BatchJob("t2v", prompt_file, single["out"], samples=SAMPLES, seed=3, weights="tiny",
                   options=dict(steps=1, frames=2, height=64, width=64))  # guidance left at its default
    result = run(job)
    assert (result.items, result.skipped, result.made) == (6, 6, 0)
    with pytest.raises(ValueError, match=r"other settings \(steps 1 -> 2\)"):
        run(BatchJob("t2v", prompt_file, single["out"], samples=SAMPLES, seed=3, weights="tiny",
                     options=dict(steps=2, frames=2, height=64, width=64)))


def test_a_failed_write_stops_the_batch_and_is_not_recorded(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na dog\na bird\n", encoding="utf-8")
    out = tmp_path / "videos"
    (out / "a dog-0.mp4").mkdir(parents=True)  # the finished video cannot be renamed onto a folder
    job = BatchJob("t2v", prompts, out, samples=1, seed=3, weights="tiny",
                   options=dict(steps=1, frames=2, height=64, width=64))
    with pytest.raises(OSError):
        run(job)
    assert [r["video"] for r in read_manifest(out)] == ["a cat-0.mp4"]
    assert probe_video(out / "a cat-0.mp4").frames == 2


def test_i2v_batch_from_a_saved_pipeline_with_vbench_i2v_images(tmp_path):
    weights = I2VPipeline.tiny(device="cpu").save_pretrained(tmp_path / "i2v-tiny")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a boat on a lake.png", "a windmill.jpg"):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(images / name)
    prompts = tmp_path / "i2v.txt"
    prompts.write_text("a boat on a lake\na windmill\n", encoding="utf-8")
    out = tmp_path / "videos"
    proc = subprocess.run([sys.executable, "-m", "hummingbird", "batch", "--task", "i2v", "--prompts", str(prompts),
                           "--images", str(images), "--out", str(out), "--weights", str(weights), "--samples", "1",
                           "--playback-fps", "12", *SMALL], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = read_manifest(out)
    assert [(r["video"], Path(r["image"]).name) for r in manifest] == [
        ("a boat on a lake-0.mp4", "a boat on a lake.png"), ("a windmill-0.mp4", "a windmill.jpg")]
    assert {r["settings"]["model"] for r in manifest} == {"i2v-tiny"}
    assert probe_video(out / "a windmill-0.mp4").fps == 12


def test_bad_batch_arguments_exit_2_before_loading(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n", encoding="utf-8")
    base = ["batch", "--prompts", str(prompts), "--out", str(tmp_path / "o"), "--weights", str(tmp_path / "nowhere")]
    for extra, message in ((["--task", "i2v"], "needs --images"),
                           (["--task", "t2v", "--height", "65"], "multiple of 64"),
                           (["--task", "t2v", "--samples", "0"], "samples must be"),
                           (["--task", "i2v", "--negative-prompt", "blur"], "needs --no-reneg")):
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
