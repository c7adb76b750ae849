"""Samples from a generator (restore one with `trainer.restore_generator`)."""

import functools
import os

import jax
import numpy as np

from ganjax import images as images_lib


@functools.lru_cache(maxsize=None)
def inference_fn(sampler):
  """G in inference mode, jitted once per generator module: (variables, z,
  labels or None) -> images."""
  return jax.jit(lambda v, z, y=None: sampler.apply(v, z, y, train=False))


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
        g_vars, z, balanced_labels(start, n, sampler.num_classes))))
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
