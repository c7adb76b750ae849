"""Optimizers by name, built with optax from the experiment config."""

import optax


def _rmsprop(config, learning_rate):
  # optax.rmsprop divides by sqrt(nu + eps), as Keras 3 does (eps inside).
  return optax.rmsprop(learning_rate, decay=config.rmsprop_decay,
                       eps=config.rmsprop_eps)


def _adam(config, learning_rate):
  return optax.adam(learning_rate, b1=config.adam_b1, b2=config.adam_b2)


OPTIMIZERS = {"rmsprop": _rmsprop, "adam": _adam}


def make_optimizers(config):
  """Returns (g_tx, d_tx)."""
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optimizer={config.optimizer!r} is not one of "
                     f"{sorted(OPTIMIZERS)}.")
  make = OPTIMIZERS[config.optimizer]
  return make(config, config.g_learning_rate), make(config,
                                                     config.d_learning_rate)
