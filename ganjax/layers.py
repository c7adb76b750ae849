"""Convolutions with interchangeable implementations.

`Conv` and `ConvTranspose` hold exactly the parameters of `flax.linen.Conv` and
`flax.linen.ConvTranspose` (kernel HWIO, bias) and compute the same function
(stride s, 'SAME' padding), selected by `impl`:

- "xla": `lax.conv_general_dilated` / `lax.conv_transpose`, XLA's convolution.
  Best on GPU and TPU.
- "matmul": explicit patch extraction (strided slices) and one matmul. The
  transposed convolution is done sub-pixel: each of the s*s output phases is an
  ordinary convolution of the input with a subset of the kernel taps, so no
  FLOPs are spent on the zeros of a dilated input.
- "hybrid": each pass (forward, input gradient, weight gradient) of each layer
  done by whichever of three computations is fast on CPU (see
  `conv_hybrid`); a custom VJP ties them together.

`resolve_impl("auto")` picks "hybrid" on CPU and "xla" elsewhere. Per-layer
timings: `python benchmarks/layer_time.py`.
"""

import contextlib
import contextvars
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMPLS = ("xla", "matmul", "hybrid")
_DIMS = ("NHWC", "HWIO", "NHWC")


def resolve_impl(impl: str, backend: str | None = None) -> str:
  if impl == "auto":
    backend = backend or jax.default_backend()
    return "hybrid" if backend == "cpu" else "xla"
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


def _subpixel_kernel(kernel_KxKxCxF, stride: int):
  """(n, n, C, s*s*F) kernel mapping an n x n input neighbourhood to all s*s
  output phases; taps a phase does not use are zero."""
  k, _, c, f = kernel_KxKxCxF.shape
  offsets, taps = _transpose_taps(k, stride)
  n = len(offsets)
  valid = (taps >= 0).astype(np.float32)
  ty = np.maximum(taps, 0)
  # w_all[ay, dy, ax, dx, c, f] = kernel[taps[ay, dy], taps[ax, dx], c, f].
  w_all = kernel_KxKxCxF[ty[:, :, None, None], ty[None, None, :, :]]
  mask = valid[:, :, None, None] * valid[None, None, :, :]
  w_all = w_all * jnp.asarray(mask, kernel_KxKxCxF.dtype)[..., None, None]
  weights = w_all.transpose(1, 3, 4, 0, 2, 5).reshape(n, n, c,
                                                      stride * stride * f)
  return weights, offsets


def _depth_to_space(y_BxHxWxSSF, stride: int):
  b, h, w, ssf = y_BxHxWxSSF.shape
  f = ssf // (stride * stride)
  y = y_BxHxWxSSF.reshape(b, h, w, stride, stride, f).transpose(0, 1, 3, 2, 4,
                                                                 5)
  return y.reshape(b, h * stride, w * stride, f)


def conv_transpose_matmul(x_BxHxWxC, kernel_KxKxCxF, stride: int,
                          use_xla_conv: bool = False):
  """'SAME' transposed convolution, sub-pixel; equals lax.conv_transpose.

  The s*s output phases are computed together by one stride-1 "convolution"
  over the input's n x n neighbourhoods: explicit patches and a matmul, or
  (use_xla_conv) XLA's stride-1 convolution.
  """
  b, h, w, c = x_BxHxWxC.shape
  weights, offsets = _subpixel_kernel(kernel_KxKxCxF, stride)
  n = len(offsets)
  lo, hi = max(-offsets[0], 0), max(offsets[-1], 0)
  x = jnp.pad(x_BxHxWxC, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  if use_xla_conv:
    y = jax.lax.conv_general_dilated(x, weights, (1, 1), "VALID",
                                     dimension_numbers=_DIMS)
  else:
    shifted = [d + lo for d in offsets]
    patches = _patches(x, shifted, shifted, 1, h, w)
    y = patches @ weights.reshape(n * n * c, -1)
  return _depth_to_space(y, stride)


def _conv_xla(x, kernel, stride):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                      dimension_numbers=_DIMS)


def _conv_transpose_xla(x, kernel, stride):
  return jax.lax.conv_transpose(x, kernel, (stride, stride), "SAME",
                                dimension_numbers=_DIMS)


def _conv_transpose_phased(x, kernel, stride):
  return conv_transpose_matmul(x, kernel, stride, use_xla_conv=True)


