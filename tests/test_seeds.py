"""Several seeds in one program (config.num_seeds): each seed is its single
run, outputs per seed, the summary over seeds, a seed's own rollback."""

import json
import math
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.stats

from ganjax import build
from ganjax import metric_writers
from ganjax import report
from ganjax import seeds as seeds_lib
from ganjax import parallel
from ganjax import trainer
from tests.conftest import REPO, assert_identical, leaves, smoke_config
from tests.conftest import subprocess_env
from tests.test_faults import _poison_call


@pytest.fixture(scope="module")
def two_seed_training(tmp_path_factory):
  """Seeds 3 and 4 of the smoke config in one run, scored at step 8; and
  how often G's sampling variables were computed."""
  workdir = str(tmp_path_factory.mktemp("seeds"))
  config = smoke_config(seed=3, num_seeds=2, eval_every=8,
                        eval_num_samples=200)
  calls, measure = [], trainer.sampling.sampling_variables
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(trainer.sampling, "sampling_variables",
                  lambda *a, **k: calls.append(1) or measure(*a, **k))
    states = trainer.train_and_evaluate(config, workdir)
  return workdir, jax.device_get(states), len(calls)


@pytest.fixture(scope="module")
def two_seed_run(two_seed_training):
  return two_seed_training[:2]


def test_a_steps_sampling_variables_are_computed_once_per_seed(
    two_seed_training):
  """G's sampling variables (for an EMA G, standing statistics: two passes
  of 4,096 samples) are computed once per seed and step: the step-8 grid,
  the step-8 evaluation and the final grid of one state share them; each
  seed's state has its own."""
  assert two_seed_training[2] == 2 * 2  # the grids of steps 4 and 8


def test_each_seed_is_bit_identical_to_its_single_run(two_seed_run, tmp_path):
  workdir, states = two_seed_run
  assert len(states) == 2
  for seed, state in zip((3, 4), states):
    single = trainer.train_and_evaluate(smoke_config(seed=seed),
                                        str(tmp_path / str(seed)))
    assert_identical(state, single)


def test_a_seed_directory_is_an_ordinary_run(two_seed_run):
  """Its config is the single run's, so ganjax.train resumes it alone."""
  workdir, states = two_seed_run
  member = os.path.join(workdir, "seed_4")
  with open(os.path.join(member, "config.json"), encoding="utf-8") as f:
    saved = json.load(f)
  assert saved == smoke_config(seed=4, eval_every=8,
                               eval_num_samples=200).to_dict()
  assert sorted(os.listdir(os.path.join(member, "samples"))) == [
      "final.png", "step_0000004.png", "step_0000008.png"]
  records = metric_writers.read_jsonl(os.path.join(member, "metrics.jsonl"))
  assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]
  assert [r["step"] for r in records if "eval/fid" in r] == [8]
  # The run's directory holds its own config and report, no checkpoints.
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))
  with open(os.path.join(workdir, "run.json"), encoding="utf-8") as f:
    assert json.load(f)["seed_batching"] == "unrolled"  # auto, on CPU
  with pytest.raises(FileNotFoundError, match=r"run of 2 seeds.*seed_3"):
    trainer.restore_generator(workdir)
  _, _, step, _ = trainer.restore_generator(member)
  assert step == 8


def test_a_seed_directory_resumes_as_a_single_run(two_seed_run, tmp_path):
  workdir, _ = two_seed_run
  member = str(tmp_path / "seed_3")
  shutil.copytree(os.path.join(workdir, "seed_3"), member)
  resumed = trainer.train_and_evaluate(
      smoke_config(seed=3, num_steps=12, eval_every=8, eval_num_samples=200),
      member)
  straight = trainer.train_and_evaluate(smoke_config(seed=3, num_steps=12),
                                        str(tmp_path / "straight"))
  assert_identical(resumed, straight)


def test_summary_over_seeds(two_seed_run):
  workdir, _ = two_seed_run
  with open(metric_writers.eval_path(workdir, 8), encoding="utf-8") as f:
    summary = json.load(f)
  assert summary["seeds"] == [3, 4] and summary["step"] == 8
  per_seed = []
  for seed in (3, 4):
    with open(metric_writers.eval_path(os.path.join(workdir, f"seed_{seed}"),
                                       8), encoding="utf-8") as f:
      per_seed.append(json.load(f))
  for name in ("fid", "kid", "precision", "recall", "classes_covered"):
    values = [r[name] for r in per_seed]
    assert summary["per_seed"][name] == values
    _, half = seeds_lib.mean_ci95(values)
    assert summary["mean"][name] == pytest.approx(np.mean(values))
    assert summary["ci95"][name] == pytest.approx(half)


