"""Analytic FLOPs of one training step of the reference DCGAN, from layer shapes.

A multiply-add counts as 2 FLOPs; elementwise work (activations, BatchNorm,
the optimizer) is left out, as it is small next to the convolutions. Backward
passes count what autodiff must compute: weight gradients only for the network
being trained, input gradients wherever a gradient flows further back.
"""

# (name, FLOPs of the forward pass for one image) of each weight layer, input
# to output. Transposed convolution: every input pixel meets every tap.
GENERATOR = (
    ("dense", 2 * 32 * 7 * 7 * 128),
    ("conv_t1", 2 * 7 * 7 * 5 * 5 * 128 * 64),
    ("conv_t2", 2 * 14 * 14 * 5 * 5 * 64 * 1),
)
DISCRIMINATOR = (
    ("conv1", 2 * 14 * 14 * 5 * 5 * 1 * 64),
    ("conv2", 2 * 7 * 7 * 5 * 5 * 64 * 128),
    ("dense", 2 * 7 * 7 * 128 * 1),
)


def _forward(layers):
  return sum(f for _, f in layers)


def _backward(layers, weights: bool):
  """Input gradients of every layer but the first (whose input is data), plus
  weight gradients if `weights`; each costs as much as the forward pass."""
  inputs = sum(f for _, f in layers[1:])
  return inputs + (_forward(layers) if weights else 0)


def step_flops_per_image() -> int:
  """Phase 1: G forward on B; D forward and backward (weights) on 2B.
  Phase 2: G forward and backward (weights) on B; D forward and backward
  (inputs only, D is frozen) on B, its first layer's input gradient included
  since it flows into G."""
  g, d = GENERATOR, DISCRIMINATOR
  phase1 = _forward(g) + 2 * (_forward(d) + _backward(d, weights=True))
  phase2 = (_forward(g) + _backward(g, weights=True) + _forward(d)
            + _forward(d))  # D's input grads, first layer included
  return phase1 + phase2


def step_flops(batch_size: int) -> int:
  return batch_size * step_flops_per_image()
