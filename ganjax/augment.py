"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020).

`config.augment` is a comma-separated policy of "color", "translation" and
"cutout", applied in that order to every image D sees, real or fake, in both
phases. Each transform is differentiable in the image, so G's gradient passes
through it. Parameters are drawn per image for the *global* batch from one
key and each device keeps its rows (as dropout does), so the result does not
depend on the device count.

- color: brightness (add U[-0.5, 0.5]), saturation (scale the distance from
  the per-pixel channel mean by U[0, 2]; nothing to do for one channel) and
  contrast (scale the distance from the image mean by U[0.5, 1.5]).
- translation: shift by up to 1/8 of the image size in each direction, filling
  with zeros (images live in [-1, 1], so 0 is mid-grey).
- cutout: zero a square of half the image size at a random position.
"""

import jax
import jax.numpy as jnp

TRANSFORMS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple:
  names = tuple(p for p in policy.split(",") if p)
  for name in names:
    if name not in TRANSFORMS:
      raise ValueError(f"config.augment={policy!r}: {name!r} is not one of "
                       f"{list(TRANSFORMS)} (comma-separated; '' = none).")
  return names


class _Draws:
  """Per-image random parameters drawn for the global batch (`size` images)
  and cut to this device's rows start..start+n."""

  def __init__(self, key, start, size, n):
    self.key, self.start, self.size, self.n = key, start, size, n

  def __call__(self, draw, *shape):
    self.key, sub = jax.random.split(self.key)
    values = draw(sub, (self.size, *shape))
    return jax.lax.dynamic_slice_in_dim(values, self.start, self.n)

  def uniform(self, *shape):
    return self(jax.random.uniform, *shape)

  def integers(self, low, high):
    return self(lambda k, s: jax.random.randint(k, s, low, high))


def _color(draws, x):
  shape = (1, 1, 1)
  x = x + (draws.uniform(*shape) - 0.5)
  saturation = 2.0 * draws.uniform(*shape)
  if x.shape[-1] > 1:
    mean = x.mean(-1, keepdims=True)
    x = (x - mean) * saturation + mean
  mean = x.mean((1, 2, 3), keepdims=True)
  return (x - mean) * (draws.uniform(*shape) + 0.5) + mean


def _shift_masks(offsets_B, size):
  """(B, size, size) 0/1 matrices M with (M @ v)[i] = v[i - offset]."""
  rows = jnp.arange(size)
  return (rows[None, :, None] - offsets_B[:, None, None]
          == rows[None, None, :]).astype(jnp.float32)


def _translation(draws, x):
  _, h, w, _ = x.shape
  dy = draws.integers(-(h // 8), h // 8 + 1)
  dx = draws.integers(-(w // 8), w // 8 + 1)
  # Shifts as 0/1 matrix products: exact, differentiable, batched.
  x = jnp.einsum("bij,bjwc->biwc", _shift_masks(dy, h), x)
  return jnp.einsum("bij,bhjc->bhic", _shift_masks(dx, w), x)


def _cutout(draws, x):
  _, h, w, _ = x.shape
  cy = draws.integers(0, h)[:, None, None, None]
  cx = draws.integers(0, w)[:, None, None, None]
  ys = jnp.arange(h)[None, :, None, None]
  xs = jnp.arange(w)[None, None, :, None]
  inside = ((jnp.abs(ys - cy) < (h // 2 + 1) // 2)
            & (jnp.abs(xs - cx) < (w // 2 + 1) // 2))
  return jnp.where(inside, jnp.zeros_like(x), x)


_FNS = {"color": _color, "translation": _translation, "cutout": _cutout}


def augment(images_BxHxWxC, key, policy: tuple, *, rows=None):
  """Applies `policy` to a batch, each image with its own parameters.

  `rows=(start, global_size)` when the batch is a device's slice of a global
  batch: parameters are drawn for all `global_size` images and rows
  start.. are used, so they do not depend on the device count. The same key
  and rows give the same transforms, whatever the images (real or fake).
  """
  n = images_BxHxWxC.shape[0]
  start, size = rows if rows is not None else (0, n)
  draws = _Draws(key, start, size, n)
  x = images_BxHxWxC
  for name in policy:
    x = _FNS[name](draws, x)
  return x
