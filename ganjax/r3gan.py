"""R3GAN's generator and discriminator (Huang et al., "The GAN is dead; long
live the GAN! A Modern GAN Baseline", NeurIPS 2024), sized for 28x28 and
32x32 images and registered as `config.architecture` "r3gan28" and "r3gan32"
through the public `models.register_architecture`; "r3gan28_full" is
"r3gan28" with residual blocks at 28x28 too (`full_resolution_blocks`).

What is kept from the paper:
- no normalization layers at all;
- residual blocks x + 1x1(act(grouped 3x3(act(1x1(x))))): an inverted
  bottleneck (the 1x1 widens by `expansion`, the 3x3 is grouped in groups of
  `group_size` channels), leaky ReLU 0.2;
- fix-up initialization: the last convolution of every residual branch
  starts at zero, so every block starts as the identity, and the branch's
  other layers are He-initialized and scaled by L^(-1/(2m-2)) = L^(-1/4)
  (L blocks, m = 3 layers per branch);
- transitions between resolutions are a resampling and a 1x1 convolution
  (G: bilinear up-sampling, then 1x1; D: 1x1, then 2x2 average pooling);
- G starts from a dense "basis" at the lowest resolution and ends with a
  linear 1x1 convolution to the image (no tanh; samples are clipped to
  [-1, 1] when converted to pixels); D ends with a depthwise convolution over
  the whole lowest resolution (its basis layer) and a linear logit.

What is scaled down, for a 2-core CPU and images of 28 or 32 pixels: the
paper's CIFAR-10 model starts at 4x4 with widths of hundreds of channels and
several blocks per stage; here each stage has `blocks` blocks (default 1),
none at the image's own resolution unless `full_resolution_blocks` (there
the 3x3 convolutions cost the most), and the widths are 2w, w, w/2, ... from
the lowest resolution up (config `g_width`, `d_width`; 32 gives 64, 32, 16
channels at 7, 14, 28 pixels). 28x28 images use three stages (7, 14, 28),
32x32 four (4, 8, 16, 32).

The bottleneck's 3x3 convolution is grouped when `Block.group_size` > 0 (the
paper's form, 16 channels per group). It is off by default: measured on the
2-core CPU (batch 64, 28x28x64), the gradient of a grouped convolution of 4
groups took 895 ms against 129 ms for the dense one, so on XLA:CPU the dense
form is both faster and wider.
Conditional models take the label as the other architectures do (G: an
embedding concatenated to z; D: a projection term).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax import models

_zeros = nn.initializers.zeros


def _act(x):
  return nn.leaky_relu(x, 0.2)


def _he(scale: float):
  """He initialization for leaky ReLU 0.2, times `scale` (the fix-up)."""
  return nn.initializers.variance_scaling(2.0 / (1 + 0.2 ** 2) * scale ** 2,
                                          "fan_in", "normal")


def _stage_channels(width: int, stages: int) -> list:
  """Channels from the lowest resolution up: 2w, w, w/2, ... (at least 16)."""
  return [max(2 * width >> i, 16) for i in range(stages)]


def _plan(module) -> tuple:
  """(lowest resolution, channels per stage from it up, fix-up scale
  L^(-1/4) for the L blocks the network builds) for a square image side:
  halved while even and above 7 (28: 7, 14, 28)."""
  base, stages = module.image_size, 1
  while base % 2 == 0 and base > 7:
    base, stages = base // 2, stages + 1
  with_blocks = stages if module.full_resolution_blocks else stages - 1
  return (base, _stage_channels(module.width, stages),
          (with_blocks * module.blocks) ** -0.25)


class Block(nn.Module):
  """x + 1x1(act(grouped 3x3(act(1x1(x))))), fix-up initialized."""
  channels: int
  scale: float  # L^(-1/4) for L blocks in the network
  expansion: int = 2
  group_size: int = 0  # channels per group of the 3x3; 0 = one group
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    hidden = self.channels * self.expansion
    conv = lambda features, size, init, groups=1: nn.Conv(
        features, (size, size), padding="SAME", feature_group_count=groups,
        kernel_init=init, dtype=self.dtype)
    h = conv(hidden, 1, _he(self.scale))(x)
    groups = hidden // self.group_size if self.group_size else 1
    h = conv(hidden, 3, _he(self.scale), groups=groups)(_act(h))
    return x + conv(self.channels, 1, _zeros)(_act(h))


def _blocks(x, channels, count, scale, dtype):
  for _ in range(count):
    x = Block(channels, scale, dtype=dtype)(x)
  return x


class Generator(models.ModelOptions):
  """z (B, latent) -> images (B, S, S, channels); S = `image_size`."""
  image_size: int = 28
  blocks: int = 1
  full_resolution_blocks: bool = False  # blocks at the image's resolution

  @nn.compact
  def __call__(self, z_BxZ, labels=None, *, train: bool):
    del train  # no normalization, no dropout: the same in both modes
    base, channels, scale = _plan(self)
    stages = len(channels)
    x = models.with_label(z_BxZ, labels, self.num_classes)
    x = nn.Dense(base * base * channels[0], kernel_init=_he(1.0),
                 dtype=self.dtype)(x).reshape(-1, base, base, channels[0])
    for i, ch in enumerate(channels):
      if i:  # transition: bilinear up-sampling, then 1x1 to this width
        b, h, w, c = x.shape
        x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "linear")
        x = nn.Conv(ch, (1, 1), kernel_init=_he(1.0), dtype=self.dtype)(x)
      if i < stages - 1 or self.full_resolution_blocks:
        x = _blocks(x, ch, self.blocks, scale, self.dtype)
    x = nn.Conv(self.channels, (1, 1), kernel_init=_he(1.0),
                dtype=self.dtype)(x)
    return x.astype(jnp.float32)


class Discriminator(models.DiscriminatorOptions):
  """images (B, S, S, C) -> logits (B,)."""
  image_size: int = 28
  blocks: int = 1
  full_resolution_blocks: bool = False  # blocks at the image's resolution

  @nn.compact
  def __call__(self, images_BxHxWxC, labels=None, *, train: bool):
    base, channels, scale = _plan(self)
    channels = channels[::-1]  # from the image's resolution down
    conv1x1 = lambda x, ch: self.layer(
        nn.Conv(ch, (1, 1), kernel_init=_he(1.0), dtype=self.dtype), x)
    x = conv1x1(images_BxHxWxC.astype(self.dtype), channels[0])
    for i, ch in enumerate(channels):
      if i:  # transition: 1x1 to this width, then 2x2 average pooling
        x = nn.avg_pool(conv1x1(x, ch), (2, 2), (2, 2))
      if i or self.full_resolution_blocks:
        x = _blocks(x, ch, self.blocks, scale, self.dtype)
    # Basis: one filter per channel over the whole base x base map.
    x = self.layer(nn.Conv(channels[-1], (base, base), padding="VALID",
                           feature_group_count=channels[-1],
                           kernel_init=_he(1.0), dtype=self.dtype), _act(x))
    x = self.dropout(x.reshape(x.shape[0], -1), train)
    return self.head(x, labels)


class Generator32(Generator):
  image_size: int = 32


class Discriminator32(Discriminator):
  image_size: int = 32


class GeneratorFull(Generator):
  full_resolution_blocks: bool = True


class DiscriminatorFull(Discriminator):
  full_resolution_blocks: bool = True


models.register_architecture("r3gan28", Generator, Discriminator, (28, 28))
models.register_architecture("r3gan28_full", GeneratorFull, DiscriminatorFull,
                             (28, 28))
models.register_architecture("r3gan32", Generator32, Discriminator32, (32, 32))
