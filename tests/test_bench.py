"""The benchmark script on tiny models: it runs both modes, prints its table and writes its JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from benchmarks import bench

MODES = ("baseline", "fast", "graphs")


def _bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HUMMINGBIRD_COMPILE": "0"}
    return subprocess.run([sys.executable, "-m", "benchmarks.bench", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_tiny_run_writes_report(tmp_path) -> None:
    out = tmp_path / "bench.json"
    proc = _bench("--tiny", "--device", "cpu", "--parts", "t2v09,e2e", "--runs", "1", "--warmup", "1", "--check",
                  "--modes", "fast,graphs", "--json", str(out), "--profile", str(tmp_path / "profiles"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["torch"] and report["cuda"] is None
    settings = report["settings"]
    assert settings["tiny"] and settings["parts"] == ["t2v09", "e2e"] and settings["compile"] is False
    assert (settings["runs"], settings["warmup"], settings["fast_dtype"]) == (1, 1, "float32")
    assert settings["modes"] == ["fast", "graphs"]
    check = report["check"]
    assert set(check) == {"dtype", "unet_rel_l2", "vae_rel_l2", "modes"} and set(check["modes"]) == set(MODES)
    assert (check["unet_rel_l2"], check["vae_rel_l2"]) == (check["modes"]["fast"]["unet"],
                                                           check["modes"]["fast"]["vae"])
    for errors in check["modes"].values():
        assert 0 <= errors["unet"] < 0.05 and 0 <= errors["vae"] < 0.05
    assert list(report["results"]) == ["t2v09", "e2e-t2v", "e2e-i2v"]
    for name, row in report["results"].items():
        assert row["part"] == ("t2v09" if name == "t2v09" else "e2e") and row["gflop"] > 0
        for mode in MODES:
            result = row[mode]
            assert len(result["times_ms"]) == 1 and result["median_ms"] == result["times_ms"][0] > 0
            assert result["first_ms"] > 0 and result["tflops"] > 0 and result["peak_mb"] is None
        assert row["speedups"] == {mode: row["baseline"]["median_ms"] / row[mode]["median_ms"]
                                   for mode in ("fast", "graphs")}
        assert row["speedup"] == row["speedups"]["fast"]
        for mode in ("fast", "graphs"):
            assert "Self CPU" in (tmp_path / "profiles" / f"{name}-{mode}.txt").read_text()
    table = proc.stdout.splitlines()
    assert "TINY" in table[0] and "fast ms" in table[1] and "graphs ms" in table[1]
    assert [line.split()[0] for line in table[3:]] == ["t2v09", "e2e-t2v", "e2e-i2v"]


@pytest.mark.parametrize(("args", "message"), [
    (["--tiny", "--parts", "t2v09,upscale"], "parts must be"),
    (["--device", "cpu", "--check"], "--check at the release sizes needs a GPU"),
    (["--tiny", "--modes", "fast,turbo"], "modes must be fast or variants of graphs, compiled, channels-last, fp8, "
                                          "triton-norms, autotune"),
    (["--tiny", "--modes", "compiled+turbo"], "joined by +"),
    (["--tiny", "--warmup", "0"], "--warmup must be >= 1"),
])
def test_bad_arguments_are_refused(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_bad_arguments_exit_2_from_the_command_line() -> None:
    proc = _bench("--tiny", "--modes", "fast,turbo")
    assert proc.returncode == 2 and "modes must be fast or variants of" in proc.stderr
