"""The evaluation classifier: a small CNN whose features score samples.

Inception-v3 weights cannot be downloaded here, and for MNIST-like data the
published practice (TF-GAN's MNIST Frechet distance) is a classifier trained on
the dataset itself. ganjax ships one per dataset, trained by

  python -m ganjax.train_classifier --dataset=fashion_mnist

with a fixed seed and recipe; on CPU the command re-creates the shipped file
bit for bit (it checks the result against the pinned SHA-256 below). The
loader checks the same SHA-256, so everybody scores with the same weights.

Architecture (12 MFLOP per image forward): conv 3x3/1 32, conv 3x3/2 64,
conv 3x3/2 64 (ReLU after each), dense 128 + ReLU (the features, 128-d),
dropout, dense to the class logits. Inputs are uint8 images scaled to [-1, 1].
"""

import dataclasses
import functools
import hashlib
import os
import time

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax import input_pipeline
from ganjax import layers

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
FEATURE_DIM = 128


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How the shipped weights were trained; changing it changes the weights."""
  seed: int = 0
  epochs: int = 15
  batch_size: int = 100
  learning_rate: float = 2e-3
  weight_decay: float = 1e-4
  dropout: float = 0.3
  # The CPU-fast convolutions (see layers.py) and their chunks of the batch
  # (None: whole batches, as when the shipped weights were trained); part of
  # the recipe because the bit pattern of the result depends on them.
  conv_impl: str = "hybrid"
  batch_chunks: tuple = (None, None)


RECIPE = Recipe()

# Shipped weights: file name and SHA-256 of its bytes. None: not shipped (no
# copy of the dataset was available to train on; train it with the command
# above and pass --out).
WEIGHTS = {
    "fashion_mnist": (
        "fashion_mnist_classifier.msgpack",
        "9b9d08c14be9482340c81619e8b59212e46ef78af8c003cc7350beac500669be"),
    "mnist": ("mnist_classifier.msgpack", None),
}


class ClassifierError(RuntimeError):
  """The evaluation classifier's weights are missing or damaged."""


class Classifier(nn.Module):
  """uint8-range images (B, 28, 28, 1) in [-1, 1] -> (features, logits)."""
  num_classes: int = 10
  dropout: float = 0.0
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x_BxHxWxC, *, train: bool = False):
    x = x_BxHxWxC
    for features, stride in ((32, 1), (64, 2), (64, 2)):
      x = layers.Conv(features, kernel_size=3, stride=stride,
                      impl=self.conv_impl)(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)
    features_BxF = nn.relu(nn.Dense(FEATURE_DIM)(x))
    x = nn.Dropout(self.dropout)(features_BxF, deterministic=not train)
    return features_BxF, nn.Dense(self.num_classes)(x)


def _prepare(images_uint8):
  """(N, H, W[, C]) uint8 -> float32 (N, H, W, C) in [-1, 1]."""
  x = input_pipeline.to_model_range(images_uint8)
  return x[..., None] if x.ndim == 3 else x


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def train(images, labels, num_classes, recipe=RECIPE, log=logging.info):
  """Trains the classifier on uint8 `images` (N, H, W); returns its params.

  Deterministic: the whole run is drawn from `recipe.seed`. Each epoch visits
  a fresh permutation; a random horizontal flip is the only augmentation.
  """
  model = Classifier(num_classes, recipe.dropout, recipe.conv_impl)
  init_key, data_key, dropout_key = jax.random.split(
      jax.random.key(recipe.seed), 3)
  data = jnp.asarray(images)
  targets = jnp.asarray(labels, jnp.int32)
  steps_per_epoch = images.shape[0] // recipe.batch_size
  schedule = optax.cosine_decay_schedule(
      recipe.learning_rate, recipe.epochs * steps_per_epoch)
  tx = optax.adamw(schedule, weight_decay=recipe.weight_decay)
  params = model.init(init_key, _prepare(data[:1]))["params"]
  opt_state = tx.init(params)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, indices, key):
    flip_key, drop_key = jax.random.split(key)
    x = _prepare(data[indices])
    flip = jax.random.bernoulli(flip_key, 0.5, (x.shape[0], 1, 1, 1))
    x = jnp.where(flip, x[:, :, ::-1], x)

    def loss_fn(p):
      _, logits = model.apply({"params": p}, x, train=True,
                              rngs={"dropout": drop_key})
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, targets[indices]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  with layers.batch_chunks(*recipe.batch_chunks):  # read when step traces
    for epoch in range(recipe.epochs):
      t0 = time.perf_counter()
      epoch_key = jax.random.fold_in(data_key, epoch)
      order = jax.random.permutation(epoch_key, images.shape[0])
      order = order[:steps_per_epoch * recipe.batch_size].reshape(
          steps_per_epoch, recipe.batch_size)
      losses = []
      for i in range(steps_per_epoch):
        key = jax.random.fold_in(dropout_key, epoch * steps_per_epoch + i)
        params, opt_state, loss = step(params, opt_state, order[i], key)
        losses.append(loss)
      log(f"epoch {epoch + 1}/{recipe.epochs}: mean loss "
          f"{float(jnp.mean(jnp.stack(losses))):.4f} "
          f"({time.perf_counter() - t0:.1f} s)")
  return params


