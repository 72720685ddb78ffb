"""Hummingbird Studio: AMD's Hummingbird text-to-video and image-to-video models, run faithfully.

The main entry points, imported on first use::

    from hummingbird import T2VPipeline, I2VPipeline, Upscaler
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {"T2VPipeline": "hummingbird.pipelines", "I2VPipeline": "hummingbird.pipelines",
            "GenerationResult": "hummingbird.pipelines", "Upscaler": "hummingbird.sr"}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hummingbird' has no attribute {name!r}")
