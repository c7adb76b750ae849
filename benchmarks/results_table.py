"""Results rows of the docs, generated from committed JSON.

  python benchmarks/results_table.py collect NAME RUNDIR [--log=TRAIN.log]
      [--group=equal_time|seeds|ablations|stacked] [--previous='{"fid": F, "recall": R, "source": "README.md at COMMIT"}']
      [--note=TEXT]
  python benchmarks/results_table.py collect-sweep NAME SWEEPDIR [--log=TRAIN.log]
      [--note=TEXT]
  python benchmarks/results_table.py table        # prints the markdown tables
  python benchmarks/results_table.py write        # rewrites them in docs/
  python benchmarks/results_table.py check        # exit 1 if the docs differ

`collect` keeps what a row needs from a finished run (its command line and
machine from run.json, its in-training evaluations, the loop time from the
training log) in benchmarks/results/runs/NAME.json (with `--group=G`, in
benchmarks/results/runs/G/NAME.json, a table of its own; a run of several
seeds keeps each evaluation's mean, 95% CI and per-seed values, for
--group=seeds); `--previous` records the
numbers an earlier version of the row showed, and where (a file at a
commit), printed side by side. Notes are printed under the table.
`collect-sweep` keeps a finished sweep's summary (its newest
eval/step_N.json: every point's numbers over seeds and the best point),
command, machine and loop time in benchmarks/results/sweeps/NAME.json.

Each generated table of docs/results.md sits between two marker lines
(`SECTIONS`: the re-run rows, the runs of several seeds (group seeds),
single runs that change one piece of a recipe (group ablations),
the recipes at equal training time (group equal_time), the recipes' step costs from
benchmarks/results/recipe_cost_cpu.json, the EMA statistics study from
benchmarks/results/ema_statistics_cpu.json, Stacked Fashion-MNIST's
calibration from benchmarks/results/calibration_stacked_cpu.json,
generators trained on it with their mode coverage (group stacked), the
tuning sweeps from benchmarks/results/sweeps/*.json), and so does each of
docs/performance.md (the step-time tables from
benchmarks/results/step_time_*.json); they are never edited by hand.
"""

import argparse
import glob
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "runs")
SWEEPS = os.path.join(ROOT, "benchmarks", "results", "sweeps")
DOC = os.path.join(ROOT, "docs", "results.md")
# collect's --group: a subfolder of RESULTS, each a table of its own.
GROUPS = ("", "seeds", "ablations", "equal_time", "stacked")
# The row of the seeds table the others are tested against (Welch's t-test).
REFERENCE_SEEDS = "fashion"
KEYS = ("fid", "kid", "precision", "recall", "density", "coverage",
        "classes_covered")
# Stacked Fashion-MNIST's mode coverage (ganjax/stacked.py), kept when present.
MODE_KEYS = ("modes_covered", "mode_kl")