def test_the_docs_row_of_a_run_of_seeds_is_its_summary(two_seed_run, tmp_path,
                                                      monkeypatch):
  """benchmarks/results_table.py collect --group=seeds keeps each
  evaluation's mean, CI and per-seed values, the protocol and D(x)/D(G(z))
  of the last 500 steps of both seeds; its table shows them."""
  monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
  import results_table  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(results_table, "RESULTS", str(tmp_path))
  workdir, _ = two_seed_run
  row = results_table.collect("smoke", workdir, group="seeds", note="A note.")
  with open(metric_writers.eval_path(workdir, 8), encoding="utf-8") as f:
    summary = json.load(f)
  final = row["evaluations"]["8"]
  assert final["seeds"] == [3, 4]
  for name in results_table.KEYS:
    assert final[name] == summary["mean"][name]
    assert final["ci95"][name] == summary["ci95"][name]
    assert final["per_seed"][name] == summary["per_seed"][name]
  with open(metric_writers.eval_path(os.path.join(workdir, "seed_3"), 8),
            encoding="utf-8") as f:
    assert final["protocol"] == json.load(f)["protocol"]
  d_real = [r["d_real"] for seed in (3, 4) for r in metric_writers.read_jsonl(
      os.path.join(workdir, f"seed_{seed}", "metrics.jsonl")) if "d_real" in r]
  assert len(d_real) == 8  # steps 2, 4, 6, 8 of each seed
  assert final["last_500_steps"]["d_real"] == pytest.approx(np.mean(d_real))
  line, = [l for l in results_table.seeds_table().splitlines()
           if l.startswith("| `")]
  fid, ci = summary["mean"]["fid"], summary["ci95"]["fid"]
  assert f"| 8 | 3, 4 | {fid:.1f} ± {ci:.1f} |" in line
  assert " / ".join(f"{v:.1f}" for v in summary["per_seed"]["fid"]) in line
  assert "A note." in results_table.seeds_table()
  # Each row's Welch p against the reference's seeds (REFERENCE_SEEDS), at
  # the same step and protocol; the reference's own cell is "-".
  reference = results_table.collect(results_table.REFERENCE_SEEDS, workdir,
                                    group="seeds")
  ref_fids = [v + 40.0 + 3.0 * i for i, v in
              enumerate(reference["evaluations"]["8"]["per_seed"]["fid"])]
  reference["evaluations"]["8"]["per_seed"]["fid"] = ref_fids
  ref_path = os.path.join(tmp_path, "seeds",
                          f"{results_table.REFERENCE_SEEDS}.json")
  def welch_cells():  # of the two rows, after writing the reference
    with open(ref_path, "w", encoding="utf-8") as f:
      json.dump(reference, f)
    return sorted(line.split(" | ")[len(results_table.MEAN_KEYS) + 4]
                  for line in results_table.seeds_table().splitlines()
                  if line.startswith("| `"))
  _, _, p = seeds_lib.welch_t_test(summary["per_seed"]["fid"], ref_fids)
  assert welch_cells() == sorted(["-", f"{p:.2g} (lower)"])
  # No answer with a diverged (NaN) seed, or for another protocol.
  reference["evaluations"]["8"]["per_seed"]["fid"] = [ref_fids[0], math.nan]
  assert welch_cells() == ["-", "-"]
  reference["evaluations"]["8"]["per_seed"]["fid"] = ref_fids
  reference["evaluations"]["8"]["protocol"] = "another-protocol"
  assert welch_cells() == ["-", "-"]
  os.remove(ref_path)
  # A summary over seeds goes in the seeds group, and only there.
  with pytest.raises(SystemExit, match="several seeds: collect it with "
                     "--group=seeds"):
    results_table.collect("smoke", workdir)
  with pytest.raises(SystemExit, match="one seed's evaluation: --group=seeds"):
    results_table.collect("smoke", os.path.join(workdir, "seed_3"),
                          group="seeds")
  # A sweep's summary (its points) goes to collect-sweep, whatever the group.
  sweep = tmp_path / "sweep"
  os.makedirs(sweep / "eval")
  shutil.copy(os.path.join(workdir, "run.json"), sweep)
  (sweep / "eval" / "step_0000008.json").write_text(json.dumps(
      {"step": 8, "num_points": 2, "points": [], "best": None}))
  for group in ("", "seeds"):
    with pytest.raises(SystemExit, match="a sweep's summary: collect it "
                       "with collect-sweep"):
      results_table.collect("smoke", str(sweep), group=group)


