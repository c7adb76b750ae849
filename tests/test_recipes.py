"""Every recipe in experiments/ trains (its :smoke variant), resumes with its
extra state (EMA, spectral norm) bit for bit, and CIFAR-10 runs on data the
test makes."""

import os

import jax
import numpy as np
import pytest

from ganjax import configs
from ganjax import input_pipeline
from ganjax import recipes
from ganjax import sampling
from ganjax import sweeps
from ganjax import trainer
from tests.conftest import REPO

RECIPES = ("fashion", "fashion_ns_adam", "fashion_hinge_sn", "fashion_wgan_gp",
           "fashion_r1_ema_diffaug", "fashion_conditional",
           "fashion_conditional_ema", "fashion_r3gan", "cifar10_sngan")


def _config(recipe, variant="smoke", **overrides):
  config = recipes.load_module(
      os.path.join(REPO, "experiments", f"{recipe}.py")).get_config(variant)
  config.update({**dict(num_steps=4, checkpoint_every=4, sample_every=4,
                       log_every=2), **overrides})
  return config


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory):
  """Small CIFAR-10-shaped data (train.npz, test.npz), made here."""
  directory = tmp_path_factory.mktemp("cifar")
  rng = np.random.default_rng(0)
  for split, n in (("train", 96), ("test", 32)):
    np.savez(directory / f"{split}.npz",
             images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
             labels=rng.integers(0, 10, n))
  return str(directory)


def test_every_recipe_file_is_tested():
  found = sorted(f[:-3] for f in os.listdir("experiments")
                 if f.endswith(".py"))
  assert found == sorted(RECIPES)


SWEEPS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "experiments",
                                                        "sweeps"))
                if f.endswith(".py"))


@pytest.mark.parametrize("sweep", SWEEPS)
@pytest.mark.parametrize("variant", [None, "smoke"])
def test_every_sweep_config_is_a_valid_sweep(sweep, variant):
  config = recipes.load_module(os.path.join(
      REPO, "experiments", "sweeps", f"{sweep}.py")).get_config(variant)
  configs.validate(config, 1)
  assert len(sweeps.points(config)) > 1


def test_tuning_sweep_trains_its_step_budget_and_keeps_smoke():
  """A sweep with a step budget trains, scores and checkpoints at it on the
  short schedule; without one, 3,000 steps scored at the end; :smoke is
  left as it is."""
  r3gan = recipes.load_module(os.path.join(REPO, "experiments",
                                           "fashion_r3gan.py"))
  default = r3gan.get_config("short")
  config = recipes.tuning_sweep(r3gan, None, "g_learning_rate=1e-3,2e-3",
                                steps=680)
  assert (config.num_steps, config.eval_every, config.checkpoint_every) == (
      680, 680, 680)
  assert config.sweep == "g_learning_rate=1e-3,2e-3"
  config = recipes.tuning_sweep(r3gan, None, "g_learning_rate=1e-3,2e-3")
  assert (config.num_steps, config.eval_every, config.checkpoint_every) == (
      3000, 3000, default.checkpoint_every)
  smoke = r3gan.get_config("smoke")
  config = recipes.tuning_sweep(r3gan, "smoke", "g_learning_rate=1e-3,2e-3",
                                steps=680)
  assert (config.num_steps, config.eval_every, config.checkpoint_every) == (
      smoke.num_steps, smoke.eval_every, smoke.checkpoint_every)


@pytest.mark.parametrize("recipe", RECIPES[1:])
def test_recipe_trains(recipe, tmp_path, cifar_like):
  overrides = {}
  if recipe.startswith("cifar10"):
    overrides = dict(data_source="npz", data_dir=cifar_like)
  config = _config(recipe, **overrides)
  state = trainer.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  for tree in (state.g_params, state.d_params):
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(
        jax.device_get(tree)))
  assert os.path.exists(tmp_path / "samples" / "final.png")
  assert os.path.isdir(tmp_path / "checkpoints" / "4")
  if config.ema_decay:
    assert state.g_ema_params is not None
  if config.spectral_norm:
    assert jax.tree.leaves(state.d_stats)


