"""Fault injection, so that recovery from rare failures can be tested on any machine.

``HUMMINGBIRD_INJECT="oom:1,nan:2"`` (read at import) or :func:`inject` arms faults; the pipelines call
:func:`take` at the point where the real fault would strike: "oom" raises an out-of-memory error when denoising
starts, "nan" turns the sampled latents into NaN. Each arming fires once.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

KINDS = ("oom", "nan")
_armed: Counter[str] = Counter()
_lock = threading.Lock()


def inject(kind: str, times: int = 1) -> None:
    """Arm ``kind`` for the next ``times`` occasions."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
    with _lock:
        _armed[kind] += times


def take(kind: str) -> bool:
    """True (and disarm once) when ``kind`` is armed."""
    with _lock:
        if _armed[kind] <= 0:
            return False
        _armed[kind] -= 1
        return True


def _from_environment(spec: str) -> None:
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, _, times = item.partition(":")
        inject(kind, int(times or 1))


_from_environment(os.environ.get("HUMMINGBIRD_INJECT", ""))
