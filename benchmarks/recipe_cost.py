"""Step time of each recipe in experiments/ against the reference's.

  python benchmarks/recipe_cost.py [--batch=128] [--steps_per_call=10]
      [--repeats=5] [--out=benchmarks/results/recipe_cost_cpu.json]

One device, the recipes' own settings at the given batch and fused steps,
then the recipes with the overrides of VARIANTS
(lazy R1's interval cut to a divisor of them; MNIST-sized recipes only:
CIFAR-10 needs its data). Reports the median
ms/step of `repeats` timed calls after a warm-up, and the ratio to the
reference recipe (experiments/fashion.py) measured in the same process.
"""

import argparse
import json
import math
import os
import statistics
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from benchmarks.step_time import time_calls, training_call  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import build  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECIPES = ("fashion", "fashion_ns_adam", "fashion_hinge_sn",
           "fashion_wgan_gp", "fashion_r1_ema_diffaug", "fashion_conditional",
           "fashion_conditional_ema", "fashion_r3gan")
# Recipes with config overrides that docs/results.md trains and compares.
VARIANTS = (("fashion_hinge_sn", {"ema_decay": 0.99}),
            ("fashion_r3gan", {"penalties": "r1:0.1:5,r2:0.1:5"}),
            ("fashion_r3gan", {"architecture": "r3gan28_full"}))


def overrides_text(overrides) -> str:
  return " ".join(f"--config.{k}={v}" for k, v in overrides.items())


def recipe_ms(recipe, images, labels, batch, steps_per_call, repeats,
              overrides=None):
  config = recipes.load(os.path.join(ROOT, "experiments", f"{recipe}.py"))
  config.update(batch_size=batch, steps_per_call=steps_per_call,
                **(overrides or {}))
  if config.r1_weight:  # lazy R1 groups must divide the fused call
    config.r1_every = math.gcd(config.r1_every, steps_per_call)
  assert all(steps_per_call % p.every == 0 for p in build.penalties(config)), (
      f"{recipe}: a lazy period of config.penalties does not divide "
      f"--steps_per_call={steps_per_call}")
  configs.validate(config, 1)
  call = training_call(config, images, jax.local_devices()[:1], labels)
  return time_calls(call, steps_per_call, repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps_per_call", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default=None, help="also write the rows "
                      "as JSON here (the committed results are "
                      "benchmarks/results/recipe_cost_<backend>.json)")
  args = parser.parse_args()
  images, labels, _ = input_pipeline.load("fashion_mnist", "train")
  rows = []
  for recipe, overrides in [(r, {}) for r in RECIPES] + list(VARIANTS):
    samples = recipe_ms(recipe, images, labels, args.batch,
                        args.steps_per_call, args.repeats, overrides)
    rows.append({"recipe": recipe, "ms_per_step": statistics.median(samples),
                 "samples_ms": samples})
    if overrides:
      rows[-1]["overrides"] = overrides_text(overrides)
    base = rows[0]["ms_per_step"]
    print(f"{recipe} {rows[-1].get('overrides', '')}".ljust(26) +
          f"{rows[-1]['ms_per_step']:9.1f} ms/step"
          f"{rows[-1]['ms_per_step'] / base:7.2f}x", flush=True)
  for row in rows:
    row["ratio_to_reference"] = row["ms_per_step"] / rows[0]["ms_per_step"]
  if not args.out:
    return
  with open(args.out, "w", encoding="utf-8") as f:
    json.dump({"backend": jax.default_backend(), "jax": jax.__version__,
               "cpu_count": os.cpu_count(), "args": vars(args),
               "rows": rows}, f, indent=1)
  print("wrote", args.out)


if __name__ == "__main__":
  main()
