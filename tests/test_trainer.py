"""End-to-end runs of `train_and_evaluate` on real Fashion-MNIST, 4 devices."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from ganjax import checkpointing
from ganjax import input_pipeline
from ganjax import metric_writers
from ganjax import rundir
from ganjax import trainer
from tests.conftest import assert_identical, leaves, smoke_config


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  """One 8-step run (batch 16 on 4 devices, 2 steps per call)."""
  workdir = str(tmp_path_factory.mktemp("smoke"))
  state = trainer.train_and_evaluate(smoke_config(), workdir)
  return workdir, jax.device_get(state)


def test_writes_outputs(smoke_run):
  workdir, state = smoke_run
  assert int(state.step) == 8
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records] == [2, 4, 6, 8]
  for r in records:
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(r)
    assert all(np.isfinite(v) for v in r.values())
  # The rate is measured from the end of the first (compiling) call: the
  # record of that call has none, every later one has it.
  assert "steps_per_s" not in records[0]
  assert all(r["steps_per_s"] > 0 for r in records[1:])
  events = os.listdir(os.path.join(workdir, "tensorboard"))
  assert any(name.startswith("events.out.tfevents") for name in events)
  samples = sorted(os.listdir(os.path.join(workdir, "samples")))
  assert samples == ["final.png", "step_0000004.png", "step_0000008.png"]
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    assert json.load(f)["phase1_bn"] == "batch"
  with open(os.path.join(workdir, "run.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  assert manifest["seed"] == 0 and len(manifest["devices"]) == 4
  assert manifest["data"]["sha256"] == (
      input_pipeline.SPECS["fashion_mnist"].sha256["train"])
  steps = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                     3).all_steps()
  assert sorted(steps) == [4, 8]


def test_same_seed_is_bit_identical(smoke_run, tmp_path):
  _, state = smoke_run
  again = trainer.train_and_evaluate(smoke_config(), str(tmp_path))
  assert_identical(state, again)


def test_other_seed_differs(smoke_run, tmp_path):
  _, state = smoke_run
  other = trainer.train_and_evaluate(smoke_config(seed=1), str(tmp_path))
  assert not np.array_equal(leaves(state)[3], leaves(other)[3])


def test_resume_is_bit_identical(smoke_run, tmp_path):
  _, state = smoke_run
  workdir = str(tmp_path)
  half = trainer.train_and_evaluate(smoke_config(num_steps=4), workdir)
  assert int(half.step) == 4
  resumed = trainer.train_and_evaluate(smoke_config(), workdir)
  assert_identical(state, resumed)
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records] == [2, 4, 6, 8]


def test_workdir_of_another_config_is_refused(smoke_run, tmp_path):
  workdir = str(tmp_path / "copy")
  shutil.copytree(smoke_run[0], workdir)
  with pytest.raises(ValueError, match=r"batch_size: 16 -> 8"):
    trainer.train_and_evaluate(smoke_config(batch_size=8), workdir)


def test_checkpoint_of_another_config_is_refused(smoke_run, tmp_path):
  workdir = str(tmp_path / "copy")
  shutil.copytree(smoke_run[0], workdir)
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(checkpointing.CheckpointError, match=r"seed: 0 -> 5"):
    trainer.train_and_evaluate(smoke_config(seed=5), workdir)


def test_corrupt_checkpoint_is_named(smoke_run, tmp_path):
  workdir = str(tmp_path / "copy")
  shutil.copytree(smoke_run[0], workdir)
  state_dir = os.path.join(workdir, "checkpoints", "8", "state")
  for root, _, files in os.walk(state_dir):
    for name in files:
      if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(max(os.path.getsize(f.name) // 3, 1))
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"checkpoints/8 is corrupt.*Move that directory"):
    trainer.train_and_evaluate(smoke_config(num_steps=12), workdir)


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ValueError, match=r"--workdir=.*a_file/run is not "
                     "writable"):
    trainer.train_and_evaluate(smoke_config(), str(blocker / "run"))


def test_divergence_stops_with_the_step_and_keeps_checkpoints(tmp_path):
  config = smoke_config(g_learning_rate=1e30, d_learning_rate=1e30)
  with pytest.raises(trainer.TrainingDivergedError,
                     match=r"diverged at step \d+: \w+ = nan"):
    trainer.train_and_evaluate(config, str(tmp_path))
  # Nothing non-finite was checkpointed.
  assert not os.listdir(tmp_path / "checkpoints")


@pytest.mark.parametrize("overrides,field", [
    ({"batch_size": 18}, "batch_size"),  # not divisible by 4 devices
    ({"batch_size": 0}, "batch_size"),
    ({"g_learning_rate": -1.0}, "g_learning_rate"),
    ({"d_learning_rate": float("nan")}, "d_learning_rate"),
    ({"num_steps": 7}, "num_steps"),  # not a multiple of steps_per_call
    ({"dataset": "imagenet"}, "dataset"),
    ({"dataset": "cifar10"}, "architecture"),  # dcgan28 makes 28x28 images
    ({"loss": "wgan"}, "loss"),
    ({"augment": "flip"}, "augment"),
    ({"bce": "hinge"}, "bce"),
    ({"phase1_bn": "train"}, "phase1_bn"),
    ({"d_dropout": 1.0}, "d_dropout"),
    ({"conv_impl": "fft"}, "conv_impl"),
    ({"seed": -1}, "seed"),
])
def test_bad_config_value_names_the_field(overrides, field, tmp_path):
  with pytest.raises(ValueError, match=rf"config\.{field}="):
    trainer.train_and_evaluate(smoke_config(**overrides), str(tmp_path))
  assert not os.listdir(tmp_path)  # rejected before anything was written


def test_missing_dataset_says_how_to_get_it(tmp_path):
  config = smoke_config(data_source="idx", data_dir=str(tmp_path / "nothing"))
  with pytest.raises(input_pipeline.DatasetError,
                     match=r"missing file .*train-images-idx3-ubyte.*"
                     r"apt-get install dataset-fashion-mnist"):
    trainer.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # nothing written, not even config


def test_checkpoint_of_another_state_layout_is_named(smoke_run, tmp_path):
  workdir = str(tmp_path / "copy")
  shutil.copytree(smoke_run[0], workdir)
  meta_path = os.path.join(workdir, "checkpoints", "8", "meta", "metadata")
  with open(meta_path, encoding="utf-8") as f:
    meta = json.load(f)
  meta["state_layout"] = [x for x in meta["state_layout"]
                          if not x.startswith("['perm']")]
  with open(meta_path, "w", encoding="utf-8") as f:
    json.dump(meta, f)
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"another layout.*missing: \[\"\['perm'\]"):
    trainer.train_and_evaluate(smoke_config(num_steps=12), workdir)


def test_reproduce_report_names_what_differs(smoke_run, tmp_path):
  from ganjax import reproduce  # pylint: disable=g-import-not-at-top
  workdir, _ = smoke_run
  with open(os.path.join(workdir, "run.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  assert manifest["config_sha256"] == rundir.config_sha256(smoke_config())
  assert "--xla_force_host_platform_device_count=4" in manifest["xla_flags"]
  assert manifest["jax_config"]["jax_numpy_rank_promotion"] == "raise"
  # The cores XLA:CPU may use change a step's float results.
  assert manifest["cpus_usable"] == len(os.sched_getaffinity(0))
  assert reproduce.differences(workdir, workdir) == []
  other = str(tmp_path / "other")
  trainer.train_and_evaluate(smoke_config(seed=3, num_steps=2), other)
  lines = reproduce.differences(workdir, other)
  assert "seed: 0 -> 3" in lines
  assert any(line.startswith("config_sha256: ") for line in lines)
  assert "  config seed: 0 -> 3" in lines
  # num_steps is not a trajectory field: it does not change the hash.
  assert not any("num_steps" in line for line in lines)


def _npz_dir(path, images, labels):
  os.makedirs(path, exist_ok=True)
  np.savez(os.path.join(path, "train.npz"), images=images, labels=labels)
  return str(path)


def test_resume_on_other_data_is_refused(tmp_path, fashion_train):
  """The checkpoint records its training data's hash: a resume on other
  data stops, naming both hashes; the same data from another directory
  resumes (data_dir may change, the contents may not)."""
  images, labels = fashion_train[0][:64], fashion_train[1][:64]
  first = _npz_dir(tmp_path / "a", images, labels)
  other = _npz_dir(tmp_path / "b", 255 - images, labels)
  moved = _npz_dir(tmp_path / "c", images, labels)
  workdir = str(tmp_path / "run")
  config = smoke_config(data_source="npz", data_dir=first, num_steps=4)
  trainer.train_and_evaluate(config, workdir)
  hashes = [input_pipeline.load("fashion_mnist", "train", source="npz",
                                data_dir=d)[2]["sha256"]
            for d in (first, other)]
  config.num_steps, config.data_dir = 8, other
  with pytest.raises(checkpointing.CheckpointError,
                     match=f"{hashes[0]}.*{hashes[1]}"):
    trainer.train_and_evaluate(config, workdir)
  config.data_dir = moved
  assert int(trainer.train_and_evaluate(config, workdir).step) == 8
