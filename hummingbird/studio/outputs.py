"""Output folders: one fresh folder per request (never shared, never named after the prompt), aged out."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_TTL = "HUMMINGBIRD_OUTPUT_TTL"
DEFAULT_TTL_S = 7200


def ttl_from_env() -> int:
    """Seconds an output folder is kept: ``HUMMINGBIRD_OUTPUT_TTL`` or two hours."""
    raw = os.environ.get(ENV_TTL, "").strip()
    if not raw:
        return DEFAULT_TTL_S
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{ENV_TTL} must be a whole number of seconds (1 or more), got {raw!r}")
    return int(raw)


def safe_name(text: str) -> str:
    """``text`` reduced to a short folder-safe name."""
    return "".join(c for c in text if c.isalnum() or c in "-_")[:64] or "anonymous"


class OutputFolders:
    """Folders ``root/<session>/<uuid>/``; those older than ``ttl_s`` are removed when new ones are made.

    A folder in use by a running job is never removed, however old.
    """

    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self._active: set[Path] = set()
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, session: str) -> Iterator[Path]:
        """A fresh folder for one request's files, kept from clean-up while the request runs."""
        with self._lock:
            self.sweep()
            folder = self.root / safe_name(session) / uuid.uuid4().hex
            folder.mkdir(parents=True)
            self._active.add(folder)
        try:
            yield folder
        finally:
            with self._lock:
                self._active.discard(folder)

    def sweep(self, now: float | None = None) -> int:
        """Remove request folders older than the TTL (and emptied session folders); how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for session in _folders(self.root):
            for folder in _folders(session):
                if folder not in self._active and _age(folder, now) > self.ttl_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            with contextlib.suppress(OSError):  # only an empty folder can be removed
                session.rmdir()
        return removed


def _folders(path: Path) -> list[Path]:
    """The sub-folders of ``path`` (none when it does not exist)."""
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return []


def _age(folder: Path, now: float) -> float:
    """Seconds since ``folder`` or anything directly in it last changed."""
    try:
        latest = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir()])
    except FileNotFoundError:
        return 0.0
    return now - latest
