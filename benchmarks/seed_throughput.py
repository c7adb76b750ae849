"""Throughput of N seeds (and of sweeps of P points x N seeds) in one
program against as many separate runs.

  python benchmarks/seed_throughput.py [--num_seeds=2,4]
      [--batchings=unrolled,vmap] [--sweeps=4x2] [--batch=128]
      [--steps_per_call=10] [--repeats=5]
      [--out=benchmarks/results/seed_throughput_cpu.json]

The reference recipe on one device. "separate" is one seed's compiled call,
timed alone: N separate runs one after another take N times as long. Each
N-seed program (config.num_seeds=N, config.seed_batching) is timed the same
way, and each sweep PxN (config.sweep of P learning rates, N seeds each,
seed_batching "auto"). Reports the median ms per seed-step (a call's time /
(runs x fused steps)) and the speed-up over separate runs: runs x separate
/ the call.
"""

import argparse
import json
import os
import statistics
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from benchmarks.step_time import time_calls, training_call  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position

fashion = recipes.load_module(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
    "fashion.py"))


def ms_per_seed_step(images, *, num_seeds, batching, batch, steps_per_call,
                     repeats, points=0):
  """Ms per seed-step of each timed call; num_seeds=0 times the plain
  one-seed step; `points` > 0 sweeps that many learning rates."""
  config = fashion.get_config()
  config.update(batch_size=batch, steps_per_call=steps_per_call,
                num_seeds=max(num_seeds, 1), seed_batching=batching)
  if points:
    rates = ",".join(f"{1e-3 * (1 + k / 10):g}" for k in range(points))
    config.sweep = f"g_learning_rate+d_learning_rate={rates}"
  call = training_call(config, images, jax.local_devices()[:1],
                       seeds=num_seeds > 0)
  samples = time_calls(call, steps_per_call, repeats)  # ms per fused step
  return [s / (max(num_seeds, 1) * max(points, 1)) for s in samples]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--num_seeds", default="2,4")
  parser.add_argument("--batchings", default="unrolled,vmap")
  parser.add_argument("--sweeps", default="4x2", help="PxN,...: sweeps of "
                      "P points x N seeds; '' for none")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps_per_call", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default=None, help="also write the rows "
                      "as JSON here (the committed results are "
                      "benchmarks/results/seed_throughput_<backend>.json)")
  args = parser.parse_args()
  images, _, _ = input_pipeline.load("fashion_mnist", "train")
  common = dict(batch=args.batch, steps_per_call=args.steps_per_call,
                repeats=args.repeats)
  separate = ms_per_seed_step(images, num_seeds=0, batching="unrolled",
                              **common)
  base = statistics.median(separate)
  print(f"{'separate runs':<22}{base:9.1f} ms/seed-step", flush=True)
  rows = [{"num_seeds": 1, "batching": "separate", "ms_per_seed_step": base,
           "samples_ms": separate, "speedup_vs_separate": 1.0}]
  for batching in (b for b in args.batchings.split(",") if b):
    for n in (int(v) for v in args.num_seeds.split(",") if v):
      samples = ms_per_seed_step(images, num_seeds=n, batching=batching,
                                 **common)
      ms = statistics.median(samples)
      rows.append({"num_seeds": n, "batching": batching,
                   "ms_per_seed_step": ms, "samples_ms": samples,
                   "speedup_vs_separate": base / ms})
      print(f"{n} seeds, {batching:<12}{ms:9.1f} ms/seed-step"
            f"{base / ms:7.2f}x", flush=True)
  for sweep in (s for s in args.sweeps.split(",") if s):
    p, n = (int(v) for v in sweep.split("x"))
    samples = ms_per_seed_step(images, num_seeds=n, batching="auto",
                               points=p, **common)
    ms = statistics.median(samples)
    rows.append({"num_seeds": n, "sweep_points": p, "batching": "auto",
                 "ms_per_seed_step": ms, "samples_ms": samples,
                 "speedup_vs_separate": base / ms})
    print(f"sweep {p} x {n} seeds{'':<6}{ms:9.1f} ms/seed-step"
          f"{base / ms:7.2f}x", flush=True)
  if not args.out:
    return
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump({"backend": jax.default_backend(), "jax": jax.__version__,
               "device": jax.devices()[0].device_kind,
               "cpu_count": os.cpu_count(), "args": vars(args),
               "rows": rows}, f, indent=1)
  print("wrote", args.out)


if __name__ == "__main__":
  main()
