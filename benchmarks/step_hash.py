"""SHA-256 of the training state after a few steps of each recipe: a change
that should not alter the result (a refactor of the step) must leave these
hashes as they were.

  python benchmarks/step_hash.py                    # all recipes, 10 steps
  python benchmarks/step_hash.py --recipes=experiments/fashion.py --steps=10
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python benchmarks/step_hash.py --fused     # 4 devices, fused calls
  python benchmarks/step_hash.py --recipes=experiments/fashion.py \
      --chunks=32:256,none:none \
      --out=benchmarks/results/step_hash_batch_chunks_cpu.json

Each recipe trains `--steps` steps at batch 64 (evaluation, grids and
checkpoints other than the last off) in a temporary directory with
`ganjax.trainer.train_and_evaluate`, one step per call; with `--fused`,
two fused calls of the recipe's own `steps_per_call` (lazy R1 groups
included) on all devices. The hash covers every array of the returned
state, in tree order. (cifar10_sngan.py is left out: its data are not on
this machine.) The hash depends on the machine's float
arithmetic (XLA:CPU's thread count among it): compare hashes made on one
machine, with the same CPUs usable.
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import step_time  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import layers  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

RECIPES = ("fashion.py", "fashion.py:keras", "fashion_conditional.py",
           "fashion_conditional_ema.py",
           "fashion_r1_ema_diffaug.py", "fashion_wgan_gp.py",
           "fashion_hinge_sn.py", "fashion_ns_adam.py")


def _cpu_model() -> str:
  """The CPU's model name (Linux), which the hashes depend on."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def state_sha256(state) -> str:
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(state)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def recipe_hash(spec: str, steps: int, fused: bool = False) -> str:
  config = recipes.load(spec)
  if fused:
    steps = 2 * config.steps_per_call
  else:
    config.update(steps_per_call=1, r1_every=1)
  config.update(num_steps=steps, batch_size=64, eval_every=0,
                sample_every=10 ** 9, log_every=steps,
                checkpoint_every=steps, ema_start=0)
  with tempfile.TemporaryDirectory() as workdir:
    return state_sha256(trainer.train_and_evaluate(config, workdir))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--recipes", default=",".join(
      os.path.join(REPO, "experiments", r) for r in RECIPES))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--fused", action="store_true")
  parser.add_argument("--out", default=None, help="also write JSON here")
  parser.add_argument("--chunks", type=step_time.strs, default=[],
                      help="also hash each recipe with the CPU convolutions "
                      "over these chunks of the batch, WEIGHT_GRAD:PASS each "
                      "('none': the whole batch; none:none is the program "
                      "before there were chunks)")
  args = parser.parse_args()
  chunk_sizes = {text: step_time.chunk_sizes(text) for text in args.chunks}
  hashes, chunked = {}, {text: {} for text in args.chunks}
  for spec in args.recipes.split(","):
    name = os.path.relpath(spec, REPO)
    hashes[name] = recipe_hash(spec, args.steps, args.fused)
    print(f"{hashes[name]}  {spec}", flush=True)
    for text, sizes in chunk_sizes.items():
      with layers.batch_chunks(*sizes):
        chunked[text][name] = recipe_hash(spec, args.steps, args.fused)
      print(f"{chunked[text][name]}  {spec} (chunks {text})", flush=True)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump({"steps": args.steps, "fused": args.fused,
                 "devices": jax.device_count(), "jax": jax.__version__,
                 "cpus_usable": len(os.sched_getaffinity(0)),
                 "cpu": _cpu_model(), "platform": platform.platform(),
                 "hashes": hashes,
                 "chunks": [layers.WEIGHT_GRAD_CHUNK, layers.PASS_CHUNK],
                 **({"hashes_chunks": chunked} if chunked else {})},
                f, indent=2)


if __name__ == "__main__":
  sys.exit(main())
