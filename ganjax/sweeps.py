"""Sweeps: several settings of the numbers of one experiment in one run
(`config.sweep`), like several seeds (`config.num_seeds`) and with them.

`config.sweep` names a grid of overrides: axes separated by ";", each
`field=v1,v2,...`; `a+b=v1,v2` sets fields a and b to the same values
together (one axis), and `a+b=v1/w1,v2/w2` sets a to v and b to w at each
value of the axis. Every combination of the axes is a point, e.g.

  --config.sweep='g_learning_rate+d_learning_rate=1e-4,2e-4;adam_b1=0,0.5'

is 4 points. Only numbers of the same program can be swept (`SWEEPABLE`:
learning rates, betas, penalty weights, EMA decay, augmentation sizes and
ADA's target...); a field that changes the arrays' shapes or the compiled
program (an architecture, a loss, the batch size...) is refused, and so is a
field that is 0 at some points and not at others where 0 turns its piece off
(`SWITCHES`: a penalty, the EMA, ADA, dropout, a warm-up).

Every point trains with every seed, side by side in one compiled program:
point i is the run directory `workdir/p<i>_<field>=<value>...` holding the
config of the single run with those overrides and `sweep = ""` (with
several seeds, its seeds are `seed_<s>` inside it, as for a run of seeds).
So each point is an ordinary run: `ganjax.evaluate`, `ganjax.sample` and
`ganjax.report` take it, and `ganjax.train` with its config resumes it
alone. On CPU, where seeds are written out side by side
(`config.seed_batching` "unrolled", the default there), each point and seed
runs its single run's program, so it is bit-identical to that single run;
with "vmap" (the default on accelerators) a point's seeds are batched and
agree with their single runs to float rounding.

At each evaluation the sweep's workdir gets `eval/step_<N>.json`: every
point's overrides, its numbers per seed, their mean and 95% confidence
interval, and the best point by mean FID. A seed of a point that diverges
is left out (its `diverged.json`; the summary marks the point, which is then
not the best) and the others train on.
"""

import itertools
import math
import os
from typing import NamedTuple

from ganjax import seeds as seeds_lib

# Numbers that enter the step as constants of the same program.
SWEEPABLE = frozenset({
    "g_learning_rate", "d_learning_rate", "adam_b1", "adam_b2",
    "rmsprop_decay", "rmsprop_eps", "lr_warmup_steps", "lr_decay_steps",
    "gp_weight", "r1_weight", "ema_decay", "ema_start", "d_dropout",
    "augment_translation", "augment_cutout", "augment_fill", "ada_target",
    "ada_kimg"})
# Of those, the fields whose 0 turns a piece off (another program).
SWITCHES = frozenset({"gp_weight", "r1_weight", "ema_decay", "d_dropout",
                      "ada_target", "lr_warmup_steps", "lr_decay_steps"})


class Point(NamedTuple):
  """A point of a sweep: its place in the grid, directory name, overrides
  ({field: value}) and run directory (holding its seeds' when several)."""
  index: int
  name: str
  overrides: dict
  workdir: str


def _fail(value, why):
  raise ValueError(f"config.sweep={value!r} is invalid: {why}")


def _number(text, kind, sweep):
  try:
    number = kind(text)
  except ValueError:
    what = "an integer" if kind is int else "a number"
    _fail(sweep, f"{text!r} is not {what}")
  if isinstance(number, float) and not math.isfinite(number):
    _fail(sweep, f"{text!r} is not finite")
  return number


def axes(config) -> list:
  """config.sweep as [(field names, values)], checked against the config's
  fields and `SWEEPABLE`."""
  sweep = config.sweep
  if not isinstance(sweep, str):
    _fail(sweep, "must be a string such as 'd_learning_rate=1e-4,2e-4'")
  out, seen = [], set()
  for axis in (a.strip() for a in sweep.split(";") if a.strip()):
    if "=" not in axis:
      _fail(sweep, f"axis {axis!r} is not field=v1,v2,...")
    names, values = (s.strip() for s in axis.split("=", 1))
    names = tuple(n.strip() for n in names.split("+"))
    for name in names:
      if name not in config:
        _fail(sweep, f"{name!r} is not a config field")
      if name not in SWEEPABLE:
        _fail(sweep, f"{name} changes the arrays' shapes or the compiled "
              "program, so its values cannot share one program; sweepable "
              f"fields: {', '.join(sorted(SWEEPABLE))}. Train separate runs "
              f"for other values of {name}.")
      if name in seen:
        _fail(sweep, f"{name} is on two axes")
      seen.add(name)
    kinds = {int if isinstance(config[n], int) else float for n in names}
    if len(kinds) > 1:
      _fail(sweep, f"{'+'.join(names)} mixes integer and real fields")
    kind = kinds.pop()
    numbers = tuple(_values(v, names, kind, sweep)
                    for v in values.split(",") if v.strip())
    if not numbers:
      _fail(sweep, f"axis {axis!r} has no values")
    if len(set(numbers)) < len(numbers):
      _fail(sweep, f"axis {axis!r} repeats a value")
    for i, name in enumerate(names):
      column = [value[i] for value in numbers]
      if name in SWITCHES and 0 < column.count(0) < len(column):
        _fail(sweep, f"{name} is 0 at some points and not at others; 0 "
              f"turns its piece off, another program. Sweep values > 0 and "
              f"train {name}=0 as its own run.")
    out.append((names, numbers))
  return out


