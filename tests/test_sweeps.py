"""Sweeps in one program (config.sweep): the grid, what is refused, each
point bit-identical to its single run, the outputs and the summary."""

import json
import os

import jax
import pytest

from ganjax import checkpointing
from ganjax import configs
from ganjax import metric_writers
from ganjax import report
from ganjax import sweeps
from ganjax import trainer
from tests.conftest import assert_identical, smoke_config
from tests.test_faults import _poison_call as poison_call

SWEEP = "g_learning_rate+d_learning_rate=1e-3,3e-3"


def test_the_grid_in_order():
  config = smoke_config(sweep=" adam_b1=0,0.5 ; ema_decay=0.9,0.99,0.999")
  assert sweeps.points(config) == [
      {"adam_b1": a, "ema_decay": e} for a in (0.0, 0.5)
      for e in (0.9, 0.99, 0.999)]
  config = smoke_config(sweep=SWEEP)
  assert sweeps.points(config) == [
      {"g_learning_rate": 1e-3, "d_learning_rate": 1e-3},
      {"g_learning_rate": 3e-3, "d_learning_rate": 3e-3}]
  assert sweeps.point_names(config) == [
      "p0_g_learning_rate=0.001_d_learning_rate=0.001",
      "p1_g_learning_rate=0.003_d_learning_rate=0.003"]
  config = smoke_config(sweep="g_learning_rate+d_learning_rate=1e-3/4e-3,"
                        "2e-3/8e-3")
  assert sweeps.points(config) == [
      {"g_learning_rate": 1e-3, "d_learning_rate": 4e-3},
      {"g_learning_rate": 2e-3, "d_learning_rate": 8e-3}]
  assert sweeps.points(smoke_config()) == [{}]
  config = smoke_config(sweep=SWEEP)
  point = sweeps.point_config(config, sweeps.points(config)[1])
  assert point.sweep == "" and point.d_learning_rate == 3e-3
  assert config.d_learning_rate == 1e-3  # the sweep's config is untouched


@pytest.mark.parametrize("sweep, message", [
    ("batch_size=64,128", r"batch_size changes the arrays' shapes or the "
     r"compiled program.*sweepable fields: ada_kimg, ada_target"),
    ("loss=hinge", r"loss changes the arrays' shapes or the compiled"),
    ("g_width=32,64", r"g_width changes the arrays' shapes"),
    ("learning_rate=1e-3", r"'learning_rate' is not a config field"),
    ("ema_decay=0,0.99", r"ema_decay is 0 at some points and not at others"),
    ("d_dropout=0.0,0.4", r"d_dropout is 0 at some points"),
    ("adam_b1=0,0", r"axis .adam_b1=0,0. repeats a value"),
    ("adam_b1=x", r"'x' is not a number"),
    ("ema_start=1.5", r"'1.5' is not an integer"),
    ("adam_b1", r"axis .adam_b1. is not field=v1,v2"),
    ("adam_b1=0;adam_b1=0.5", r"adam_b1 is on two axes"),
    ("g_learning_rate+d_learning_rate=1e-3/2e-3/3e-3",
     r"'1e-3/2e-3/3e-3' has 3 values but the axis has 2 field\(s\), "
     r"g_learning_rate\+d_learning_rate"),
    ("adam_b1=0.5/0.9",
     r"'0.5/0.9' has 2 values but the axis has 1 field\(s\), adam_b1"),
    ("r1_weight+ema_decay=0.1/0,0.2/0.99",
     r"ema_decay is 0 at some points and not at others"),
])
def test_fields_that_change_the_program_are_refused(sweep, message):
  with pytest.raises(ValueError, match=r"config.sweep=.* is invalid: "
                     + message):
    configs.validate(smoke_config(sweep=sweep), 1)


def test_a_bad_value_at_a_point_names_the_point():
  with pytest.raises(ValueError, match=r"config.sweep='adam_b1=0.5,1.5' is "
                     r"invalid at its point \{'adam_b1': 1.5\}: "
                     r"config.adam_b1=1.5 is invalid"):
    configs.validate(smoke_config(sweep="adam_b1=0.5,1.5"), 1)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
  """2 points x 2 seeds of the smoke config in one run, scored at step 8."""
  workdir = str(tmp_path_factory.mktemp("sweep"))
  config = smoke_config(seed=3, num_seeds=2, sweep=SWEEP, eval_every=8,
                        eval_num_samples=200)
  return workdir, jax.device_get(trainer.train_and_evaluate(config, workdir))


