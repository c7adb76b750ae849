"""Optimizers and learning-rate schedules by name, built with optax from the
experiment config."""

import optax


def _rmsprop(config, learning_rate):
  # optax.rmsprop divides by sqrt(nu + eps), as Keras 3 does (eps inside).
  return optax.rmsprop(learning_rate, decay=config.rmsprop_decay,
                       eps=config.rmsprop_eps)


def _adam(config, learning_rate):
  return optax.adam(learning_rate, b1=config.adam_b1, b2=config.adam_b2)


OPTIMIZERS = {"rmsprop": _rmsprop, "adam": _adam}

# Learning rate over the optimizer's own step count t (one per update):
# "constant": the configured rate throughout (the reference);
# "linear" / "cosine": a linear warm-up from 0 over lr_warmup_steps, then a
# linear or half-cosine decay that reaches 0 at step lr_decay_steps and stays
# there. The schedule is fixed by its own fields, not by config.num_steps,
# so a resumed run with a new num_steps keeps the schedule it started with.
SCHEDULES = ("constant", "linear", "cosine")


def learning_rate(config, peak: float):
  """A float (constant) or an optax schedule peaking at `peak`."""
  if config.lr_schedule not in SCHEDULES:
    raise ValueError(f"config.lr_schedule={config.lr_schedule!r} is not one "
                     f"of {list(SCHEDULES)}.")
  if config.lr_schedule == "constant":
    return peak  # keeps the optimizer state of runs made before schedules
  warmup = config.lr_warmup_steps
  decay = config.lr_decay_steps - warmup
  if config.lr_schedule == "linear":
    tail = optax.linear_schedule(peak, 0.0, decay)
  else:
    tail = optax.cosine_decay_schedule(peak, decay)
  if not warmup:
    return tail
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), tail], [warmup])


def make_optimizers(config):
  """Returns (g_tx, d_tx)."""
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optimizer={config.optimizer!r} is not one of "
                     f"{sorted(OPTIMIZERS)}.")
  make = OPTIMIZERS[config.optimizer]
  return (make(config, learning_rate(config, config.g_learning_rate)),
          make(config, learning_rate(config, config.d_learning_rate)))
