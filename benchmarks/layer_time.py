"""Per-layer cost of the DCGAN's convolutions, forward and each gradient.

Shows where a training step's time goes, for each convolution implementation:

  python benchmarks/layer_time.py --batch=256 --impls=xla,matmul
  python benchmarks/layer_time.py --batch=512 --impls=hybrid [--unchunked]
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from ganjax import layers  # pylint: disable=g-import-not-at-top,wrong-import-position

# (name, module class, input shape without batch, features)
LAYERS = (
    ("D conv1 28x28x1->14x14x64", layers.Conv, (28, 28, 1), 64),
    ("D conv2 14x14x64->7x7x128", layers.Conv, (14, 14, 64), 128),
    ("G convT1 7x7x128->14x14x64", layers.ConvTranspose, (7, 7, 128), 64),
    ("G convT2 14x14x64->28x28x1", layers.ConvTranspose, (14, 14, 64), 1),
)


def _median_ms(fn, *args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - t) * 1e3)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--impls", default="xla,matmul")
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--unchunked", action="store_true",
                      help="hybrid: every pass over the whole batch, not "
                      "over chunks of it (layers.batch_chunks)")
  args = parser.parse_args()
  chunks = (layers.batch_chunks(None, None) if args.unchunked
            else contextlib.nullcontext())
  with chunks:
    print(f"{'layer':<30}{'impl':>8}{'fwd ms':>9}{'d/dw ms':>9}{'d/dx ms':>9}")
    for name, cls, shape, features in LAYERS:
      x = jax.random.normal(jax.random.key(0), (args.batch, *shape))
      for impl in args.impls.split(","):
        module = cls(features, impl=impl)
        params = module.init(jax.random.key(1), x)
        fwd = jax.jit(module.apply)
        loss = lambda p, x, m=module: jnp.sum(m.apply(p, x) ** 2)
        dw = jax.jit(jax.grad(loss, argnums=0))
        dx = jax.jit(jax.grad(loss, argnums=1))
        print(f"{name:<30}{impl:>8}"
              f"{_median_ms(fwd, params, x, repeats=args.repeats):>9.1f}"
              f"{_median_ms(dw, params, x, repeats=args.repeats):>9.1f}"
              f"{_median_ms(dx, params, x, repeats=args.repeats):>9.1f}",
              flush=True)


if __name__ == "__main__":
  main()
