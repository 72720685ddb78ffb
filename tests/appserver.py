"""Start the real app (``python app.py``) in a subprocess on a free local port, for the app and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the app did not start within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@dataclass(frozen=True)
class AppServer:
    """A running app: its URL, process, log file and working directory (Gradio's cache is ``workdir/gradio``)."""

    url: str
    proc: subprocess.Popen
    log: Path
    workdir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def cache(self) -> Path:
        return self.workdir / "gradio"

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def running_server(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[AppServer]:
    """Run ``python app.py ARGS`` bound to 127.0.0.1 on a free port; yield it; stop it afterwards.

    Gradio's cache and any example cache live under ``workdir`` (the working directory of the app).
    """
    port = free_port()
    full_env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_TEMP_DIR": str(workdir / "gradio"),
                "OMP_NUM_THREADS": "2", **(env or {})}
    log = workdir / "app.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                 *args], cwd=workdir, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, proc, log)
        yield AppServer(url, proc, log, workdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_app(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Like :func:`running_server`, yielding only the URL."""
    with running_server(workdir, *args, env=env) as server:
        yield server.url
