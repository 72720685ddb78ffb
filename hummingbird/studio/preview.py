"""The exact frame the image-to-video model will use, and a line about the image's shape."""

from __future__ import annotations

from typing import Any

from PIL import Image

from hummingbird.image import preview
from hummingbird.studio import fields, uploads
from hummingbird.studio.limits import ASPECTS
from hummingbird.studio.uploads import UploadPolicy

NO_IMAGE = "Upload an image to see the exact frame the model will use."


def frame_preview(policy: UploadPolicy, image: Any, resolution: Any, aspect: Any) -> tuple[Image.Image | None, str]:
    """The frame cut from ``image`` for ``resolution`` and ``aspect``, and what happened to the image."""
    if not image:
        return None, NO_IMAGE
    try:
        height, width = fields.size(resolution)
        picture = uploads.image_to_animate(policy, image)
        fields.choice("aspect", aspect, [value for _, value in ASPECTS])
        frame = preview(picture, height, width, aspect)
    except ValueError as err:
        return None, f"⚠️ {err}"
    w, h = picture.size
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    how = "cropped to fill" if aspect == "crop" else "padded with black bars"
    same = abs(w / h - width / height) < 0.01
    note = "same shape as the output: nothing is cropped or padded" if same else f"{how} (never stretched)"
    portrait = " Portrait output sizes are experimental." if height > width else ""
    return frame, f"{w}x{h} {shape} image → {width}x{height} frame, {note}.{portrait}"
