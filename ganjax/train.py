"""Trains a GAN.

  python -m ganjax.train --config=experiments/fashion.py --workdir=runs/fashion
  python -m ganjax.train --config=experiments/fashion.py:smoke \
      --workdir=/tmp/smoke --config.seed=1
Over several processes (run on each; see ganjax/distributed.py):
  python -m ganjax.train --config=... --workdir=DIR \
      --coordinator_address=HOST0:1234 --num_processes=2 --process_id=I
"""

import difflib
import signal
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ganjax import cli
from ganjax import distributed
from ganjax import recipes
from ganjax import trainer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. experiments/fashion.py.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and samples "
                    "go; an existing run there is resumed.")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, "
                    "for a run over several processes (see "
                    "ganjax/distributed.py); default $JAX_COORDINATOR_ADDRESS.")
flags.DEFINE_integer("num_processes", None, "Processes of a multi-process "
                     "run; default $JAX_NUM_PROCESSES.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, "
                     "num_processes); default $JAX_PROCESS_ID.")
flags.DEFINE_bool("distributed", False, "Join a multi-process run set up by "
                  "the cluster (SLURM, Open MPI, TPU pods), detected by JAX.")
flags.mark_flags_as_required(["config", "workdir"])


def unknown_overrides(argv) -> list:
  """One message per `--config.FIELD=...` of `argv` that names no field of
  the recipe, with the closest field names."""
  spec = _config_spec(argv)
  if spec is None:
    return []
  config = recipes.load(spec)
  problems = []
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=", 1)[0].split(".")
    node = config
    for depth, key in enumerate(path):
      if not hasattr(node, "keys") or key not in node:
        fields = sorted(node.keys()) if hasattr(node, "keys") else []
        close = difflib.get_close_matches(key, fields, n=3)
        name = "config." + ".".join(path[:depth + 1])
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        problems.append(f"{name} is not a field of {spec}; {hint}"
                        f"fields: {', '.join(fields)}")
        break
      node = node[key]
  return problems


def _config_spec(argv):
  """The recipe of `--config=SPEC` or `--config SPEC` (the last one, as absl
  reads it); None without one."""
  spec = None
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      spec = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      spec = argv[i + 1]
  return spec


def _parse_flags(argv):
  """absl's parsing, with a recipe that does not load (a missing file, an
  unknown variant) or a misspelt config field as one line of error rather
  than a traceback."""
  spec = _config_spec(argv)
  if spec is not None:
    try:
      recipes.load(spec)
    except (FileNotFoundError, ValueError) as e:
      cli.fail("ganjax.train", f"--config={spec}: {e}")
  try:
    return app.parse_flags_with_usage(argv)
  except AttributeError:
    problems = unknown_overrides(argv)
    if not problems:
      raise
    cli.fail("ganjax.train", problems[0])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  cli.quiet_logs()
  try:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id, auto=FLAGS.distributed)
    trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except trainer.Preempted as e:
    logging.warning("%s", e)
    # The shell's convention for a signal; a process stopped with the others
    # of a multi-process run exits as if it had been sent SIGTERM.
    sys.exit(128 + (e.signum or signal.SIGTERM))
  except trainer.USER_ERRORS as e:  # a bad input: say what, not where
    cli.fail("ganjax.train", e)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
