"""Why do two runs differ? Prints a run's reproduce report, or compares two.

  python -m ganjax.reproduce --workdir=runs/a
  python -m ganjax.reproduce --workdir=runs/a --against=runs/b

The report is the run's run.json (written when training starts): versions,
platform, devices, XLA flags and JAX settings, the config's SHA-256 over the
fields that decide the result, the git commit (and whether the tree had
changes), and the data's origin and SHA-256. With --against, only the entries
that differ are printed, and the config fields behind a different config hash.
Two runs with no differences here (other than start time and command line)
and the same device count are bit-identical on CPU.
"""

import json
import os
import sys

from absl import app
from absl import flags

from ganjax import configs

FLAGS = flags.FLAGS

IGNORED = ("started", "argv")  # differ between any two runs


def _flatten(record, prefix=""):
  flat = {}
  for key, value in record.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def _load(workdir, name):
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: --workdir={workdir} is "
                            "not a ganjax run directory (or predates it).")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def differences(workdir_a, workdir_b) -> list:
  """Lines "key: a -> b" for every reproduce entry that differs."""
  a = _flatten(_load(workdir_a, "run.json"))
  b = _flatten(_load(workdir_b, "run.json"))
  lines = [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
           for k in sorted(set(a) | set(b))
           if k not in IGNORED and a.get(k) != b.get(k)]
  if a.get("config_sha256") != b.get("config_sha256"):
    config_a, config_b = (configs.trajectory_fields(_load(w, "config.json"))
                          for w in (workdir_a, workdir_b))
    lines += [f"  config {d}"
              for d in configs.differences(config_a, config_b)]
  return lines


def main(argv):
  del argv
  try:
    if FLAGS.against is None:
      for key, value in sorted(_flatten(_load(FLAGS.workdir,
                                              "run.json")).items()):
        print(f"{key}: {value}")
      return
    lines = differences(FLAGS.workdir, FLAGS.against)
  except FileNotFoundError as e:
    print(f"ganjax.reproduce: error: {e}", file=sys.stderr)
    sys.exit(1)
  print("\n".join(lines) if lines else
        "No differences in versions, platform, devices, flags, config or data.")


def define_flags():
  """The command line's flags; defined only when run as a program, so the
  module can be imported next to other ganjax commands."""
  flags.DEFINE_string("workdir", None, "A ganjax run directory.")
  flags.DEFINE_string("against", None, "Another run directory to compare with.")
  flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
  define_flags()
  app.run(main)
