"""ganjax as a library: a GAN of modules defined here, trained through the
public API, on one device and data-parallel on 4 (conftest's fake CPU
devices), with the same result."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganjax
from ganjax import metric_writers
from ganjax import regularizers
from ganjax import trainer
from tests.conftest import assert_identical
from tests.conftest import smoke_config

LATENT, BATCH, SHAPE = 8, 16, (8, 8, 1)


class TinyG(nn.Module):
  """A generator without BatchNorm: z -> 8x8x1 in [-1, 1]."""

  @nn.compact
  def __call__(self, z, *, train):
    del train
    x = nn.relu(nn.Dense(32)(z))
    return jnp.tanh(nn.Dense(64)(x)).reshape(-1, *SHAPE)


class TinyD(nn.Module):
  """A discriminator with flax's own dropout, which knows nothing of
  devices."""
  dropout: float = 0.0

  @nn.compact
  def __call__(self, images, *, train):
    x = nn.leaky_relu(nn.Dense(32)(images.reshape(images.shape[0], -1)), 0.2)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(1)(x)[:, 0]


def _gan(dropout):
  return ganjax.GAN(
      generator=TinyG(), discriminator=TinyD(dropout), latent_dim=LATENT,
      g_optimizer=optax.sgd(0.05), d_optimizer=optax.sgd(0.05),
      loss="non_saturating", penalties=(ganjax.Penalty("r1", 0.5),))


def _batches(steps):
  images = jax.random.uniform(jax.random.key(42), (steps, BATCH, *SHAPE))
  return [{"images": x * 2 - 1} for x in images]


def _train(gan, step, steps=4):
  state = gan.init(jax.random.key(0), SHAPE)
  for i, batch in enumerate(_batches(steps)):
    state, metrics = step(state, batch, jax.random.key(i))
  return jax.device_get(state), jax.device_get(metrics)


def _assert_close(a, b):
  """Several devices sum the batch's gradients in parts: float32 rounding,
  ~1e-7 relative per sum, kept small over 4 SGD steps (no adaptive
  optimizer to amplify it); 1e-5 leaves two orders of magnitude."""
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_trains_under_plain_jit():
  """The step is a pure function of (state, batch, key): no named axis, no
  device-resident dataset. Same inputs, same bits; the networks learn."""
  gan = _gan(dropout=0.3)
  first, metrics = _train(gan, jax.jit(gan.step))
  again, _ = _train(gan, jax.jit(gan.step))
  assert_identical(first, again)
  assert int(first.step) == 4
  assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "r1"}
  initial = gan.init(jax.random.key(0), SHAPE)
  for name in ("g_params", "d_params"):
    assert not np.array_equal(
        jax.tree.leaves(getattr(initial, name))[0],
        jax.tree.leaves(getattr(first, name))[0]), name


def test_sharded_over_four_devices_equals_one_device():
  """jit + NamedSharding over 4 devices: the same run as one device,
  dropout included, though D uses flax's plain Dropout (JAX draws the same
  numbers under any sharding)."""
  gan = _gan(dropout=0.3)
  one = _train(gan, ganjax.parallel.jit_step(gan))
  four = _train(gan, ganjax.parallel.jit_step(gan, jax.devices()[:4]))
  _assert_close(one, four)


def test_pmapped_over_four_devices_equals_one_device():
  """pmap over 4 devices, each stepping on its quarter of the batch: noise
  and penalties' randomness drawn for the global batch, gradients averaged
  over the axis, so the run is one device's (modules without dropout or
  BatchNorm, which would need the axis)."""
  gan = _gan(dropout=0.0)
  one = _train(gan, ganjax.parallel.jit_step(gan))
  four = _train(gan, ganjax.parallel.pmap_step(gan, jax.devices()[:4]))
  _assert_close(one, four)


def test_a_custom_loss_and_penalty_need_no_registration():
  """Any loss (a GANLoss of two functions) and any penalty function go in as
  they are; the penalty's value is logged under its name."""
  hinge = ganjax.losses.GANLoss(
      d=lambda fake, real: (jax.nn.relu(1 - real).mean()
                            + jax.nn.relu(1 + fake).mean()),
      g=lambda fake, real: -fake.mean())
  drift = ganjax.Penalty(
      "drift", 1e-3, fn=lambda d_fn, reals, fakes, **_: jnp.square(
          d_fn(reals)).mean())
  gan = ganjax.GAN(generator=TinyG(), discriminator=TinyD(),
                   g_optimizer=optax.adam(1e-3), d_optimizer=optax.adam(1e-3),
                   latent_dim=LATENT, loss=hinge, penalties=(drift,))
  state = gan.init(jax.random.key(0), SHAPE)
  batch = _batches(1)[0]
  _, metrics = jax.jit(gan.step)(state, batch, jax.random.key(1))
  logits = TinyD().apply({"params": state.d_params}, batch["images"],
                         train=False)
  np.testing.assert_allclose(metrics["drift"], np.mean(np.square(logits)),
                             rtol=1e-5)


