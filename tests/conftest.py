"""Shared test set-up: offline, quiet, few threads; where the golden fixtures live."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
if not torch.cuda.is_available():  # Triton kernels then run on CPU tensors, in Triton's interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden"
MANIFESTS = REPO.parent / "shared" / "manifests"


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    assert GOLDEN.is_dir(), f"golden fixtures not found next to the repository: {GOLDEN}"
    return GOLDEN
