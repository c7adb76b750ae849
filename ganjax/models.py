"""Generators and discriminators, selectable by name (`config.architecture`).

- "dcgan28": the reference DCGAN for 28x28 images (Fashion-MNIST, MNIST),
  layer for layer the classic Keras recipe: Glorot-uniform kernels, zero
  biases, Keras' BatchNorm constants (momentum 0.99, epsilon 1e-3). At the
  reference widths (64) the trainable parameter counts are: generator
  413,825 (+384 BatchNorm statistics), discriminator 212,865.
- "dcgan32": the standard CNN of the SNGAN paper for 32x32 images (CIFAR-10):
  G dense -> 4x4x8w, three 4x4 stride-2 transposed convolutions, 3x3 to
  the image; D seven 3x3/4x4 convolutions, leaky ReLU 0.1.
- "resnet32": the SNGAN ResNet for 32x32 (Miyato et al. 2018): G three
  up-sampling residual blocks of width 4w, D an optimized first block and
  three residual blocks of width 2w, global sum pooling.

Every architecture takes the same options from the config:
- widths `g_width`, `d_width` (64 = the published sizes);
- `num_classes` > 0 makes both conditional: G embeds the label (dcgan: a
  learned embedding concatenated to z; resnet: conditional BatchNorm) and D
  adds a projection term <embed(y), features> (Miyato & Koyama 2018);
- `spectral_norm`: every layer of D (and its label embedding) spectrally
  normalized, one power iteration per D update (flax's SpectralNorm, its u
  vectors kept in the "spectral" collection of the training state);
- `d_dropout`: dropout in D, drawn independently of the device count.

Call signatures: `G(z, labels=None, *, train)` -> images in [-1, 1];
`D(images, labels=None, *, train)` -> logits (B,). D's spectral-norm power
iteration advances when its collection is mutable (`mutable=["spectral"]`),
as the step makes it in phase 1 (see ganjax.gan).
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax import input_pipeline
from ganjax import layers
from ganjax import registry

_glorot = nn.initializers.xavier_uniform()
SPECTRAL = "spectral"  # variable collection of spectral norm's u and sigma


class ModelOptions(nn.Module):
  """The options `make_models` passes to every generator and discriminator:
  subclass it (a discriminator: `DiscriminatorOptions`) for an architecture
  of your own (`register_architecture`)."""
  conv_impl: str = "xla"
  dtype: Any = jnp.float32
  # Mapped batch axis (inside pmap/shard_map): G's BatchNorm averages over it;
  # D's dropout draws its masks for the global batch.
  axis_name: Optional[str] = None
  width: int = 64
  num_classes: int = 0  # 0 = unconditional
  channels: int = 1


class DiscriminatorOptions(ModelOptions):
  """`ModelOptions` plus a discriminator's: dropout and spectral norm."""
  dropout_rate: float = 0.0
  spectral_norm: bool = False

  def layer(self, module, x):
    """`module(x)`, spectrally normalized when configured; the power
    iteration advances when the "spectral" collection is mutable."""
    if not self.spectral_norm:
      return module(x)
    update = (self.is_mutable_collection(SPECTRAL)
              and not self.is_initializing())
    return nn.SpectralNorm(module, collection_name=SPECTRAL)(
        x, update_stats=update)

  def dropout(self, x, train):
    return layers.Dropout(self.dropout_rate, self.axis_name)(
        x, deterministic=not train)

  def head(self, features_BxF, labels):
    """Linear logit, plus the projection <embed(y), features> if conditional."""
    logits = self.layer(nn.Dense(1, kernel_init=_glorot, dtype=self.dtype),
                        features_BxF)[:, 0]
    if self.num_classes:
      embed = nn.Embed(self.num_classes, features_BxF.shape[-1],
                       embedding_init=_glorot, name="projection")
      logits = logits + (self.layer(embed, labels)
                         * features_BxF).sum(-1)
    return logits.astype(jnp.float32)


def with_label(z_BxZ, labels, num_classes):
  """z, or [z, embed(y)] for a conditional generator (inside a compact
  `__call__`)."""
  if not num_classes:
    return z_BxZ
  embedded = nn.Embed(num_classes, z_BxZ.shape[-1], name="label_embedding")(
      labels)
  return jnp.concatenate([z_BxZ, embedded.astype(z_BxZ.dtype)], -1)