def _flip_swap(kernel_KxKxIxO):
  """Spatially flipped kernel with input and output channels swapped; its own
  inverse. For inputs whose size divides by the stride, the transposed
  convolution with kernel W is the adjoint of the strided convolution with
  kernel _flip_swap(W), and the reverse."""
  return jnp.flip(kernel_KxKxIxO, (0, 1)).transpose(0, 1, 3, 2)


# XLA:CPU's convolutions get slower per image as the batch grows, the weight
# gradient most (`python benchmarks/layer_time.py --batch=512 --unchunked`),
# and XLA:CPU runs independent ops side by side on its threads. So the hybrid
# passes run over consecutive chunks of the batch: weight gradients over
# chunks of WEIGHT_GRAD_CHUNK images, summed in order in float32; forward
# passes and input gradients over chunks of PASS_CHUNK images, concatenated.
# Both sizes change the training step's rounding (its 10-step hash); neither
# changes the classifier's features (tested bit-identical). They were chosen
# by the step time at batch 64 to 512 (`benchmarks/step_time.py --chunks=`,
# docs/performance.md); `batch_chunks` overrides them.
WEIGHT_GRAD_CHUNK = 32
PASS_CHUNK = 32
_CHUNKS = contextvars.ContextVar("ganjax_batch_chunks", default=None)


@contextlib.contextmanager
def batch_chunks(weight_grad: int | None, passes: int | None):
  """While tracing inside it, hybrid convolutions use these chunk sizes
  (None: the whole batch, as before there were chunks) instead of
  WEIGHT_GRAD_CHUNK and PASS_CHUNK. Read at trace time: a function traced
  and cached before (a jitted function called again) keeps its chunks."""
  token = _CHUNKS.set((weight_grad, passes))
  try:
    yield
  finally:
    _CHUNKS.reset(token)


def _chunks(size: int, weight_grad: bool):
  """Slices of consecutive chunks of `size` images: of the weight gradients'
  chunk size, or else of the other passes'."""
  sizes = _CHUNKS.get() or (WEIGHT_GRAD_CHUNK, PASS_CHUNK)
  chunk = (sizes[0] if weight_grad else sizes[1]) or size
  return [slice(start, start + chunk) for start in range(0, size, chunk)]


def _over_chunks(fn):
  """fn(x, kernel, stride), computed over chunks of x's batch."""
  def chunked(x, kernel, stride):
    parts = _chunks(x.shape[0], weight_grad=False)
    if len(parts) == 1:
      return fn(x, kernel, stride)
    return jnp.concatenate([fn(x[part], kernel, stride) for part in parts])
  return chunked


def _weight_grad_xla(inputs, cotangent, kernel_shape_dtype, stride):
  """d<conv(inputs, K), cotangent>/dK with XLA's convolution weight gradient,
  summed in float32 over chunks of the batch in order."""
  grads = []
  for part in _chunks(inputs.shape[0], weight_grad=True):
    (grad,) = jax.linear_transpose(
        lambda k, x=inputs[part]: _conv_xla(x, k, stride),
        kernel_shape_dtype)(cotangent[part])
    grads.append(grad)
  if len(grads) == 1:
    return grads[0]
  total = functools.reduce(jnp.add, [g.astype(jnp.float32) for g in grads])
  return total.astype(grads[0].dtype)


# "hybrid": every pass of both layers is one of three computations that are
# fast on CPU (benchmarks/layer_time.py): XLA's strided convolution, XLA's
# strided-convolution weight gradient, and the sub-pixel transposed
# convolution. XLA's own transposed convolution (the input gradient of a
# strided convolution) is about twice as slow, and its weight gradient ten to
# twenty times.
def _custom_vjp(forward, backward):
  """`forward(x, kernel, stride)` whose gradient is `backward(stride, (x,
  kernel), dy) -> (dx, dkernel)` instead of forward's own."""
  op = jax.custom_vjp(forward, nondiff_argnums=(2,))
  op.defvjp(lambda x, kernel, stride: (forward(x, kernel, stride),
                                       (x, kernel)), backward)
  return op


def _conv_hybrid_bwd(stride, residuals, dy):
  x, kernel = residuals
  dx = _over_chunks(_conv_transpose_phased)(dy, _flip_swap(kernel), stride)
  return dx, _weight_grad_xla(x, dy, kernel, stride)


def _conv_transpose_hybrid_bwd(stride, residuals, dy):
  x, kernel = residuals
  flipped = _flip_swap(kernel)
  dx = _over_chunks(_conv_xla)(dy, flipped, stride)
  return dx, _flip_swap(_weight_grad_xla(dy, x, flipped, stride))


