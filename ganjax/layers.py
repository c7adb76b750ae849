"""Convolutions with two interchangeable implementations.

`Conv` and `ConvTranspose` hold exactly the parameters of `flax.linen.Conv` and
`flax.linen.ConvTranspose` (kernel HWIO, bias) and compute the same function
(stride s, 'SAME' padding), selected by `impl`:

- "xla": `lax.conv_general_dilated` / `lax.conv_transpose`, XLA's convolution.
  Best on GPU and TPU.
- "matmul": explicit patch extraction (strided slices) and one matmul. XLA's CPU
  convolutions, and above all their kernel gradients, are several times slower
  than a matmul of the same FLOPs on CPU (see the benchmarks). The transposed
  convolution is done sub-pixel: each of the s*s output phases is an ordinary
  convolution of the input with a subset of the kernel taps, so no FLOPs are
  spent on the zeros of a dilated input.

`resolve_impl("auto")` picks "matmul" on CPU and "xla" elsewhere.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMPLS = ("xla", "matmul")
_DIMS = ("NHWC", "HWIO", "NHWC")


def resolve_impl(impl: str, backend: str | None = None) -> str:
  if impl == "auto":
    backend = backend or jax.default_backend()
    return "matmul" if backend == "cpu" else "xla"
  if impl not in IMPLS:
    raise ValueError(f"config.conv_impl={impl!r} is not one of "
                     f"{['auto', *IMPLS]}.")
  return impl


def _same_pads(size: int, kernel: int, stride: int):
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return out, total // 2, total - total // 2


def _patches(x_BxHxWxC, offsets_y, offsets_x, stride, out_h, out_w):
  """Stacks x[:, s*i + dy, s*j + dx, :] over the offsets on the channel axis."""
  cols = []
  for dy in offsets_y:
    for dx in offsets_x:
      cols.append(jax.lax.slice(
          x_BxHxWxC, (0, dy, dx, 0),
          (x_BxHxWxC.shape[0], dy + stride * (out_h - 1) + 1,
           dx + stride * (out_w - 1) + 1, x_BxHxWxC.shape[3]),
          (1, stride, stride, 1)))
  return jnp.concatenate(cols, axis=-1)


def conv_matmul(x_BxHxWxC, kernel_KxKxCxF, stride: int):
  """'SAME' strided convolution as patches @ kernel; equals lax.conv."""
  k = kernel_KxKxCxF.shape[0]
  _, h, w, c = x_BxHxWxC.shape
  out_h, lo_h, hi_h = _same_pads(h, k, stride)
  out_w, lo_w, hi_w = _same_pads(w, k, stride)
  x = jnp.pad(x_BxHxWxC, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
  patches = _patches(x, range(k), range(k), stride, out_h, out_w)
  return patches @ kernel_KxKxCxF.reshape(k * k * c, -1)


def _transpose_taps(kernel: int, stride: int):
  """For lax.conv_transpose(..., 'SAME'): per output phase, which input offset
  each kernel tap reads.

  Output o = s*i + a reads input i + d through tap t = s*d + pad_lo - a.
  Returns the input offsets d (sorted) and an int array taps[a, d_index] that
  holds t, or -1 where phase a uses no tap at that offset.
  """
  pad_len = kernel + stride - 2
  pad_lo = kernel - 1 if stride > kernel - 1 else -(-pad_len // 2)
  pairs = [(a, (a + t - pad_lo) // stride, t)
           for a in range(stride) for t in range(kernel)
           if (a + t - pad_lo) % stride == 0]
  offsets = sorted({d for _, d, _ in pairs})
  taps = -np.ones((stride, len(offsets)), np.int64)
  for a, d, t in pairs:
    taps[a, offsets.index(d)] = t
  return offsets, taps


def conv_transpose_matmul(x_BxHxWxC, kernel_KxKxCxF, stride: int):
  """'SAME' transposed convolution, sub-pixel; equals lax.conv_transpose."""
  k, _, c, f = kernel_KxKxCxF.shape
  b, h, w, _ = x_BxHxWxC.shape
  offsets, taps = _transpose_taps(k, stride)
  lo, hi = max(-offsets[0], 0), max(offsets[-1], 0)
  x = jnp.pad(x_BxHxWxC, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  shifted = [d + lo for d in offsets]
  patches = _patches(x, shifted, shifted, 1, h, w)
  # weights[dy, dx, c, ay, ax, f] = kernel[taps[ay, dy], taps[ax, dx], c, f].
  n = len(offsets)
  valid = (taps >= 0).astype(np.float32)
  ty = np.maximum(taps, 0)
  w_all = kernel_KxKxCxF[ty[:, :, None, None], ty[None, None, :, :]]
  mask = valid[:, :, None, None] * valid[None, None, :, :]
  w_all = w_all * jnp.asarray(mask, kernel_KxKxCxF.dtype)[..., None, None]
  # w_all axes: (ay, dy, ax, dx, c, f) -> (dy, dx, c, ay, ax, f).
  weights = w_all.transpose(1, 3, 4, 0, 2, 5).reshape(n * n * c,
                                                       stride * stride * f)
  y = patches @ weights
  y = y.reshape(b, h, w, stride, stride, f).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, h * stride, w * stride, f)


class Conv(nn.Module):
  """2-D convolution, 'SAME' padding; parameters as flax.linen.Conv."""
  features: int
  kernel_size: int = 5
  stride: int = 2
  impl: str = "xla"
  dtype: Any = None
  kernel_init: Any = nn.initializers.xavier_uniform()

  @nn.compact
  def __call__(self, x_BxHxWxC):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init,
                        (k, k, x_BxHxWxC.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x_BxHxWxC, kernel, bias,
                                              dtype=self.dtype)
    if self.impl == "matmul":
      y = conv_matmul(x, kernel, self.stride)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, (self.stride, self.stride), "SAME",
          dimension_numbers=_DIMS)
    return y + bias.reshape(1, 1, 1, -1)


class ConvTranspose(nn.Module):
  """2-D transposed convolution, 'SAME'; parameters as flax.linen.ConvTranspose."""
  features: int
  kernel_size: int = 5
  stride: int = 2
  impl: str = "xla"
  dtype: Any = None
  kernel_init: Any = nn.initializers.xavier_uniform()

  @nn.compact
  def __call__(self, x_BxHxWxC):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init,
                        (k, k, x_BxHxWxC.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x_BxHxWxC, kernel, bias,
                                              dtype=self.dtype)
    if self.impl == "matmul":
      y = conv_transpose_matmul(x, kernel, self.stride)
    else:
      y = jax.lax.conv_transpose(x, kernel, (self.stride, self.stride), "SAME",
                                 dimension_numbers=_DIMS)
    return y + bias.reshape(1, 1, 1, -1)
