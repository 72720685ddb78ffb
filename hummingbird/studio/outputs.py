"""Output folders: one fresh folder per request (never shared, never named after the prompt), aged out."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hummingbird.studio.errors import StudioError


def safe_name(text: str) -> str:
    """``text`` reduced to a short folder-safe name."""
    return "".join(c for c in text if c.isalnum() or c in "-_")[:64] or "anonymous"


class OutputFolders:
    """Folders ``root/<session>/<uuid>/``; those older than ``ttl_s`` are removed whenever a new one is made.

    A folder in use by a running request is never removed, however old; the folder of a request that fails
    is removed at once, and so is one left empty (Gradio's own cache clean-up ages out the files it served).
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
            try:
                folder.mkdir(parents=True)
            except OSError as err:
                raise StudioError(f"The server could not store the result ({err.strerror or type(err).__name__}). "
                                  "Try again in a moment.", "Server storage problem") from None
            self._active.add(folder)
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._active.discard(folder)

    def sweep(self, now: float | None = None) -> int:
        """Remove request folders older than the TTL (and emptied session folders); how many were removed."""
        now = time.time() if now is None else now
        removed = 0
        for session in _folders(self.root):
            for folder in _folders(session):
                if folder not in self._active and (_empty(folder) or _age(folder, now) > self.ttl_s):
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            with contextlib.suppress(OSError):  # only an empty folder can be removed
                session.rmdir()
        return removed


def _folders(path: Path) -> list[Path]:
    """The sub-folders of ``path`` (none when it is missing or not a folder)."""
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _age(folder: Path, now: float) -> float:
    """Seconds since ``folder`` or anything directly in it last changed."""
    try:
        latest = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir()])
    except OSError:
        return 0.0
    return now - latest


def _empty(folder: Path) -> bool:
    """Whether ``folder`` holds nothing (a missing folder counts as empty)."""
    try:
        return next(folder.iterdir(), None) is None
    except OSError:
        return True