def test_each_point_and_seed_is_bit_identical_to_its_single_run(
    sweep_run, tmp_path):
  """On CPU (seeds and points written out side by side)."""
  _, states = sweep_run
  assert len(states) == 4  # p0 seeds 3, 4; p1 seeds 3, 4
  for index, lr, seed in ((0, 1e-3, 3), (3, 3e-3, 4)):
    single = trainer.train_and_evaluate(
        smoke_config(seed=seed, g_learning_rate=lr, d_learning_rate=lr),
        str(tmp_path / str(index)))
    assert_identical(states[index], single)
  # The points differ from each other (the sweep reached the step).
  with pytest.raises(AssertionError):
    assert_identical(states[0], states[2])


def test_each_point_is_an_ordinary_run_and_the_sweep_has_a_summary(
    sweep_run):
  workdir, _ = sweep_run
  names = sorted(n for n in os.listdir(workdir) if n.startswith("p"))
  assert names == sweeps.point_names(smoke_config(sweep=SWEEP))
  point = os.path.join(workdir, names[1])
  with open(os.path.join(point, "seed_4", "config.json"),
            encoding="utf-8") as f:
    assert json.load(f) == smoke_config(
        seed=4, g_learning_rate=3e-3, d_learning_rate=3e-3, eval_every=8,
        eval_num_samples=200).to_dict()
  _, _, step, _ = trainer.restore_generator(os.path.join(point, "seed_4"))
  assert step == 8
  with open(os.path.join(point, "eval", "step_0000008.json"),
            encoding="utf-8") as f:
    assert json.load(f)["seeds"] == [3, 4]  # the point's summary over seeds
  with open(os.path.join(workdir, "eval", "step_0000008.json"),
            encoding="utf-8") as f:
    summary = json.load(f)
  fids = {}
  for row, name in zip(summary["points"], names):
    assert row["name"] == name and row["seeds"] == [3, 4]
    for k, seed in enumerate((3, 4)):
      with open(os.path.join(workdir, name, f"seed_{seed}", "eval",
                             "step_0000008.json"), encoding="utf-8") as f:
        assert row["per_seed"]["fid"][k] == json.load(f)["fid"]
    fids[name] = row["mean"]["fid"]
  assert summary["best"]["name"] == min(fids, key=fids.get)
  assert summary["best"]["overrides"] == {"g_learning_rate": 3e-3,
                                          "d_learning_rate": 3e-3} or (
      summary["best"]["name"] == names[0])
  # The sweep's own directory is not a run to sample from: it names them.
  with pytest.raises(FileNotFoundError, match=r"is a sweep; .*p0_g_learning"):
    trainer.restore_generator(workdir)
  page = open(report.write_report(workdir), encoding="utf-8").read()
  assert "2 sweep points at step 8" in page and names[1] in page


def test_the_docs_table_of_a_sweep_is_its_summary(sweep_run, tmp_path,
                                                   monkeypatch):
  """benchmarks/results_table.py collect-sweep keeps the summary, and the
  docs' table shows each point's mean and CI, the best point in bold."""
  monkeypatch.syspath_prepend(os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "benchmarks"))
  import results_table  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(results_table, "SWEEPS", str(tmp_path))
  workdir, _ = sweep_run
  row = results_table.collect_sweep("smoke", workdir, note="A note.")
  assert row["sweep"] == SWEEP
  text = results_table.sweeps_table()
  summary = row["summary"]
  lines = [l for l in text.splitlines() if l.startswith("| p") and
           not l.startswith("| point")]
  assert len(lines) == summary["num_points"] == 2
  for line, point in zip(lines, summary["points"]):
    fid = f"{point['mean']['fid']:.1f} ± {point['ci95']['fid']:.1f}"
    best = point["point"] == summary["best"]["point"]
    assert (f"**{fid}**" if best else f"| {fid} |") in line
    assert ("(best)" in line) == best
  assert "2 points x 2 seed(s) x 8 steps" in text and "A note." in text


