"""A run over two processes (CPU, loopback coordinator, gloo) trains like one
process with the same devices; process 0 alone writes the outputs."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ganjax import build
from ganjax import checkpointing
from ganjax import distributed
from ganjax import metric_writers
from ganjax import trainer
from tests.conftest import REPO, assert_identical, smoke_config
from tests.conftest import subprocess_env


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch_two_processes(workdir, *overrides):
  """Starts `ganjax.train` as processes 0 and 1 of one run, 2 CPU devices
  each."""
  env = subprocess_env()
  env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(
      "device_count=4", "device_count=2")
  port = _free_port()
  return [subprocess.Popen(
      [sys.executable, "-m", "ganjax.train",
       "--config=experiments/fashion.py:smoke", f"--workdir={workdir}",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
       f"--process_id={i}", *overrides],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(2)]


def _outputs(procs, returncodes=(0, 0)):
  try:
    outputs = [p.communicate(timeout=600)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, out, returncode in zip(procs, outputs, returncodes):
    assert p.returncode == returncode, out[-4000:]
  return outputs


def _train_two_processes(workdir, *overrides):
  """Runs both processes of one run to the end; returns their outputs."""
  return _outputs(_launch_two_processes(workdir, *overrides))


def test_two_processes_train_like_one(tmp_path):
  workdir = str(tmp_path / "two")
  _train_two_processes(workdir)  # 8 steps, checkpoints 4 and 8
  one = jax.device_get(trainer.train_and_evaluate(
      smoke_config(num_steps=4), str(tmp_path / "one")))  # 4 devices
  assert len(jax.devices()) == 4
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), 3)
  two = checkpointer.restore(4, one, smoke_config())
  assert 8 in checkpointer.all_steps()
  checkpointer.close()
  # The same program on the same 4 devices; only the cross-process sums go
  # through gloo, in another order than within one process: float32
  # rounding, which RMSprop amplifies step by step (see test_train_step's
  # device-count tests: the same tolerance after the same 4 steps). Resuming
  # from checkpoints both processes wrote is exact:
  # test_a_signal_to_any_process_...
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                               atol=2e-5)
  np.testing.assert_array_equal(one.perm, two.perm)
  # Process 0 alone wrote the logs: each step once.
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records] == [2, 4, 6, 8]
  with open(os.path.join(workdir, "run.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  assert manifest["process_count"] == 2 and len(manifest["devices"]) == 4
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
      "final.png", "step_0000004.png", "step_0000008.png"]
  # A reader with one device samples from the checkpoint written on four.
  env = subprocess_env()
  env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(
      "device_count=4", "device_count=1")
  out = str(tmp_path / "s.npz")
  result = subprocess.run(
      [sys.executable, "-m", "ganjax.sample", f"--workdir={workdir}",
       "--num=4", f"--out={out}"], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out) as f:
    assert f["images"].shape == (4, 28, 28) and int(f["step"]) == 8


def _wait_for_step(workdir, past, procs, timeout=300):
  """Waits until process 0 has logged a step beyond `past`."""
  path = os.path.join(workdir, "metrics.jsonl")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert all(p.poll() is None for p in procs), "a process ended early"
    if os.path.exists(path) and any(
        r["step"] > past for r in metric_writers.read_jsonl(path)):
      return
    time.sleep(0.05)
  raise AssertionError(f"no step past {past} logged in {timeout} s")


def _stop_step(outputs):
  """The step each process says it stopped at; they must agree."""
  steps = {int(m) for out in outputs
           for m in re.findall(r"at step (\d+); saved", out)}
  assert len(steps) == 1, [out[-2000:] for out in outputs]
  return steps.pop()


def test_a_signal_to_any_process_stops_all_at_one_step(tmp_path):
  """SIGTERM to one process only, then SIGTERM and SIGINT to the two at
  different times: each time both stop after the same step with a checkpoint
  of it (no deadlock in the collective save), and the resumed run ends
  bit-identical to one that never stopped."""
  workdir = str(tmp_path / "stopped")
  # Long enough to be running when the signal comes; checkpoints only at stops.
  long = ("--config.num_steps=20000", "--config.checkpoint_every=20000",
          "--config.sample_every=20000")
  procs = _launch_two_processes(workdir, *long)
  _wait_for_step(workdir, 0, procs)
  procs[1].send_signal(signal.SIGTERM)
  # Process 0 was sent nothing: it stops with process 1, exiting as if sent
  # SIGTERM (what a cluster scheduler expects of a preempted job).
  first = _stop_step(_outputs(procs, (128 + signal.SIGTERM,) * 2))
  procs = _launch_two_processes(workdir, *long)
  _wait_for_step(workdir, first, procs)
  procs[0].send_signal(signal.SIGTERM)
  time.sleep(0.2)
  procs[1].send_signal(signal.SIGINT)
  outputs = _outputs(procs, (128 + signal.SIGTERM, 128 + signal.SIGINT))
  second = _stop_step(outputs)
  assert second > first
  # Each launch resumed from the checkpoint both processes wrote at the stop.
  assert f"Resumed from {workdir}/checkpoints/{first}" in outputs[0]
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), 3)
  assert {first, second} <= set(checkpointer.all_steps())
  checkpointer.close()
  final = ("--config.num_steps=" + str(second + 6),)
  outputs = _train_two_processes(workdir, *final)
  assert f"Resumed from {workdir}/checkpoints/{second}" in outputs[0]
  steps = [r["step"] for r in metric_writers.read_jsonl(
      os.path.join(workdir, "metrics.jsonl"))]
  assert steps == sorted(set(steps)) and steps[-1] == second + 6  # each once
  straight = str(tmp_path / "straight")
  _train_two_processes(straight, *final)
  template = jax.eval_shape(lambda: build.initial_state(
      smoke_config(), build.make_keys(0), 60000))
  restored = []
  for run in (workdir, straight):
    checkpointer = checkpointing.Checkpointer(
        os.path.join(run, "checkpoints"), 3)
    restored.append(checkpointer.restore(second + 6, template,
                                         smoke_config()))
    checkpointer.close()
  assert_identical(*restored)


def test_process_flags_without_a_coordinator_are_refused(monkeypatch):
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
  with pytest.raises(ValueError, match="--coordinator_address"):
    distributed.initialize(num_processes=2, process_id=0)
  with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, 2\)"):
    distributed.initialize("127.0.0.1:1", num_processes=2, process_id=2)
  assert distributed.initialize() is False  # a one-process run
