"""Scores a run's checkpoint, or any set of images, with `ganjax.metrics`.

  python -m ganjax.evaluate --workdir=runs/fashion            # latest step
  python -m ganjax.evaluate --workdir=runs/fashion --step=3000
  python -m ganjax.evaluate --samples=samples.npz              # any framework

Prints the metrics as one JSON object on stdout (progress goes to stderr). With
--workdir it scores by the run's own protocol (config.eval_num_samples
samples, noise seed config.eval_seed) unless --num_samples or --seed say
otherwise, and writes the result to DIR/eval/step_<step>.json, where training
writes its evaluations; another protocol goes to
DIR/eval/n<num_samples>_seed<seed>/step_<step>.json and never replaces them. --samples takes an
.npz whose key `images` holds uint8 [0, 255] images, (N, H, W) or
(N, H, W, C), or an .npy of such images. A run of several seeds
(config.num_seeds) is scored seed by seed; its summary (each seed's numbers,
mean and 95% confidence interval) goes to the same place and stdout. The
protocol: the dataset's 10,000-image test split as the real set, the
generated images drawn in batches of 1,000, features from the shipped
classifier.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from ganjax import checkpointing
from ganjax import cli
from ganjax import classifier as classifier_lib
from ganjax import input_pipeline
from ganjax import metric_writers
from ganjax import metrics as metrics_lib
from ganjax import seeds as seeds_lib
from ganjax import trainer

flags.DEFINE_string("workdir", None, "A ganjax run directory.")
flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
flags.DEFINE_string("samples", None, "Images to score: an .npz with uint8 "
                    "`images`, or an .npy of uint8 images.")
flags.DEFINE_string("dataset", "fashion_mnist",
                    "Reference dataset for --samples (a run uses its own).")
flags.DEFINE_integer("num_samples", None, "Samples drawn from the generator; "
                     "default the run's config.eval_num_samples.")
flags.DEFINE_integer("seed", None, "Noise seed of the generated samples; "
                     "default the run's config.eval_seed.")
flags.DEFINE_string("data_dir", None, "IDX directory of the reference data.")
flags.DEFINE_string("out", None, "Also write the JSON here.")
FLAGS = flags.FLAGS
PROTOCOL_SAMPLES = 10_000  # the docs' tables (docs/evaluation.md)


def load_samples(path: str, dataset: str) -> np.ndarray:
  """The images of a .npz (key "images") or .npy file, checked for the
  dataset's shape and dtype before anything slow starts."""
  try:
    data = np.load(path)
  except (OSError, EOFError, ValueError) as e:  # BadZipFile is an OSError
    raise ValueError(f"--samples={path} cannot be read as .npz or .npy: "
                     f"{e}") from e
  if isinstance(data, np.lib.npyio.NpzFile):
    with data:
      if "images" not in data:
        raise ValueError(f"--samples={path} has no key 'images' (keys: "
                         f"{sorted(data.keys())}).")
      data = data["images"]
  try:
    return metrics_lib.check_images(data, dataset)
  except ValueError as e:
    raise ValueError(f"--samples={path}: {e}") from e


def main(argv):
  del argv
  cli.quiet_logs()
  if (FLAGS.workdir is None) == (FLAGS.samples is None):
    raise app.UsageError("Give exactly one of --workdir and --samples.")
  try:
    result = _run()
  except (ValueError, FileNotFoundError, input_pipeline.DatasetError,
          checkpointing.CheckpointError, classifier_lib.ClassifierError) as e:
    cli.fail("ganjax.evaluate", e)
  if FLAGS.out:
    metric_writers.write_json(FLAGS.out, result)
  print(json.dumps(result, sort_keys=True))


def _run():
  if FLAGS.samples:
    images = load_samples(FLAGS.samples, FLAGS.dataset)
    evaluator = metrics_lib.Evaluator(FLAGS.dataset, data_dir=FLAGS.data_dir)
    logging.info("Scoring %d images from %s", len(images), FLAGS.samples)
    if len(images) < PROTOCOL_SAMPLES:
      logging.warning("Only %d images: FID and KID are biased upward with "
                      "few samples, and the docs' protocol uses %d, so "
                      "these numbers are not comparable with its tables.",
                      len(images), PROTOCOL_SAMPLES)
    result = evaluator.evaluate(images)
    result["samples"] = os.path.abspath(FLAGS.samples)
    return result
  config = trainer.load_run_config(FLAGS.workdir)
  if config.num_seeds > 1 and not config.sweep:  # a sweep: the error names
    return _run_seeds(config)                    # its points' directories
  return _run_workdir(FLAGS.workdir)


def _protocol(config):
  """(num_samples, seed, where under eval/): the run's own protocol unless
  the flags name another."""
  num = config.eval_num_samples if FLAGS.num_samples is None else (
      FLAGS.num_samples)
  seed = config.eval_seed if FLAGS.seed is None else FLAGS.seed
  if num < 2:
    raise ValueError(f"--num_samples={num}: FID needs at least 2 samples "
                     f"(the docs' protocol uses {PROTOCOL_SAMPLES}).")
  own = (num, seed) == (config.eval_num_samples, config.eval_seed)
  return num, seed, "" if own else f"n{num}_seed{seed}"


def _run_seeds(config):
  results = {seed: _run_workdir(seeds_lib.member_workdir(FLAGS.workdir, seed))
             for seed in seeds_lib.seeds_of(config)}
  steps = {r["step"] for r in results.values()}
  if len(steps) > 1:
    raise ValueError(f"The seeds of {FLAGS.workdir} were scored at different "
                     f"steps {sorted(steps)}; give --step.")
  summary = {**seeds_lib.summarize(results), "step": steps.pop()}
  path = metric_writers.eval_path(FLAGS.workdir, summary["step"],
                                  _protocol(config)[2])
  metric_writers.write_json(path, summary)
  logging.info("Wrote %s", path)
  return summary


def _run_workdir(workdir):
  sampler, g_vars, step, config = trainer.restore_generator(
      workdir, FLAGS.step)
  evaluator = metrics_lib.Evaluator(
      config.dataset, data_dir=FLAGS.data_dir or config.data_dir or None,
      source=config.data_source, tfds_data_dir=config.tfds_data_dir or None)
  num, seed, protocol = _protocol(config)
  logging.info("Scoring %d samples (noise seed %d) from %s step %d", num,
               seed, workdir, step)
  result = trainer.evaluate_checkpoint(
      evaluator, sampler, g_vars, workdir, step, config.latent_dim, num, seed,
      protocol)
  logging.info("Wrote %s", metric_writers.eval_path(workdir, step, protocol))
  return result


if __name__ == "__main__":
  app.run(main)