def _values(text, names, kind, sweep) -> tuple:
  """One value of an axis, one number per field: "v" sets every field of
  the axis to v, "v/w/..." sets them in turn."""
  parts = [_number(part.strip(), kind, sweep) for part in text.split("/")]
  if len(parts) == 1:
    return tuple(parts * len(names))
  if len(parts) != len(names):
    _fail(sweep, f"{text.strip()!r} has {len(parts)} values but the axis "
          f"has {len(names)} field(s), {'+'.join(names)}")
  return tuple(parts)


def points(config) -> list:
  """Each point's overrides, {field: value}, in grid order (the last axis
  varies fastest); [{}] without a sweep."""
  grid = axes(config)
  return [{name: value for (names, _), values in zip(grid, combo)
           for name, value in zip(names, values)}
          for combo in itertools.product(*(values for _, values in grid))]


def point_name(index: int, overrides: dict) -> str:
  """p<i>_<field>=<value>_...: the point's directory name."""
  parts = [f"{name}={value:g}" if isinstance(value, float)
           else f"{name}={value}" for name, value in overrides.items()]
  return "_".join([f"p{index}", *parts])


def point_names(config) -> list:
  return [point_name(i, o) for i, o in enumerate(points(config))]


def point_config(config, overrides: dict):
  """The config of the point's run: the sweep's, with the overrides and no
  sweep."""
  point = config.copy_and_resolve_references()
  point.update(overrides, sweep="")
  return point


def members(config, workdir: str) -> list:
  """(config, workdir, label, `Point` or None without a sweep) of every run
  in a run of seeds and points. A run of one seed and no sweep is its own
  one member."""
  if not config.sweep:
    several = config.num_seeds > 1
    return [(c, w, f" (seed {c.seed})" if several else "", None)
            for c, w in seeds_lib.members(config, workdir)]
  out = []
  for index, overrides in enumerate(points(config)):
    name = point_name(index, overrides)
    point = Point(index, name, overrides, os.path.join(workdir, name))
    for c, w in seeds_lib.members(point_config(config, overrides),
                                  point.workdir):
      label = (f" ({name}, seed {c.seed})" if config.num_seeds > 1
               else f" ({name})")
      out.append((c, w, label, point))
  return out


def summarize(results: list, diverged=None) -> dict:
  """The sweep's summary from [(`Point`, {seed: evaluation})]: each point's
  `seeds.summarize` over the seeds that have not diverged (`diverged`:
  {point index: {seed: step}}, recorded as the point's "diverged_at"), its
  name and overrides, and the best point by mean FID among those that lost
  no seed. A point whose seeds all diverged has no numbers."""
  diverged = diverged or {}
  rows = []
  for point, by_seed in results:
    row = {"point": point.index, "name": point.name,
           "overrides": point.overrides}
    if point.index in diverged:
      row["diverged_at"] = {str(s): step
                            for s, step in diverged[point.index].items()}
    rows.append({**row, **(seeds_lib.summarize(by_seed) if by_seed else {})})
  # A point that lost a seed is not the best: its mean is of the seeds that
  # survived. (Where every point lost one, the best of them is named.)
  scored = [r for r in rows if "mean" in r]
  best = min([r for r in scored if "diverged_at" not in r] or scored,
             key=lambda r: r["mean"]["fid"])
  return {"num_points": len(rows), "points": rows,
          "best": {"point": best["point"], "name": best["name"],
                   "overrides": best["overrides"],
                   "fid": best["mean"]["fid"]}}


def table(summary: dict) -> str:
  """The summary as a markdown table: each point's mean FID and recall with
  their 95% CI (over seeds), best point marked."""
  lines = ["| point | overrides | FID | recall |",
           "| --- | --- | ---: | ---: |"]
  for row in summary["points"]:
    overrides = ", ".join(f"{k}={v:g}" for k, v in row["overrides"].items())
    if "mean" not in row:
      lines.append(f"| p{row['point']} | {overrides} | "
                   f"{_diverged(row)} | - |")
      continue
    cells = []
    for key in ("fid", "recall"):
      mean, ci = row["mean"][key], row["ci95"][key]
      digits = 1 if key == "fid" else 3
      cells.append(f"{mean:.{digits}f}" if math.isnan(ci)
                   else f"{mean:.{digits}f} ± {ci:.{digits}f}")
    best = " (best)" if row["point"] == summary["best"]["point"] else ""
    left_out = f" ({_diverged(row)})" if "diverged_at" in row else ""
    lines.append(f"| p{row['point']}{best} | {overrides} | {cells[0]}"
                 f"{left_out} | {cells[1]} |")
  return "\n".join(lines)


def _diverged(row) -> str:
  """"diverged at step N (seed s)" for each seed of the point left out."""
  return ", ".join(f"diverged at step {step} (seed {seed})"
                   for seed, step in row["diverged_at"].items())
