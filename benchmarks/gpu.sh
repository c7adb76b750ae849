#!/bin/bash
# Installs ganjax with the CUDA build of jax on a fresh Linux GPU machine and
# runs the step-time table there. Usage, from the repository root:
#   bash benchmarks/gpu.sh [extra step_time.py flags]
# Writes benchmarks/results/step_time_gpu.json (and prints the table).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e . "jax[cuda12]>=0.10.2,<0.11"
"$VENV/bin/python" -c "import jax; print(jax.devices())"
# No Debian dataset on the GPU machine? Point GANJAX_IDX_DIR at a copy of the
# four Fashion-MNIST IDX files.
"$VENV/bin/python" benchmarks/step_time.py --compare= --impls=xla,matmul \
    --dtypes=float32,bfloat16 --repeats=20 --max_steps_per_config=1000 "$@"
# Seeds and sweeps in one program against separate runs (the reference step).
"$VENV/bin/python" benchmarks/seed_throughput.py --num_seeds=8 \
    --batchings=vmap,unrolled --sweeps=4x2 --repeats=10 \
    --out=benchmarks/results/seed_throughput_gpu.json
