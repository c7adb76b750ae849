"""One HTML page about a run: curves, sample grids over time, metrics, config.

  python -m ganjax.report --workdir=runs/fashion  # -> runs/fashion/report/

Writes DIR/report/index.html and the PNGs it shows next to it (the directory
can be copied or served as it is). Reads only what training and
`ganjax.evaluate` wrote: metrics.jsonl, eval/*.json, samples/*.png,
config.json and run.json.
"""

import glob
import html
import json
import os
import shutil
import sys

from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from ganjax import metric_writers
from ganjax import rundir

FLAGS = flags.FLAGS

# (file, title, [(metrics.jsonl key, label)]) of each plot; a plot whose keys
# never occur is left out.
PLOTS = (
    ("losses.png", "Losses", [("d_loss", "D loss"), ("g_loss", "G loss")]),
    ("d_outputs.png", "Discriminator outputs",
     [("d_real", "D(x)"), ("d_fake", "D(G(z))")]),
    ("fid.png", "Frechet distance (classifier features)",
     [("eval/fid", "FID")]),
    ("kid.png", "KID", [("eval/kid", "KID")]),
    ("precision_recall.png", "Precision and recall",
     [("eval/precision", "precision"), ("eval/recall", "recall")]),
)
TABLE_KEYS = ("fid", "fid_logits", "kid", "kid_std", "classifier_score",
              "precision", "recall", "density", "coverage", "class_entropy",
              "classes_covered", "conditional_accuracy", "num_samples",
              "seconds")


def _read_json(path):
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _plot(records, title, series, path):
  fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
  drawn = False
  for key, label in series:
    points = [(r["step"], r[key]) for r in records if key in r]
    if points:
      ax.plot(*zip(*points), label=label, marker="." if len(points) < 30
              else None)
      drawn = True
  if not drawn:
    plt.close(fig)
    return False
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return True


def _table(rows):
  cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>"
                  f"{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
  return f"<table>{cells}</table>"


def _fmt(value):
  if isinstance(value, float):
    return f"{value:.5g}"
  return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _pick(items, count):
  if len(items) <= count:
    return items
  return [items[round(i * (len(items) - 1) / (count - 1))]
          for i in range(count)]


def _seeds_section(workdir, config, summaries, out, max_grids):
  """A run of several seeds: the summary table (each seed, mean, 95% CI),
  mean FID over steps with its interval, and each seed's own report."""
  body = []
  seeds = [config["seed"] + k for k in range(config["num_seeds"])]
  if summaries:
    final = summaries[-1]
    body.append(f"<h2>{final['num_seeds']} seeds at step {final['step']}"
                "</h2><p>Mean and half-width of the 95% confidence interval "
                "of the mean (Student's t).</p>")
    head = "".join(f"<th>seed {s}</th>" for s in final["seeds"])
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th>"
        + "".join(f"<td>{_fmt(v)}</td>" for v in final["per_seed"][k])
        + f"<td>{_fmt(final['mean'][k])} &plusmn; {_fmt(final['ci95'][k])}"
        "</td></tr>" for k in TABLE_KEYS if k in final["per_seed"])
    body.append(f"<table><tr><th></th>{head}<th>mean &plusmn; 95% CI</th>"
                f"</tr>{rows}</table>")
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    steps = [e["step"] for e in summaries]
    mean = [e["mean"]["fid"] for e in summaries]
    half = [e["ci95"]["fid"] for e in summaries]
    ax.errorbar(steps, mean, yerr=half, marker=".", capsize=3)
    ax.set(title="FID, mean over seeds with 95% CI", xlabel="step")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fid_seeds.png"))
    plt.close(fig)
    body.append('<img src="fid_seeds.png" alt="FID over seeds">')
  body.append("<h2>Each seed</h2><ul>")
  for seed in seeds:
    member = os.path.join(workdir, f"seed_{seed}")
    if os.path.exists(os.path.join(member, "config.json")):
      write_report(member, max_grids)
      body.append(f'<li><a href="../seed_{seed}/report/index.html">seed '
                  f"{seed}</a></li>")
  body.append("</ul>")
  return body


def _sweep_section(workdir, summaries, max_grids):
  """A sweep: each point's mean FID and recall (95% CI over seeds) at the
  last evaluation, the best point marked, and each point's own report."""
  body = []
  if summaries:
    final = summaries[-1]
    body.append(f"<h2>{final['num_points']} sweep points at step "
                f"{final['step']}</h2><p>Best: "
                f"{html.escape(final['best']['name'])}"
                f" (mean FID {final['best']['fid']:.5g}).</p>")
    rows = "".join(
        f"<tr><th>{html.escape(p['name'])}</th>"
        + ("".join(f"<td>{_fmt(p['mean'][k])} &plusmn; {_fmt(p['ci95'][k])}"
                   "</td>" for k in ("fid", "recall")) if "mean" in p else
           "<td colspan=2></td>")
        + (f"<td>diverged: {html.escape(str(p['diverged_at']))} "
           "(seed: step; diverged.json)</td>" if "diverged_at" in p else "")
        + "</tr>" for p in final["points"])
    body.append("<table><tr><th>point</th><th>FID (mean &plusmn; 95% CI)"
                "</th><th>recall</th></tr>" + rows + "</table>")
  body.append("<h2>Each point</h2><ul>")
  for name in sorted(os.listdir(workdir)):
    if name.startswith("p") and os.path.exists(
        os.path.join(workdir, name, "config.json")):
      write_report(os.path.join(workdir, name), max_grids)
      body.append(f'<li><a href="../{html.escape(name)}/report/index.html">'
                  f"{html.escape(name)}</a></li>")
  body.append("</ul>")
  return body


