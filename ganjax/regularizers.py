"""Penalties added to D's loss, selectable by name: a registry.

A penalty is a function

    penalty(d_fn, reals, fakes, *, key, rows) -> scalar

of `d_fn(images) -> logits (B,)` (D with its parameters bound; the step
differentiates the penalty w.r.t. those parameters, a second-order gradient
that every convolution in `layers` supports), the batch D saw in phase 1
(after augmentation), a random key, and `rows = (start, global_batch_size)`:
per-example randomness is drawn for the global batch and rows start..start+B
kept (`per_example`), so that it does not depend on the device count. All
penalties of a step share `key`; one that draws two things folds in its own
constants.

`Penalty(name, weight, every)` puts one into a `GAN`: D minimizes
loss + weight * penalty. With `every` = k > 1 it is lazy (StyleGAN2): applied
at one step in k, weighted k times.

Add one with `@register("name")`; see docs/extending.md.
"""

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from ganjax import registry

PENALTIES: dict[str, Callable] = {}


def register(name: str):
  """Decorator: makes a penalty function available as `Penalty(name, ...)`
  and as `config.penalties` entry `name:weight[:every]`."""
  def decorate(fn):
    registry.check_new(PENALTIES, name, fn, "penalty")
    PENALTIES[name] = fn
    return fn
  return decorate



@dataclasses.dataclass(frozen=True)
class Penalty:
  """A registered penalty (by name) or any function, with its weight."""
  name: str
  weight: float
  every: int = 1
  fn: Callable | None = None  # default: PENALTIES[name]

  def __post_init__(self):
    if self.fn is None and self.name not in PENALTIES:
      raise ValueError(f"Penalty {self.name!r} is not one of "
                       f"{sorted(PENALTIES)} (register it with "
                       "ganjax.regularizers.register).")
    if not isinstance(self.every, int) or self.every < 1:
      raise ValueError(f"Penalty {self.name!r}: every={self.every!r} must be "
                       "a positive integer.")

  def __call__(self, *args, **kwargs):
    return (self.fn or PENALTIES[self.name])(*args, **kwargs)


def per_example(key, rows, n: int, draw=jax.random.uniform):
  """Rows start..start+n of `draw(key, (global_size,))`: one draw per example
  of the global batch, the same whatever the device count."""
  start, size = rows
  return jax.lax.dynamic_slice_in_dim(draw(key, (size,)), start, n)


def _input_gradients(d_fn, images, *args):
  """d logit_i / d image_i for every example, flattened to (B, H*W*C);
  `args` go to `d_fn` after the images."""
  grads = jax.grad(lambda x: d_fn(x, *args).sum())(images)
  return grads.reshape(grads.shape[0], -1)


@register("gp")
def gradient_penalty(d_fn, reals, fakes, *, key, rows):
  """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2] at
  x_hat = e * real + (1 - e) * fake, e ~ U[0, 1] per example."""
  eps = per_example(key, rows, reals.shape[0])
  eps = eps.reshape((-1,) + (1,) * (reals.ndim - 1))
  mixed = eps * reals + (1.0 - eps) * fakes
  norms = jnp.sqrt(jnp.square(_input_gradients(d_fn, mixed)).sum(-1) + 1e-12)
  return jnp.square(norms - 1.0).mean()


@register("r1")
def r1_penalty(d_fn, reals, fakes, *, key, rows):
  """R1 (Mescheder et al. 2018): E[||grad D(x_real)||_2^2] / 2; its weight
  is the paper's gamma."""
  del fakes, key, rows
  return 0.5 * jnp.square(_input_gradients(d_fn, reals)).sum(-1).mean()


def apply_penalty(penalty: Penalty, d_fn, reals, fakes, *, key, rows, step,
                  lazy_phase):
  """(the penalty's value, its term in D's loss), or (None, None) at a step
  a lazy penalty skips (known statically from `lazy_phase`); with
  `lazy_phase` None the skip is decided from `step` by `lax.cond`."""
  weight = penalty.weight * penalty.every  # a lazy penalty weighs k times
  compute = lambda: penalty(d_fn, reals, fakes, key=key, rows=rows)
  if penalty.every == 1 or lazy_phase is not None:
    if lazy_phase is not None and lazy_phase % penalty.every:
      return None, None
    value = compute()
    return value, weight * value
  shape = jax.eval_shape(compute)
  value = jax.lax.cond(step % penalty.every == 0, compute,
                       lambda: jnp.zeros(shape.shape, shape.dtype))
  return value, weight * value


def parse(text: str) -> tuple:
  """`config.penalties`: "name:weight[:every],..." -> Penalty tuple."""
  penalties = []
  for entry in (e.strip() for e in text.split(",") if e.strip()):
    name, *numbers = entry.split(":")
    try:
      weight = float(numbers[0])
      every = int(numbers[1]) if len(numbers) == 2 else 1
      if len(numbers) not in (1, 2):
        raise ValueError
    except (ValueError, IndexError):
      weight = every = None
    if (weight is None or not math.isfinite(weight) or weight < 0
        or every < 1):
      raise ValueError(
          f"config.penalties={text!r}: entry {entry!r} must be name:weight "
          "or name:weight:every, weight a number >= 0, every an integer "
          ">= 1 (e.g. 'r1:10:16').")
    if name not in PENALTIES:
      raise ValueError(f"config.penalties={text!r}: {name!r} is not one "
                       f"of {sorted(PENALTIES)}.")
    if name in [p.name for p in penalties]:
      raise ValueError(f"config.penalties={text!r} names {name!r} twice.")
    if weight:  # 0 = off, as for config.r1_weight
      penalties.append(Penalty(name, weight, every))
  return tuple(penalties)


@register("r2")
def r2_penalty(d_fn, reals, fakes, *, key, rows):
  """R2 (Mescheder et al. 2018; R3GAN): E[||grad D(x_fake)||_2^2] / 2, R1 at
  the fakes D was trained on in this step."""
  del reals, key, rows
  return 0.5 * jnp.square(_input_gradients(d_fn, fakes, "fakes")).sum(
      -1).mean()