def test_lazy_penalty_applies_every_kth_step():
  """Penalty(every=2) under plain jit: applied (and logged non-zero) at even
  steps only, decided from the state's step."""
  gan = ganjax.GAN(generator=TinyG(), discriminator=TinyD(),
                   g_optimizer=optax.sgd(0.05), d_optimizer=optax.sgd(0.05),
                   latent_dim=LATENT,
                   penalties=(ganjax.Penalty("r1", 1.0, every=2),))
  assert gan.lazy_period == 2
  state, step = gan.init(jax.random.key(0), SHAPE), jax.jit(gan.step)
  values = []
  for i, batch in enumerate(_batches(4)):
    state, metrics = step(state, batch, jax.random.key(i))
    values.append(float(metrics["r1"]))
  assert values[0] > 0 and values[2] > 0
  assert values[1] == values[3] == 0.0


def test_unknown_penalty_is_named():
  with pytest.raises(ValueError, match="'nope' is not one of"):
    ganjax.Penalty("nope", 1.0)


def _drift(d_fn, reals, fakes, *, key, rows):
  del fakes, key, rows
  return jnp.square(d_fn(reals)).mean()


def _make_drift():
  """A new function object from the same code each call, as a recipe file
  run twice makes."""
  def drift(d_fn, reals, fakes, *, key, rows):
    return _drift(d_fn, reals, fakes, key=key, rows=rows)
  return drift


def test_registering_again_from_the_same_code_is_allowed(monkeypatch):
  """A recipe file that registers a penalty may run twice in a program (its
  copy of the function is new each time); another function under a taken
  name is refused."""
  monkeypatch.setattr(regularizers, "PENALTIES", dict(regularizers.PENALTIES))
  first, again = _make_drift(), _make_drift()
  assert first is not again
  regularizers.register("test_drift")(first)
  regularizers.register("test_drift")(again)
  assert regularizers.PENALTIES["test_drift"] is again
  with pytest.raises(ValueError, match="'test_drift' is already registered"):
    regularizers.register("test_drift")(lambda *a, **k: 0.0)


def test_a_run_with_a_registered_penalty_restores_without_it(
    tmp_path, monkeypatch):
  """config.penalties names a registered penalty; it is trained and logged.
  A program that does not register it (ganjax.sample, ganjax.evaluate)
  still restores the run's generator: the state does not depend on it."""
  monkeypatch.setattr(regularizers, "PENALTIES", dict(regularizers.PENALTIES))
  regularizers.register("test_drift")(_drift)
  config = smoke_config(penalties="test_drift:0.01", num_steps=2,
                        log_every=2, checkpoint_every=2, sample_every=2)
  trainer.train_and_evaluate(config, str(tmp_path))
  records = metric_writers.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert records[-1]["test_drift"] > 0
  del regularizers.PENALTIES["test_drift"]
  _, _, step, _ = trainer.restore_generator(str(tmp_path))
  assert step == 2


def test_a_registered_architecture_and_dataset_pass_the_config_checks(
    monkeypatch):
  """register_architecture and register_dataset make the names valid config
  values (the checks read the registries as they are); a different entry
  under a taken name is refused."""
  from ganjax import configs, input_pipeline, models  # pylint: disable=g-import-not-at-top,multiple-imports
  monkeypatch.setattr(models, "ARCHITECTURES", dict(models.ARCHITECTURES))
  monkeypatch.setattr(input_pipeline, "SPECS", dict(input_pipeline.SPECS))
  models.register_architecture("my_dcgan", models.Generator,
                               models.Discriminator, (28, 28))
  spec = input_pipeline.DatasetSpec(
      name="my_data", image_shape=(28, 28, 1), num_classes=10,
      sizes={"train": 64, "test": 64}, sha256={"train": None, "test": None},
      how_to_get="make it")
  input_pipeline.register_dataset(spec)
  input_pipeline.register_dataset(spec)  # the same again: allowed
  config = smoke_config(architecture="my_dcgan", dataset="my_data",
                        eval_every=0)
  configs.validate(config, 1)
  generator, _ = models.make_models(config)
  assert isinstance(generator, models.Generator)
  with pytest.raises(ValueError, match="'my_dcgan' is already registered"):
    models.register_architecture("my_dcgan", models.Generator32,
                                 models.Discriminator32, (32, 32))
  with pytest.raises(ValueError, match="'my_data' is already registered"):
    input_pipeline.register_dataset(dataclasses.replace(spec, num_classes=3))
