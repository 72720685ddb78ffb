"""Checks of uploaded files: where they are, how large, and whether they are an image or video the app can use.

A file argument is used only when it is a regular file inside the allowed folders (Gradio's upload cache and
the bundled examples) once every link is resolved; anything else (a relative or absolute path elsewhere, a URL,
a link leading out) is refused without saying whether it exists.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hummingbird.image import aspect_ratio, load_image
from hummingbird.studio.limits import MAX_IMAGE_ASPECT, MAX_UPSCALE_FRAMES, MAX_UPSCALE_INPUT_SIDE, MIN_IMAGE_SIDE
from hummingbird.video import VideoInfo, count_frames, probe_video


@dataclass(frozen=True)
class UploadPolicy:
    """Where uploaded files may be read from, and how large they may be."""

    roots: tuple[Path, ...]
    max_bytes: int

    @classmethod
    def of(cls, roots: Sequence[Path], max_bytes: int) -> UploadPolicy:
        """A policy for ``roots``, each kept as written and with its links resolved."""
        forms = [form for root in roots for form in (Path(os.path.abspath(root)), Path(root).resolve())]
        return cls(tuple(dict.fromkeys(forms)), max_bytes)

    def _inside(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def file(self, name: str, value: str | os.PathLike) -> Path:
        """The real path of the uploaded file ``value`` (argument ``name``), or ValueError."""
        text = os.fspath(value)
        refused = ValueError(f"{name} must be a file uploaded to this app (other files on the server are never "
                             "read)")
        if "://" in text or "\x00" in text or not os.path.isabs(text):
            raise refused
        if not self._inside(Path(os.path.normpath(text))):
            raise refused
        try:
            real = Path(text).resolve(strict=True)
        except (OSError, RuntimeError):
            raise ValueError(f"{name} is no longer on the server: upload it again") from None
        if not self._inside(real) or not real.is_file():
            raise refused
        size = real.stat().st_size
        if size == 0:
            raise ValueError(f"{name} is empty (0 bytes): upload the file again")
        if size > self.max_bytes:
            raise ValueError(f"{name} is too large ({size / 2**20:.1f} MB); at most {self.max_bytes / 2**20:g} MB "
                             "can be uploaded")
        return real


@dataclass(frozen=True)
class Media:
    """An uploaded video or image to upscale."""

    path: Path
    is_video: bool
    frames: int
    height: int
    width: int


def image_to_animate(policy: UploadPolicy, value: Any) -> Image.Image:
    """The uploaded image at ``value``, loaded, if the app can animate it; else ValueError."""
    if value is None or value == "":
        raise ValueError("image is required: upload the picture to animate")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("image must be an uploaded image file")
    path = policy.file("image", value)
    try:
        image = load_image(path)
    except ValueError as err:
        raise ValueError(f"image cannot be used: {err}") from None
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f"image is too small ({width}x{height} px); the shorter side must be at least "
                         f"{MIN_IMAGE_SIDE} px")
    if aspect_ratio(image) > MAX_IMAGE_ASPECT:
        raise ValueError(f"image is too elongated ({width}x{height} px, {aspect_ratio(image):.1f}:1); at most "
                         f"{MAX_IMAGE_ASPECT:g}:1")
    return image


def media_to_upscale(policy: UploadPolicy, value: Any) -> Media:
    """The uploaded image or video at ``value`` if the app can upscale it, or ValueError."""
    if value is None or value == "":
        raise ValueError("media is required: upload a video or an image")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("media must be one uploaded video or image file")
    path = policy.file("media", value)
    if _is_image(path):
        try:
            width, height = load_image(path).size
        except ValueError as err:
            raise ValueError(f"media cannot be used: {err}") from None
        frames, is_video = 1, False
    else:
        info = _probe(path)
        frames, height, width, is_video = info.frames, info.height, info.width, True
    if frames > MAX_UPSCALE_FRAMES:
        raise ValueError(f"media has {frames} frames; at most {MAX_UPSCALE_FRAMES} are upscaled at once")
    if max(height, width) > MAX_UPSCALE_INPUT_SIDE:
        raise ValueError(f"media is {width}x{height} px; the longer side must be at most {MAX_UPSCALE_INPUT_SIDE} "
                         "px before upscaling")
    return Media(path, is_video, frames, height, width)


def _is_image(path: Path) -> bool:
    """Whether ``path`` starts like an image file (only its header is read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return True
    except Image.DecompressionBombError:
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def _probe(path: Path) -> VideoInfo:
    """Stream facts of an uploaded video; one that is too long is refused before any frame is decoded."""
    try:
        too_long = count_frames(path, MAX_UPSCALE_FRAMES) > MAX_UPSCALE_FRAMES
        info = None if too_long else probe_video(path)
    except (ValueError, FileNotFoundError):
        raise ValueError("media is neither an image nor a video this app can read (is the file complete?)") \
            from None
    if info is None:
        raise ValueError(f"media has more than {MAX_UPSCALE_FRAMES} frames; at most {MAX_UPSCALE_FRAMES} are "
                         "upscaled at once")
    return info
