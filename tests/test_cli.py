"""The command lines, as a user runs them."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tests.conftest import REPO


def _run(*args, env_extra=None):
  env = dict(os.environ)
  env.update({"JAX_COMPILATION_CACHE_DIR": os.environ.get(
      "GANJAX_TEST_CACHE", "/tmp/ganjax-test-jax-cache"),
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
  env.update(env_extra or {})
  return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)


def test_train_then_sample(tmp_path):
  workdir = str(tmp_path / "run")
  result = _run("ganjax.train", "--config=experiments/fashion.py:smoke",
                f"--workdir={workdir}", "--config.num_steps=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "step 4/4" in result.stderr and "ETA" in result.stderr
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "4"))

  out = str(tmp_path / "s.npz")
  result = _run("ganjax.sample", f"--workdir={workdir}", "--num=10",
                f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  with np.load(out) as f:
    images, step = f["images"], int(f["step"])
  assert images.shape == (10, 28, 28) and images.dtype == np.uint8
  assert step == 4 and images.std() > 0

  png = str(tmp_path / "grid.png")
  result = _run("ganjax.sample", f"--workdir={workdir}", "--num=9",
                f"--out={png}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert Image.open(png).size == (2 * (3 * 30 + 2),) * 2


def test_bad_override_names_the_field(tmp_path):
  result = _run("ganjax.train", "--config=experiments/fashion.py:smoke",
                f"--workdir={tmp_path}", "--config.batch_size=-4")
  assert result.returncode != 0
  assert "config.batch_size=-4 is invalid" in result.stderr


def test_sample_without_run_is_clear(tmp_path):
  result = _run("ganjax.sample", f"--workdir={tmp_path}", "--out=x.png")
  assert result.returncode != 0
  assert "is not a ganjax run directory" in result.stderr
