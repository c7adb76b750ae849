"""The command lines, as a user runs them."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, subprocess_env


def _run(*args, cwd=REPO):
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd,
                        env=subprocess_env(), capture_output=True, text=True,
                        timeout=900)


def test_train_then_sample(tmp_path):
  # A recipe that extends another, copied out of the repository and named by
  # its absolute path from another working directory.
  recipes = tmp_path / "my_recipes"
  recipes.mkdir()
  for name in ("fashion.py", "fashion_ns_adam.py"):
    shutil.copy(os.path.join(REPO, "experiments", name), recipes / name)
  workdir = str(tmp_path / "run")
  result = _run("ganjax.train",
                f"--config={recipes / 'fashion_ns_adam.py'}:smoke",
                f"--workdir={workdir}", "--config.num_steps=4",
                "--config.eval_every=4", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "libtpu" not in result.stderr and "INFO" not in result.stderr
  assert "step 2/4" in result.stderr and "first call (compiling)" in (
      result.stderr)  # the rate and ETA exclude compiling
  assert "step 4/4" in result.stderr and "ETA" in result.stderr
  assert f"Outputs in {workdir}: checkpoints/" in result.stderr
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "4"))
  result = _run("ganjax.train",
                f"--config={recipes / 'fashion_ns_adam.py'}:smoke",
                f"--workdir={workdir}", "--config.num_steps=4",
                "--config.eval_every=4", cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"The run in {workdir} is already complete at step 4" in (
      result.stderr)

  out = str(tmp_path / "s.npz")
  result = _run("ganjax.sample", f"--workdir={workdir}", "--num=10",
                f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  # One line: no Orbax or libtpu logs at the default verbosity.
  assert result.stderr.strip().splitlines()[0].endswith(
      f"Wrote 10 samples from step 4 to {out}"), result.stderr[-3000:]
  assert len(result.stderr.strip().splitlines()) == 1
  with np.load(out) as f:
    images, step = f["images"], int(f["step"])
  assert images.shape == (10, 28, 28) and images.dtype == np.uint8
  assert step == 4 and images.std() > 0

  result = _run("ganjax.sample", f"--workdir={workdir}", "--step=3",
                f"--out={out}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"ganjax.sample: error: {workdir}/checkpoints has no checkpoint of "
      "step 3; its checkpoints are of steps [4]. Give one of those (--step), "
      "or none for the newest."]

  png = str(tmp_path / "grid.png")
  result = _run("ganjax.sample", f"--workdir={workdir}", "--num=9",
                f"--out={png}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert Image.open(png).size == (2 * (3 * 30 + 2),) * 2

  # Scoring the checkpoint, then the .npz: one JSON object on stdout each.
  # By default the run's own protocol, which re-creates training's numbers;
  # another --num_samples goes elsewhere and leaves them alone.
  trained_path = os.path.join(workdir, "eval", "step_0000004.json")
  with open(trained_path, encoding="utf-8") as f:
    trained = json.load(f)
  result = _run("ganjax.evaluate", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  scored = json.loads(result.stdout)
  assert scored["step"] == 4 and scored["num_samples"] == 200
  assert {"fid", "kid", "precision", "recall", "classes_covered",
          "protocol"} <= set(scored)
  assert ({k: v for k, v in scored.items() if k != "seconds"}
          == {k: v for k, v in trained.items() if k != "seconds"})
  assert len(result.stderr.strip().splitlines()) == 3  # scoring, FID, where
  assert result.stderr.strip().splitlines()[-1].endswith(
      f"Wrote {trained_path}")
  result = _run("ganjax.evaluate", f"--workdir={workdir}",
                "--num_samples=300")
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout)["num_samples"] == 300
  with open(trained_path, encoding="utf-8") as f:
    assert json.load(f) == scored
  with open(os.path.join(workdir, "eval", "n300_seed0", "step_0000004.json"),
            encoding="utf-8") as f:
    assert json.load(f)["num_samples"] == 300
  result = _run("ganjax.evaluate", f"--samples={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  scored_npz = json.loads(result.stdout)
  assert scored_npz["num_samples"] == 10
  assert "Only 10 images: FID and KID are biased" in result.stderr
  # The same images as .npy; then float images: one line, before set-up.
  np.save(tmp_path / "s.npy", images)
  result = _run("ganjax.evaluate", f"--samples={tmp_path / 's.npy'}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout)["fid"] == scored_npz["fid"]
  np.save(tmp_path / "f.npy", images.astype(np.float32))
  result = _run("ganjax.evaluate", f"--samples={tmp_path / 'f.npy'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"ganjax.evaluate: error: --samples={tmp_path / 'f.npy'}: Samples must "
      "be uint8 in [0, 255]; got float32. Convert from [-1, 1] with "
      "(x + 1) * 127.5, rounded."]

  result = _run("ganjax.report", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == os.path.join(workdir, "report",
                                               "index.html")
  assert "Metrics at step 4" in open(result.stdout.strip(),
                                     encoding="utf-8").read()

  # A damaged checkpoint: one line naming it, no TensorStore spec, no
  # tracebacks of the interrupted background reads after it.
  state_dir = os.path.join(workdir, "checkpoints", "4", "state")
  largest = max((os.path.join(d, f) for d, _, files in os.walk(state_dir)
                 for f in files), key=os.path.getsize)
  with open(largest, "r+b") as f:  # arrays' data, all of it overwritten
    f.write(b"\xa5" * os.path.getsize(largest))
  result = _run("ganjax.sample", f"--workdir={workdir}", f"--out={out}")
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f"ganjax.sample: error: Checkpoint {workdir}/"
                             "checkpoints/4 is corrupt or incomplete")
  assert lines[0].endswith("Move that directory aside to resume from the "
                           "previous checkpoint, or start in a new --workdir.")


def test_evaluate_bad_samples_is_clear(tmp_path):
  bad = str(tmp_path / "bad.npz")
  np.savez(bad, pictures=np.zeros((10, 28, 28), np.uint8))
  result = _run("ganjax.evaluate", f"--samples={bad}")
  assert result.returncode == 1 and result.stdout == ""
  assert f"--samples={bad} has no key 'images'" in result.stderr


def test_bad_override_names_the_field(tmp_path):
  result = _run("ganjax.train", "--config=experiments/fashion.py:smoke",
                f"--workdir={tmp_path}", "--config.batch_size=-4")
  assert result.returncode != 0
  assert "config.batch_size=-4 is invalid" in result.stderr


def test_sample_without_run_is_clear(tmp_path):
  result = _run("ganjax.sample", f"--workdir={tmp_path}", "--out=x.png")
  assert result.returncode != 0
  assert "is not a ganjax run directory" in result.stderr


def test_a_missing_run_names_the_runs_beside_it(tmp_path):
  # `make report` after `make train-short`: WORKDIR defaults to runs/fashion,
  # the run is in runs/fashion_short.
  (tmp_path / "runs" / "fashion_short").mkdir(parents=True)
  (tmp_path / "runs" / "fashion_short" / "config.json").write_text("{}")
  result = _run("ganjax.report", "--workdir=runs/fashion", cwd=tmp_path)
  assert result.returncode == 1 and result.stdout == ""
  assert result.stderr.strip().splitlines() == [
      "ganjax.report: error: runs/fashion/config.json does not exist: "
      "--workdir=runs/fashion is not a ganjax run directory. Run directories "
      "beside it: runs/fashion_short; give one with --workdir= (with make: "
      "WORKDIR=)."]
  assert not (tmp_path / "runs" / "fashion").exists()



def test_sigterm_saves_and_resume_is_bit_identical(tmp_path):
  """SIGTERM mid-run: a checkpoint of the current step, exit status 143; the
  resumed run ends bit-identical to one that never stopped."""
  import signal  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from ganjax import checkpointing, trainer  # pylint: disable=g-import-not-at-top
  from tests.conftest import smoke_config  # pylint: disable=g-import-not-at-top

  workdir = str(tmp_path / "run")
  env = subprocess_env()
  process = subprocess.Popen(
      [sys.executable, "-m", "ganjax.train",
       "--config=experiments/fashion.py:smoke", f"--workdir={workdir}",
       "--config.num_steps=2000", "--config.checkpoint_every=2000",
       "--config.sample_every=2000"],
      cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
  for line in process.stderr:
    if "step 6/2000" in line:
      process.send_signal(signal.SIGTERM)
      break
  _, rest = process.communicate(timeout=300)
  assert process.returncode == 128 + signal.SIGTERM, rest[-3000:]
  assert rest.index("SIGTERM: stopping after the steps already running") < (
      rest.index("Stopped by SIGTERM"))
  steps = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     3).all_steps()
  assert len(steps) == 1 and 6 <= steps[0] < 2000
  stop = steps[0]

  resumed = trainer.train_and_evaluate(smoke_config(num_steps=stop + 4),
                                       workdir)
  straight = trainer.train_and_evaluate(smoke_config(num_steps=stop + 4),
                                        str(tmp_path / "straight"))
  for a, b in zip(jax.tree.leaves(jax.device_get(resumed)),
                  jax.tree.leaves(jax.device_get(straight)), strict=True):
    np.testing.assert_array_equal(a, b)


def test_a_misspelt_config_field_is_one_line_naming_the_field(tmp_path):
  workdir = tmp_path / "run"
  result = _run("ganjax.train", "--config=experiments/fashion.py:smoke",
                f"--workdir={workdir}", "--config.batch_szie=64")
  lines = result.stderr.strip().splitlines()
  assert result.returncode != 0
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("ganjax.train: error: config.batch_szie is not "
                             "a field of experiments/fashion.py:smoke; did "
                             "you mean batch_size?")
  fields = lines[0].split(" fields: ", 1)[1].split(", ")
  assert "batch_size" in fields and fields == sorted(fields)
  assert not workdir.exists()


def test_a_missing_dataset_is_one_line_and_nothing_is_written(tmp_path):
  workdir = tmp_path / "run"
  result = _run("ganjax.train", "--config=experiments/fashion.py:smoke",
                f"--workdir={workdir}", "--config.data_source=idx",
                f"--config.data_dir={tmp_path / 'nothing'}")
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith("ganjax.train: error: fashion_mnist train split "
                             f"not found: missing file {tmp_path}/nothing/")
  assert "apt-get install dataset-fashion-mnist" in lines[0]
  assert not workdir.exists()


def test_a_second_ctrl_c_quits_at_once(tmp_path):
  """The first SIGINT is acknowledged on stderr; a second one kills the
  process by its default action, without waiting for the save."""
  import signal  # pylint: disable=g-import-not-at-top
  process = subprocess.Popen(
      [sys.executable, "-m", "ganjax.train",
       "--config=experiments/fashion.py:smoke",
       f"--workdir={tmp_path / 'run'}", "--config.num_steps=20000",
       "--config.checkpoint_every=20000", "--config.sample_every=20000"],
      cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
  for line in process.stderr:
    if "step 6/20000" in line:
      process.send_signal(signal.SIGINT)
      break
  for line in process.stderr:
    if "SIGINT: stopping after the steps already running" in line:
      process.send_signal(signal.SIGINT)
      break
  _, rest = process.communicate(timeout=300)
  assert process.returncode == -signal.SIGINT, rest[-3000:]
  assert "Stopped by" not in rest


@pytest.mark.parametrize("spec, first", [
    ("experiments/fashion.py:shrot", "Unknown config variant 'shrot'"),
    ("experiments/fashoin.py", "recipe "),
])
def test_a_recipe_that_does_not_load_is_one_line(tmp_path, spec, first):
  workdir = tmp_path / "run"
  result = _run("ganjax.train", f"--config={spec}", f"--workdir={workdir}")
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f"ganjax.train: error: --config={spec}: {first}")
  assert not workdir.exists()
