"""Both convolution implementations compute flax's function, values and grads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import layers

CASES = [  # (ours, flax's, input shape, features)
    (layers.Conv, nn.Conv, (2, 28, 28, 1), 8),
    (layers.Conv, nn.Conv, (2, 14, 14, 16), 8),
    (layers.Conv, nn.Conv, (2, 9, 9, 3), 4),  # odd size: asymmetric padding
    (layers.ConvTranspose, nn.ConvTranspose, (2, 7, 7, 16), 8),
    (layers.ConvTranspose, nn.ConvTranspose, (2, 14, 14, 8), 1),
    (layers.ConvTranspose, nn.ConvTranspose, (2, 5, 5, 3), 2),
]


def _check_against_flax(ours, theirs, shape, features, impls=layers.IMPLS):
  x = jax.random.normal(jax.random.key(0), shape)
  reference = theirs(features, (5, 5), strides=(2, 2), padding="SAME")
  params = reference.init(jax.random.key(1), x)
  # Non-zero biases, so that a dropped bias would show.
  params = jax.tree.map(
      lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  expected = reference.apply(params, x)

  def loss_grad(module):  # compiled whole: op by op, each op compiles alone
    return jax.jit(jax.grad(lambda params, x: jnp.sum(jnp.sin(
        module.apply(params, x))), argnums=(0, 1)))

  grads = {}
  for impl in impls:
    module = ours(features, impl=impl)
    np.testing.assert_allclose(jax.jit(module.apply)(params, x), expected,
                               rtol=1e-5, atol=1e-5)
    grads[impl] = loss_grad(module)(params, x)
  grads["flax"] = loss_grad(reference)(params, x)
  for impl in impls:
    for got, want in zip(jax.tree.leaves(grads[impl]),
                         jax.tree.leaves(grads["flax"])):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ours,theirs,shape,features", CASES)
def test_matches_flax_and_each_other(ours, theirs, shape, features):
  _check_against_flax(ours, theirs, shape, features)


@pytest.mark.parametrize("ours,theirs,shape,features", CASES)
@pytest.mark.parametrize("chunks", [(2, 3), (3, 2)])
def test_hybrid_over_batch_chunks_matches_flax(ours, theirs, shape, features,
                                               chunks):
  """Chunks of 2 and 3 images over a batch of 5 (the last chunk shorter):
  every pass of `hybrid` that runs over chunks of the batch still computes
  flax's values and gradients."""
  with layers.batch_chunks(*chunks):
    _check_against_flax(ours, theirs, (5, *shape[1:]), features, ("hybrid",))


@pytest.mark.parametrize("cls", [layers.Conv, layers.ConvTranspose])
def test_hybrid_runs_its_passes_over_chunks_of_the_batch(cls):
  """The number of convolutions in the forward and backward pass of a batch
  of 40: one per chunk, weight gradients and the other passes each by their
  own chunk size; the module's defaults when not overridden."""
  x = jnp.ones((40, 14, 14, 4))
  module = cls(4, impl="hybrid")
  params = module.init(jax.random.key(0), x)

  def convolutions():
    grad = jax.grad(lambda p, x: jnp.sum(module.apply(p, x) ** 2), (0, 1))
    return str(jax.make_jaxpr(grad)(params, x)).count("conv_general_dilated")

  # forward + input gradient + weight gradient
  passes, weight_grads = (-(-40 // layers.PASS_CHUNK),
                          -(-40 // layers.WEIGHT_GRAD_CHUNK))
  assert convolutions() == passes + passes + weight_grads
  with layers.batch_chunks(None, None):
    assert convolutions() == 3
  with layers.batch_chunks(8, None):
    assert convolutions() == 1 + 1 + 5
  with layers.batch_chunks(None, 16):
    assert convolutions() == 3 + 3 + 1


def test_resolve_impl():
  assert layers.resolve_impl("auto", "cpu") == "hybrid"
  assert layers.resolve_impl("auto", "gpu") == "xla"
  assert layers.resolve_impl("xla") == "xla"
  with pytest.raises(ValueError, match="config.conv_impl='fft'"):
    layers.resolve_impl("fft")