def test_resume_with_ema_spectral_norm_schedule_and_ada_is_exact(tmp_path):
  """A run stopped at step 2 and resumed equals the straight run, with the
  EMA parameters, the power-iteration vectors, the learning-rate
  schedule's step count and ADA's p in the checkpoint."""
  config = _config("fashion_r1_ema_diffaug", spectral_norm=True,
                   ema_start=0, checkpoint_every=2, r1_every=2,
                   lr_schedule="cosine", lr_warmup_steps=1, lr_decay_steps=4,
                   augment="xflip,translation", ada_target=0.6,
                   ada_kimg=0.05)
  straight = trainer.train_and_evaluate(config, str(tmp_path / "a"))
  assert 0 < float(straight.augment_p) < 1
  config.num_steps = 2
  trainer.train_and_evaluate(config, str(tmp_path / "b"))
  config.num_steps = 4
  resumed = trainer.train_and_evaluate(config, str(tmp_path / "b"))
  for a, b in zip(jax.tree.leaves(jax.device_get(straight)),
                  jax.tree.leaves(jax.device_get(resumed))):
    np.testing.assert_array_equal(a, b)


def test_cifar10_npz_source_and_errors(cifar_like, tmp_path):
  images, labels, info = input_pipeline.load("cifar10", "train",
                                             source="npz",
                                             data_dir=cifar_like)
  assert images.shape == (96, 32, 32, 3) and labels.shape == (96,)
  assert info["origin"].startswith("npz:") and not info["verified"]
  with pytest.raises(input_pipeline.DatasetError, match="train.npz"):
    input_pipeline.load("cifar10", "train", source="npz",
                        data_dir=str(tmp_path))
  np.savez(tmp_path / "train.npz", images=images[:, :28, :28],
           labels=labels)
  with pytest.raises(input_pipeline.DatasetError, match=r"\(96, 32, 32, 3\)"):
    input_pipeline.load("cifar10", "train", source="npz",
                        data_dir=str(tmp_path))


def test_architecture_must_fit_the_dataset():
  config = _config("cifar10_sngan", architecture="dcgan28")
  with pytest.raises(ValueError, match="config.architecture=.*dcgan32"):
    from ganjax import configs  # pylint: disable=g-import-not-at-top
    configs.validate(config, 1)


def test_no_classifier_no_in_training_eval():
  config = _config("cifar10_sngan", eval_every=2)
  with pytest.raises(ValueError, match="config.eval_every=2 .*cifar10"):
    from ganjax import configs  # pylint: disable=g-import-not-at-top
    configs.validate(config, 1)


def test_npz_run_of_any_size_restores_for_sampling(cifar_like, tmp_path):
  """An .npz training set of 96 images (not CIFAR-10's 50,000): the run
  trains and its checkpoint (a 96-long data order) restores for sampling
  and evaluation."""
  config = _config("cifar10_sngan", data_source="npz", data_dir=cifar_like)
  trainer.train_and_evaluate(config, str(tmp_path))
  sampler, g_vars, step, _ = trainer.restore_generator(str(tmp_path))
  assert step == 4
  samples = sampling.generate(sampler, g_vars, 4, seed=0,
                              latent_dim=config.latent_dim)
  assert samples.shape == (4, 32, 32, 3)


def test_batch_larger_than_the_training_set_is_refused(cifar_like, tmp_path):
  config = _config("cifar10_sngan", data_source="npz", data_dir=cifar_like,
                   batch_size=128)
  with pytest.raises(ValueError,
                     match=r"config.batch_size=128 .*\(96 examples in npz:"):
    trainer.train_and_evaluate(config, str(tmp_path))
