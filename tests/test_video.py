"""MP4/GIF writing, reading and probing with the real bundled ffmpeg."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from hummingbird.video import VideoInfo, count_frames, even_frames, probe_video, read_video, write_gif, write_mp4


def _frames(n: int, h: int, w: int) -> np.ndarray:
    """Smooth moving gradients: compressible, so a decode is close to the source."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (x * 255 // max(w - 1, 1) + 8 * i) % 256
        out[i, ..., 1] = y * 255 // max(h - 1, 1)
        out[i, ..., 2] = 128 + 4 * i
    return out


def _mp4_boxes(path: Path) -> list[bytes]:
    data, pos, kinds = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8])
        pos += size
    return kinds


@pytest.mark.parametrize("fps", [8, 24])
def test_mp4_is_browser_safe_h264(tmp_path: Path, fps: int) -> None:
    path = write_mp4(_frames(10, 64, 96), tmp_path / "out.mp4", fps)
    info = probe_video(path)
    assert info == VideoInfo(codec="h264", pix_fmt="yuv420p", profile="High", width=96, height=64,
                             fps=float(fps), frames=10, faststart=True)


def test_faststart_puts_moov_before_mdat(tmp_path: Path) -> None:
    kinds = _mp4_boxes(write_mp4(_frames(4, 32, 32), tmp_path / "a.mp4", 8))
    assert kinds.index(b"moov") < kinds.index(b"mdat")


def test_fractional_fps_is_exact(tmp_path: Path) -> None:
    path = write_mp4(_frames(6, 32, 32), tmp_path / "ntsc.mp4", Fraction(24000, 1001))
    assert probe_video(path).fps == pytest.approx(24000 / 1001, rel=1e-9)
    assert read_video(path)[1] == pytest.approx(24000 / 1001, rel=1e-9)


@pytest.mark.parametrize(("h", "w"), [(33, 47), (31, 64), (64, 65)])
def test_odd_sizes_padded_by_edge_replication(tmp_path: Path, h: int, w: int) -> None:
    frames = _frames(3, h, w)
    info = probe_video(write_mp4(frames, tmp_path / "odd.mp4", 8))
    assert (info.width, info.height, info.frames) == (w + w % 2, h + h % 2, 3)
    padded = even_frames(frames)
    assert padded.shape == (3, h + h % 2, w + w % 2, 3)
    np.testing.assert_array_equal(padded[:, :h, :w], frames)
    np.testing.assert_array_equal(padded[:, -1, :w], frames[:, -1])
    np.testing.assert_array_equal(padded[:, :h, -1], frames[:, :, -1])


def test_read_back_matches_written(tmp_path: Path) -> None:
    frames = _frames(7, 64, 64)
    path = write_mp4(frames, tmp_path / "rt.mp4", 24)
    decoded, fps = read_video(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8 and fps == 24.0
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3
    assert read_video(path, max_frames=3)[0].shape == (3, 64, 64, 3)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "video.mp4"
    write_mp4(_frames(2, 32, 32), target, 8)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 32, 32, 3), np.float32), tmp_path / "bad.mp4", 8)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["video.mp4"]


@pytest.mark.parametrize(("frames", "fps", "message"), [
    (np.zeros((2, 32, 32), np.uint8), 8, r"shape \[F, H, W, 3\]"),
    (np.zeros((0, 32, 32, 3), np.uint8), 8, "at least one"),
    (np.zeros((2, 32, 32, 3), np.uint8), 0, "fps"),
    (np.zeros((2, 32, 32, 3), np.uint8), float("nan"), "fps"),
])
def test_bad_inputs_are_refused(tmp_path: Path, frames: np.ndarray, fps: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_mp4(frames, tmp_path / "x.mp4", fps)


def test_crf_zero_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crf"):
        write_mp4(_frames(2, 32, 32), tmp_path / "x.mp4", 8, crf=0)


def test_gif_frame_count_and_loop(tmp_path: Path) -> None:
    path = write_gif(_frames(5, 40, 48), tmp_path / "a.gif", 10)
    info = probe_video(path)
    assert (info.codec, info.frames, info.width, info.height) == ("gif", 5, 48, 40)
    assert info.fps == pytest.approx(10.0)
    assert b"NETSCAPE2.0" in path.read_bytes()  # loops forever
    decoded = read_video(path)[0].astype(int)
    assert decoded.shape == (5, 40, 48, 3)
    assert np.abs(decoded - _frames(5, 40, 48)).max() <= 12  # 256 colours a frame: close to the source


@pytest.mark.parametrize("content", [b"not a video at all", b"\0\0\0\x18ftypisom" + b"x" * 64])
def test_corrupt_file_gives_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="cannot read broken.mp4: not a video"):
        probe_video(path)
    with pytest.raises(ValueError, match="cannot read broken.mp4") as err:
        read_video(path)
    assert str(tmp_path) not in str(err.value)


def test_truncated_mp4_is_an_error(tmp_path: Path) -> None:
    good = write_mp4(_frames(12, 64, 64), tmp_path / "good.mp4", 8).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        probe_video(cut)
    with pytest.raises(ValueError, match="corrupt"):
        read_video(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "nope.mp4")


def test_count_frames_stops_early_without_decoding(tmp_path):
    frames = np.zeros((12, 16, 16, 3), np.uint8)
    path = write_mp4(frames, tmp_path / "twelve.mp4", fps=8)
    assert count_frames(path, limit=50) == 12
    assert count_frames(path, limit=5) == 6
