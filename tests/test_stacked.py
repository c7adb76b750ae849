"""Stacked Fashion-MNIST: the mode count and KL on sets whose answer is
known, the stacking, the evaluator on real stacked data, and training."""

import json
import os
import shutil

import numpy as np
import pytest

from ganjax import input_pipeline
from ganjax import metrics
from ganjax import stacked
from ganjax import trainer
from tests.conftest import REPO
from tests.conftest import smoke_config


def test_mode_count_and_kl_of_constructed_sets():
  # k modes, equally often: k covered, KL = log(1000 / k).
  for k in (1, 10, 250, 1000):
    result = stacked.coverage(np.repeat(np.arange(k) * (1000 // k), 7))
    assert result["modes_covered"] == k
    np.testing.assert_allclose(result["mode_kl"], np.log(1000 / k),
                               atol=1e-12)
  # Two modes at 3:1: KL = 3/4 log(3/4 * 1000) + 1/4 log(1/4 * 1000).
  result = stacked.coverage(np.array([5, 5, 5, 999]))
  assert result["modes_covered"] == 2
  np.testing.assert_allclose(
      result["mode_kl"], 0.75 * np.log(750) + 0.25 * np.log(250), rtol=1e-12)


def test_stacking_puts_three_images_in_the_channels():
  """Base images whose pixels are their class: each channel of a stacked
  image is an image of the class its mode says."""
  labels = np.arange(50) % 10
  images = np.broadcast_to(labels[:, None, None], (50, 4, 4)).astype(np.uint8)
  out, modes = stacked.stack(images, labels, 300, seed=3)
  assert out.shape == (300, 4, 4, 3)
  np.testing.assert_array_equal(
      modes, stacked.modes_of(out[:, 0, 0, :].astype(np.int64)))
  again, _ = stacked.stack(images, labels, 300, seed=3)
  np.testing.assert_array_equal(out, again)  # a seed, not a coin


def test_evaluator_counts_the_modes_of_real_and_collapsed_sets():
  """2,000 real stacked images over 1,000 modes cover about 1000 (1 - e^-2)
  = 865 if the modes were uniform (standard deviation about 10), so at least
  800 even with the classifier's 7% errors per channel; their KL from
  uniform is about 0.28 from the finite sample alone (2,000 Poisson(2)
  counts' sum of q log(1000 q)), so below 1.0 with room for the
  classifier's errors; one image repeated covers 1 mode, at KL log 1000."""
  evaluator = metrics.Evaluator(stacked.NAME)
  images, _, info = input_pipeline.load(stacked.NAME, "train")
  assert images.shape == (60000, 28, 28, 3) and info["dataset"] == stacked.NAME
  real = evaluator.evaluate(images[:2000])
  assert real["modes_covered"] >= 800 and real["mode_kl"] < 1.0
  collapsed = evaluator.evaluate(np.repeat(images[:1], 100, 0))
  assert collapsed["modes_covered"] == 1
  np.testing.assert_allclose(collapsed["mode_kl"], np.log(1000), rtol=1e-12)
  assert real["fid"] < collapsed["fid"]


def test_training_on_stacked_data(tmp_path, monkeypatch):
  """Training writes the mode coverage, and the docs' stacked table
  (benchmarks/results_table.py collect --group=stacked) shows it."""
  config = smoke_config(dataset=stacked.NAME, eval_every=8,
                        eval_num_samples=200)
  workdir = tmp_path / "run"
  state = trainer.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 8
  with open(workdir / "eval" / "step_0000008.json", encoding="utf-8") as f:
    result = json.load(f)
  assert 1 <= result["modes_covered"] <= stacked.NUM_MODES
  assert result["mode_kl"] >= 0

  monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
  import results_table  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(results_table, "RESULTS", str(tmp_path / "results"))
  row = results_table.collect("smoke", str(workdir), group="stacked",
                              note="A note.")
  for key in ("fid", "recall", "modes_covered", "mode_kl"):
    assert row["evaluations"]["8"][key] == result[key]
  text = results_table.stacked_table()
  assert (f"| 8 | {result['fid']:.1f} | {result['recall']:.3f} | "
          f"{result['modes_covered']} | {result['mode_kl']:.3f} |") in text
  assert "A note." in text
  # A run without mode coverage is refused for the stacked table.
  plain = tmp_path / "plain"
  os.makedirs(plain / "eval")
  shutil.copy(workdir / "run.json", plain)
  (plain / "eval" / "step_0000008.json").write_text(json.dumps(
      {k: v for k, v in result.items()
       if k not in results_table.MODE_KEYS}))
  with pytest.raises(SystemExit, match="no mode coverage"):
    results_table.collect("plain", str(plain), group="stacked")
  # ... and a stacked run is refused by the other tables.
  for group in ("", "ablations", "equal_time"):
    with pytest.raises(SystemExit, match="collect it with --group=stacked"):
      results_table.collect("smoke", str(workdir), group=group)


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_splits_are_fixed(split):
  a, la, info = input_pipeline.load(stacked.NAME, split)
  b, lb, _ = input_pipeline.load(stacked.NAME, split)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(la, lb)
  assert len(a) == stacked.SIZES[split] and info["sha256"]
