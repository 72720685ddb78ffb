"""The generation commands, run as a user would, on tiny weights."""

import subprocess
import sys

import numpy as np
from PIL import Image

from hummingbird.video import probe_video


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hummingbird", *args], capture_output=True, text=True, timeout=300)


def test_t2v_writes_a_browser_safe_mp4(tmp_path):
    out = tmp_path / "out.mp4"
    proc = run("t2v", "a corgi", "--out", str(out), "--weights", "tiny", "--frames", "3", "--height", "64",
               "--width", "128", "--steps", "2", "--fps", "8", "--seed", "4")
    assert proc.returncode == 0, proc.stderr
    assert "seed 4" in proc.stdout
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.frames, info.width, info.height) == ("h264", "yuv420p", 3, 128, 64)
    assert info.fps == 8


def test_i2v_writes_an_mp4_at_the_playback_fps(tmp_path):
    image = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out.mp4"
    proc = run("i2v", str(image), "a scene", "--out", str(out), "--weights", "tiny", "--frames", "2",
               "--height", "64", "--width", "64", "--steps", "2", "--aspect", "pad", "--playback-fps", "12")
    assert proc.returncode == 0, proc.stderr
    info = probe_video(out)
    assert (info.codec, info.frames, info.fps) == ("h264", 2, 12)


def test_bad_arguments_exit_2_with_a_message(tmp_path):
    proc = run("t2v", "x", "--out", str(tmp_path / "o.mp4"), "--weights", "tiny", "--height", "65")
    assert proc.returncode == 2 and "multiple of 64" in proc.stderr
    proc = run("i2v", str(tmp_path / "missing.png"), "x", "--out", str(tmp_path / "o.mp4"), "--weights", "tiny",
               "--negative-prompt", "blur")
    assert proc.returncode == 2 and "--no-reneg" in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_missing_weights_explain_the_download(tmp_path):
    proc = run("t2v", "x", "--out", str(tmp_path / "o.mp4"), "--weights", str(tmp_path / "nowhere.pt"))
    assert proc.returncode == 2 and "not found" in proc.stderr
