"""The per-session history helpers: captions, thumbnails, newest first, the cap, and expired results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hummingbird.studio import history
from hummingbird.studio.errors import StudioError


def _last(folder: Path, seed: int, kind: str = "t2v", upscaled: Path | None = None) -> dict[str, Any]:
    mp4 = folder / f"result_seed{seed}.mp4"
    mp4.write_bytes(b"mp4")
    frames = np.full((3, 8, 16, 3), seed % 256, dtype=np.uint8)
    settings: dict[str, Any] = {"seed": seed, "steps": 8, "frames": 26, "upscale": "off"}
    return {"kind": kind, "settings": settings, "frames": frames, "mp4": mp4, "upscaled": upscaled}


def test_caption_reads_like_the_settings(tmp_path: Path) -> None:
    assert history.caption(_last(tmp_path, 123)) == "T2V · seed 123 · 8 steps · 26 f"
    upscaled = {"kind": "upscale", "settings": {"frames": 5, "upscale": {"size": "x4", "output": "256x256"}}}
    assert history.caption(upscaled) == "Upscale · 5 f · x4 256x256"


def test_add_writes_frame_zero_and_keeps_newest_first(tmp_path: Path) -> None:
    recent = history.add([], _last(tmp_path, 1))
    recent = history.add(recent, _last(tmp_path, 2))
    assert [e["caption"].split(" · ")[1] for e in recent] == ["seed 2", "seed 1"]
    thumb = Path(recent[0]["image"])
    assert thumb.parent == tmp_path and thumb.suffix == ".png"
    assert Image.open(thumb).size == (16, 8)
    assert history.gallery(recent) == [(e["image"], e["caption"]) for e in recent]


def test_add_caps_the_history_and_does_not_repeat_a_result(tmp_path: Path) -> None:
    recent: list[dict[str, Any]] = []
    for seed in range(history.MAX_ENTRIES + 3):
        recent = history.add(recent, _last(tmp_path, seed))
    assert len(recent) == history.MAX_ENTRIES
    assert recent[0]["caption"].startswith(f"T2V · seed {history.MAX_ENTRIES + 2} ")
    again = history.add(recent, _last(tmp_path, history.MAX_ENTRIES + 2))
    assert [e["video"] for e in again] == [e["video"] for e in recent]


def test_the_upscaled_video_is_the_one_remembered(tmp_path: Path) -> None:
    big = tmp_path / "result_x4.mp4"
    big.write_bytes(b"mp4")
    assert history.add(None, _last(tmp_path, 5, upscaled=big))[0]["video"] == str(big)


def test_nothing_to_remember_leaves_the_history_alone(tmp_path: Path) -> None:
    recent = history.add([], _last(tmp_path, 1))
    still = {**_last(tmp_path, 2), "mp4": None, "upscaled": tmp_path / "big.png"}
    assert history.add(recent, None) == recent
    assert history.add(recent, still) == recent


def test_selecting_shows_the_kept_video_or_explains(tmp_path: Path) -> None:
    recent = history.add([], _last(tmp_path, 1))
    assert history.video_at(recent, 0) == recent[0]["video"]
    with pytest.raises(StudioError, match="no longer in your history"):
        history.video_at(recent, 3)
    Path(recent[0]["video"]).unlink()
    with pytest.raises(StudioError) as err:
        history.video_at(recent, 0)
    assert err.value.title == "Result expired"
