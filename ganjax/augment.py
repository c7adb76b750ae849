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
- translation: shift by up to `translation` (config.augment_translation,
  the paper's 0.125 = 1/8) of the image size in each direction, rounded as the
  paper rounds (28 px: 4 px), filling the vacated border with `fill`
  (config.augment_fill; the paper's 0, which is mid-grey in images of
  [-1, 1]; -1 is Fashion-MNIST's black background).
- cutout: set to `fill` a square of `cutout` (config.augment_cutout, the
  paper's 0.5) of the image size (28 px: 14x14), centred at a uniformly drawn
  position; the part that falls outside the image is lost, as in the paper.
- xflip: mirror left-right each image with probability 1/2 (ADA's first
  "blit" transform; under ADA, once the transform is chosen with p).

Adaptive augmentation (ADA, Karras et al. 2020; `Adaptive`, config.ada_target
> 0): each transform is applied to each image with probability p, drawn per
image and transform, and p, kept in the training state, follows the
overfitting heuristic r_t = E[sign(D(x_real))] toward a target: after every
step, p += sign(r_t - target) * B / (ada_kimg * 1000) for a global batch of
B, clipped to [0, 1]; p could go from 0 to 1 in `ada_kimg` thousand images.
The paper adjusts every 4 steps from r_t over those steps with a 4x larger
increment; here every step, from that step's batch, with the paper's rate of
change per image.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

TRANSFORMS = ("color", "translation", "cutout", "xflip")


@dataclasses.dataclass(frozen=True)
class Policy:
  """The transforms to apply, in order, and their sizes as fractions of the
  image size. Empty (false) means no augmentation."""
  names: tuple = ()
  translation: float = 0.125
  cutout: float = 0.5
  fill: float = 0.0  # the value translation and cutout leave behind

  def __bool__(self):
    return bool(self.names)


@dataclasses.dataclass(frozen=True)
class Adaptive:
  """ADA's controller of the augmentation probability p (module docstring)."""
  target: float = 0.6  # the r_t that p is tuned to hold
  kimg: float = 100.0  # thousands of images for p to move by 1

  def __post_init__(self):
    if not 0 < self.target < 1:
      raise ValueError(f"config.ada_target={self.target!r} is invalid: must "
                       "be in (0, 1) (the paper uses 0.6), or 0 for off.")
    if not self.kimg > 0:
      raise ValueError(f"config.ada_kimg={self.kimg!r} is invalid: must be "
                       "> 0 (thousands of images for p to move by 1).")

  def update(self, p, r_t, batch_size: int):
    """p after a step whose global batch of `batch_size` reals had
    E[sign(D(x))] = r_t."""
    step = jnp.sign(r_t - self.target) * batch_size / (self.kimg * 1000.0)
    return jnp.clip(p + step, 0.0, 1.0)


def _is_real(value) -> bool:
  """An int or a float, not a bool (which Python counts as an int)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_policy(policy: str, translation: float = 0.125,
                 cutout: float = 0.5, fill: float = 0.0) -> Policy:
  names = tuple(p for p in policy.split(",") if p)
  for name in names:
    if name not in TRANSFORMS:
      raise ValueError(f"config.augment={policy!r}: {name!r} is not one of "
                       f"{list(TRANSFORMS)} (comma-separated; '' = none).")
  for field, value in (("augment_translation", translation),
                       ("augment_cutout", cutout)):
    if not _is_real(value) or not 0 < value <= 1:
      raise ValueError(f"config.{field}={value!r} is invalid: must be a "
                       "fraction of the image size in (0, 1].")
  if not _is_real(fill) or not -1 <= fill <= 1:
    raise ValueError(f"config.augment_fill={fill!r} is invalid: must be a "
                     "pixel value in [-1, 1] (0: the paper's mid-grey; -1: "
                     "black).")
  return Policy(names, float(translation), float(cutout), float(fill))


def policy_from_config(config) -> Policy:
  return parse_policy(config.augment, config.augment_translation,
                      config.augment_cutout, config.augment_fill)


def adaptive_from_config(config) -> Adaptive | None:
  """ADA's controller, or None when config.ada_target is 0."""
  for field in ("ada_target", "ada_kimg"):
    value = config[field]
    if not _is_real(value) or not math.isfinite(value):
      raise ValueError(f"config.{field}={value!r} is invalid: must be a "
                       "finite number.")
  if not config.ada_target:
    return None
  if not config.augment:
    raise ValueError(f"config.ada_target={config.ada_target!r} needs "
                     "transforms to apply: set config.augment, e.g. "
                     "'xflip,translation,color'.")
  return Adaptive(float(config.ada_target), float(config.ada_kimg))


def pixels(fraction: float, size: int) -> int:
  """A fraction of an image side in whole pixels, rounded half up (the
  paper's int(size * ratio + 0.5))."""
  return int(size * fraction + 0.5)


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


def _color(draws, x, policy):
  del policy  # the paper's ranges, below
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


def _translation(draws, x, policy):
  _, h, w, _ = x.shape
  shift_h, shift_w = pixels(policy.translation, h), pixels(policy.translation, w)
  dy = draws.integers(-shift_h, shift_h + 1)
  dx = draws.integers(-shift_w, shift_w + 1)
  # Shifts as 0/1 matrix products: exact, differentiable, batched. They
  # leave 0 where the image moved away.
  rows, cols = _shift_masks(dy, h), _shift_masks(dx, w)
  x = jnp.einsum("bij,bjwc->biwc", rows, x)
  x = jnp.einsum("bij,bhjc->bhic", cols, x)
  if policy.fill:  # 1 where a pixel moved in, 0 where the image moved away
    kept = rows.sum(2)[:, :, None, None] * cols.sum(2)[:, None, :, None]
    x = x + policy.fill * (1.0 - kept)
  return x


def _cutout(draws, x, policy):
  _, h, w, _ = x.shape
  size_h, size_w = pixels(policy.cutout, h), pixels(policy.cutout, w)
  # The square's centre: 0..h-1 for an odd size, 0..h for an even one (the
  # paper's range), so every row is cut equally often in the interior.
  cy = draws.integers(0, h + 1 - size_h % 2)[:, None, None, None]
  cx = draws.integers(0, w + 1 - size_w % 2)[:, None, None, None]
  top, left = cy - size_h // 2, cx - size_w // 2
  ys = jnp.arange(h)[None, :, None, None]
  xs = jnp.arange(w)[None, None, :, None]
  inside = ((ys >= top) & (ys < top + size_h)
            & (xs >= left) & (xs < left + size_w))
  return jnp.where(inside, jnp.full_like(x, policy.fill), x)


def _xflip(draws, x, policy):
  del policy
  flip = (draws.uniform() < 0.5)[:, None, None, None]
  return jnp.where(flip, x[:, :, ::-1, :], x)


_FNS = {"color": _color, "translation": _translation, "cutout": _cutout,
        "xflip": _xflip}


def augment(images_BxHxWxC, key, policy: Policy, *, rows=None, p=None):
  """Applies `policy` to a batch, each image with its own parameters.

  `rows=(start, global_size)` when the batch is a device's slice of a global
  batch: parameters are drawn for all `global_size` images and rows
  start.. are used, so they do not depend on the device count. The same key
  and rows give the same transforms, whatever the images (real or fake).
  With `p` (ADA), each transform is applied to each image with probability
  p; without it, always (DiffAugment).
  """
  n = images_BxHxWxC.shape[0]
  start, size = rows if rows is not None else (0, n)
  draws = _Draws(key, start, size, n)
  x = images_BxHxWxC
  for name in policy.names:
    if p is None:
      x = _FNS[name](draws, x, policy)
    else:
      apply = (draws.uniform() < p)[:, None, None, None]
      x = jnp.where(apply, _FNS[name](draws, x, policy), x)
  return x
