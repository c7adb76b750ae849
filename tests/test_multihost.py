"""A run over two processes (CPU, loopback coordinator, gloo) trains like one
process with the same devices; process 0 alone writes the outputs."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganjax import checkpointing
from ganjax import distributed
from ganjax import metric_writers
from ganjax import trainer
from tests.conftest import REPO, smoke_config, subprocess_env


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _train_two_processes(workdir, *overrides):
  """Runs `ganjax.train` as processes 0 and 1 of one run, 2 CPU devices
  each; returns their outputs."""
  env = subprocess_env()
  env["XLA_FLAGS"] = env["XLA_FLAGS"].replace(
      "device_count=4", "device_count=2")
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "ganjax.train",
       "--config=experiments/fashion.py:smoke", f"--workdir={workdir}",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
       f"--process_id={i}", *overrides],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(2)]
  try:
    outputs = [p.communicate(timeout=600)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-4000:]
  return outputs


def test_two_processes_train_like_one_and_resume(tmp_path):
  workdir = str(tmp_path / "two")
  # Steps 1-4, then a second launch resumes from checkpoint 4 (written by
  # both processes) to step 8.
  _train_two_processes(workdir, "--config.num_steps=4")
  _train_two_processes(workdir)
  one = jax.device_get(trainer.train_and_evaluate(
      smoke_config(), str(tmp_path / "one")))  # 4 devices, one process
  assert len(jax.devices()) == 4
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), 3)
  two = checkpointer.restore(8, one, smoke_config())
  checkpointer.close()
  # The same program on the same 4 devices; only the cross-process sums go
  # through gloo, in another order than within one process.
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-6)
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


def test_process_flags_without_a_coordinator_are_refused(monkeypatch):
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
  with pytest.raises(ValueError, match="--coordinator_address"):
    distributed.initialize(num_processes=2, process_id=0)
  with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, 2\)"):
    distributed.initialize("127.0.0.1:1", num_processes=2, process_id=2)
  assert distributed.initialize() is False  # a one-process run