def write_report(workdir: str, max_grids: int = 12) -> str:
  """Writes workdir/report/index.html; returns its path."""
  rundir.check_is_run(workdir)
  config = _read_json(os.path.join(workdir, "config.json"))
  out = os.path.join(workdir, "report")
  os.makedirs(out, exist_ok=True)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  records = (metric_writers.read_jsonl(metrics_path)
             if os.path.exists(metrics_path) else [])
  evals = [_read_json(p) for p in
           sorted(glob.glob(os.path.join(workdir, "eval", "step_*.json")))]
  manifest = _read_json(os.path.join(workdir, "run.json")) or {}

  body = [f"<h1>ganjax run <code>{html.escape(os.path.abspath(workdir))}"
          "</code></h1>"]
  last = max((r["step"] for r in records), default=0)
  if records or evals:
    body.append(f"<p>{len(records)} metric records up to step {last}; "
                f"{len(evals)} evaluations.</p>")
  if config.get("sweep"):
    body.extend(_sweep_section(workdir, evals, max_grids))
  elif config.get("num_seeds", 1) > 1:
    body.extend(_seeds_section(workdir, config, evals, out, max_grids))
  elif evals:
    final = evals[-1]
    best = min(evals, key=lambda e: e["fid"])
    body.append(f"<h2>Metrics at step {final['step']}</h2>")
    body.append(f"<p>Protocol <code>{html.escape(final['protocol'])}</code> "
                "(classifier features; not comparable with Inception "
                f"FIDs). Best FID {best['fid']:.4g} at step "
                f"{best['step']}.</p>")
    body.append(_table([(k, final[k]) for k in TABLE_KEYS if k in final]
                       + [(k, final[k]) for k in (
                           "class_histogram",
                           "conditional_accuracy_per_class") if k in final]))
  body.append("<h2>Curves</h2>")
  for name, title, series in PLOTS:
    if _plot(records, title, series, os.path.join(out, name)):
      body.append(f'<img src="{name}" alt="{html.escape(title)}">')
  grids = sorted(glob.glob(os.path.join(workdir, "samples", "step_*.png")))
  grids = _pick(grids, max_grids)
  final_grid = os.path.join(workdir, "samples", "final.png")
  if os.path.exists(final_grid):
    grids.append(final_grid)
  if grids:
    body.append("<h2>Samples over time (fixed noise)</h2><div class=grids>")
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    for path in grids:
      name = os.path.basename(path)
      shutil.copyfile(path, os.path.join(out, "samples", name))
      label = name[:-4].replace("step_", "step ").lstrip("0")
      body.append(f'<figure><img src="samples/{name}" alt="{name}">'
                  f"<figcaption>{html.escape(label)}</figcaption></figure>")
    body.append("</div>")
  body.append("<h2>Config</h2>")
  body.append(_table(sorted(config.items())))
  if manifest:
    body.append("<h2>Environment</h2>")
    body.append(_table([(k, manifest[k]) for k in sorted(manifest)
                        if k not in ("argv",)]))
  page = ("<!doctype html><html><head><meta charset=utf-8>"
          f"<title>ganjax: {html.escape(os.path.basename(workdir))}</title>"
          "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
          "table{border-collapse:collapse}th,td{border:1px solid #ccc;"
          "padding:2px 8px;text-align:left}img{max-width:100%}"
          ".grids{display:flex;flex-wrap:wrap;gap:8px}"
          "figure{margin:0}</style></head><body>"
          + "\n".join(body) + "</body></html>\n")
  path = os.path.join(out, "index.html")
  with open(path, "w", encoding="utf-8") as f:
    f.write(page)
  return path


def main(argv):
  del argv
  try:
    path = write_report(FLAGS.workdir, FLAGS.max_grids)
  except (FileNotFoundError, OSError) as e:
    print(f"ganjax.report: error: {e}", file=sys.stderr)
    sys.exit(1)
  print(path)


def define_flags():
  """The command line's flags; defined only when run as a program, so the
  module can be imported next to other ganjax commands."""
  flags.DEFINE_string("workdir", None, "A ganjax run directory.")
  flags.DEFINE_integer("max_grids", 12, "Sample grids shown over time.")
  flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
  define_flags()
  app.run(main)
