"""A session's recent results: a small, newest-first list shown as a gallery of frame-0 thumbnails.

Each entry is a plain dict (the session keeps it in its own ``gr.State``, never shared across users): the video
to show again, its frame-0 PNG and a caption. Nothing is generated again to show an entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from hummingbird.studio.errors import StudioError

MAX_ENTRIES = 8  # the gallery keeps this many results per session
KINDS = {"t2v": "T2V", "i2v": "I2V", "upscale": "Upscale"}


def caption(last: dict[str, Any]) -> str:
    """A one-line description, e.g. ``"T2V · seed 123 · 8 steps · 26 f"`` (``· x4`` when upscaled)."""
    settings = last.get("settings") or {}
    parts = [KINDS.get(last.get("kind", ""), str(last.get("kind", "")).upper())]
    if "seed" in settings:
        parts.append(f"seed {settings['seed']}")
    if "steps" in settings:
        parts.append(f"{settings['steps']} steps")
    if "frames" in settings:
        parts.append(f"{settings['frames']} f")
    upscale = settings.get("upscale")
    if isinstance(upscale, dict):
        parts.append(f"{upscale.get('size', '')} {upscale.get('output', '')}".strip())
    return " · ".join(parts)


def thumbnail(last: dict[str, Any], video: Path) -> Path:
    """Frame 0 of ``last`` as a PNG next to ``video`` (in the request's own output folder), written once."""
    path = video.with_name(f"{video.stem}_frame0.png")
    if not path.is_file():
        Image.fromarray(last["frames"][0]).save(path)
    return path


def shown_video(last: dict[str, Any]) -> Path | None:
    """The MP4 the results panel showed for ``last``: the upscaled one when there is one, else the base one."""
    upscaled = last.get("upscaled")
    if upscaled is not None and Path(upscaled).suffix == ".mp4":
        return Path(upscaled)
    return Path(last["mp4"]) if last.get("mp4") is not None else None


def add(history: list[dict[str, Any]] | None, last: dict[str, Any] | None,
        limit: int = MAX_ENTRIES) -> list[dict[str, Any]]:
    """``history`` with ``last`` in front (newest first), at most ``limit`` entries; unchanged without a video."""
    entries = list(history or [])
    video = shown_video(last) if last else None
    if last is None or video is None:
        return entries[:limit]
    entry = {"video": str(video), "image": str(thumbnail(last, video)), "caption": caption(last)}
    entries = [entry] + [e for e in entries if e["video"] != entry["video"]]
    return entries[:limit]


def gallery(history: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    """The gallery value: (thumbnail, caption) per entry, newest first."""
    return [(e["image"], e["caption"]) for e in history or []]


def video_at(history: list[dict[str, Any]] | None, index: int | None) -> str:
    """The MP4 of entry ``index``; a clear error when it is gone (expired outputs are deleted)."""
    entries = history or []
    if index is None or not 0 <= index < len(entries):
        raise StudioError("That result is no longer in your history.", "Result not found")
    video = entries[index]["video"]
    if not Path(video).is_file():
        raise StudioError("This result's files were deleted after their retention time; generate it again.",
                          "Result expired")
    return video
