"""Stop requests: the Stop button marks the session's running jobs, which end at their next step."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from hummingbird.studio.errors import Stopped


class StopRequests:
    """Running jobs per session, and which of them were asked to stop.

    Jobs are known by plain string ids so that a GPU worker process can check them too.
    """

    def __init__(self) -> None:
        self._running: dict[str, str] = {}  # job id -> session
        self._stopped: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def job(self, session: str) -> Iterator[str]:
        """Register one job of ``session`` for its duration; yields its id."""
        job_id = f"{session}:{uuid.uuid4().hex}"
        with self._lock:
            self._running[job_id] = session
        try:
            yield job_id
        finally:
            with self._lock:
                self._running.pop(job_id, None)
                self._stopped.discard(job_id)

    def request(self, session: str) -> int:
        """Ask every running job of ``session`` to stop; how many there were."""
        with self._lock:
            jobs = {job for job, owner in self._running.items() if owner == session}
            self._stopped |= jobs
        return len(jobs)

    def check(self, job_id: str) -> None:
        """Raise :class:`Stopped` when ``job_id`` was asked to stop."""
        if job_id in self._stopped:
            raise Stopped()

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        with self._lock:
            return len(self._running)
