"""An EMA generator scored two ways on the same checkpoint: with the live
G's BatchNorm moving statistics (what ganjax did before it measured
statistics for the averaged weights) and with the statistics measured for
its own weights (`sampling.standing_statistics`, what it does now).

  python benchmarks/ema_statistics.py --workdir=runs/RUN [--step=3000]
      [--out=FILE.json]
  python benchmarks/ema_statistics.py --table=FILE.json   # markdown rows

A run of several seeds is scored seed by seed. Prints one JSON object; writes
it to --out only when given. --table prints the docs' rows from such a file:
each seed, and the mean with its 95% confidence interval over seeds. The protocol is `ganjax.evaluate`'s (10,000
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
from ganjax import gan as gan_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import trainer  # pylint: disable=g-import-not-at-top,wrong-import-position

HEADLINE = ("fid", "kid", "precision", "recall", "density", "coverage",
            "conditional_accuracy")


def score_both(workdir, step=None, num_samples=10_000, reuse=False) -> dict:
  state, step, config = trainer.restore_state(workdir, step)
  if state.g_ema_params is None:
    raise SystemExit(f"{workdir} keeps no EMA generator (config.ema_decay=0)")
  sampler, _ = models.make_models(config)
  evaluator = metrics_lib.Evaluator(config.dataset,
                                    data_dir=config.data_dir or None,
                                    source=config.data_source)
  variables = {
      "live_statistics": gan_lib.g_variables(state.g_ema_params,
                                                state.g_batch_stats),
      "standing_statistics": sampling.sampling_variables(
          sampler, state, config.latent_dim)}
  out = {"workdir": workdir, "step": int(step)}
  saved = metric_writers.eval_path(workdir, step)
  if reuse and num_samples == 10_000 and os.path.exists(saved):
    # The run's own evaluation at that step: the same protocol (10,000
    # samples, noise seed 0) with the statistics sampling uses now.
    with open(saved, encoding="utf-8") as f:
      result = json.load(f)
    out["standing_statistics"] = {k: result[k] for k in HEADLINE
                                  if k in result}
    out["standing_statistics_from"] = saved
    del variables["standing_statistics"]
  for name, g_vars in variables.items():
    result = metrics_lib.evaluate_generator(evaluator, sampler, g_vars,
                                            config.latent_dim, num_samples, 0)
    out[name] = {k: result[k] for k in HEADLINE if k in result}
  return out


TABLE = ("fid", "kid", "precision", "recall", "coverage")


def table(path) -> str:
  """Markdown rows: live vs standing statistics, per seed and over seeds."""
  with open(path, encoding="utf-8") as f:
    runs = json.load(f)["runs"]
  head = " | ".join(f"{k} live → standing" for k in TABLE)
  rows = [f"| run | {head} |", "| --- |" + " ---: |" * len(TABLE)]
  def cell(values_live, values_standing):
    (m0, c0), (m1, c1) = (seeds_lib.mean_ci95(v)
                          for v in (values_live, values_standing))
    if len(values_live) == 1:
      return f"{m0:.{digits}f} → {m1:.{digits}f}"
    return f"{m0:.{digits}f} ± {c0:.{digits}f} → {m1:.{digits}f} ± {c1:.{digits}f}"
  groups = [(os.path.basename(r["workdir"].rstrip("/")), [r]) for r in runs]
  if len(runs) > 1:
    groups.append((f"mean ± 95% CI over {len(runs)} seeds", runs))
  for name, members in groups:
    cells = []
    for key in TABLE:
      digits = 1 if key == "fid" else (2 if key == "kid" else 3)
      cells.append(cell([m["live_statistics"][key] for m in members],
                        [m["standing_statistics"][key] for m in members]))
    rows.append(f"| {name} (step {members[0]['step']}) | "
                + " | ".join(cells) + " |")
  return "\n".join(rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--table", default=None)
  parser.add_argument("--workdir")
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--num_samples", type=int, default=10_000)
  parser.add_argument("--reuse_run_eval", action="store_true",
                      help="take the standing-statistics scores from the "
                      "run's own eval/ JSON of that step (same protocol)")
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  if args.table:
    print(table(args.table))
    return
  if not args.workdir:
    parser.error("give --workdir (or --table)")
  config = trainer.load_run_config(args.workdir)
  workdirs = ([seeds_lib.member_workdir(args.workdir, s)
               for s in seeds_lib.seeds_of(config)]
              if config.num_seeds > 1 else [args.workdir])
  result = {"runs": [score_both(w, args.step, args.num_samples,
                                args.reuse_run_eval) for w in workdirs]}
  if args.out:
    metric_writers.write_json(args.out, result)
  print(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
  main()