def serialize(params) -> bytes:
  return flax.serialization.msgpack_serialize(
      jax.tree.map(np.asarray, flax.core.unfreeze(params)))


class FeatureExtractor:
  """The shipped classifier of one dataset, applied in fixed-size batches."""

  def __init__(self, params, num_classes=10, batch_size=500, conv_impl="auto"):
    self.params = params
    self.batch_size = batch_size
    model = Classifier(num_classes, conv_impl=layers.resolve_impl(conv_impl))
    self._apply = jax.jit(lambda p, x: model.apply({"params": p}, _prepare(x)))

  def __call__(self, images_uint8):
    """uint8 (N, H, W[, C]) -> float32 features (N, 128), logits (N, classes).

    Runs in batches of `batch_size` (the last one padded) so one compiled
    program serves any N.
    """
    images_uint8 = np.asarray(images_uint8)
    n = images_uint8.shape[0]
    pad = -n % self.batch_size
    if pad:
      images_uint8 = np.concatenate(
          [images_uint8, np.zeros((pad,) + images_uint8.shape[1:], np.uint8)])
    feats, logits = [], []
    for start in range(0, n + pad, self.batch_size):
      f, l = self._apply(self.params,
                         images_uint8[start:start + self.batch_size])
      feats.append(f)
      logits.append(l)
    return (jnp.concatenate(feats)[:n], jnp.concatenate(logits)[:n])


def weights_path(dataset: str) -> str:
  if dataset not in WEIGHTS:
    raise ValueError(f"No evaluation classifier for dataset={dataset!r}; "
                     f"valid: {sorted(WEIGHTS)}.")
  return os.path.join(ASSETS, WEIGHTS[dataset][0])


@functools.lru_cache(maxsize=None)
def load(dataset: str = "fashion_mnist", path: str | None = None):
  """The shipped (or a given) classifier as a `FeatureExtractor`.

  Raises:
    ClassifierError: the file is missing or fails its SHA-256.
  """
  default = weights_path(dataset)
  path = path or default
  expected = WEIGHTS[dataset][1] if path == default else None
  if not os.path.exists(path):
    raise ClassifierError(
        f"No evaluation classifier for {dataset} at {path}. Train it with "
        f"`python -m ganjax.train_classifier --dataset={dataset} --out={path}`.")
  with open(path, "rb") as f:
    blob = f.read()
  if expected is not None and sha256(blob) != expected:
    raise ClassifierError(
        f"{path} fails its checksum (sha256 {sha256(blob)}, expected "
        f"{expected}): the file is damaged. Reinstall ganjax or re-create it "
        f"with `python -m ganjax.train_classifier --dataset={dataset}`.")
  params = flax.serialization.msgpack_restore(blob)
  spec = input_pipeline.get_spec(dataset)
  return FeatureExtractor(jax.tree.map(jnp.asarray, params), spec.num_classes)


def accuracy(extractor, images, labels) -> float:
  _, logits = extractor(images)
  return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == labels))
