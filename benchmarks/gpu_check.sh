#!/usr/bin/env bash
# GPU check in one go (under 8 minutes on one H100/H200): golden parity, the fast-path and benchmark tests, and the
# full benchmark at the release sizes with its parity check, written to OUT_DIR/bench.json and bench.txt.
#
#   benchmarks/gpu_check.sh [OUT_DIR]          (default outputs/bench)
#
# PYTHON picks the interpreter (default .venv/bin/python, else python3); GOLDEN the fixture folder (default
# ../shared/golden, skipped with a note when absent). GPU_CHECK_COMPILE=1 adds a torch.compile run of the U-Net,
# VAE and SR parts (compiling takes minutes: allow about 4 more). Every step runs; the exit status says whether
# all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT_DIR=${1:-outputs/bench}
GOLDEN=${GOLDEN:-../shared/golden}
mkdir -p "$OUT_DIR"
failed=()

step() {  # step NAME SECONDS COMMAND...: run with a time limit, note a failure and go on
  local name=$1 limit=$2
  shift 2
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@" || failed+=("$name")
  echo "=== $name: $((SECONDS - start)) s"
}

"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda)" || exit 1
if [ -d "$GOLDEN" ]; then
  step golden 120 "$PYTHON" -m hummingbird golden "$GOLDEN"
else
  echo "=== golden: no fixtures at $GOLDEN, skipped"
fi
step tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_bench.py
step bench 260 bash -o pipefail -c "'$PYTHON' -m benchmarks.bench --runs 5 --warmup 2 --check \
  --json '$OUT_DIR/bench.json' 2>&1 | tee '$OUT_DIR/bench.txt'"
if [ "${GPU_CHECK_COMPILE:-0}" = 1 ]; then
  step bench-compile 270 bash -o pipefail -c "'$PYTHON' -m benchmarks.bench --parts t2v09,vae,sr --compile --runs 5 \
    --warmup 3 --json '$OUT_DIR/bench_compile.json' 2>&1 | tee '$OUT_DIR/bench_compile.txt'"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passed"
