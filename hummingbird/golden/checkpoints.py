"""Checkers for the ``security`` and ``reneg_embedding`` fixtures."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from hummingbird.checkpoints import CheckpointError, read_state_dict
from hummingbird.golden import Fixture
from hummingbird.reneg import load_reneg, reneg_uncond_context
from hummingbird.schedulers import guided


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def check_security(fx: Fixture) -> None:
    """Loading the file must raise, and must leave no marker file in the working directory."""
    call = fx.call
    source = fx.file(call.get("file")).resolve()
    marker = call["marker_file"]
    with tempfile.TemporaryDirectory() as tmp, _working_directory(Path(tmp)):
        try:
            read_state_dict(source)
            refused, detail = False, "loaded without error"
        except CheckpointError as exc:
            refused, detail = True, str(exc)
        executed = (Path(tmp) / marker).exists()
    must_refuse = call.get("must_refuse", True)
    fx.record("refused", refused == must_refuse, "" if refused == must_refuse else detail)
    fx.record("no_marker_file", not executed, f"{marker} was created: code from the file ran" if executed else "")


def check_reneg_embedding(fx: Fixture) -> None:
    """The ReNeg file, the unconditional context it builds and one guided combination."""
    call = fx.call
    reneg = load_reneg(fx.file(call.get("file")), fx.config.get("context_dim"))
    fx.compare("reneg_loaded", reneg)
    fx.compare("uncond_context", reneg_uncond_context(reneg, fx["uc_image_tokens"]))
    scale, rescale = call["unconditional_guidance_scale"], call["guidance_rescale"]
    fx.compare("v_cfg", guided(fx["v_cond"], fx["v_uncond"], scale))
    fx.compare("v_guided", guided(fx["v_cond"], fx["v_uncond"], scale, rescale))