def test_a_diverged_point_is_left_out_and_the_others_train_on(
    tmp_path, monkeypatch):
  """p1 reports a NaN at step 6: it is recorded and left out, p0 resumes
  from step 4 and ends as its single run; p1's metrics and evaluations up
  to then are kept; the summaries of the replayed steps are made again;
  the table and a second run of the same command leave p1 out."""
  workdir = str(tmp_path / "sweep")
  config = smoke_config(sweep=SWEEP, eval_every=2, eval_num_samples=200)
  p0, p1 = (os.path.join(workdir, n) for n in sweeps.point_names(config))
  poison_call(monkeypatch, call=3, seed_index=1)  # p1's steps 5-6
  states = trainer.train_and_evaluate(config, workdir)
  monkeypatch.undo()
  with open(os.path.join(p1, "diverged.json"), encoding="utf-8") as f:
    record = json.load(f)
  assert record["step"] == 6 and "d_loss = nan" in record["message"]
  steps = lambda d: checkpointing.Checkpointer(
      os.path.join(d, "checkpoints"), 3).all_steps()
  assert steps(p1) == [4] and steps(p0) == [4, 8]
  single = trainer.train_and_evaluate(
      smoke_config(g_learning_rate=1e-3, d_learning_rate=1e-3),
      str(tmp_path / "single"))
  assert_identical(jax.device_get(states[0]), jax.device_get(single))
  for step in (6, 8):  # step 6's summary was made before p1's NaN was read
    with open(os.path.join(workdir, "eval", f"step_{step:07d}.json"),
              encoding="utf-8") as f:
      summary = json.load(f)
    left_out = summary["points"][1]
    assert left_out["diverged_at"] == {"0": 6} and "mean" not in left_out
    assert summary["best"]["point"] == 0
  assert "diverged at step 6 (seed 0)" in sweeps.table(summary)
  assert sorted(os.listdir(os.path.join(p1, "eval"))) == [
      f"step_{s:07d}.json" for s in (2, 4, 6)]  # its record, kept
  records = metric_writers.read_jsonl(os.path.join(p1, "metrics.jsonl"))
  assert max(r["step"] for r in records) == 6
  # The same command again: complete, p1 still left out, nothing deleted
  # or made again.
  saved = lambda: os.stat(os.path.join(p0, "checkpoints", "8")).st_mtime_ns
  before = saved()
  trainer.train_and_evaluate(config, workdir)
  assert steps(p1) == [4] and steps(p0) == [4, 8] and saved() == before


def test_a_sweep_whose_every_point_diverged_stops_and_resumes(
    tmp_path, monkeypatch):
  """The last point training stops the sweep as an ordinary divergence,
  unrecorded: the same command resumes it."""
  config = smoke_config(sweep=SWEEP)
  p0, p1 = (os.path.join(tmp_path, n) for n in sweeps.point_names(config))
  poison_call(monkeypatch, call=3, seed_index=0)
  poison_call(monkeypatch, call=5, seed_index=1)  # after p0's drop
  with pytest.raises(trainer.TrainingDivergedError,
                     match=r"diverged at step \d+ \(p1_"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert os.path.exists(os.path.join(p0, "diverged.json"))
  assert not os.path.exists(os.path.join(p1, "diverged.json"))
  monkeypatch.undo()
  trainer.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.Checkpointer(os.path.join(p1, "checkpoints"),
                                    3).all_steps()[-1] == 8


def test_rollbacks_are_per_point_and_keep_their_noise_stream(
    tmp_path, monkeypatch):
  """nan_rollbacks=1: p0 rolls back at step 6, then p1 at its replay; both
  go back to step 4, p0 again with its rollback's stream: it ends as in a
  sweep where only p0 rolled back, and nothing is left out."""
  config = smoke_config(sweep=SWEEP, nan_rollbacks=1)
  poison_call(monkeypatch, call=3, seed_index=0)
  alone = trainer.train_and_evaluate(config, str(tmp_path / "a"))
  monkeypatch.undo()
  poison_call(monkeypatch, call=3, seed_index=0)
  poison_call(monkeypatch, call=5, seed_index=1)
  both = trainer.train_and_evaluate(config, str(tmp_path / "b"))
  assert not [n for n in os.listdir(tmp_path / "b" / sweeps.point_names(
      config)[1]) if n == "diverged.json"]
  assert_identical(jax.device_get(alone[0]), jax.device_get(both[0]))
  with pytest.raises(AssertionError):  # p1 did roll back in the second
    assert_identical(jax.device_get(alone[1]), jax.device_get(both[1]))


def test_members_whose_checkpoints_stop_far_apart_are_refused(
    tmp_path, monkeypatch):
  """p1 diverged at step 6 (checkpoint 4); with its diverged.json deleted,
  going back to step 4 would delete p0's checkpoints 8 and 12: refused,
  nothing deleted."""
  config = smoke_config(sweep=SWEEP, num_steps=12)
  p0, p1 = (os.path.join(tmp_path, n) for n in sweeps.point_names(config))
  poison_call(monkeypatch, call=3, seed_index=1)
  trainer.train_and_evaluate(config, str(tmp_path))
  monkeypatch.undo()
  os.remove(os.path.join(p1, "diverged.json"))
  with pytest.raises(ValueError, match=r"stop at different steps: .*p1_.* "
                     r"has none past step 4, but .*p0_.* has \[8, 12\]"):
    trainer.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.Checkpointer(os.path.join(p0, "checkpoints"),
                                    3).all_steps() == [4, 8, 12]
