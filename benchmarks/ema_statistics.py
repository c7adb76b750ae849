"""An EMA generator scored two ways on the same checkpoint: with the live
G's BatchNorm moving statistics (what ganjax did before it measured
statistics for the averaged weights) and with the statistics measured for
its own weights (`sampling.standing_statistics`, what it does now).

  python benchmarks/ema_statistics.py --workdir=runs/RUN [--step=3000]
      [--out=FILE.json]

A run of several seeds is scored seed by seed. Prints one JSON object; writes
it to --out only when given. The protocol is `ganjax.evaluate`'s (10,000
samples, noise seed 0, the test split).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from ganjax import metric_writers  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import metrics as metrics_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import sampling  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import seeds as seeds_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import train_step  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

HEADLINE = ("fid", "kid", "precision", "recall", "density", "coverage",
            "conditional_accuracy")


def score_both(workdir, step=None, num_samples=10_000) -> dict:
  state, step, config = trainer.restore_state(workdir, step)
  if state.g_ema_params is None:
    raise SystemExit(f"{workdir} keeps no EMA generator (config.ema_decay=0)")
  sampler, _ = models.make_models(config)
  evaluator = metrics_lib.Evaluator(config.dataset,
                                    data_dir=config.data_dir or None,
                                    source=config.data_source)
  variables = {
      "live_statistics": train_step.g_variables(state.g_ema_params,
                                                state.g_batch_stats),
      "standing_statistics": sampling.sampling_variables(
          sampler, state, config.latent_dim)}
  out = {"workdir": workdir, "step": int(step)}
  for name, g_vars in variables.items():
    result = metrics_lib.evaluate_generator(evaluator, sampler, g_vars,
                                            config.latent_dim, num_samples, 0)
    out[name] = {k: result[k] for k in HEADLINE if k in result}
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--num_samples", type=int, default=10_000)
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  config = trainer.load_run_config(args.workdir)
  workdirs = ([seeds_lib.member_workdir(args.workdir, s)
               for s in seeds_lib.seeds_of(config)]
              if config.num_seeds > 1 else [args.workdir])
  result = {"runs": [score_both(w, args.step, args.num_samples)
                     for w in workdirs]}
  if args.out:
    metric_writers.write_json(args.out, result)
  print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
  main()
