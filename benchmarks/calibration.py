"""The evaluation metrics on image sets of known quality, and their speed.

  python benchmarks/calibration.py [--num=10000] [--out=benchmarks/results/calibration.json]
  python benchmarks/calibration.py --dataset=stacked_fashion_mnist \
      --out=benchmarks/results/calibration_stacked_cpu.json   # mode coverage

Rows: `metrics.calibration_sets` (a random part of the training split, the
same blurred, one image repeated, uniform noise). Prints a Markdown table, then the time to score
10,000 samples (median of --repeats after a warm-up), with and without drawing
them from the reference generator.
"""

import json
import os
import statistics
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import recipes  # pylint: disable=g-import-not-at-top,wrong-import-position

fashion = recipes.load_module(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
    "fashion.py"))

flags.DEFINE_string("dataset", "fashion_mnist", "A dataset with an "
                    "evaluation classifier (or made from one's images).")
flags.DEFINE_integer("num", 10_000, "Images per row.")
flags.DEFINE_integer("repeats", 3, "Timed repeats.")
flags.DEFINE_string("out", None, "Write the rows and timings as JSON here.")
FLAGS = flags.FLAGS

COLUMNS = ("fid", "fid_logits", "kid", "precision", "recall", "density",
           "coverage", "classes_covered", "classifier_score")


def _median_seconds(fn, repeats):
  fn()  # compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main(argv):
  del argv
  t0 = time.perf_counter()
  evaluator = metrics.Evaluator(FLAGS.dataset)
  jax.block_until_ready(evaluator.real["features"])
  setup_s = time.perf_counter() - t0
  images, _, _ = input_pipeline.load(FLAGS.dataset, "train")
  sets = metrics.calibration_sets(images, FLAGS.num)
  rows = {name: evaluator.evaluate(x) for name, x in sets.items()}
  columns = [c for c in COLUMNS + ("modes_covered", "mode_kl")
             if c in rows["train split"]]
  print("| set | " + " | ".join(columns) + " |")
  print("| --- |" + " ---: |" * len(columns))
  for name, r in rows.items():
    cells = [f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
             for c in columns]
    print(f"| {name} | " + " | ".join(cells) + " |")
  if FLAGS.dataset != "fashion_mnist":  # the timings are of the reference's
    _write({"dataset": FLAGS.dataset, "rows": rows})
    return

  score_s = _median_seconds(lambda: evaluator.evaluate(sets["train split"]),
                            FLAGS.repeats)
  config = fashion.get_config()
  generator, _ = models.make_models(config)
  g_vars = generator.init(jax.random.key(0),
                          np.zeros((1, config.latent_dim), np.float32),
                          train=False)
  full_s = _median_seconds(lambda: metrics.evaluate_generator(
      evaluator, generator, g_vars, config.latent_dim, FLAGS.num, 0),
                           FLAGS.repeats)
  timing = {"setup_s": setup_s, "score_s": score_s,
            "generate_and_score_s": full_s, "num": FLAGS.num,
            "backend": jax.default_backend(),
            "device": jax.devices()[0].device_kind,
            "cpu_count": os.cpu_count(), "jax": jax.__version__}
  print(f"\nset-up (load the classifier and the test split, its features "
        f"and k-NN radii): {setup_s:.1f} s")
  print(f"score {FLAGS.num} images: {score_s:.1f} s; draw them from the "
        f"reference generator and score: {full_s:.1f} s (median of "
        f"{FLAGS.repeats}, {timing['device']}, {os.cpu_count()} cores)")
  _write({"rows": rows, "timing": timing})


def _write(record):
  if FLAGS.out:
    record["machine"] = {"backend": jax.default_backend(),
                         "device": jax.devices()[0].device_kind,
                         "cpu_count": os.cpu_count(), "jax": jax.__version__}
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      json.dump(record, f, indent=2)


if __name__ == "__main__":
  app.run(main)
