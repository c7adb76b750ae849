"""The two binary cross-entropy conventions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import losses


def test_agree_where_keras_does_not_clip():
  logits = jnp.linspace(-8.0, 8.0, 33)
  for label in (0.0, 1.0):
    labels = jnp.full_like(logits, label)
    np.testing.assert_allclose(losses.bce_keras_clipped(logits, labels),
                               losses.bce_from_logits(logits, labels),
                               rtol=2e-4, atol=1e-6)


def test_values_on_fixed_logits():
  # -log(sigmoid(0)) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2).
  np.testing.assert_allclose(losses.bce_from_logits(jnp.array([0.0, 2.0]),
                                                    jnp.array([1.0, 0.0])),
                             [np.log(2.0), np.log1p(np.exp(2.0))], rtol=1e-6)


def test_keras_clipping_stops_gradient_when_saturated():
  grad_keras = jax.grad(lambda l: losses.bce_keras_clipped(l, 1.0))(-30.0)
  grad_logits = jax.grad(lambda l: losses.bce_from_logits(l, 1.0))(-30.0)
  assert grad_keras == 0.0
  np.testing.assert_allclose(grad_logits, -1.0, rtol=1e-6)
  # Keras' loss saturates at -log(1e-7).
  np.testing.assert_allclose(losses.bce_keras_clipped(-30.0, 1.0),
                             -np.log(np.float32(1e-7)), rtol=1e-5)


def test_unknown_name():
  with pytest.raises(ValueError, match=r"config.bce='hinge'.*keras.*logits"):
    losses.get_bce("hinge")
