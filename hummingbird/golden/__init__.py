"""Golden-fixture checker: runs the reference fixtures and compares our outputs with theirs.

Each fixture folder holds ``fixture.json``, ``tensors.safetensors`` and weights. A checker for a kind
computes our outputs and calls :meth:`Fixture.compare` for each of them; the runner turns the outcomes
into one PASS/FAIL row per fixture. A kind without a checker fails, it is never skipped.
"""

from __future__ import annotations

import importlib
import json
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

# kind -> "module:function" (modules under hummingbird.golden)
CHECKERS: dict[str, str] = {
    "t2v_unet": "unet:check_t2v_unet",
    "i2v_unet": "unet:check_i2v_unet",
    "t2v_sampler": "samplers:check_t2v_sampler",
    "i2v_sampler": "samplers:check_i2v_sampler",
    "text_encoder": "encoders:check_text_encoder",
    "vae_decode": "encoders:check_vae_decode",
    "i2v_image_cond": "image:check_image_cond",
    "t2v_checkpoint": "pipelines:check_t2v_checkpoint",
    "i2v_checkpoint": "pipelines:check_i2v_checkpoint",
    "reneg_embedding": "checkpoints:check_reneg_embedding",
    "security": "checkpoints:check_security",
    "sr": "sr:check_sr",
}


@dataclass
class Outcome:
    """The comparison of one output with its expected value."""

    output: str
    max_abs_err: float
    tolerance: str
    passed: bool
    detail: str = ""


@dataclass
class Fixture:
    """One fixture folder: metadata, stored tensors and comparison rules."""

    path: Path
    meta: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    _tensors: dict[str, torch.Tensor] | None = None

    @classmethod
    def load(cls, path: Path) -> "Fixture":
        return cls(path=path, meta=json.loads((path / "fixture.json").read_text()))

    @property
    def name(self) -> str:
        return self.meta.get("name", self.path.name)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    @property
    def call(self) -> dict[str, Any]:
        return self.meta.get("call") or {}

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            from safetensors.torch import load_file

            self._tensors = load_file(str(self.path / "tensors.safetensors"))
        return self._tensors

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def file(self, name: str | None = None) -> Path:
        """Path of a file in the fixture folder (default: the weights file)."""
        return self.path / (name or self.meta["weights"])

    def weights(self, strip_prefix: bool = True) -> dict[str, torch.Tensor]:
        """The fixture's ``weights.safetensors``, upcast to float32, prefix stripped."""
        from safetensors.torch import load_file

        sd = load_file(str(self.file()))
        prefix = self.meta.get("weights_prefix") or ""
        out = {}
        for key, value in sd.items():
            if value.is_floating_point():
                value = value.float()
            if strip_prefix and prefix and key.startswith(prefix):
                key = key[len(prefix):]
            out[key] = value
        return out

    def tolerance_for(self, output: str) -> dict[str, float]:
        tol = dict(self.meta.get("tolerance") or {})
        per_output = tol.pop("per_output", {})
        if output in per_output:
            return per_output[output]
        if output.startswith("debug_") and self.meta.get("tolerance_debug"):
            return self.meta["tolerance_debug"]
        return tol

    def compare(self, output: str, got: torch.Tensor, expected: torch.Tensor | None = None,
                tolerance: dict[str, float] | None = None) -> Outcome:
        """Compare ``got`` with the stored tensor ``output`` (or ``expected``) and record the outcome."""
        exp = self.tensors[output] if expected is None else expected
        got = torch.as_tensor(got).detach().cpu()
        tol = tolerance or self.tolerance_for(output)
        if exp.dtype == torch.uint8 and tolerance is None and output not in (
                (self.meta.get("tolerance") or {}).get("per_output", {})):
            tol = _uint8_tolerance(self.meta)
        outcome = _compare(output, got, exp, tol)
        self.outcomes.append(outcome)
        return outcome

    def record(self, output: str, passed: bool, detail: str = "") -> Outcome:
        """Record a pass/fail check that is not a tensor comparison."""
        outcome = Outcome(output, 0.0, "exact", passed, detail)
        self.outcomes.append(outcome)
        return outcome


def _uint8_tolerance(meta: dict[str, Any]) -> dict[str, float]:
    rule = meta.get("tolerance_uint8") or {}
    return {"atol": 0.0, "rtol": 0.0,
            "max_abs_diff": rule.get("max_abs_diff", 1),
            "max_mismatch_fraction": rule.get("max_mismatch_fraction", 0.01)}


