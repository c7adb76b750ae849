"""What the compiled step computes, checked against computations made here:
which network each phase updates, the penalties' values and gradients,
where DiffAugment and the labels go, phase 1's BatchNorm mode, and
generators without BatchNorm.

Small modules written for these tests make each property exact (a linear D
has the same input gradient everywhere; a G that paints its label makes
label alignment visible), so the expected values need no tolerance fitted
to a measurement.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganjax

from ganjax import build
from ganjax import augment as augment_lib
from ganjax import losses
from ganjax import models
from ganjax import sampling
from ganjax import parallel
from ganjax import regularizers
from ganjax import trainer
from tests.conftest import assert_identical, leaves, smoke_config

LATENT = 8


def _step(generator, discriminator, images, labels=None, *, batch_size=8,
          calls=1, **gan_fields):
  """(state before, state after `calls` steps, last metrics) on one device,
  through the same `make_train_fn` the trainer uses. `gan_fields` are
  `GAN`'s (SGD at 1e-2 for both networks unless given)."""
  gan_fields = {"g_optimizer": optax.sgd(1e-2), "d_optimizer": optax.sgd(1e-2),
                **gan_fields}
  gan = ganjax.GAN(generator=generator, discriminator=discriminator,
                   latent_dim=LATENT, **gan_fields)
  devices = jax.local_devices()[:1]
  keys = build.make_keys(0)
  state = gan.init(keys["init"], images.shape[1:3] + (1,),
                   noise_key=keys["noise"], data_key=keys["data"],
                   num_examples=len(images))
  before = jax.device_get(state)
  train_fn = parallel.make_train_fn(gan, batch_size=batch_size,
                                    steps_per_call=1, devices=devices)
  state = parallel.replicate_state(state, devices)
  data = parallel.replicate_data(images, devices, labels)
  for _ in range(calls):
    state, metrics = train_fn(state, data)
  return before, jax.device_get(state), jax.device_get(metrics)


def _reference_models():
  config = smoke_config(d_dropout=0.0, latent_dim=LATENT, conv_impl="xla")
  return models.make_models(config, parallel.AXIS)


def _scaled(loss, d=1.0, g=1.0):
  return losses.GANLoss(d=lambda f, r: d * loss.d(f, r),
                        g=lambda f, r: g * loss.g(f, r),
                        g_needs_reals=loss.g_needs_reals)


def _differs(a, b):
  return any(not np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))


@pytest.fixture(scope="module")
def images(fashion_train):
  return fashion_train[0][::1000]  # 60 images, every class


def test_each_phase_updates_only_its_network(images):
  """Phase 1 changes D alone and phase 2 G alone, whatever the other phase's
  loss: D's update is the same when G's loss is scaled by 1000, and G's
  update is the same when D's loss is (D held still by a zero learning rate,
  so that phase 2 sees the same D). Would fail if either phase's gradient
  reached the other network, through its own optimizer or the other's."""
  g, d = _reference_models()
  loss = losses.get_loss("reference")
  _, base, _ = _step(g, d, images, loss=loss)
  _, g_scaled, _ = _step(g, d, images, loss=_scaled(loss, g=1000.0))
  assert_identical(base.d_params, g_scaled.d_params)
  assert _differs(base.g_params, g_scaled.g_params)

  frozen_d = dict(d_optimizer=optax.sgd(0.0))
  before, still, _ = _step(g, d, images, loss=loss, **frozen_d)
  _, d_scaled, _ = _step(g, d, images, loss=_scaled(loss, d=1000.0),
                         **frozen_d)
  assert_identical(before.d_params, still.d_params)
  assert_identical(still.g_params, d_scaled.g_params)
  assert _differs(before.g_params, still.g_params)
  before, still, _ = _step(g, d, images, loss=loss,
                           g_optimizer=optax.sgd(0.0))
  assert_identical(before.g_params, still.g_params)
  assert _differs(before.d_params, still.d_params)


