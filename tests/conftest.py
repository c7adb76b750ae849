"""Test set-up: 4 fake CPU devices, strict numpy rank promotion, and one
persistent compilation cache for the whole run.

The cache is a fresh directory per `pytest` run, made by the first process
that loads this file (the xdist controller; it removes the directory when it
exits) and handed through the environment to its workers and to the ganjax
commands the tests start, so a program that several tests (or processes)
build is compiled once per run and no run reads another's executables.
GANJAX_TEST_CACHE=DIR keeps the cache in DIR across runs;
GANJAX_TEST_CACHE=off compiles everything afresh. (When one
process held the whole suite's programs, reading an executable back crashed
once: that was the mapping limit `_release_compiled_programs` works around.)"""

import atexit
import gc
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_numpy_rank_promotion", "raise")
if "GANJAX_TEST_CACHE" not in os.environ:
  os.environ["GANJAX_TEST_CACHE"] = tempfile.mkdtemp(prefix="ganjax-test-cache-")
  atexit.register(shutil.rmtree, os.environ["GANJAX_TEST_CACHE"], True)
CACHE_DIR = os.environ["GANJAX_TEST_CACHE"]
CACHE_DIR = None if CACHE_DIR == "off" else os.path.abspath(CACHE_DIR)
if CACHE_DIR:
  jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Frees each test module's compiled programs when it ends. XLA:CPU maps
  memory for every executable it keeps; in one process the whole suite's
  programs exceed Linux's default limit of 65,530 mappings
  (vm.max_map_count), and compiling then aborts or segfaults."""
  yield
  from ganjax import sampling  # pylint: disable=g-import-not-at-top
  sampling.inference_fn.cache_clear()  # holds jitted generators
  jax.clear_caches()
  gc.collect()


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env():
  """The environment for a ganjax command run by a test: this one (4 fake
  devices), plus the compilation cache when GANJAX_TEST_CACHE names one."""
  if not CACHE_DIR:
    return dict(os.environ)
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=CACHE_DIR,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


@pytest.fixture(scope="session")
def fashion_train():
  from ganjax import input_pipeline  # pylint: disable=g-import-not-at-top
  images, labels, _ = input_pipeline.load("fashion_mnist", "train",
                                          source="idx")
  return images, labels


def smoke_config(**overrides):
  from ganjax import recipes  # pylint: disable=g-import-not-at-top
  config = recipes.load(os.path.join(REPO, "experiments", "fashion.py:smoke"))
  config.update(overrides)
  return config


def leaves(state):
  """The arrays of a state (or any tree) as numpy arrays, in tree order."""
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def assert_identical(a, b):
  """Bit-identical trees: same structure, same bits in every array."""
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
