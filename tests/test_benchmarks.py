"""Benchmarks leave the committed results alone unless asked (timings are
never asserted; they live in benchmarks/results/)."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys

from tests.conftest import REPO, subprocess_env

RESULTS = os.path.join(REPO, "benchmarks", "results")


def _digests():
  out = {}
  for folder, _, files in os.walk(RESULTS):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[path] = hashlib.sha256(f.read()).hexdigest()
  return out


def test_step_time_writes_nothing_without_out_and_prints_one_table():
  """Without --out the committed results stay as they are (the dry run below
  writes with --out); each --chunks variant is a row of its own."""
  before = _digests()
  result = subprocess.run(
      [sys.executable, "benchmarks/step_time.py", "--batch_sizes=8",
       "--steps_per_call=1", "--dtypes=float32", "--compare=", "--repeats=1",
       "--peak_n=256", "--chunks=none:none"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _digests() == before
  assert result.stdout.count("ms/step") == 1, result.stdout  # one header
  impls = [line.split()[0] for line in result.stdout.splitlines()
           if line.split()[1:3] == ["8", "1"]]  # batch 8, 1 fused step
  assert impls == ["ganjax-hybrid", "hybrid-chunks-none:none"], result.stdout


def test_the_gpu_script_dry_run_writes_both_tables(tmp_path):
  """benchmarks/gpu.sh with GANJAX_GPU_DRY_RUN=1: the GPU script's own
  commands at toy sizes on the CPU, so the script cannot rot unseen; its
  --out rows of step_time.py and seed_throughput.py (a sweep of 2 points
  timed against separate runs) are this suite's test of those scripts."""
  before = _digests()
  env = dict(subprocess_env(), GANJAX_GPU_DRY_RUN="1",
             GANJAX_GPU_PYTHON=sys.executable)
  result = subprocess.run(["bash", "benchmarks/gpu.sh", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  assert _digests() == before
  steps = json.loads((tmp_path / "step_time_dryrun.json").read_text())
  ours = {(r["dtype"], r["steps_per_call"]) for r in steps["rows"]
          if r["impl"].startswith("ganjax")}
  assert ours == {(d, f) for d in ("float32", "bfloat16") for f in (1, 2)}
  if importlib.util.find_spec("torch"):  # the bench extra: its rows too
    theirs = {(r["impl"], r["dtype"]) for r in steps["rows"]
              if r["impl"].startswith("torch")}
    assert theirs == {(i, d) for i in ("torch-eager", "torch-compile")
                      for d in ("float32", "bfloat16")}, result.stdout
  assert set(steps["matmul_peak"]) >= {"jax_gflops", "jax_gflops_bfloat16"}
  seeds = json.loads((tmp_path / "seed_throughput_dryrun.json").read_text())
  assert [(r["batching"], r["num_seeds"], r.get("sweep_points"))
          for r in seeds["rows"]] == [("separate", 1, None), ("vmap", 2, None),
                                      ("auto", 1, 2)]
  assert all(r["speedup_vs_separate"] > 0 for r in seeds["rows"][1:])
  # The dry run stays at toy size (seed_throughput.py's own defaults are
  # batch 128 and 10 steps per call, which tripled this test's time).
  assert (seeds["args"]["batch"], seeds["args"]["steps_per_call"]) == (8, 1)


def test_speedups_are_over_each_impl_and_the_faster_pytorch():
  from benchmarks import step_time  # pylint: disable=g-import-not-at-top
  row = lambda impl, ms, batch=128, dtype="float32": dict(
      impl=impl, ms_per_step=ms, batch=batch, dtype=dtype)
  rows = [row("ganjax-hybrid", 30.0), row("ganjax-hybrid", 25.0),
          row("torch-eager", 100.0), row("torch-compile", 50.0),
          row("keras-reference", 75.0), row("torch-eager", 10.0, batch=64),
          row("hybrid-chunks-32:256", 45.0), row("hybrid-chunks-32:256", 60.0),
          row("torch-eager", 40.0, dtype="bfloat16")]
  assert step_time.speedups(rows) == {(128, "float32"): {
      "torch-eager": 4.0, "faster PyTorch": 2.0, "torch-compile": 2.0,
      "keras-reference": 3.0, "hybrid-chunks-32:256": 1.8}}
