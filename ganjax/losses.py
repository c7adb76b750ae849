"""Binary cross-entropy on discriminator logits, in two conventions.

- "logits": -[y log sigmoid(l) + (1 - y) log sigmoid(-l)], exact and stable for
  any logit; its gradient never vanishes, however saturated D is.
- "keras": the reference recipe. Keras applies a sigmoid, clips the probability
  to [1e-7, 1 - 1e-7] and takes logs, so outside |logit| ~ 15.9 the loss is
  flat and passes no gradient.
"""

import jax
import jax.numpy as jnp

KERAS_EPSILON = 1e-7


def bce_from_logits(logits, labels):
  return -(labels * jax.nn.log_sigmoid(logits)
           + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def bce_keras_clipped(logits, labels):
  probs = jnp.clip(jax.nn.sigmoid(logits), KERAS_EPSILON, 1.0 - KERAS_EPSILON)
  return -(labels * jnp.log(probs) + (1.0 - labels) * jnp.log(1.0 - probs))


BCE = {"logits": bce_from_logits, "keras": bce_keras_clipped}


def get_bce(name: str):
  if name not in BCE:
    raise ValueError(f"config.bce={name!r} is not one of {sorted(BCE)}.")
  return BCE[name]
