"""Step time of two checkouts of ganjax, measured in one run, interleaved.

  git worktree add /tmp/before <commit>
  python benchmarks/before_after.py --before=/tmp/before --after=. \
      --out=benchmarks/results/before_after_<change>.json

Runs `benchmarks/step_time.py` of each checkout (with that checkout first on
PYTHONPATH) in turns, `--rounds` times, so that both see the same machine
load; reports per configuration the median over rounds of each side's
median ms/step, the after/before ratio, and the spread between rounds of
one side (the noise a ratio must beat to mean anything).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_step_time(tree, args, out):
  env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
  subprocess.run(
      [sys.executable, os.path.join(tree, "benchmarks", "step_time.py"),
       f"--batch_sizes={args.batch_sizes}", f"--steps_per_call={args.spc}",
       "--dtypes=float32", "--compare=", f"--repeats={args.repeats}",
       f"--out={out}"], env=env, check=True, cwd=tree,
      stdout=subprocess.DEVNULL)
  with open(out, encoding="utf-8") as f:
    return {f"batch {r['batch']}, {r['steps_per_call']} fused":
            r["ms_per_step"] for r in json.load(f)["rows"]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--before", required=True)
  parser.add_argument("--after", default=".")
  parser.add_argument("--batch_sizes", default="128,512")
  parser.add_argument("--spc", default="10")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--out", default=None)
  args = parser.parse_args()
  runs = {"before": [], "after": []}
  with tempfile.TemporaryDirectory() as tmp:
    for k in range(args.rounds):
      for side in ("before", "after"):
        rows = run_step_time(getattr(args, side), args,
                             os.path.join(tmp, f"{side}{k}.json"))
        runs[side].append(rows)
        print(f"round {k + 1} {side}: " + ", ".join(
            f"{name} {ms:.1f} ms" for name, ms in rows.items()), flush=True)
  summary = {}
  for name in runs["before"][0]:
    side = {s: [r[name] for r in runs[s]] for s in runs}
    med = {s: statistics.median(v) for s, v in side.items()}
    summary[name] = {
        "before_ms": med["before"], "after_ms": med["after"],
        "ratio_after_over_before": med["after"] / med["before"],
        "spread_before": (max(side["before"]) - min(side["before"]))
                         / med["before"],
        "spread_after": (max(side["after"]) - min(side["after"]))
                        / med["after"],
        "rounds": side}
    s = summary[name]
    print(f"{name}: before {s['before_ms']:.1f} ms, after {s['after_ms']:.1f}"
          f" ms, ratio {s['ratio_after_over_before']:.3f} (round-to-round "
          f"spread {100 * s['spread_before']:.1f}% / "
          f"{100 * s['spread_after']:.1f}%)")
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump({"before": os.path.abspath(args.before),
                 "after": os.path.abspath(args.after),
                 "args": vars(args), "cpus_usable":
                     len(os.sched_getaffinity(0)), "rows": summary}, f,
                indent=2)


if __name__ == "__main__":
  main()
