"""Samples from a generator (restore one with `trainer.restore_generator`)."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import images as images_lib
from ganjax import gan as gan_lib

# Noise vectors that measure an EMA generator's BatchNorm statistics, and the
# seed they are drawn with (fixed: sampling is a function of the checkpoint).
STANDING_STATS_SAMPLES = 4096
STANDING_STATS_SEED = 0


def sampling_variables(sampler, state, latent_dim: int) -> dict:
  """G's variables for sampling and evaluation (grids, `ganjax.sample`,
  `ganjax.evaluate`, the best checkpoint).

  Without EMA: G's parameters and BatchNorm moving statistics. With EMA: the
  averaged parameters and BatchNorm statistics measured for them
  (`standing_statistics`); the moving statistics in the state were gathered
  by the live G, whose weights differ from the average.
  """
  if state.g_ema_params is None:
    return gan_lib.g_variables(state.g_params, state.g_batch_stats)
  if not state.g_batch_stats:
    return gan_lib.g_variables(state.g_ema_params, {})
  return gan_lib.g_variables(state.g_ema_params, standing_statistics(
      sampler, state.g_ema_params, state.g_batch_stats, latent_dim=latent_dim))


@functools.partial(jax.jit, static_argnames=("sampler", "latent_dim",
                                             "num_samples", "seed"))
def standing_statistics(sampler, params, batch_stats, *, latent_dim: int,
                        num_samples: int = STANDING_STATS_SAMPLES,
                        seed: int = STANDING_STATS_SEED):
  """The BatchNorm statistics of G with `params` ("standing statistics", as
  BigGAN samples with): each BatchNorm layer's mean and variance over one
  batch of `num_samples` noise vectors (and balanced labels, for a
  conditional G), with G in training mode, so that G in inference mode with
  these statistics computes on that batch what G in training mode computes.

  Flax's BatchNorm folds a batch's statistics s into its moving average as
  m * old + (1 - m) * s. That is affine in `old`, so two training-mode passes
  from old = 0 and old = 1 give s = new_0 / (1 - (new_1 - new_0)) for any
  momentum m, without reading it from the modules.
  """
  z = jax.random.normal(jax.random.key(seed), (num_samples, latent_dim))
  num_classes = classes_of(sampler)
  labels = jnp.arange(num_samples) % num_classes if num_classes else None
  def moving_average_from(value):
    old = jax.tree.map(lambda x: jnp.full_like(x, value), batch_stats)
    return gan_lib.apply_g_train(sampler, params, old, z, labels)[1]
  new_0, new_1 = moving_average_from(0.0), moving_average_from(1.0)
  return jax.tree.map(lambda a, b: a / (1.0 - (b - a)), new_0, new_1)


@functools.lru_cache(maxsize=None)
def inference_fn(sampler):
  """G in inference mode, jitted once per generator module: (variables, z,
  labels or None) -> images."""
  return jax.jit(lambda v, z, y=None: sampler.apply(
      v, z, *(() if y is None else (y,)), train=False))


def classes_of(generator) -> int:
  """A conditional generator's number of classes (its `num_classes`), or 0."""
  return getattr(generator, "num_classes", 0)


def balanced_labels(start: int, num: int, num_classes: int):
  """Labels start, start+1, ... mod num_classes (None if unconditional): the
  classes of samples start..start+num of a conditional generator."""
  if not num_classes:
    return None
  return (np.arange(start, start + num) % num_classes).astype(np.int32)


def generate(sampler, g_vars, num: int, seed: int, latent_dim: int,
             batch_size: int = 1000):
  """`num` samples as uint8 (num, H, W[, C]), G in inference mode. A
  conditional G draws every class equally often (`balanced_labels`)."""
  apply = inference_fn(sampler)
  key = jax.random.key(seed)
  out = []
  for start in range(0, num, batch_size):
    n = min(batch_size, num - start)
    z = jax.random.normal(jax.random.fold_in(key, start), (n, latent_dim))
    out.append(images_lib.to_uint8(apply(
        g_vars, z, balanced_labels(start, n, classes_of(sampler)))))
  return np.concatenate(out)


def write_samples(path: str, samples_uint8, step: int, columns=None) -> None:
  """Writes .npz (key `images`, (N, H, W[, C]) uint8) or a .png grid of
  `columns` columns (a conditional G's samples: one per class)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.endswith(".npz"):
    np.savez_compressed(path, images=samples_uint8, step=step)
  elif path.endswith(".png"):
    images_lib.save_png(path, images_lib.grid(samples_uint8, columns))
  else:
    raise ValueError(f"--out={path} must end in .npz or .png.")