conv_hybrid = _custom_vjp(_over_chunks(_conv_xla), _conv_hybrid_bwd)
conv_transpose_hybrid = _custom_vjp(_over_chunks(_conv_transpose_phased),
                                    _conv_transpose_hybrid_bwd)


class _ConvLayer(nn.Module):
  """Kernel (K, K, C_in, features) and bias, as flax's Conv/ConvTranspose."""
  features: int
  kernel_size: int = 5
  stride: int = 2
  impl: str = "xla"
  dtype: Any = None
  kernel_init: Any = nn.initializers.xavier_uniform()

  def apply_kernel(self, x, kernel):
    raise NotImplementedError

  @nn.compact
  def __call__(self, x_BxHxWxC):
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init,
                        (k, k, x_BxHxWxC.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x_BxHxWxC, kernel, bias,
                                              dtype=self.dtype)
    return self.apply_kernel(x, kernel) + bias.reshape(1, 1, 1, -1)


class Conv(_ConvLayer):
  """2-D convolution, 'SAME' padding; parameters as flax.linen.Conv."""

  def apply_kernel(self, x, kernel):
    if self.impl == "matmul":
      return conv_matmul(x, kernel, self.stride)
    divisible = x.shape[1] % self.stride == 0 and x.shape[2] % self.stride == 0
    if self.impl == "hybrid" and divisible:  # its adjoint identity needs this
      return conv_hybrid(x, kernel, self.stride)
    return _conv_xla(x, kernel, self.stride)


class ConvTranspose(_ConvLayer):
  """2-D transposed convolution, 'SAME'; parameters as flax.linen.ConvTranspose."""

  def apply_kernel(self, x, kernel):
    if self.impl == "matmul":
      return conv_transpose_matmul(x, kernel, self.stride)
    if self.impl == "hybrid":
      return conv_transpose_hybrid(x, kernel, self.stride)
    return _conv_transpose_xla(x, kernel, self.stride)


_SEGMENTS = contextvars.ContextVar("ganjax_batch_segments", default=1)


@contextlib.contextmanager
def batch_segments(count: int):
  """While tracing inside it, a mapped (per-device) batch is `count` equal
  parts, each a slice of its own part of the global batch (the step's D pass
  over fakes, then reals); `Dropout` maps its masks accordingly. Read at
  trace time: a Dropout inside a separately cached trace (nn.jit) would not
  see it."""
  token = _SEGMENTS.set(count)
  try:
    yield
  finally:
    _SEGMENTS.reset(token)


class Dropout(nn.Module):
  """Inverted dropout drawing 16 random bits per element, not 32.

  `jax.random.bernoulli` spends one 32-bit word per element, and on CPU the
  generator costs about as much as the discriminator's convolutions (dropout
  was 14% of the reference step). Splitting each word into two 16-bit
  uniforms halves that. The keep probability is round((1 - rate) * 2**16) /
  2**16, within 8e-6 of 1 - rate.

  With `axis_name` (inside pmap over the batch), every device draws the masks
  of the whole global batch from the same key and keeps its own rows, so the
  masks do not depend on the number of devices; on one device this is the
  plain draw. A local batch made of `segments` parts (say fakes, then reals)
  maps each part to its place in the global batch (all fakes, then all
  reals), as on one device; the step says so with `batch_segments`.
  """
  rate: float
  axis_name: Any = None

  @nn.compact
  def __call__(self, x, *, deterministic: bool):
    segments = _SEGMENTS.get()
    if deterministic or self.rate == 0.0:
      return x
    devices = 1 if self.axis_name is None else jax.lax.axis_size(
        self.axis_name)
    n = x.size * devices
    words = jax.random.bits(self.make_rng("dropout"), ((n + 1) // 2,),
                            jnp.uint32)
    halves = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:n]
    if devices > 1:  # global (segments, devices, rows) -> this device's rows
      halves = halves.reshape((segments, devices, -1))
      halves = jax.lax.dynamic_index_in_dim(
          halves, jax.lax.axis_index(self.axis_name), 1, keepdims=False)
    halves = halves.reshape(x.shape)
    threshold = min(max(round((1.0 - self.rate) * 2**16), 1), 2**16 - 1)
    keep = halves < threshold
    scale = jnp.asarray(2**16 / threshold, x.dtype)
    return jnp.where(keep, x * scale, jnp.zeros_like(x))