def _compare(name: str, got: torch.Tensor, exp: torch.Tensor, tol: dict[str, float]) -> Outcome:
    atol, rtol = float(tol.get("atol", 0.0)), float(tol.get("rtol", 0.0))
    label = f"atol={atol:g} rtol={rtol:g}"
    if tuple(got.shape) != tuple(exp.shape):
        return Outcome(name, math.inf, label, False, f"shape {tuple(got.shape)} != {tuple(exp.shape)}")
    exact = not exp.is_floating_point()
    if exact and atol == 0 and rtol == 0 and "max_mismatch_fraction" not in tol:
        equal = torch.equal(got.to(exp.dtype), exp)
        err = (got.double() - exp.double()).abs().max().item() if got.numel() else 0.0
        return Outcome(name, err, "exact", equal, "" if equal else "values differ")
    g, e = got.double(), exp.double()
    diff = (g - e).abs()
    if not torch.isfinite(g).all():
        return Outcome(name, math.inf, label, False, "non-finite values")
    bound = atol + rtol * e.abs()
    bad = diff > bound
    fraction = bad.double().mean().item() if bad.numel() else 0.0
    allowed = float(tol.get("max_mismatch_fraction", 0.0))
    passed = fraction <= allowed
    max_err = diff.max().item() if diff.numel() else 0.0
    if "max_abs_diff" in tol:
        label += f" max_abs_diff={tol['max_abs_diff']:g}"
        passed = passed and max_err <= float(tol["max_abs_diff"])
    if allowed:
        label += f" mismatch<={allowed:g}"
    detail = "" if passed else f"{fraction:.4%} of values out of tolerance"
    return Outcome(name, max_err, label, passed, detail)


@dataclass
class Row:
    name: str
    kind: str
    max_abs_err: float
    tolerance: str
    passed: bool
    detail: str


def _checker(kind: str) -> Callable[[Fixture], None]:
    target = CHECKERS.get(kind)
    if target is None:
        raise NotImplementedError(f"no checker for kind {kind!r}")
    module_name, func = target.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, func)


def run_fixture(path: Path) -> Row:
    """Run one fixture folder and summarise it as a row."""
    fx = Fixture.load(path)
    try:
        with torch.no_grad():
            _checker(fx.kind)(fx)
    except Exception as exc:  # a crash is a failure of that fixture, not of the run
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{Path(last.filename).name}:{last.lineno}"
        return Row(fx.name, fx.kind, math.inf, "-", False, f"{type(exc).__name__}: {exc} ({where})")
    if not fx.outcomes:
        return Row(fx.name, fx.kind, math.inf, "-", False, "checker compared nothing")
    failed = [o for o in fx.outcomes if not o.passed]
    worst = failed[0] if failed else max(fx.outcomes, key=lambda o: o.max_abs_err)
    detail = "; ".join(f"{o.output}: {o.detail or 'failed'} (max err {o.max_abs_err:.3g})" for o in failed)
    return Row(fx.name, fx.kind, worst.max_abs_err, worst.tolerance, not failed, detail)


def discover(root: Path, kinds: set[str] | None = None) -> list[Path]:
    """Fixture folders under ``root`` (sorted), optionally restricted to some kinds."""
    folders = sorted(p.parent for p in Path(root).glob("**/fixture.json"))
    if kinds is None:
        return folders
    return [p for p in folders if json.loads((p / "fixture.json").read_text())["kind"] in kinds]


def run(root: Path, kinds: set[str] | None = None, echo: Callable[[str], None] = print) -> bool:
    """Run every fixture under ``root``; print a table and the closing count. True when all pass."""
    folders = discover(root, kinds)
    unknown = (kinds or set()) - set(CHECKERS)
    rows = [run_fixture(p) for p in folders]
    rows += [Row("-", kind, math.inf, "-", False, "unknown kind") for kind in sorted(unknown)]
    width = max([len(r.name) for r in rows] + [7])
    echo(f"{'fixture':<{width}}  {'kind':<16} {'max abs err':>12}  {'tolerance':<36} result")
    for r in rows:
        echo(f"{r.name:<{width}}  {r.kind:<16} {r.max_abs_err:>12.3g}  {r.tolerance:<36} "
             f"{'PASS' if r.passed else 'FAIL'}")
        if r.detail:
            echo(f"{'':<{width}}    {r.detail}")
    passed = sum(r.passed for r in rows)
    echo(f"{passed} passed, {len(rows) - passed} failed")
    return bool(rows) and passed == len(rows)
