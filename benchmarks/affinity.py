"""Does the number of usable CPU cores change a run's numbers? Trains the
same short run twice, on every core and pinned to one (`taskset -c 0`), and
compares the SHA-256 of each part of the final checkpoints.

  python benchmarks/affinity.py [--steps=20] [--out=FILE.json]

XLA:CPU sizes its thread pool by the process's affinity; this shows whether
that changes the float results (it does on jax 0.10.2, 2-core x86_64).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top,wrong-import-position

from ganjax import metric_writers  # pylint: disable=g-import-not-at-top,wrong-import-position


def train(workdir, steps, pinned):
  command = [sys.executable, "-m", "ganjax.train",
             "--config=experiments/fashion.py:short",
             f"--workdir={workdir}", f"--config.num_steps={steps}",
             "--config.ema_decay=0.99", "--config.eval_every=0"]
  if pinned:
    command = ["taskset", "-c", "0"] + command
  subprocess.run(command, cwd=ROOT, check=True, capture_output=True)


def digests(workdir, step) -> dict:
  """SHA-256 (16 hex digits) of each top-level part of the checkpoint."""
  tree = ocp.PyTreeCheckpointer().restore(
      os.path.join(workdir, "checkpoints", str(step), "state"))
  parts = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    parts.setdefault(jax.tree_util.keystr(path[:1]), []).append(
        np.asarray(leaf).tobytes())
  return {key: hashlib.sha256(b"".join(chunks)).hexdigest()[:16]
          for key, chunks in sorted(parts.items())}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  result = {"cpus_usable": len(os.sched_getaffinity(0)), "steps": args.steps,
            "command": "fashion.py:short --config.ema_decay=0.99"}
  with tempfile.TemporaryDirectory() as tmp:
    for label, pinned in (("all_cores", False), ("taskset_c0", True)):
      workdir = os.path.join(tmp, label)
      train(workdir, args.steps, pinned)
      result[label] = digests(workdir, args.steps)
  result["differ"] = sorted(k for k in result["all_cores"]
                            if result["all_cores"][k] != result["taskset_c0"][k])
  print(json.dumps(result, indent=1))
  if args.out:
    metric_writers.write_json(args.out, result)


if __name__ == "__main__":
  main()