def test_evaluate_command_scores_every_seed(two_seed_run):
  """`ganjax.evaluate --workdir=DIR` of a run of several seeds, in a fresh
  process with one device, reproduces the summary written in training."""
  workdir, _ = two_seed_run
  with open(metric_writers.eval_path(workdir, 8), encoding="utf-8") as f:
    in_training = json.load(f)
  env = subprocess_env()
  env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(
      "device_count=4", "device_count=1")
  result = subprocess.run(
      [sys.executable, "-m", "ganjax.evaluate", f"--workdir={workdir}",
       "--num_samples=200"], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(result.stdout)
  assert summary["seeds"] == [3, 4] and summary["step"] == 8
  for name in ("fid", "kid", "precision", "recall"):
    assert summary["per_seed"][name] == pytest.approx(
        in_training["per_seed"][name], rel=1e-6)


def test_report_of_several_seeds(two_seed_run):
  workdir, _ = two_seed_run
  with open(report.write_report(workdir), encoding="utf-8") as f:
    page = f.read()
  assert "2 seeds at step 8" in page and "mean &plusmn; 95% CI" in page
  for seed in (3, 4):
    assert f'href="../seed_{seed}/report/index.html"' in page
    assert os.path.exists(os.path.join(workdir, f"seed_{seed}", "report",
                                       "index.html"))


def test_t_quantiles_and_interval_match_scipy():
  for df in range(1, 31):
    assert seeds_lib.t975(df) == pytest.approx(scipy.stats.t.ppf(0.975, df),
                                               abs=1e-4)
  values = [131.6, 120.2, 140.9, 128.4]
  mean, half = seeds_lib.mean_ci95(values)
  low, high = scipy.stats.t.interval(0.95, len(values) - 1, loc=mean,
                                     scale=scipy.stats.sem(values))
  assert mean - half == pytest.approx(low, rel=1e-5)
  assert mean + half == pytest.approx(high, rel=1e-5)
  assert np.isnan(seeds_lib.mean_ci95([1.0])[1])
  with pytest.raises(ValueError, match="degrees of freedom"):
    seeds_lib.t975(0)


def test_welch_t_test_matches_scipy():
  rng = np.random.default_rng(0)
  for size_a, size_b, shift, scale in [(3, 3, -30.0, 1.0), (3, 3, 2.0, 5.0),
                                       (2, 5, 10.0, 0.2), (6, 4, 0.0, 3.0)]:
    a = rng.normal(100.0 + shift, 5.0 * scale, size_a)
    b = rng.normal(100.0, 5.0, size_b)
    t, df, p = seeds_lib.welch_t_test(a, b)
    expected = scipy.stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(expected.statistic, rel=1e-9)
    assert df == pytest.approx(expected.df, rel=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)
  with pytest.raises(ValueError, match="2 values on each side"):
    seeds_lib.welch_t_test([1.0], [1.0, 2.0])
  with pytest.raises(ValueError, match="neither side varies"):
    seeds_lib.welch_t_test([1.0, 1.0], [2.0, 2.0])


def test_vmapped_seeds_agree_with_single_runs(fashion_train):
  """seed_batching="vmap": one batched program. Batched kernels sum in
  another order, so a seed agrees with its single run to float rounding
  (about 1e-7 after 4 steps), not bit for bit."""
  config = smoke_config(num_seeds=2, seed_batching="vmap", batch_size=8,
                        steps_per_call=2)
  devices = jax.local_devices()[:1]
  data = parallel.replicate_data(fashion_train[0], devices)
  init = lambda seed: parallel.replicate_state(
      build.initial_state(config, build.make_keys(seed), 60000), devices)
  batched = build.compile_train_fn(config, devices, seeds=True)
  single = build.compile_train_fn(config, devices)
  states = (init(0), init(1))
  for _ in range(2):
    states, metrics = batched(states, data)
  assert len(metrics) == 2
  for seed in (0, 1):
    state = init(seed)
    for _ in range(2):
      state, _ = single(state, data)
    for a, b in zip(leaves(states[seed]), leaves(state), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert not np.array_equal(leaves(states[0].g_params)[0],
                            leaves(states[1].g_params)[0])


def test_a_diverged_seed_rolls_back_alone(tmp_path, monkeypatch):
  """Seed 1's NaN rolls both seeds back to the checkpoint; seed 1 continues
  with a new noise stream, seed 0 stays bit-identical to its single run."""
  _poison_call(monkeypatch, call=3, seed_index=1)
  states = trainer.train_and_evaluate(
      smoke_config(num_seeds=2, nan_rollbacks=1), str(tmp_path / "a"))
  monkeypatch.undo()
  records = metric_writers.read_jsonl(str(tmp_path / "a" / "seed_1" /
                                          "metrics.jsonl"))
  assert (4, 1) in [(r["step"], r.get("rollback")) for r in records]
  for seed, state in enumerate(states):
    straight = trainer.train_and_evaluate(smoke_config(seed=seed),
                                          str(tmp_path / f"single_{seed}"))
    if seed == 0:
      assert_identical(state, straight)
    else:
      assert not np.array_equal(np.asarray(state.noise_key),
                                np.asarray(straight.noise_key))


@pytest.mark.parametrize("overrides,match", [
    ({"num_seeds": 0}, r"config\.num_seeds=0 .*positive integer"),
    ({"num_seeds": 3, "seed": 2**32 - 2}, r"config\.num_seeds=3 .*below 2\*\*32"),
    ({"seed_batching": "pmap"}, r"config\.seed_batching='pmap' .*'unrolled'"),
])
def test_bad_seed_fields_name_the_field(overrides, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    trainer.train_and_evaluate(smoke_config(**overrides), str(tmp_path))
