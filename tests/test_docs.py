"""The documentation's Python examples run as written."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

DOCS = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs"))
    if f.endswith(".md"))


def _python_blocks(path):
  with open(os.path.join(REPO, path), encoding="utf-8") as f:
    return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


BLOCKS = [(path, i, block) for path in DOCS
          for i, block in enumerate(_python_blocks(path))]


def test_readme_has_a_library_example():
  assert any(path == "README.md" for path, _, _ in BLOCKS)


@pytest.mark.parametrize("path,index,block", BLOCKS,
                         ids=[f"{p}:{i}" for p, i, _ in BLOCKS])
def test_python_block_runs(tmp_path, path, index, block):
  """Each block runs from the repository root as a fresh program; paths
  under /tmp/ are moved into the test's own directory."""
  del index
  code = block.replace("/tmp/", f"{tmp_path}/")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          env=subprocess_env(), capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, f"{path}:\n{result.stderr[-3000:]}"


def test_results_rows_are_generated_from_committed_json():
  """docs/results.md's generated table equals what its JSON gives."""
  result = subprocess.run(
      [sys.executable, os.path.join("benchmarks", "results_table.py"),
       "check"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr


def test_equal_time_rows_name_the_recipe_changes_but_not_the_schedule(
    tmp_path, monkeypatch):
  """Two runs of one recipe file at equal time are told apart by their
  overrides; how long each ran is the table's step column, not its name."""
  monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
  import results_table  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(results_table, "RESULTS", str(tmp_path))
  os.makedirs(tmp_path / "equal_time")
  result = dict(dict.fromkeys(results_table.KEYS, 1.0), classes_covered=10)
  for name, extra in (("plain", ""), ("lazy", " --config.penalties=r1:0.1:5")):
    (tmp_path / "equal_time" / f"{name}.json").write_text(json.dumps(dict(
        name=name, note="", evaluations={"4": result}, command=(
            "python -m ganjax.train --config=experiments/fashion_r3gan.py"
            f"{extra} --config.num_steps=4 --config.eval_every=4"))))
  cells = [line.split(" | ")[0] for line in
           results_table.equal_time_table().splitlines()[2:] if line]
  assert cells == ["| `fashion_r3gan.py --config.penalties=r1:0.1:5`",
                   "| `fashion_r3gan.py`"]


def test_step_time_targets_line_says_where_each_target_is_met(monkeypatch):
  """The performance doc's verdict on the CPU targets is computed from the
  rows: 1.2x the faster PyTorch per batch, the share of peak at batch 512."""
  monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
  import results_table  # pylint: disable=g-import-not-at-top
  import step_time  # pylint: disable=g-import-not-at-top
  row = lambda impl, batch, ms, share=0.5: dict(
      impl=impl, batch=batch, ms_per_step=ms, dtype="float32",
      fraction_of_peak=share)
  rows = [row("ganjax-hybrid", 128, 100.0), row("torch-eager", 128, 130.0),
          row("torch-compile", 128, 118.0), row("ganjax-hybrid", 256, 100.0),
          row("torch-eager", 256, 125.0), row("ganjax-hybrid", 512, 100.0,
                                               0.6),
          row("ganjax-hybrid", 512, 90.0, 0.62), row("torch-eager", 512, 99.0)]
  line = results_table._step_time_targets(  # pylint: disable=protected-access
      rows, step_time.speedups(rows))[-1]
  assert line == ("Targets, float32, this run: at least 1.2x the faster "
                  "PyTorch at batch 256; below it at batch 128 (1.180x), "
                  "512 (1.100x). Batch 512 at 62% of the matmul peak "
                  "(target 55%).")


def test_readme_names_every_make_target_and_the_same_durations():
  """A user learns the make targets from the README: each one is there, and
  the run lengths the Makefile's comments give are the README's."""
  with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
    makefile = f.read()
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  targets = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
  assert targets and not [t for t in targets if f"make {t}" not in readme]
  minutes = lambda text: set(re.findall(r"(\d+)\s+min", text))
  with open(os.path.join(REPO, "docs", "results.md"), encoding="utf-8") as f:
    results = f.read()
  # The short run's time is the one measured in docs/results.md.
  short = re.search(r"3,000 steps at batch 128 .*? took (\d+) min", results,
                    re.S).group(1)
  assert minutes(makefile) <= minutes(readme) | {short}, minutes(makefile)
