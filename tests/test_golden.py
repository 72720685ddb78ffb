"""The golden checker command: every fixture passes, and nothing unknown slips through as a pass."""

import json
import subprocess
import sys


def golden(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hummingbird", "golden", *args], capture_output=True, text=True,
                          timeout=900)


def test_every_fixture_passes(golden_dir):
    proc = golden(str(golden_dir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    fixtures = sorted(p.parent.name for p in golden_dir.glob("*/fixture.json"))
    assert lines[-1] == f"{len(fixtures)} passed, 0 failed"
    assert all(any(line.startswith(name + " ") for line in lines) for name in fixtures)


def test_kind_filter_runs_only_those_kinds(golden_dir):
    proc = golden(str(golden_dir), "--kind", "security,reneg_embedding")
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"


def test_unsupported_kinds_fail(golden_dir, tmp_path):
    fixture = tmp_path / "new_kind_fixture"
    fixture.mkdir()
    (fixture / "fixture.json").write_text(json.dumps({"name": "new_kind_fixture", "kind": "t2v_upscaler"}))
    proc = golden(str(tmp_path))
    assert proc.returncode == 1 and "FAIL" in proc.stdout and proc.stdout.strip().endswith("0 passed, 1 failed")
    proc = golden(str(golden_dir), "--kind", "no_such_kind")
    assert proc.returncode == 1 and "unknown kind" in proc.stdout


def test_a_wrong_result_fails(golden_dir, tmp_path):
    """A fixture whose expected output was tampered with must fail: the checker really compares."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    copy = tmp_path / "reneg_embedding"
    shutil.copytree(golden_dir / "reneg_embedding", copy)
    tensors = load_file(str(copy / "tensors.safetensors"))
    tensors["v_guided"] = tensors["v_guided"] + 1e-2
    save_file(tensors, str(copy / "tensors.safetensors"))
    proc = golden(str(tmp_path))
    assert proc.returncode == 1 and "v_guided" in proc.stdout
    assert torch.isfinite(tensors["v_guided"]).all()
