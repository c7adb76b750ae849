"""Test set-up: 4 fake CPU devices, strict numpy rank promotion, and a
persistent compilation cache so that the suite compiles each step only once."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_numpy_rank_promotion", "raise")
CACHE_DIR = os.environ.get("GANJAX_TEST_CACHE", os.path.join(
    tempfile.gettempdir(), "ganjax-test-jax-cache"))
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env():
  """The environment for a ganjax command run by a test: this one (4 fake
  devices) plus the shared compilation cache, so it compiles nothing twice."""
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


@pytest.fixture(scope="session")
def fashion_train():
  from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top
  images, labels, _ = input_pipeline.load("fashion_mnist", "train",
                                          source="idx")
  return images, labels


def smoke_config(**overrides):
  from experiments import fashion  # pylint: disable=g-import-not-at-top
  config = fashion.get_config("smoke")
  config.update(overrides)
  return config


def leaves(state):
  """The arrays of a state (or any tree) as numpy arrays, in tree order."""
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def assert_identical(a, b):
  """Bit-identical trees: same structure, same bits in every array."""
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
