"""Faults injected into real training runs: a NaN, a stop signal, SIGKILL at
any moment (mid-checkpoint included), a full disk while saving."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import build
from ganjax import checkpointing
from ganjax import metric_writers
from ganjax import signals
from ganjax import trainer
from tests.conftest import REPO, leaves, smoke_config, subprocess_env


def _poison_call(monkeypatch, call, seed_index=0):
  """Makes the `call`-th fused call (an int, or a set of them, counted over
  the whole run, rollbacks included) report d_loss NaN for the run's seed
  number `seed_index` (the state stays as computed)."""
  calls = {call} if isinstance(call, int) else set(call)
  compile_real = build.compile_train_fn
  count = {"calls": 0}

  def compile_poisoned(config, devices, gan=None, seeds=False):
    assert seeds  # the trainer steps a tuple of states, one per seed
    train_fn = compile_real(config, devices, gan, seeds)

    def poisoned(states, data):
      count["calls"] += 1
      states, metrics = train_fn(states, data)
      if count["calls"] in calls:
        metrics = list(metrics)
        metrics[seed_index] = dict(
            metrics[seed_index],
            d_loss=metrics[seed_index]["d_loss"] * jnp.nan)
      return states, tuple(metrics)
    return poisoned
  monkeypatch.setattr(build, "compile_train_fn", compile_poisoned)
  return count


def test_nan_stops_and_the_last_good_checkpoint_resumes(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  _poison_call(monkeypatch, call=3)  # steps 5-6 of 2-step calls
  with pytest.raises(trainer.TrainingDivergedError,
                     match=r"diverged at step 6: d_loss = nan.*"
                     r"config\.nan_rollbacks"):
    trainer.train_and_evaluate(smoke_config(), workdir)
  steps = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     3).all_steps()
  assert steps == [4]  # the last good one; step 8 was never saved
  monkeypatch.undo()
  resumed = trainer.train_and_evaluate(smoke_config(), workdir)
  straight = trainer.train_and_evaluate(smoke_config(), str(tmp_path / "b"))
  for a, b in zip(leaves(resumed), leaves(straight), strict=True):
    np.testing.assert_array_equal(a, b)


def test_nan_rolls_back_and_continues_with_new_noise(tmp_path, monkeypatch):
  count = _poison_call(monkeypatch, call=3)
  state = trainer.train_and_evaluate(smoke_config(nan_rollbacks=1),
                                     str(tmp_path / "a"))
  # Call 3's NaN is read after call 4 (metrics are fetched one call late);
  # calls 5-6 redo steps 5-8.
  assert int(state.step) == 8 and count["calls"] == 6
  records = metric_writers.read_jsonl(str(tmp_path / "a" / "metrics.jsonl"))
  assert [(r["step"], r.get("rollback")) for r in records] == [
      (2, None), (4, None), (4, 1), (6, None), (8, None)]
  assert all(np.isfinite(x).all() for x in leaves(state))
  # After step 4 the run follows another noise stream than an undisturbed
  # one: same data order, other parameters.
  monkeypatch.undo()
  straight = trainer.train_and_evaluate(smoke_config(), str(tmp_path / "b"))
  assert not np.array_equal(np.asarray(state.noise_key),
                            np.asarray(straight.noise_key))
  assert not np.array_equal(leaves(state.g_params)[0],
                            leaves(straight.g_params)[0])
  np.testing.assert_array_equal(state.data_key, straight.data_key)


@pytest.mark.parametrize("nan_rollbacks", [1, 2])
def test_rollbacks_are_counted_and_limited(tmp_path, monkeypatch,
                                           nan_rollbacks):
  """Two NaNs: at call 3 (steps 5-6) and at call 5, the first redo of those
  steps after rolling back to step 4. One rollback allowed: the second NaN
  stops the run, naming step 6. Two allowed: the run ends at step 8, and the
  metrics record rollbacks 1 and 2 at step 4."""
  count = _poison_call(monkeypatch, call={3, 5})
  workdir = tmp_path / "run"
  config = smoke_config(nan_rollbacks=nan_rollbacks)
  if nan_rollbacks == 1:
    with pytest.raises(trainer.TrainingDivergedError,
                       match="diverged at step 6: d_loss = nan"):
      trainer.train_and_evaluate(config, str(workdir))
  else:
    state = trainer.train_and_evaluate(config, str(workdir))
    assert int(state.step) == 8 and count["calls"] == 8
  records = metric_writers.read_jsonl(str(workdir / "metrics.jsonl"))
  assert [(r["step"], r["rollback"]) for r in records if "rollback" in r] == [
      (4, k) for k in range(1, nan_rollbacks + 1)]


def _start_training(workdir, log_path):
  env = subprocess_env()
  log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
  return subprocess.Popen(
      [sys.executable, "-m", "ganjax.train",
       "--config=experiments/fashion.py:smoke", f"--workdir={workdir}",
       "--config.num_steps=100000", "--config.checkpoint_every=2",
       "--config.keep_checkpoints=2", "--config.sample_every=100000"],
      cwd=REPO, env=env, stderr=log, stdout=log), log


def _wait_for(predicate, process, timeout=120):
  deadline = time.monotonic() + timeout
  while not predicate():
    assert process.poll() is None, "training exited before the kill"
    assert time.monotonic() < deadline, "timed out waiting to kill"
    time.sleep(0.0005)


def _saving(checkpoints):
  """A checkpoint is being written (Orbax's temporary directory exists) and
  an earlier one is complete."""
  try:
    names = os.listdir(checkpoints)
  except FileNotFoundError:
    return False
  return (any("tmp" in name for name in names)
          and any(name.isdigit() for name in names))


def _logged_step(log_path, at_least):
  with open(log_path, encoding="utf-8") as f:
    text = f.read()
  steps = [int(part.split("/")[0]) for part in text.split(" step ")[1:]
           if part.split("/")[0].isdigit()]
  return bool(steps) and max(steps) >= at_least


def test_a_stop_waits_for_one_call_and_python_stays_two_calls_ahead(
    tmp_path, monkeypatch):
  """Ctrl-C's latency: the loop never queues more than two calls (each call
  of 2 steps at batch 128 takes long enough on CPU for Python to run far
  ahead if it did not wait), and a stop signal seen after call n saves the
  state after call n, with no further call dispatched."""
  outputs = []
  original = build.compile_train_fn

  def compile_watched(*args, **kwargs):
    train_fn = original(*args, **kwargs)

    def watched(states, data):
      for earlier in outputs[:-1]:  # all but the newest call are done
        assert all(x.is_ready() for x in jax.tree.leaves(earlier)), (
            f"call {len(outputs) + 1} dispatched before call "
            f"{outputs.index(earlier) + 1} finished")
      states, metrics = train_fn(states, data)
      outputs.append(metrics)
      return states, metrics
    return watched

  def should_stop(self):
    if len(outputs) == 4:
      self.signum = signal.SIGINT
    return self.signum is not None

  monkeypatch.setattr(build, "compile_train_fn", compile_watched)
  monkeypatch.setattr(signals.StopSignals, "should_stop", should_stop)
  with pytest.raises(signals.Preempted, match="Stopped by SIGINT at step 8"):
    trainer.train_and_evaluate(
        smoke_config(batch_size=128, num_steps=40, checkpoint_every=40,
                     sample_every=40, log_every=40), str(tmp_path))
  assert len(outputs) == 4
  assert checkpointing.Checkpointer(os.path.join(tmp_path, "checkpoints"),
                                    3).all_steps() == [8]


def test_sigkill_at_any_moment_leaves_a_resumable_run(tmp_path):
  """SIGKILL a real training process three times: mid-checkpoint-write,
  mid-training, and mid-write again. Each time the run resumes from its last
  complete checkpoint, and the finished run is bit-identical to one that
  never stopped."""
  workdir = str(tmp_path / "run")
  checkpoints = os.path.join(workdir, "checkpoints")
  kills = [
      lambda log: _saving(checkpoints),
      lambda log: _logged_step(log, at_least=resumed_from[-1] + 6),
      lambda log: _saving(checkpoints) and _logged_step(
          log, at_least=resumed_from[-1] + 2),
  ]
  resumed_from = [0]
  for i, kill_when in enumerate(kills):
    log_path = str(tmp_path / f"train_{i}.log")
    process, log = _start_training(workdir, log_path)
    try:
      _wait_for(lambda: kill_when(log_path), process)  # pylint: disable=cell-var-from-loop
      process.send_signal(signal.SIGKILL)
      process.wait(timeout=60)
    finally:
      log.close()
    assert process.returncode == -signal.SIGKILL
    latest = checkpointing.Checkpointer(checkpoints, 2).latest_step()
    assert latest is not None and latest >= resumed_from[-1]
    resumed_from.append(latest)
  final = resumed_from[-1] + 4
  resumed = trainer.train_and_evaluate(smoke_config(num_steps=final),
                                       workdir)
  straight = trainer.train_and_evaluate(smoke_config(num_steps=final),
                                        str(tmp_path / "straight"))
  for a, b in zip(leaves(resumed), leaves(straight), strict=True):
    np.testing.assert_array_equal(a, b)
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records] == list(range(2, final + 1, 2))


def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  trainer.train_and_evaluate(smoke_config(num_steps=4), workdir)
  # Writes past 1 MB fail with EFBIG (errno 27), as writes to a full disk
  # fail with ENOSPC; no privileges needed. SIGXFSZ ignored, as for a disk.
  env = subprocess_env()
  command = (f"trap '' XFSZ; ulimit -f 1024; exec {sys.executable} -m "
             "ganjax.train --config=experiments/fashion.py:smoke "
             f"--workdir={workdir} --config.num_steps=8")
  result = subprocess.run(["sh", "-c", command], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600,
                          check=False)
  # Orbax's background threads print their own tracebacks meanwhile, and a
  # line of theirs may run into ours: look for our message anywhere.
  marker = "ganjax.train: error: Writing checkpoint 8 in "
  assert result.returncode == 1 and marker in result.stderr, (
      result.stderr[-5000:])
  last = result.stderr[result.stderr.index(marker):].split("\n")[0]
  assert "File too large" in last and "The disk may be full" in last
  assert "The complete checkpoints [4] are intact" in last
  checkpoints = os.path.join(workdir, "checkpoints")
  assert any("tmp" in name for name in os.listdir(checkpoints))
  # With space again, the same command resumes from step 4, removes the
  # partial checkpoint and ends bit-identical to an undisturbed run.
  resumed = trainer.train_and_evaluate(smoke_config(), workdir)
  assert sorted(os.listdir(checkpoints)) == ["4", "8"]
  straight = trainer.train_and_evaluate(smoke_config(), str(tmp_path / "b"))
  for a, b in zip(leaves(resumed), leaves(straight), strict=True):
    np.testing.assert_array_equal(a, b)


def test_a_resume_before_an_evaluation_deletes_that_evaluation(tmp_path):
  """Checkpoint 8 moved aside (as the corrupt-checkpoint error advises): the
  run resumes from 4, and eval/step_8.json, of steps it no longer has, goes
  (else reports and tables would show it as the run's)."""
  workdir = str(tmp_path)
  config = smoke_config(eval_every=4, eval_num_samples=200)
  trainer.train_and_evaluate(config, workdir)
  evals = lambda: sorted(os.listdir(os.path.join(workdir, "eval")))
  assert evals() == ["step_0000004.json", "step_0000008.json"]
  os.rename(os.path.join(workdir, "checkpoints", "8"), str(tmp_path / "8"))
  trainer.train_and_evaluate(smoke_config(eval_every=4, eval_num_samples=200,
                                          num_steps=6), workdir)
  assert evals() == ["step_0000004.json", "step_0000006.json"]
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert max(r["step"] for r in records) == 6


def test_a_rollback_deletes_a_best_checkpoint_of_the_abandoned_steps(
    tmp_path, monkeypatch):
  """The evaluation at step 6 is the best so far (FID 1, set here), then a
  NaN at steps 5-6 sends the run back to checkpoint 4: checkpoints_best/
  must not keep step 6 of the abandoned trajectory. It holds the best of
  the evaluations since (one checkpoint is kept, so the best before step 6,
  which step 6's replaced, is gone)."""
  from ganjax import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  evaluate_real = metrics_lib.evaluate_generator
  count = {"evals": 0}

  def evaluate(*args, **kwargs):
    count["evals"] += 1
    result = evaluate_real(*args, **kwargs)
    return dict(result, fid=1.0 if count["evals"] == 3 else 100.0 +
                count["evals"])
  monkeypatch.setattr(metrics_lib, "evaluate_generator", evaluate)
  _poison_call(monkeypatch, call=3)
  workdir = str(tmp_path)
  trainer.train_and_evaluate(smoke_config(nan_rollbacks=1, eval_every=2,
                                          eval_num_samples=100), workdir)
  assert count["evals"] > 4  # steps 2, 4, 6, then 6 and 8 again
  fids = {}
  for name in os.listdir(os.path.join(workdir, "eval")):
    with open(os.path.join(workdir, "eval", name), encoding="utf-8") as f:
      fids[int(name[5:-5])] = json.load(f)["fid"]
  best = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints_best"),
                                    1)
  step = best.latest_step()
  assert best.read_meta(step)["fid"] == fids[step] == min(
      fid for s, fid in fids.items() if s > 4)
