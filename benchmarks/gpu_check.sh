#!/usr/bin/env bash
# GPU check in one go (about 7 minutes on one H100/H200): golden parity, the CUDA tests, and the full benchmark at
# the release sizes with its parity check, written to OUT_DIR (bench.json/.txt, profiles.tgz, tests.txt).
#
#   benchmarks/gpu_check.sh [OUT_DIR]          (default outputs/bench)
#
# STEPS picks the steps, a comma list of golden, tests, bench, compile (default golden,tests,bench).
# PYTHON picks the interpreter (default .venv/bin/python, else python3); GOLDEN the fixture folder (default
# ../shared/golden, skipped with a note when absent); MODES the fast-path modes of bench (default
# fast,triton-norms,channels-last+triton-norms,fp8) and PARTS its parts (default t2v09,vae,i2v,sr,e2e).
# The compile step times COMPILE_MODES (default compiled) of COMPILE_PARTS (default t2v09,vae,sr,e2e), in
# compile.json/.txt: about 6 minutes per mode, most of it compiling. Every step runs under a time limit, even
# after a failure; the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT_DIR=${1:-outputs/bench}
GOLDEN=${GOLDEN:-../shared/golden}
MODES=${MODES:-fast,triton-norms,channels-last+triton-norms,fp8}
PARTS=${PARTS:-t2v09,vae,i2v,sr,e2e}
COMPILE_MODES=${COMPILE_MODES:-compiled}
COMPILE_PARTS=${COMPILE_PARTS:-t2v09,vae,sr,e2e}
STEPS=,${STEPS:-golden,tests,bench},
mkdir -p "$OUT_DIR"
failed=()

step() {  # step NAME SECONDS COMMAND...: if STEPS names it, run with a time limit, note a failure and go on
  local name=$1 limit=$2
  shift 2
  [[ $STEPS == *,$name,* ]] || return 0
  echo "=== $name"
  local start=$SECONDS
  timeout "$limit" "$@" || failed+=("$name")
  echo "=== $name: $((SECONDS - start)) s"
}

unknown=$(tr , '\n' <<<"$STEPS" | grep -vxE 'golden|tests|bench|compile|' | paste -sd ' ')
[ -z "$unknown" ] || { echo "unknown STEPS: $unknown (choose from golden, tests, bench, compile)"; exit 2; }
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda)" || exit 1
if [ -d "$GOLDEN" ]; then
  step golden 120 "$PYTHON" -m hummingbird golden "$GOLDEN"
elif [[ $STEPS == *,golden,* ]]; then
  echo "=== golden: no fixtures at $GOLDEN, skipped"
fi
step tests 120 bash -o pipefail -c "'$PYTHON' -m pytest -q -p no:cacheprovider -k 'cuda or kernels' \
  tests/test_fast_path.py 2>&1 | tee '$OUT_DIR/tests.txt'"
step bench 480 bash -o pipefail -c "'$PYTHON' -m benchmarks.bench --parts '$PARTS' --modes '$MODES' --runs 5 \
  --warmup 2 --check --profile '$OUT_DIR/profiles' --json '$OUT_DIR/bench.json' 2>&1 | tee '$OUT_DIR/bench.txt'"
step compile 540 bash -o pipefail -c "'$PYTHON' -m benchmarks.bench --parts '$COMPILE_PARTS' \
  --modes '$COMPILE_MODES' --runs 3 --warmup 2 --json '$OUT_DIR/compile.json' 2>&1 | tee '$OUT_DIR/compile.txt'"
[ -d "$OUT_DIR/profiles" ] && tar czf "$OUT_DIR/profiles.tgz" -C "$OUT_DIR" profiles && rm -r "$OUT_DIR/profiles"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all passed"