class Generator(ModelOptions):
  """dcgan28: z (B, latent) -> images (B, 28, 28, channels) in [-1, 1]."""

  @nn.compact
  def __call__(self, z_BxZ, labels=None, *, train: bool):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.99,
                                epsilon=1e-3, dtype=self.dtype,
                                axis_name=self.axis_name if train else None)
    w = self.width
    x = with_label(z_BxZ, labels, self.num_classes)
    x = nn.Dense(7 * 7 * 2 * w, kernel_init=_glorot, dtype=self.dtype)(x)
    x = norm()(x.reshape(-1, 7, 7, 2 * w))
    x = layers.ConvTranspose(w, impl=self.conv_impl, dtype=self.dtype)(x)
    x = norm()(nn.selu(x))
    x = layers.ConvTranspose(self.channels, impl=self.conv_impl,
                             dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(DiscriminatorOptions):
  """dcgan28: images (B, 28, 28, C) -> logits (B,) of "real"."""
  dropout_rate: float = 0.4

  @nn.compact
  def __call__(self, images_BxHxWxC, labels=None, *, train: bool):
    x = images_BxHxWxC
    for features in (self.width, 2 * self.width):
      x = self.layer(layers.Conv(features, impl=self.conv_impl,
                                 dtype=self.dtype), x)
      x = self.dropout(nn.leaky_relu(x, 0.2), train)
    return self.head(x.reshape(x.shape[0], -1), labels)


class Generator32(ModelOptions):
  """dcgan32: z -> (B, 32, 32, channels)."""

  @nn.compact
  def __call__(self, z_BxZ, labels=None, *, train: bool):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                epsilon=1e-5, dtype=self.dtype,
                                axis_name=self.axis_name if train else None)
    w = self.width
    x = with_label(z_BxZ, labels, self.num_classes)
    x = nn.Dense(4 * 4 * 8 * w, dtype=self.dtype)(x).reshape(-1, 4, 4, 8 * w)
    x = nn.relu(norm()(x))
    for features in (4 * w, 2 * w, w):
      x = layers.ConvTranspose(features, kernel_size=4, impl=self.conv_impl,
                               dtype=self.dtype)(x)
      x = nn.relu(norm()(x))
    x = layers.Conv(self.channels, kernel_size=3, stride=1, impl="xla",
                    dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator32(DiscriminatorOptions):
  """dcgan32: images (B, 32, 32, C) -> logits (B,)."""

  @nn.compact
  def __call__(self, images_BxHxWxC, labels=None, *, train: bool):
    w, x = self.width, images_BxHxWxC
    for features, kernel, stride in ((w, 3, 1), (w, 4, 2), (2 * w, 3, 1),
                                     (2 * w, 4, 2), (4 * w, 3, 1),
                                     (4 * w, 4, 2), (8 * w, 3, 1)):
      conv = layers.Conv(features, kernel_size=kernel, stride=stride,
                         impl=self.conv_impl if stride > 1 else "xla",
                         dtype=self.dtype)
      x = nn.leaky_relu(self.layer(conv, x), 0.1)
    x = self.dropout(x, train)
    return self.head(x.reshape(x.shape[0], -1), labels)


class _CondBatchNorm(nn.Module):
  """BatchNorm whose scale and offset are looked up by class (or shared)."""
  num_classes: int
  train: bool
  axis_name: Optional[str]
  dtype: Any

  @nn.compact
  def __call__(self, x, labels):
    conditional = bool(self.num_classes)
    x = nn.BatchNorm(use_running_average=not self.train, momentum=0.9,
                     epsilon=1e-5, dtype=self.dtype, use_scale=not conditional,
                     use_bias=not conditional,
                     axis_name=self.axis_name if self.train else None)(x)
    if not conditional:
      return x
    features = x.shape[-1]
    scale = nn.Embed(self.num_classes, features,
                     embedding_init=nn.initializers.ones, name="scale")(labels)
    offset = nn.Embed(self.num_classes, features,
                      embedding_init=nn.initializers.zeros,
                      name="offset")(labels)
    return x * scale[:, None, None, :] + offset[:, None, None, :]


def _conv3(features, dtype, kernel_size=3):
  return layers.Conv(features, kernel_size=kernel_size, stride=1, impl="xla",
                     dtype=dtype)


def _upsample(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x):
  return nn.avg_pool(x, (2, 2), (2, 2))


class GeneratorResNet32(ModelOptions):
  """resnet32: z -> (B, 32, 32, channels); residual blocks of width 4w."""

  @nn.compact
  def __call__(self, z_BxZ, labels=None, *, train: bool):
    ch = 4 * self.width
    norm = lambda: _CondBatchNorm(self.num_classes, train, self.axis_name,
                                  self.dtype)
    x = nn.Dense(4 * 4 * ch, dtype=self.dtype)(z_BxZ).reshape(-1, 4, 4, ch)
    for _ in range(3):  # 4 -> 8 -> 16 -> 32
      h = _upsample(nn.relu(norm()(x, labels)))
      h = _conv3(ch, self.dtype)(h)
      h = _conv3(ch, self.dtype)(nn.relu(norm()(h, labels)))
      x = h + _conv3(ch, self.dtype, kernel_size=1)(_upsample(x))
    x = nn.relu(norm()(x, labels))
    x = _conv3(self.channels, self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class DiscriminatorResNet32(DiscriminatorOptions):
  """resnet32: images (B, 32, 32, C) -> logits; residual blocks of width 2w."""

  @nn.compact
  def __call__(self, images_BxHxWxC, labels=None, *, train: bool):
    ch = 2 * self.width
    conv = lambda x, kernel_size=3: self.layer(
        _conv3(ch, self.dtype, kernel_size), x)
    x = images_BxHxWxC
    # Optimized first block: conv, relu, conv, pool; shortcut pool, 1x1 conv.
    h = _downsample(conv(nn.relu(conv(x))))
    x = h + conv(_downsample(x), kernel_size=1)
    for down in (True, False, False):
      h = conv(nn.relu(conv(nn.relu(x))))
      if down:
        x = _downsample(h) + _downsample(conv(x, kernel_size=1))
      else:
        x = h + x
    x = self.dropout(nn.relu(x), train)
    return self.head(x.sum((1, 2)), labels)


ARCHITECTURES = {
    "dcgan28": (Generator, Discriminator, (28, 28)),
    "dcgan32": (Generator32, Discriminator32, (32, 32)),
    "resnet32": (GeneratorResNet32, DiscriminatorResNet32, (32, 32)),
}


def register_architecture(name: str, generator_cls, discriminator_cls,
                          image_size) -> None:
  """Makes a (G, D) pair available as `config.architecture=name`; both
  classes take the options `make_models` passes (see `ModelOptions`), for
  `image_size` (H, W) images."""
  entry = (generator_cls, discriminator_cls, tuple(image_size))
  registry.check_new(ARCHITECTURES, name, entry, "architecture",
                     key=lambda e: e and (*map(registry.origin, e[:2]), e[2]))
  ARCHITECTURES[name] = entry


def get_architecture(name: str):
  if name not in ARCHITECTURES:
    raise ValueError(f"config.architecture={name!r} is not one of "
                     f"{sorted(ARCHITECTURES)}.")
  return ARCHITECTURES[name]


def num_classes(config) -> int:
  """The classes G and D are conditioned on: the dataset's, or 0."""
  if not config.conditional:
    return 0
  return input_pipeline.get_spec(config.dataset).num_classes


def make_models(config, axis_name: Optional[str] = None):
  """Builds (generator, discriminator) from an experiment config."""
  g_cls, d_cls, _ = get_architecture(config.architecture)
  impl = layers.resolve_impl(config.conv_impl)
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[
      config.compute_dtype]
  spec = input_pipeline.get_spec(config.dataset)
  common = dict(conv_impl=impl, dtype=dtype, axis_name=axis_name,
                num_classes=num_classes(config),
                channels=spec.image_shape[-1])
  generator = g_cls(width=config.g_width, **common)
  discriminator = d_cls(width=config.d_width, dropout_rate=config.d_dropout,
                        spectral_norm=config.spectral_norm, **common)
  return generator, discriminator


# Registered through the public API, like a user's own architecture.
from ganjax import r3gan  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
