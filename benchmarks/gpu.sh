#!/bin/bash
# The GPU benchmark in one script: installs ganjax with the CUDA build of jax
# and PyTorch, then writes, from one run,
#   OUT/step_time_gpu.json       ms per step at batch 128, 512 and 4096,
#                                float32 and bfloat16, 1, 10 and 100 fused
#                                steps; PyTorch eager and torch.compile on
#                                CUDA beside it; the matmul peak in each dtype
#   OUT/seed_throughput_gpu.json N = 1, 8, 64 seeds in one program against
#                                N separate runs, and a 4 x 2 sweep
# (OUT defaults to benchmarks/results; then `python
# benchmarks/results_table.py write` puts the tables into docs/). Planned to
# end within 10 minutes on one recent GPU. From the repository root:
#   bash benchmarks/gpu.sh [OUT]
# Environment:
#   GANJAX_GPU_PYTHON=PATH  use this Python as it is (no install), e.g. on a
#                           machine without a network that already has
#                           jax[cuda12] and torch
#   GANJAX_IDX_DIR=DIR      the four Fashion-MNIST IDX files, where Debian's
#                           dataset-fashion-mnist is not installed
#   GANJAX_GPU_DRY_RUN=1    the same commands at toy sizes on the CPU with
#                           the current Python, writing *_dryrun.json (the
#                           test suite runs this so the script cannot rot)
set -euo pipefail
OUT=${1:+$(realpath -m "$1")}  # a relative OUT is of the caller's directory
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"

if [[ "${GANJAX_GPU_DRY_RUN:-0}" == 1 ]]; then
  PY=${GANJAX_GPU_PYTHON:-python3}
  NAME=dryrun BATCHES=8 FUSED=1,2 REPEATS=1 MAX_STEPS=4 SEEDS=2 SWEEPS=2x1
  SEED_BATCH=8 SEED_FUSED=1 PEAK_N=256 TORCH_DEVICE=cpu
else
  if [[ -n "${GANJAX_GPU_PYTHON:-}" ]]; then
    PY=$GANJAX_GPU_PYTHON
  else
    VENV=${VENV:-.venv-gpu}
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e . "jax[cuda12]>=0.10.2,<0.11" "torch==2.13.0"
    PY=$VENV/bin/python
  fi
  NAME=gpu BATCHES=128,512,4096 FUSED=1,10,100 REPEATS=10 MAX_STEPS=1000
  SEEDS=1,8,64 SWEEPS=4x2 SEED_BATCH=128 SEED_FUSED=10 PEAK_N=8192
  TORCH_DEVICE=cuda
  "$PY" -c "import jax, sys; d = jax.devices(); print(d); \
sys.exit(0 if d[0].platform == 'gpu' else 'no GPU: jax sees only ' + str(d))"
fi

"$PY" benchmarks/step_time.py --batch_sizes="$BATCHES" \
    --steps_per_call="$FUSED" --dtypes=float32,bfloat16 --impls=auto \
    --repeats="$REPEATS" --max_steps_per_config="$MAX_STEPS" \
    --peak_n="$PEAK_N" --compare=torch,torch_compile \
    --compare_dtypes=float32,bfloat16 --torch_device="$TORCH_DEVICE" \
    --out="$OUT/step_time_$NAME.json"
"$PY" benchmarks/seed_throughput.py --num_seeds="$SEEDS" --batchings=vmap \
    --sweeps="$SWEEPS" --batch="$SEED_BATCH" --steps_per_call="$SEED_FUSED" \
    --repeats="$REPEATS" \
    --out="$OUT/seed_throughput_$NAME.json"
