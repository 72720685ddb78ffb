"""Checks of uploaded files: the image to animate and the video or image to upscale."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from hummingbird.image import aspect_ratio, load_image
from hummingbird.studio.limits import MAX_IMAGE_ASPECT, MAX_UPSCALE_FRAMES, MAX_UPSCALE_INPUT_SIDE, MIN_IMAGE_SIDE
from hummingbird.video import probe_video


@dataclass(frozen=True)
class Media:
    """An uploaded video or image to upscale."""

    path: Path
    is_video: bool
    frames: int
    height: int
    width: int


def image_to_animate(value: Any) -> Image.Image:
    """The uploaded image at ``value``, loaded, if the app can animate it; else ValueError."""
    if value is None or value == "":
        raise ValueError("image is required: upload the picture to animate")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("image must be an uploaded image file")
    try:
        image = load_image(value)
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


def media_to_upscale(value: Any) -> Media:
    """The uploaded image or video at ``value`` if the app can upscale it, or ValueError."""
    if value is None or value == "":
        raise ValueError("media is required: upload a video or an image")
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError("media must be one uploaded video or image file")
    path = Path(value)
    try:
        width, height = load_image(path).size
        frames, is_video = 1, False
    except ValueError:
        try:
            info = probe_video(path)
        except (ValueError, FileNotFoundError):
            raise ValueError("media is neither an image nor a video this app can read (is the file complete?)") \
                from None
        frames, height, width, is_video = info.frames, info.height, info.width, True
    if frames > MAX_UPSCALE_FRAMES:
        raise ValueError(f"media has {frames} frames; at most {MAX_UPSCALE_FRAMES} are upscaled at once")
    if max(height, width) > MAX_UPSCALE_INPUT_SIDE:
        raise ValueError(f"media is {width}x{height} px; the longer side must be at most {MAX_UPSCALE_INPUT_SIDE} "
                         "px before upscaling")
    return Media(path, is_video, frames, height, width)