class _LinearD(nn.Module):
  """logit = <a, x> + b: its input gradient is `a` for every image (drawn
  with ||a|| near 2.8, away from GP's 1, where (||a|| - 1)^2 would be
  float32 rounding)."""

  @nn.compact
  def __call__(self, images, labels=None, *, train):
    del labels, train
    dense = nn.Dense(1, kernel_init=nn.initializers.normal(0.1))
    return dense(images.reshape(images.shape[0], -1))[:, 0]


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalty_value_and_gradient_reach_d(images, penalty):
  """With a linear D the penalties are known in closed form: WGAN-GP
  (||a|| - 1)^2 and R1 ||a||^2 / 2, whatever the images. The logged value is
  that, and adding the penalty at weight w changes D's SGD update by exactly
  -lr * w * (its gradient in a)."""
  g, _ = _reference_models()
  d = _LinearD()
  lr, weight = 1e-2, 3.0
  common = dict(loss="non_saturating", d_optimizer=optax.sgd(lr))
  before, plain, _ = _step(g, d, images, **common)
  _, with_penalty, metrics = _step(
      g, d, images, penalties=(regularizers.Penalty(penalty, weight),),
      **common)
  a = np.asarray(before.d_params["Dense_0"]["kernel"], np.float64)[:, 0]
  norm = np.linalg.norm(a)
  value, grad = {"gp": ((norm - 1) ** 2, 2 * (norm - 1) * a / norm),
                 "r1": (0.5 * norm ** 2, a)}[penalty]
  np.testing.assert_allclose(metrics[penalty], value, rtol=1e-5)
  change = (np.asarray(with_penalty.d_params["Dense_0"]["kernel"])[:, 0]
            - np.asarray(plain.d_params["Dense_0"]["kernel"])[:, 0])
  np.testing.assert_allclose(change, -lr * weight * grad, rtol=1e-3,
                             atol=1e-7)


def _zeros_augment(calls):
  def augment(images, key, policy, *, rows=None, p=None):
    del key, policy, rows, p
    calls.append(images.shape)
    return jnp.zeros_like(images)  # depends on nothing: no gradient to G
  return augment


def test_diffaugment_reaches_every_input_of_d(images, monkeypatch):
  """With DiffAugment replaced by a map to blank images, D's reals and fakes
  (phase 1) and G's fakes and reals (phase 2, relativistic loss) are all
  blank: D scores reals and fakes alike, G gets no gradient, and G's loss is
  the relativistic loss of D's logit on a blank image against itself."""
  calls = []
  monkeypatch.setattr(augment_lib, "augment", _zeros_augment(calls))
  g, d = _reference_models()
  loss = losses.get_loss("relativistic")
  before, after, metrics = _step(
      g, d, images, loss=loss, augment=augment_lib.parse_policy("translation"),
      g_optimizer=optax.rmsprop(1e-3))
  assert len(calls) == 4  # D: fakes, reals; G: reals, fakes
  assert metrics["d_real"] == metrics["d_fake"]
  assert_identical(before.g_params, after.g_params)
  blank = jnp.zeros((8, 28, 28, 1))
  logits = d.apply({"params": after.d_params}, blank, train=True,
                   rngs={"dropout": jax.random.key(0)})
  np.testing.assert_allclose(metrics["g_loss"], loss.g(logits, logits),
                             rtol=1e-6)


def test_relativistic_generator_loss_reads_the_reals(images):
  """D held still: G's loss does not depend on the real batch for the
  non-saturating loss, and does for the relativistic one (which compares
  fakes with reals)."""
  g, d = _reference_models()
  other = 255 - images  # another real set, same everything else
  g_losses = {}
  for name in ("non_saturating", "relativistic"):
    g_losses[name] = [float(_step(g, d, x, loss=name,
                                  d_optimizer=optax.sgd(0.0))[2]["g_loss"])
                      for x in (images, other)]
  assert g_losses["non_saturating"][0] == g_losses["non_saturating"][1]
  assert g_losses["relativistic"][0] != g_losses["relativistic"][1]


