"""The architectures: the reference DCGAN's shapes and parameter counts,
R3GAN's initialization and construction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import configs
from ganjax import models
from ganjax import r3gan
from tests.conftest import smoke_config


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("impl", ["xla", "matmul"])
def test_parameter_counts_and_shapes(impl):
  generator = models.Generator(conv_impl=impl)
  discriminator = models.Discriminator(conv_impl=impl)
  z = jnp.zeros((3, 32))
  g_vars = generator.init(jax.random.key(0), z, train=False)
  assert _count(g_vars["params"]) == 413_825
  assert _count(g_vars["batch_stats"]) == 384
  images = generator.apply(g_vars, jax.random.normal(jax.random.key(1),
                                                     (3, 32)), train=False)
  assert images.shape == (3, 28, 28, 1)
  assert float(jnp.abs(images).max()) <= 1.0
  d_vars = discriminator.init(jax.random.key(2), images, train=False)
  assert set(d_vars) == {"params"}
  assert _count(d_vars["params"]) == 212_865
  logits = discriminator.apply(d_vars, images, train=False)
  assert logits.shape == (3,)


def test_dropout_only_in_training():
  discriminator = models.Discriminator()
  x = jax.random.normal(jax.random.key(0), (4, 28, 28, 1))
  d_vars = discriminator.init(jax.random.key(1), x, train=False)
  eval_a = discriminator.apply(d_vars, x, train=False)
  eval_b = discriminator.apply(d_vars, x, train=False)
  np.testing.assert_array_equal(eval_a, eval_b)
  train_a = discriminator.apply(d_vars, x, train=True,
                                rngs={"dropout": jax.random.key(2)})
  train_b = discriminator.apply(d_vars, x, train=True,
                                rngs={"dropout": jax.random.key(3)})
  assert not np.allclose(train_a, train_b)


def test_dropout_rate_and_scale():
  x = jnp.ones((200, 1000))
  dropout = models.layers.Dropout(0.4)
  y = dropout.apply({}, x, deterministic=False,
                    rngs={"dropout": jax.random.key(0)})
  kept = np.asarray(y != 0)
  # 200,000 draws: the kept fraction is 0.6 within 5 standard deviations.
  assert abs(kept.mean() - 0.6) < 5 * np.sqrt(0.6 * 0.4 / kept.size)
  np.testing.assert_allclose(np.asarray(y)[kept], 2**16 / 39322, rtol=1e-6)
  other = dropout.apply({}, x, deterministic=False,
                        rngs={"dropout": jax.random.key(1)})
  assert not np.array_equal(kept, np.asarray(other != 0))
  # Neighbouring elements (the two halves of one random word) are independent.
  flat = kept.reshape(-1, 2)
  both = (flat[:, 0] & flat[:, 1]).mean()
  assert abs(both - 0.36) < 5 * np.sqrt(0.36 * 0.64 / flat.shape[0])


def test_r3gan_blocks_start_as_the_identity():
  """Fix-up initialization: each residual branch's last convolution starts
  at zero, so a block maps x to x exactly; its other layers do not."""
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, 32))
  block = r3gan.Block(32, scale=0.5)
  params = block.init(jax.random.key(1), x)
  np.testing.assert_array_equal(block.apply(params, x), x)
  kernels = {"/".join(p.key for p in path): v for path, v in
             jax.tree_util.tree_leaves_with_path(params) if path[-1].key ==
             "kernel"}
  assert sorted(k for k, v in kernels.items() if not np.any(v)) == [
      "params/Conv_2/kernel"]


@pytest.mark.parametrize("blocks,full_resolution,num_blocks", [
    (1, False, 2), (2, False, 4), (1, True, 3)])
def test_r3gan_fixup_scale_counts_the_blocks_built(blocks, full_resolution,
                                                   num_blocks):
  """The branches' first layers are He-initialized times L^(-1/4), L the
  number of blocks G actually has (28 px: stages at 7 and 14, and 28 with
  full-resolution blocks): their kernels' spread, over 2,048 weights or
  more each (the estimate's standard deviation 1.6% or less), is within 5%
  of it; one block more or less in L moves it by 7% or more (5 blocks: 5.5%).
  The draws are fixed by the key."""
  g = r3gan.Generator(width=64, blocks=blocks,
                      full_resolution_blocks=full_resolution)
  params = g.init(jax.random.key(0), jnp.zeros((1, 32)), train=False)
  found = [v for path, v in jax.tree_util.tree_leaves_with_path(params)
           if path[-1].key == "kernel" and path[-2].key == "Conv_0"
           and path[-3].key.startswith("Block")]
  assert len(found) == num_blocks
  for kernel in found:
    he = np.sqrt(2 / (1 + 0.2 ** 2) / kernel.shape[2])  # fan-in of a 1x1
    np.testing.assert_allclose(np.std(kernel) / he, num_blocks ** -0.25,
                               rtol=0.05)


@pytest.mark.parametrize("name,dataset,shape", [
    ("r3gan28", "fashion_mnist", (28, 28, 1)),
    ("r3gan28_full", "fashion_mnist", (28, 28, 1)),
    ("r3gan32", "cifar10", (32, 32, 3))])
@pytest.mark.parametrize("conditional", [False, True])
def test_r3gan_builds_from_a_config(name, dataset, shape, conditional):
  """Registered through models.register_architecture, built by make_models
  as any architecture, conditional too."""
  config = smoke_config(architecture=name, dataset=dataset,
                        conditional=conditional,
                        g_width=16, d_width=16, d_dropout=0.0)
  configs.validate(config, 1)
  generator, discriminator = models.make_models(config)
  labels = (jnp.array([0, 9]),) if conditional else ()
  z = jax.random.normal(jax.random.key(0), (2, config.latent_dim))
  g_vars = generator.init(jax.random.key(1), z, *labels, train=False)
  images = generator.apply(g_vars, z, *labels, train=True)
  assert images.shape == (2, *shape)
  d_vars = discriminator.init(jax.random.key(2), images, *labels, train=False)
  logits = discriminator.apply(d_vars, images, *labels, train=True)
  assert logits.shape == (2,) and np.all(np.isfinite(logits))
  assert ("projection" in d_vars["params"]) == conditional
  # Blocks at 7 and 14 pixels (28 px), at 4, 8 and 16 (32 px); the _full
  # variant adds one at 28.
  blocks = {"r3gan28": 2, "r3gan28_full": 3, "r3gan32": 3}[name]
  for variables in (g_vars, d_vars):
    assert sum(k.startswith("Block") for k in variables["params"]) == blocks
