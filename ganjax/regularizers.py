"""Gradient penalties on D: WGAN-GP and R1 (`config.gp_weight`, `r1_weight`).

Both take `d_fn(images) -> logits (B,)`, D with its parameters bound, and
differentiate it w.r.t. its input; the training step then differentiates the
penalty w.r.t. D's parameters (a second-order gradient: every convolution
implementation in `layers` supports it).
"""

import jax
import jax.numpy as jnp


def _input_gradients(d_fn, images):
  """d logit_i / d image_i for every example, flattened to (B, H*W*C)."""
  grads = jax.grad(lambda x: d_fn(x).sum())(images)
  return grads.reshape(grads.shape[0], -1)


def gradient_penalty(d_fn, reals, fakes, eps_B):
  """E[(||grad D(x_hat)||_2 - 1)^2] at x_hat = e * real + (1 - e) * fake,
  with e (B,) drawn from U[0, 1] per example by the caller (Gulrajani et al.
  2017)."""
  eps = eps_B.reshape((-1,) + (1,) * (reals.ndim - 1))
  mixed = eps * reals + (1.0 - eps) * fakes
  norms = jnp.sqrt(jnp.square(_input_gradients(d_fn, mixed)).sum(-1) + 1e-12)
  return jnp.square(norms - 1.0).mean()


def r1_penalty(d_fn, reals):
  """E[||grad D(x_real)||_2^2] / 2 (Mescheder et al. 2018); the step
  multiplies it by config.r1_weight (gamma)."""
  return 0.5 * jnp.square(_input_gradients(d_fn, reals)).sum(-1).mean()
