"""The reference DCGAN for 28x28x1 images (Fashion-MNIST, MNIST).

Layer for layer the classic Keras recipe: Glorot-uniform kernels, zero biases,
Keras' BatchNorm constants (momentum 0.99, epsilon 1e-3). Trainable parameter
counts: generator 413,825 (+384 BatchNorm statistics), discriminator 212,865.
"""

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from ganjax import layers

_glorot = nn.initializers.xavier_uniform()


class Generator(nn.Module):
  """z (B, latent) -> images (B, 28, 28, 1) in [-1, 1].

  Attributes:
    conv_impl: "xla" or "matmul" (see `layers`); both compute the same function.
    dtype: compute dtype (parameters stay float32).
    axis_name: mapped axis over which BatchNorm averages its batch statistics,
      so that every device normalizes with the global batch; None outside pmap.
  """
  conv_impl: str = "xla"
  dtype: Any = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, z_BxZ, *, train: bool):
    norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.99,
                                epsilon=1e-3, dtype=self.dtype,
                                axis_name=self.axis_name if train else None)
    x = nn.Dense(7 * 7 * 128, kernel_init=_glorot, dtype=self.dtype)(z_BxZ)
    x = norm()(x.reshape(-1, 7, 7, 128))
    x = layers.ConvTranspose(64, impl=self.conv_impl, dtype=self.dtype)(x)
    x = norm()(nn.selu(x))
    x = layers.ConvTranspose(1, impl=self.conv_impl, dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images (B, 28, 28, 1) -> logits (B,) of "real"."""
  conv_impl: str = "xla"
  dtype: Any = jnp.float32
  dropout_rate: float = 0.4
  # Mapped batch axis: dropout masks are drawn for the global batch, so they
  # do not depend on the device count (see layers.Dropout).
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, images_BxHxWxC, *, train: bool, segments: int = 1):
    """`segments`: the batch is that many equal parts (see layers.Dropout)."""
    x = images_BxHxWxC
    for features in (64, 128):
      x = layers.Conv(features, impl=self.conv_impl, dtype=self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
      x = layers.Dropout(self.dropout_rate, self.axis_name)(
          x, deterministic=not train, segments=segments)
    x = x.reshape(x.shape[0], -1)
    logits = nn.Dense(1, kernel_init=_glorot, dtype=self.dtype)(x)
    return logits[:, 0].astype(jnp.float32)


def make_models(config, axis_name: Optional[str] = None):
  """Builds (generator, discriminator) from an experiment config."""
  impl = layers.resolve_impl(config.conv_impl)
  dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[
      config.compute_dtype]
  generator = Generator(conv_impl=impl, dtype=dtype, axis_name=axis_name)
  discriminator = Discriminator(conv_impl=impl, dtype=dtype,
                                dropout_rate=config.d_dropout,
                                axis_name=axis_name)
  return generator, discriminator
