"""Trains a GAN.

  python -m ganjax.train --config=experiments/fashion.py --workdir=runs/fashion
  python -m ganjax.train --config=experiments/fashion.py:smoke \
      --workdir=/tmp/smoke --config.seed=1
"""

import logging as std_logging
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ganjax import trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/fashion.py.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and samples "
                    "go; an existing run there is resumed.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  # Orbax logs every save step at INFO; keep its warnings only.
  logging.get_absl_handler().python_handler.addFilter(
      lambda r: r.levelno >= std_logging.WARNING or "/orbax/" not in r.pathname)
  try:
    trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except trainer.Preempted as e:
    logging.warning("%s", e)
    sys.exit(128 + e.signum)  # the shell's convention for a signal
  except trainer.USER_ERRORS as e:  # a bad input: say what, not where
    raise SystemExit(f"ganjax.train: error: {e}") from e


if __name__ == "__main__":
  app.run(main)