def _grey(labels):
  """The grey level (model range) that stands for each label."""
  return labels * 28 / 127.5 - 1.0


class _LabelPainter(nn.Module):
  """A conditional G without BatchNorm: every pixel is its label's grey."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, z, labels=None, *, train):
    del train
    shift = nn.Dense(1)(z)[:, :, None, None] * 0.0  # G has parameters
    return jnp.broadcast_to(_grey(labels)[:, None, None, None] + shift,
                            (z.shape[0], 28, 28, 1))


class _LabelChecker(nn.Module):
  """logit 3 where the image's grey is its label's, else -3."""

  @nn.compact
  def __call__(self, images, labels=None, *, train):
    del train
    bias = nn.Dense(1)(images.reshape(images.shape[0], -1))[:, 0] * 0.0
    match = jnp.abs(images.mean((1, 2, 3)) - _grey(labels)) < 0.05
    return jnp.where(match, 3.0, -3.0) + bias


def test_labels_stay_with_their_images():
  """Conditional step: D gets each real image with its own label and each
  fake with the label G drew it for, in both phases; so every logit is the
  'match' one. (G without BatchNorm, with EMA, trains and samples.)"""
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 80).astype(np.uint8)
  images = np.broadcast_to((labels * 28).astype(np.uint8)[:, None, None],
                           (80, 28, 28)).copy()
  g = _LabelPainter()
  _, state, metrics = _step(g, _LabelChecker(), images, labels,
                            loss=losses.get_loss("reference"), num_classes=10,
                            ema_decay=0.5, calls=3)
  match = float(jax.nn.sigmoid(3.0))
  np.testing.assert_allclose([metrics["d_real"], metrics["d_fake"]],
                             [match, match], rtol=1e-6)
  np.testing.assert_allclose(metrics["g_loss"], jax.nn.softplus(-3.0),
                             rtol=1e-6)
  assert state.g_batch_stats == {}
  g_vars = sampling.sampling_variables(g, state, LATENT)
  assert set(g_vars) == {"params"}
  samples = sampling.generate(g, g_vars, 20, seed=0, latent_dim=LATENT)
  np.testing.assert_array_equal(samples[:10, 0, 0],
                                (np.arange(10) * 28).astype(np.uint8))


class _BatchNormConstant(nn.Module):
  """G whose pre-BatchNorm activation is 5 everywhere: BatchNorm maps it to
  0 with batch statistics, and to 5 / sqrt(1 + eps) with the initial moving
  statistics (mean 0, variance 1)."""

  @nn.compact
  def __call__(self, z, labels=None, *, train):
    del labels
    h = nn.Dense(1)(z) * 0.0 + 5.0
    h = nn.BatchNorm(use_running_average=not train, epsilon=1e-3,
                     axis_name=parallel.AXIS if train else None)(h)
    return jnp.broadcast_to(h[:, :, None, None], (z.shape[0], 28, 28, 1))


class _MeanD(nn.Module):

  @nn.compact
  def __call__(self, images, labels=None, *, train):
    del labels, train
    bias = nn.Dense(1)(images.reshape(images.shape[0], -1))[:, 0] * 0.0
    return images.mean((1, 2, 3)) + bias


@pytest.mark.parametrize("phase1_bn,fake_logit", [
    ("batch", 0.0), ("inference", 5.0 / np.sqrt(1.0 + 1e-3))])
def test_phase1_batchnorm_mode(images, phase1_bn, fake_logit):
  """config.phase1_bn: D's fakes come from G with batch statistics, or
  (Keras) with G's moving statistics."""
  _, _, metrics = _step(_BatchNormConstant(), _MeanD(), images,
                        loss=losses.get_loss("reference"),
                        phase1_bn=phase1_bn)
  np.testing.assert_allclose(metrics["d_fake"], jax.nn.sigmoid(fake_logit),
                             rtol=1e-6)