def collect(name, rundir, log=None, previous=None, note=None,
            group="") -> dict:
  """Writes benchmarks/results/runs/NAME.json from a finished run.

  Args:
    name: the row's file name.
    rundir: the run's --workdir (run.json and eval/ are read).
    log: the training log, for the loop time ("Finished steps S to E in
      T s", or the older "Finished N steps in T s").
    previous: {"fid", "recall", "source"} an earlier version of the row.
    note: how the run was made, printed under the table.
    group: a subfolder of benchmarks/results/runs/ whose rows make a table
      of their own ("" for the re-run rows).

  Returns:
    The row as written.
  """
  with open(os.path.join(rundir, "run.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  evals = {}
  for path in sorted(glob.glob(os.path.join(rundir, "eval", "step_*.json"))):
    with open(path, encoding="utf-8") as f:
      result = json.load(f)
    _check_kind(path, result, group)
    if "mean" in result:  # several seeds: their summary (ganjax.seeds)
      evals[str(result["step"])] = _over_seeds(rundir, path, result)
    else:
      evals[str(result["step"])] = {
          **{k: result[k] for k in KEYS + ("protocol",)},
          **{k: result[k] for k in MODE_KEYS if k in result}}
  if not evals:
    raise SystemExit(f"{rundir}/eval/ holds no evaluations; train with "
                     "eval_every > 0 or run ganjax.evaluate first")
  loop_seconds = _loop_seconds(log)
  if log:
    elapsed = _seconds_to_evaluations(log)
    for step, seconds in elapsed.items():
      if step in evals:
        evals[step]["seconds_from_start"] = seconds
  row = {"name": name, **_run_facts(manifest),
         "evaluations": evals, "loop_seconds": loop_seconds,
         "previous": previous, "note": note}
  os.makedirs(os.path.join(RESULTS, group), exist_ok=True)
  with open(os.path.join(RESULTS, group, f"{name}.json"), "w",
            encoding="utf-8") as f:
    json.dump(row, f, indent=1, sort_keys=True)
    f.write("\n")
  return row


def _check_kind(path, result, group):
  """Refuses an evaluation that `collect` with `group` does not take."""
  if "points" in result:
    raise SystemExit(f"{path} is a sweep's summary: collect it with "
                     "collect-sweep NAME SWEEPDIR")
  has_modes = "modes_covered" in result.get("mean", result)
  if group == "stacked" and "mean" in result:
    raise SystemExit(f"{path} is the summary of a run of several seeds: "
                     "--group=stacked takes one seed's run")
  if group == "stacked" and not has_modes:
    raise SystemExit(f"{path} has no mode coverage: --group=stacked takes a "
                     "run on stacked_fashion_mnist")
  if group != "stacked" and has_modes:
    raise SystemExit(f"{path} is a Stacked Fashion-MNIST evaluation: collect "
                     "it with --group=stacked")
  if "mean" in result and group != "seeds":
    raise SystemExit(f"{path} is the summary of a run of several seeds: "
                     "collect it with --group=seeds")
  if "mean" not in result and group == "seeds":
    raise SystemExit(f"{path} is one seed's evaluation: --group=seeds takes "
                     "a run of several seeds (config.num_seeds > 1)")


def _over_seeds(rundir, path, summary) -> dict:
  """A run of several seeds' evaluation at one step: the mean of each of
  KEYS, its 95% CI, every seed's value, the protocol (from the first seed's
  own JSON) and D(x)/D(G(z)) over the last 500 steps of all seeds."""
  first = os.path.join(rundir, f"seed_{summary['seeds'][0]}", "eval",
                       os.path.basename(path))
  with open(first, encoding="utf-8") as f:
    protocol = json.load(f)["protocol"]
  return {**{k: summary["mean"][k] for k in KEYS}, "protocol": protocol,
          "ci95": {k: summary["ci95"][k] for k in KEYS},
          "per_seed": {k: summary["per_seed"][k] for k in KEYS},
          "seeds": summary["seeds"],
          "last_500_steps": _late_training(rundir, summary["step"])}


def _loop_seconds(log):
  """The training loop's time from its log's last "Finished steps S to E in
  T s" (or the older "Finished N steps in T s"); None without a log."""
  if not log:
    return None
  with open(log, encoding="utf-8") as f:
    found = re.findall(r"Finished (?:\d+ steps|steps \d+ to \d+) in "
                       r"([0-9.]+) s", f.read())
  return float(found[-1]) if found else None


def _run_facts(manifest) -> dict:
  """The command (without --workdir) and machine of a run.json."""
  argv = manifest["argv"]
  return {"command": "python -m ganjax.train " + " ".join(
              a for a in argv[1:] if not a.startswith("--workdir")),
          "platform": manifest["platform"], "backend": manifest["backend"],
          "cpu_count": manifest.get("cpu_count"),
          "cpus_usable": manifest.get("cpus_usable"),
          "git_commit": manifest.get("git_commit")}


def collect_sweep(name, sweepdir, log=None, note=None) -> dict:
  """Writes benchmarks/results/sweeps/NAME.json from a finished sweep: its
  newest summary (eval/step_N.json), command, machine and loop time."""
  with open(os.path.join(sweepdir, "run.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  with open(os.path.join(sweepdir, "config.json"), encoding="utf-8") as f:
    sweep = json.load(f)["sweep"]
  paths = sorted(glob.glob(os.path.join(sweepdir, "eval", "step_*.json")))
  if not paths:
    raise SystemExit(f"{sweepdir}/eval/ holds no sweep summary; is "
                     f"{sweepdir} a finished sweep with eval_every > 0?")
  with open(paths[-1], encoding="utf-8") as f:
    summary = json.load(f)
  if "points" not in summary:
    raise SystemExit(f"{paths[-1]} is not a sweep's summary (no points); "
                     "give the sweep's --workdir, not one point's")
  for point in summary["points"]:
    point["last_500_steps"] = _late_training(
        os.path.join(sweepdir, point["name"]), summary["step"])
  row = {"name": name, **_run_facts(manifest),
         "sweep": sweep, "summary": summary,
         "loop_seconds": _loop_seconds(log),
         "wall_seconds": _wall_seconds(log) if log else None, "note": note}
  os.makedirs(SWEEPS, exist_ok=True)
  with open(os.path.join(SWEEPS, f"{name}.json"), "w", encoding="utf-8") as f:
    json.dump(row, f, indent=1, sort_keys=True)
    f.write("\n")
  return row


def _late_training(pointdir, step, window=500):
  """D(x), D(G(z)) and the losses averaged over the logged steps of the
  last `window` before `step`, over the point's seeds (metrics.jsonl)."""
  sums, count = {}, 0
  for path in glob.glob(os.path.join(pointdir, "**", "metrics.jsonl"),
                        recursive=True):
    with open(path, encoding="utf-8") as f:
      for line in f:
        record = json.loads(line)
        if step - window < record["step"] <= step and "d_real" in record:
          count += 1
          for key in ("d_real", "d_fake", "d_loss", "g_loss"):
            sums[key] = sums.get(key, 0.0) + record[key]
  return {k: v / count for k, v in sums.items()} if count else {}


# The columns of the tables of means over seeds (sweeps, seeds).
MEAN_KEYS = ("fid", "kid", "precision", "recall", "density", "coverage")
MEAN_HEAD = " | ".join(k.upper() if k in ("fid", "kid") else k
                       for k in MEAN_KEYS)


def _late_cell(late) -> str:
  """D(x) / D(G(z)) of _late_training's averages ("-" without)."""
  return f"{late['d_real']:.2f} / {late['d_fake']:.2f}" if late else "-"


def sweeps_table() -> str:
  """Every sweep of benchmarks/results/sweeps/: its command and budget, then
  a row per point (mean over seeds, ± the 95% CI with several seeds), the
  best point in bold."""
  out = []
  for path in sorted(glob.glob(os.path.join(SWEEPS, "*.json"))):
    with open(path, encoding="utf-8") as f:
      row = json.load(f)
    summary = row["summary"]
    seeds = max(p.get("num_seeds", 0) for p in summary["points"])
    wall = row.get("wall_seconds")
    loop = (f", {wall:,.0f} s of wall time from start to end "
            f"on {row.get('cpus_usable') or row.get('cpu_count')} "
            f"{row['backend']} cores" if wall else "")
    out += [f"`{row['name']}`: `{row['command']}` "
            f"({summary['num_points']} points x {seeds} seed(s) x "
            f"{summary['step']:,} steps in one program{loop}; commit "
            f"{(row.get('git_commit') or '?')[:7]}).", "",
            "| point | overrides | " + MEAN_HEAD
            + " | D(x) / D(G(z)), last 500 steps |",
            "| --- | --- |" + " ---: |" * (len(MEAN_KEYS) + 1)]
    for point in summary["points"]:
      overrides = ", ".join(f"{k}={v:g}" for k, v in point["overrides"].items())
      if "mean" not in point:
        steps = sorted(set(point["diverged_at"].values()))
        out.append(f"| p{point['point']} | {overrides} | diverged at step "
                   f"{', '.join(map(str, steps))} |" + " - |" * len(MEAN_KEYS))
        continue
      best = point["point"] == summary["best"]["point"]
      cells = []
      for key in MEAN_KEYS:
        mean, ci = point["mean"][key], point["ci95"][key]
        cell = _fmt(key, mean)
        if seeds > 1:
          cell += " ± " + _fmt(key, ci)
        cells.append(f"**{cell}**" if best else cell)
      if "diverged_at" in point:  # a seed left out: the mean is of the rest
        cells[0] += " (" + ", ".join(
            f"seed {seed} diverged at step {step}"
            for seed, step in point["diverged_at"].items()) + ")"
      cells.append(_late_cell(point.get("last_500_steps")))
      out.append(f"| p{point['point']}{' (best)' if best else ''} | "
                 f"{overrides} | " + " | ".join(cells) + " |")
    if row.get("note"):
      out += ["", row["note"]]
    out.append("")
  return "\n".join(out).rstrip() or "(no sweeps committed yet)"


def _stamps(log):
  """(seconds of the day, line) of each absl-stamped line of the log
  ("I1203 05:41:45.329570 ...")."""
  stamp = re.compile(r"^[IWE]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ")
  with open(log, encoding="utf-8") as f:
    for line in f:
      m = stamp.match(line)
      if m:
        yield int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]), line


def _wall_seconds(log):
  """Wall time from the log's first "Training ..." line to its last line
  (compiling, evaluations, and any steps replayed after a divergence
  included; one day at most)."""
  start = end = None
  for t, line in _stamps(log):
    if start is None and "] Training " in line:
      start = t
    end = t
  return None if start is None else round((end - start) % 86400, 1)


def _seconds_to_evaluations(log) -> dict:
  """{step: seconds from the log's "Training ... from step" line to its
  "eval at step N" line} (wall time, compiling included), from the log
  lines' timestamps (absl's "I1203 05:41:45.329570", one day at most)."""
  start, out = None, {}
  for t, line in _stamps(log):
    if start is None and "] Training " in line:
      start = t
    found = re.search(r"eval at step (\d+):", line)
    if found and start is not None:
      out[found[1]] = round((t - start) % 86400, 1)
  return out


def _rows(group) -> list:
  """The collected rows of benchmarks/results/runs/GROUP/, by file name."""
  rows = []
  for path in sorted(glob.glob(os.path.join(RESULTS, group, "*.json"))):
    with open(path, encoding="utf-8") as f:
      rows.append(json.load(f))
  return rows


SCHEDULE_FIELDS = ("num_steps", "eval_every", "checkpoint_every")


def _recipe(row, leave_out=()) -> str:
  """The recipe cell: the run's command from its config file on, less the
  overrides of the fields in `leave_out`."""
  words = row["command"].split("--config=experiments/", 1)[-1].split(" ")
  return " ".join(w for w in words if not any(
      w.startswith(f"--config.{field}=") for field in leave_out))


def equal_time_table() -> str:
  """benchmarks/results/runs/equal_time/*.json: a row per evaluation, with
  the wall time from the start of training to it."""
  lines = ["| recipe (`--config=experiments/...`, then overrides other "
           "than the schedule's) | step | FID | KID | "
           "precision | recall | density | coverage | classes | wall time "
           "to this step |", "| --- |" + " ---: |" * (len(KEYS) + 2)]
  notes = []
  for row in _rows("equal_time"):
    recipe = _recipe(row, leave_out=SCHEDULE_FIELDS)
    if row.get("note"):
      notes.append(f"`{row['name']}` (`{recipe}`): {row['note']}. Command: "
                   f"`{row['command']}`.")
    for step in sorted(row["evaluations"], key=int):
      result = row["evaluations"][step]
      seconds = result.get("seconds_from_start")
      lines.append("| " + " | ".join(
          [f"`{recipe}`", f"{int(step):,}"] +
          [_fmt(k, result[k]) for k in KEYS] +
          [f"{seconds:,.0f} s" if seconds else "-"]) + " |")
  return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def stacked_table() -> str:
  """benchmarks/results/runs/stacked/*.json (generators trained on Stacked
  Fashion-MNIST): a row per evaluation, its modes covered and KL from
  uniform beside FID and recall, as the calibration table shows them."""
  lines = ["| recipe (`--config=experiments/...`, then overrides) | step | "
           "FID | recall | modes covered (of 1,000) | KL from uniform | "
           "wall time to this step |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
  notes = []
  for row in _rows("stacked"):
    recipe = _recipe(row)
    if row.get("note"):
      notes.append(f"`{row['name']}`: {row['note']}.")
    for step in sorted(row["evaluations"], key=int):
      result = row["evaluations"][step]
      seconds = result.get("seconds_from_start")
      lines.append("| " + " | ".join(
          [f"`{recipe}`", f"{int(step):,}", _fmt("fid", result["fid"]),
           _fmt("recall", result["recall"]), str(result["modes_covered"]),
           f"{result['mode_kl']:.3f}",
           f"{seconds:,.0f} s" if seconds else "-"]) + " |")
  if len(lines) == 2:
    return "(No generator trained on Stacked Fashion-MNIST is committed yet.)"
  return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def _final(row) -> tuple:
  """(step, evaluation) of a collected row's last evaluation."""
  step = max(row["evaluations"], key=int)
  return step, row["evaluations"][step]


def _welch_cell(final, reference) -> str:
  """Welch's two-sided p that final's FID has reference's mean, and whether
  final's is lower or higher; "-" for the reference itself, without one,
  for another evaluation protocol, or where the test has no answer (a
  diverged seed's NaN, no spread)."""
  if (reference is None or final is reference
      or final["protocol"] != reference["protocol"]):
    return "-"
  from ganjax import seeds  # pylint: disable=g-import-not-at-top
  try:
    t, _, p = seeds.welch_t_test(final["per_seed"]["fid"],
                                 reference["per_seed"]["fid"])
  except ValueError:
    return "-"
  if math.isnan(p):
    return "-"
  return f"{p:.2g} ({'lower' if t < 0 else 'higher' if t > 0 else 'same mean'})"


def seeds_table() -> str:
  """benchmarks/results/runs/seeds/*.json (runs of several seeds in one
  program): a row per run at its last evaluation, mean ± 95% CI over seeds,
  each seed's FID, Welch's p against the reference's seeds
  (seeds/REFERENCE_SEEDS.json) at the same step, and D(x) / D(G(z)) over
  the last 500 steps."""
  lines = ["| recipe (`--config=experiments/...`, then overrides) | step | "
           "seeds | " + MEAN_HEAD
           + " | FID per seed | FID against the reference: Welch's p | "
           "D(x) / D(G(z)), last 500 steps | loop time |",
           "| --- |" + " ---: |" * (len(MEAN_KEYS) + 6)]
  notes = []
  rows = _rows("seeds")
  finals = {row["name"]: _final(row) for row in rows}
  reference = finals.get(REFERENCE_SEEDS)
  for row in rows:
    step, final = finals[row["name"]]
    same_step = reference is not None and reference[0] == step
    recipe = _recipe(row)
    loop = (f"{row['loop_seconds']:,.0f} s" if row["loop_seconds"] else "-")
    if row.get("note"):
      notes.append(f"`{row['name']}`: {row['note']}.")
    lines.append("| " + " | ".join(
        [f"`{recipe}`", f"{int(step):,}", ", ".join(map(str, final["seeds"]))]
        + [f"{_fmt(k, final[k])} ± {_fmt(k, final['ci95'][k])}"
           for k in MEAN_KEYS]
        + [" / ".join(_fmt("fid", v) for v in final["per_seed"]["fid"]),
           _welch_cell(final, reference[1] if same_step else None),
           _late_cell(final.get("last_500_steps")), loop]) + " |")
  return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def _fmt(key, value):
  if value is None:
    return "-"
  if key == "fid":
    return f"{value:.1f}"
  if key == "kid":
    return f"{value:.2f}"
  if key == "classes_covered":
    return f"{value:d}"
  return f"{value:.3f}"


def table(group="") -> str:
  """The markdown table of every JSON in benchmarks/results/runs/GROUP/,
  sorted by file name, with its notes below."""
  rows = _rows(group)
  head = ("| recipe (`--config=experiments/...`, then overrides) | FID | "
          "KID | precision | recall | density | coverage | classes | FID at "
          "1k / 2k steps | earlier: FID / recall | cores | loop time |")
  lines = [head, "| --- |" + " ---: |" * (len(KEYS) + 4)]
  notes = []
  for row in rows:
    final = row["evaluations"][max(row["evaluations"], key=int)]
    early = " / ".join(_fmt("fid", row["evaluations"].get(s, {}).get("fid"))
                       for s in ("1000", "2000"))
    prev = row.get("previous") or {}
    earlier = (f"{_fmt('fid', prev.get('fid'))} / "
               f"{_fmt('recall', prev.get('recall'))}" if prev else "-")
    loop = (f"{row['loop_seconds']:,.0f} s" if row["loop_seconds"] else "-")
    cores = row.get("cpus_usable") or row.get("cpu_count") or "-"
    if prev.get("source"):
      notes.append(f"`{row['name']}`, earlier numbers: {prev['source']}.")
    if row.get("note"):
      notes.append(f"`{row['name']}`: {row['note']}.")
    recipe = _recipe(row)
    cells = [f"`{recipe}`"] + [_fmt(k, final[k]) for k in KEYS]
    lines.append("| " + " | ".join(
        cells + [early, earlier, str(cores), loop]) + " |")
  return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def recipe_cost_table(path=os.path.join(ROOT, "benchmarks", "results",
                                        "recipe_cost_cpu.json")) -> str:
  """The recipes' ms/step and ratio to the reference, from recipe_cost.py's
  JSON."""
  with open(path, encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  lines = ["| recipe | ms/step | vs reference |", "| --- | ---: | ---: |"]
  for row in rows:
    recipe = f"{row['recipe']}.py {row.get('overrides', '')}".strip()
    lines.append(f"| `{recipe}` | {row['ms_per_step']:.1f} | "
                 f"{row['ratio_to_reference']:.2f}x |")
  return "\n".join(lines)


def ema_statistics_table(path=os.path.join(
    ROOT, "benchmarks", "results", "ema_statistics_cpu.json")) -> str:
  import ema_statistics  # pylint: disable=g-import-not-at-top
  return ema_statistics.table(path)


def stacked_calibration_table(path=os.path.join(
    ROOT, "benchmarks", "results", "calibration_stacked_cpu.json")) -> str:
  """Stacked Fashion-MNIST's metrics on sets of known quality, from
  calibration.py's JSON."""
  with open(path, encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  lines = ["| set | FID | recall | modes covered (of 1,000) | KL from "
           "uniform |", "| --- | ---: | ---: | ---: | ---: |"]
  for name, row in rows.items():
    lines.append(f"| {name} ({row['num_samples']:,} images) | "
                 f"{_fmt('fid', row['fid'])} | "
                 f"{_fmt('recall', row['recall'])} | "
                 f"{row['modes_covered']} | {row['mode_kl']:.3f} |")
  return "\n".join(lines)


def step_time_table(*names, targets=False) -> str:
  """The step-time rows of step_time.py's JSON files `names` (under
  benchmarks/results/), then ganjax's speed-up over each other
  implementation, as that script prints it; with `targets`, the line on
  issue 18's CPU targets."""
  import step_time  # pylint: disable=g-import-not-at-top
  lines = ["| impl | batch | fused steps | dtype | ms/step (median) | min | "
           "max | images/s | GFLOP/s | % of matmul peak |",
           "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | "
           "---: |"]
  rows = []
  for name in names:
    path = os.path.join(ROOT, "benchmarks", "results", name)
    if not os.path.exists(path):
      continue
    with open(path, encoding="utf-8") as f:
      rows += json.load(f)["rows"]
  if not rows:
    return f"(Not measured yet: no {' or '.join(names)} is committed.)"
  for r in rows:
    lines.append(
        f"| {r['impl']} | {r['batch']} | {r['steps_per_call']} | "
        f"{r['dtype']} | {r['ms_per_step']:.0f} | {r['ms_per_step_min']:.0f}"
        f" | {r['ms_per_step_max']:.0f} | {r['images_per_s']:.0f} | "
        f"{r['achieved_gflops']:.0f} | {100 * r['fraction_of_peak']:.0f}% |")
  speedups = step_time.speedups(rows)
  if speedups:
    lines += ["", "Speed-up of ganjax (its fastest row at each batch and "
              "dtype) over each, in the same run:", ""]
    lines += _speedup_lines(speedups)
  if targets:
    lines += _step_time_targets(rows, speedups)
  return "\n".join(lines)


def _speedup_lines(speedups) -> list:
  others = list(dict.fromkeys(impl for ratios in speedups.values()
                              for impl in ratios))
  lines = ["| batch | dtype | " + " | ".join(others) + " |",
           "| ---: | --- |" + " ---: |" * len(others)]
  for (batch, dtype), ratios in speedups.items():
    lines.append(f"| {batch} | {dtype} | " + " | ".join(
        f"{ratios[o]:.2f}x" if o in ratios else "" for o in others) + " |")
  return lines


def step_time_repeats_table(*names) -> str:
  """ganjax's speed-ups in each of step_time.py's JSON files `names`:
  further runs of a part of the table, to show how much the ratios move
  from run to run."""
  import step_time  # pylint: disable=g-import-not-at-top
  parts = []
  for name in names:
    with open(os.path.join(ROOT, "benchmarks", "results", name),
              encoding="utf-8") as f:
      result = json.load(f)
    args = result["args"]
    parts.append("\n".join([
        f"`{name}`: batch {', '.join(map(str, args['batch_sizes']))}, "
        f"{args.get('rounds', 1)} rounds of {args['repeats']} calls, fused "
        f"steps {', '.join(map(str, args['steps_per_call']))}:", "",
        *_speedup_lines(step_time.speedups(result["rows"]))]))
  return "\n\n".join(parts)


# Issue 18's CPU targets: ganjax at least this much faster than the faster
# PyTorch at every batch, and at least this share of the matmul peak at
# batch 512 (float32).
SPEEDUP_TARGET, PEAK_TARGET = 1.2, 0.55


def _step_time_targets(rows, speedups) -> list:
  """One line on the targets, from the rows: where ganjax is at least
  SPEEDUP_TARGET times the faster PyTorch, and its best share of the matmul
  peak at batch 512 (float32)."""
  faster = {batch: r["faster PyTorch"] for (batch, dtype), r in
            speedups.items() if dtype == "float32" and "faster PyTorch" in r}
  if not faster:
    return []
  met = [str(b) for b, ratio in faster.items() if ratio >= SPEEDUP_TARGET]
  missed = [f"{b} ({ratio:.3f}x)" for b, ratio in faster.items()
            if ratio < SPEEDUP_TARGET]
  line = (f"Targets, float32, this run: at least {SPEEDUP_TARGET}x the faster"
          f" PyTorch at batch {', '.join(met) or 'none'}")
  line += f"; below it at batch {', '.join(missed)}." if missed else "."
  shares = [r["fraction_of_peak"] for r in rows if r["batch"] == 512
            and r["dtype"] == "float32" and r["impl"].startswith("ganjax")]
  if shares:
    line += (f" Batch 512 at {100 * max(shares):.0f}% of the matmul peak "
             f"(target {100 * PEAK_TARGET:.0f}%).")
  return ["", line]


PERFORMANCE_DOC = os.path.join(ROOT, "docs", "performance.md")
# {doc: {section: its text's maker}}; a section sits between _markers(name).
SECTIONS = {
    DOC: {"runs": table, "seeds": seeds_table,
          "ablations": lambda: table("ablations"),
          "equal_time": equal_time_table,
          "recipe_cost": recipe_cost_table,
          "ema_statistics": ema_statistics_table,
          "stacked_calibration": stacked_calibration_table,
          "stacked": stacked_table,
          "sweeps": sweeps_table},
    PERFORMANCE_DOC: {
        "step_time_cpu": lambda: step_time_table(
            "step_time_cpu.json", "step_time_cpu_bf16.json", targets=True),
        "step_time_cpu_repeats": lambda: step_time_repeats_table(
            "step_time_cpu_repeat_128_512.json",
            "step_time_cpu_repeat_64.json"),
        "step_time_gpu": lambda: step_time_table("step_time_gpu.json")},
}


def _markers(name):
  return (f"<!-- results_table.py {name}: begin (generated; do not edit) -->",
          f"<!-- results_table.py {name}: end -->")


def generated_doc(doc=DOC) -> str:
  """`doc` (docs/results.md by default) with every section regenerated."""
  with open(doc, encoding="utf-8") as f:
    text = f.read()
  for name, make in SECTIONS[doc].items():
    begin, end = _markers(name)
    if begin not in text or end not in text:
      raise SystemExit(f"{doc} lacks the marker lines {begin!r} and {end!r}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = f"{head}{begin}\n{make()}\n{end}{tail}"
  return text


def main():
  """The command line; see the module docstring."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  collect_parser = sub.add_parser("collect")
  collect_parser.add_argument("name")
  collect_parser.add_argument("rundir")
  collect_parser.add_argument("--log")
  collect_parser.add_argument("--previous", type=json.loads)
  collect_parser.add_argument("--note")
  collect_parser.add_argument(
      "--group", default="", choices=GROUPS,
      help="the table the row goes to ('' = the re-run rows)")
  sweep_parser = sub.add_parser("collect-sweep")
  sweep_parser.add_argument("name")
  sweep_parser.add_argument("sweepdir")
  sweep_parser.add_argument("--log")
  sweep_parser.add_argument("--note")
  for name in ("table", "write", "check"):
    sub.add_parser(name)
  args = parser.parse_args()
  if args.command == "collect":
    print(json.dumps(collect(args.name, args.rundir, args.log, args.previous,
                             args.note, args.group), indent=1))
  elif args.command == "collect-sweep":
    print(json.dumps(collect_sweep(args.name, args.sweepdir, args.log,
                                   args.note), indent=1))
  elif args.command == "table":
    print("\n\n".join(make() for sections in SECTIONS.values()
                       for make in sections.values()))
  else:
    for doc in SECTIONS:
      generated = generated_doc(doc)
      if args.command == "write":
        with open(doc, "w", encoding="utf-8") as f:
          f.write(generated)
      else:
        with open(doc, encoding="utf-8") as f:
          if f.read() != generated:
            sys.exit(f"{doc} is out of date: run python "
                     "benchmarks/results_table.py write")


if __name__ == "__main__":
  main()
