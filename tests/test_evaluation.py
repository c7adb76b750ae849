"""The shipped classifier, the metrics on real data, evaluation in training
and the run report."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from ganjax import classifier as classifier_lib
from ganjax import input_pipeline
from ganjax import layers
from ganjax import metric_writers
from ganjax import metrics
from ganjax import report
from ganjax import trainer
from tests.conftest import smoke_config


@pytest.fixture(scope="module")
def fashion_test():
  images, labels, _ = input_pipeline.load("fashion_mnist", "test",
                                          source="idx")
  return images, labels


@pytest.fixture(scope="module")
def evaluator():
  return metrics.Evaluator("fashion_mnist", source="idx")


def test_shipped_classifier_checksum_and_accuracy(fashion_test):
  name, pinned = classifier_lib.WEIGHTS["fashion_mnist"]
  path = os.path.join(classifier_lib.ASSETS, name)
  with open(path, "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == pinned
  accuracy = classifier_lib.accuracy(classifier_lib.load("fashion_mnist"),
                                     *fashion_test)
  assert accuracy >= 0.92


def test_classifier_features_do_not_depend_on_the_chunks_of_the_batch(
    fashion_test):
  """The CPU convolutions run over chunks of the batch (layers.PASS_CHUNK);
  a forward pass computes each image alone, so evaluation scores do not move
  when the chunk sizes do: features bit-identical to whole batches."""
  images = fashion_test[0][:1000]

  def features(chunks):
    with layers.batch_chunks(*chunks):  # read when the extractor traces
      extractor = classifier_lib.load.__wrapped__("fashion_mnist")
      assert extractor.batch_size > layers.PASS_CHUNK  # several chunks
      return np.asarray(extractor(images)[0])

  np.testing.assert_array_equal(
      features((layers.WEIGHT_GRAD_CHUNK, layers.PASS_CHUNK)),
      features((None, None)))


def test_damaged_classifier_is_refused(tmp_path, monkeypatch):
  name, _ = classifier_lib.WEIGHTS["fashion_mnist"]
  with open(os.path.join(classifier_lib.ASSETS, name), "rb") as f:
    blob = bytearray(f.read())
  blob[len(blob) // 2] ^= 1
  (tmp_path / name).write_bytes(bytes(blob))
  monkeypatch.setattr(classifier_lib, "ASSETS", str(tmp_path))
  load = classifier_lib.load.__wrapped__  # past the cache of good loads
  with pytest.raises(classifier_lib.ClassifierError,
                     match=f"{name} fails its checksum"):
    load("fashion_mnist")
  os.remove(tmp_path / name)
  with pytest.raises(classifier_lib.ClassifierError,
                     match="python -m ganjax.train_classifier"):
    load("fashion_mnist")


def test_real_statistics_are_computed_once_per_set_of_images(evaluator,
                                                            fashion_test):
  """An Evaluator built again in one process reuses the real images'
  statistics; other images (one of them inverted) get their own."""
  again = metrics.Evaluator("fashion_mnist", source="idx")
  assert again.real["radii"] is evaluator.real["radii"]
  images = fashion_test[0][:500].copy()
  first = evaluator._real_statistics(images)  # pylint: disable=protected-access
  assert evaluator._real_statistics(images)["radii"] is first["radii"]  # pylint: disable=protected-access
  images = images.copy()  # (not in place: the first may still be reading)
  images[0] = 255 - images[0]
  other = evaluator._real_statistics(images)  # pylint: disable=protected-access
  assert other["radii"] is not first["radii"]
  assert not np.array_equal(other["features"], first["features"])
  other["mine"] = 1  # a caller's change stays its own
  assert "mine" not in evaluator._real_statistics(images)  # pylint: disable=protected-access
  # Another classifier (the same file, loaded again) scores them afresh.
  again.extractor = classifier_lib.load.__wrapped__("fashion_mnist")
  assert again._real_statistics(images)["radii"] is not other["radii"]  # pylint: disable=protected-access


def test_classifier_training_is_deterministic(fashion_train):
  images, labels = fashion_train[0][::60], fashion_train[1][::60]  # 1,000
  recipe = classifier_lib.Recipe(epochs=1, batch_size=100)
  quiet = lambda message: None
  a = classifier_lib.serialize(classifier_lib.train(images, labels, 10,
                                                    recipe, quiet))
  b = classifier_lib.serialize(classifier_lib.train(images, labels, 10,
                                                    recipe, quiet))
  c = classifier_lib.serialize(classifier_lib.train(
      images, labels, 10, classifier_lib.Recipe(seed=1, epochs=1,
                                                batch_size=100), quiet))
  assert a == b != c


@pytest.fixture(scope="module")
def calibration(evaluator, fashion_train):
  """The metrics of `metrics.calibration_sets`, 5,000 images each (the
  table in docs/evaluation.md uses 10,000)."""
  sets = metrics.calibration_sets(fashion_train[0], 5000)
  return {name: evaluator.evaluate(x) for name, x in sets.items()}


def test_calibration_orders_known_cases(calibration):
  c = calibration
  worse = ["train split", "blurred train, sigma 1",
           "blurred train, sigma 2", "uniform noise"]
  for metric, sign in (("fid", 1), ("fid_logits", 1), ("kid", 1),
                       ("recall", -1), ("coverage", -1)):
    values = [sign * c[name][metric] for name in worse]
    assert values == sorted(values), (metric, values)
  real = c["train split"]
  assert real["fid"] < 0.01 * c["uniform noise"]["fid"]
  assert real["precision"] > 0.7 and real["recall"] > 0.7
  assert 0.8 < real["density"] < 1.2 and real["classes_covered"] == 10
  collapsed = c["one image repeated"]
  assert collapsed["recall"] < 0.01 and collapsed["coverage"] < 0.01
  assert collapsed["classes_covered"] == 1 and collapsed["class_entropy"] == 0
  assert abs(collapsed["classifier_score"] - 1) < 1e-6
  assert collapsed["fid"] > 100 * real["fid"]
  noise = c["uniform noise"]
  assert noise["precision"] < real["precision"]
  assert noise["density"] < 0.5 * real["density"]
  for result in c.values():
    assert result["protocol"].startswith("fashion_mnist-cls128-v1/")


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
  """An 8-step run that evaluates 200 samples every 2 steps."""
  workdir = str(tmp_path_factory.mktemp("evaluated"))
  trainer.train_and_evaluate(
      smoke_config(eval_every=2, eval_num_samples=200, data_source="idx"),
      workdir)
  return workdir


def test_training_evaluates_and_keeps_the_best_checkpoint(evaluated_run):
  workdir = evaluated_run
  evals = {}
  for step in (2, 4, 6, 8):
    with open(metric_writers.eval_path(workdir, step), encoding="utf-8") as f:
      evals[step] = json.load(f)
    assert evals[step]["num_samples"] == 200
  records = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  logged = {r["step"]: r["eval/fid"] for r in records if "eval/fid" in r}
  assert logged == {s: e["fid"] for s, e in evals.items()}
  best = trainer.checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints_best"), 1)
  best_step = min(evals, key=lambda s: evals[s]["fid"])
  assert best.all_steps() == [best_step]
  assert best.read_meta(best_step)["fid"] == evals[best_step]["fid"]
  best.close()


def test_report_renders_the_run(evaluated_run, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(evaluated_run, workdir)
  path = report.write_report(workdir)
  page = open(path, encoding="utf-8").read()
  out = os.path.dirname(path)
  for png in ("losses.png", "d_outputs.png", "fid.png", "kid.png",
              "precision_recall.png", "samples/final.png",
              "samples/step_0000008.png"):
    assert f'src="{png}"' in page
    assert os.path.getsize(os.path.join(out, png)) > 1000
  with open(metric_writers.eval_path(workdir, 8), encoding="utf-8") as f:
    final = json.load(f)
  assert "Metrics at step 8" in page
  assert f"{final['fid']:.5g}" in page and final["protocol"] in page
  assert "<th>phase1_bn</th><td>batch</td>" in page
