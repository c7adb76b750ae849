"""Dataset loading: real Fashion-MNIST, both sources, and damaged files."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from ganjax import input_pipeline
from tests.conftest import REPO

DEBIAN = input_pipeline.DEBIAN_DIRS["fashion_mnist"]


def _write_idx(path, array, compress=False):
  header = bytes([0, 0, 8, array.ndim]) + np.asarray(
      array.shape, ">u4").tobytes()
  opener = gzip.open if compress else open
  with opener(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def test_real_fashion_mnist_is_verified():
  for split, n in (("train", 60000), ("test", 10000)):
    images, labels, info = input_pipeline.load("fashion_mnist", split,
                                               source="idx")
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert info["verified"] and info["sha256"] == (
        input_pipeline.SPECS["fashion_mnist"].sha256[split])
    np.testing.assert_array_equal(np.bincount(labels), [n // 10] * 10)


def test_idx_round_trip_of_self_made_files(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, (5,), dtype=np.uint8)
  _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images, compress=True)
  _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
  got_images, got_labels = input_pipeline.load_idx(str(tmp_path), "train")
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)


def test_truncated_file_is_named(tmp_path):
  images = np.zeros((5, 28, 28), np.uint8)
  _write_idx(tmp_path / "train-images-idx3-ubyte", images)
  _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
  path = tmp_path / "train-images-idx3-ubyte"
  path.write_bytes(path.read_bytes()[:-100])
  with pytest.raises(input_pipeline.DatasetError,
                     match=r"train-images-idx3-ubyte is truncated"):
    input_pipeline.load_idx(str(tmp_path), "train")


def test_damaged_gzip_is_named(tmp_path):
  src = os.path.join(DEBIAN, "t10k-images-idx3-ubyte.gz")
  with open(src, "rb") as f:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(f.read()[:50000])
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(10, np.uint8))
  with pytest.raises(input_pipeline.DatasetError,
                     match=r"t10k-images-idx3-ubyte.gz.*damaged or truncated"):
    input_pipeline.load("fashion_mnist", "test", source="idx",
                        data_dir=str(tmp_path))


def test_altered_contents_fail_the_checksum(tmp_path):
  images, labels = input_pipeline.load_idx(DEBIAN, "test")
  images = images.copy()
  images[1234, 5, 6] ^= 1  # one bit
  _write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
  with pytest.raises(input_pipeline.DatasetError, match="fails its checksum"):
    input_pipeline.load("fashion_mnist", "test", source="idx",
                        data_dir=str(tmp_path))


def test_wrong_sizes_are_refused(tmp_path):
  _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((7, 28, 28),
                                                           np.uint8))
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8))
  with pytest.raises(input_pipeline.DatasetError,
                     match=r"has images \(7, 28, 28\).*expected \(10000"):
    input_pipeline.load("fashion_mnist", "test", source="idx",
                        data_dir=str(tmp_path))


def test_canonical_order_is_source_independent():
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, (50,), dtype=np.uint8)
  perm = rng.permutation(50)
  a = input_pipeline.canonical_order(images, labels)
  b = input_pipeline.canonical_order(images[perm], labels[perm])
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert np.all(np.diff(a[1].astype(int)) >= 0)


def test_tfds_and_idx_give_identical_arrays(tmp_path):
  """Prepares TFDS Fashion-MNIST from the local files (needs TensorFlow, as
  TFDS preparation does), then reads it back without TensorFlow."""
  tfds_dir = str(tmp_path / "tfds")
  subprocess.run([sys.executable, "-m", "ganjax.prepare_tfds",
                  "--dataset=fashion_mnist", f"--tfds_data_dir={tfds_dir}"],
                 cwd=REPO, check=True, capture_output=True, timeout=600)
  assert input_pipeline.tfds_available("fashion_mnist", tfds_dir)
  for split in ("test", "train"):
    from_tfds = input_pipeline.load("fashion_mnist", split, source="auto",
                                    tfds_data_dir=tfds_dir)
    from_idx = input_pipeline.load("fashion_mnist", split, source="idx")
    assert from_tfds[2]["origin"].startswith("tfds:")
    assert from_tfds[2]["sha256"] == from_idx[2]["sha256"]
    np.testing.assert_array_equal(from_tfds[0], from_idx[0])
    np.testing.assert_array_equal(from_tfds[1], from_idx[1])


def test_mnist_from_a_named_directory(tmp_path):
  """MNIST loads the same way from IDX files in config.data_dir. No MNIST copy
  is reachable here, so its checksum is not pinned: the load is marked
  unverified and the content hash is still recorded."""
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)
  labels = rng.integers(0, 10, (10000,), dtype=np.uint8)
  _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, compress=True)
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
  got_images, got_labels, info = input_pipeline.load(
      "mnist", "test", source="idx", data_dir=str(tmp_path))
  assert not info["verified"]
  assert info["sha256"] == input_pipeline.content_sha256(got_images,
                                                         got_labels)
  want = input_pipeline.canonical_order(images, labels)
  np.testing.assert_array_equal(got_images, want[0])
  np.testing.assert_array_equal(got_labels, want[1])
