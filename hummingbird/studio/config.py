"""The operator's settings, read from the environment once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

ENV_OUTPUT_TTL = "HUMMINGBIRD_OUTPUT_TTL"
ENV_QUEUE_SIZE = "HUMMINGBIRD_QUEUE_SIZE"
ENV_MAX_UPLOAD_MB = "HUMMINGBIRD_MAX_UPLOAD_MB"
ENV_DTYPE = "HUMMINGBIRD_DTYPE"
DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Config:
    """How long outputs are kept, how many requests may wait, how large an upload may be, which precision."""

    output_ttl_s: int = 7200
    queue_size: int = 20
    max_upload_mb: int = 200
    dtype: torch.dtype | None = None  # None: bfloat16 on a GPU, float32 on a CPU

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Config:
        """The settings from ``HUMMINGBIRD_OUTPUT_TTL`` (seconds), ``HUMMINGBIRD_QUEUE_SIZE``,
        ``HUMMINGBIRD_MAX_UPLOAD_MB`` and ``HUMMINGBIRD_DTYPE`` (auto, float32, bfloat16 or float16)."""
        dtype = environ.get(ENV_DTYPE, "").strip().lower() or "auto"
        if dtype not in DTYPES:
            raise ValueError(f"{ENV_DTYPE} must be one of {', '.join(DTYPES)}, got {dtype!r}")
        return cls(output_ttl_s=_positive(environ, ENV_OUTPUT_TTL, cls.output_ttl_s),
                   queue_size=_positive(environ, ENV_QUEUE_SIZE, cls.queue_size),
                   max_upload_mb=_positive(environ, ENV_MAX_UPLOAD_MB, cls.max_upload_mb),
                   dtype=DTYPES[dtype])

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return self.max_upload_mb * 1024 * 1024


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    """A whole number of at least 1 from ``environ[name]``, or ``default`` when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)
