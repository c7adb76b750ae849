"""Datasets as whole uint8 arrays: Fashion-MNIST, MNIST and CIFAR-10 from TFDS,
IDX files or .npz files.

Both sources return identical arrays, checked against a SHA-256 of the decoded
contents (images bytes then labels bytes, C order), so a run records exactly
which data it trained on. TFDS stores examples in its own shuffled order and
keeps no index, so every split is returned in one canonical order, whichever
source it came from: sorted by (label, image bytes). Training draws its own
seeded permutation of it each epoch. The training loop puts the whole training set on the
devices once (see `trainer.py`); nothing here runs per step.
"""

import dataclasses
import gzip
import hashlib
import os
from typing import Callable, Optional

import numpy as np

from ganjax import registry

DEBIAN_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  name: str
  image_shape: tuple
  num_classes: int
  sizes: dict  # split -> number of examples
  # SHA-256 of images.tobytes() + labels.tobytes() per split, or None when no
  # reference copy was reachable to pin it (the loader then checks structure).
  sha256: dict
  how_to_get: str
  # A dataset made from another: derive(split, source=, data_dir=,
  # tfds_data_dir=) -> (images, labels, info), and the dataset whose
  # classifier scores it (see ganjax/stacked.py).
  derive: Optional[Callable] = None
  base: Optional[str] = None
  # Scored channel by channel (each channel an image of `base`), and what
  # the channels' predicted classes (N, channels) add to the metrics.
  score_channels: bool = False
  mode_coverage: Optional[Callable] = None


SPECS = {
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        sizes={"train": 60000, "test": 10000},
        sha256={
            "train": "79201d4ecba12f2d8f1de29151d7d537ca2dbddbc76d51c02bfc4777eae2c498",
            "test": "ed05b78f144e7c1beea5e2714172fb46d86110dbee4edb409f957d0f66870238",
        },
        how_to_get=(
            "Install Debian's copy with `apt-get install dataset-fashion-mnist` "
            "(IDX files in /usr/share/datasets/fashion-mnist), or set "
            "config.data_dir to a directory holding the four "
            "*-idx?-ubyte[.gz] files, or prepare the TFDS dataset "
            "(`python -m ganjax.prepare_tfds`, needs the [tfds] extra)."),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        image_shape=(32, 32, 3),
        num_classes=10,
        sizes={"train": 50000, "test": 10000},
        sha256={"train": None, "test": None},
        how_to_get=(
            "Prepare CIFAR-10 with TFDS on a machine that can download it "
            "(`tfds build cifar10`, needs tensorflow) and copy its data "
            "directory here (config.tfds_data_dir), or set "
            "config.data_source='npz' and config.data_dir to a directory "
            "holding train.npz and test.npz (uint8 `images` (N, 32, 32, 3), "
            "`labels` (N,))."),
    ),
    "mnist": DatasetSpec(
        name="mnist",
        image_shape=(28, 28, 1),
        num_classes=10,
        sizes={"train": 60000, "test": 10000},
        sha256={"train": None, "test": None},
        how_to_get=(
            "Set config.data_dir to a directory holding the four MNIST "
            "*-idx?-ubyte[.gz] files, or prepare MNIST with TFDS "
            "(`python -m ganjax.prepare_tfds --dataset=mnist`)."),
    ),
}

SOURCES = ("auto", "idx", "tfds", "npz")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
  """Makes a dataset available as `config.dataset=spec.name`, read from
  TFDS, IDX files or .npz files (`config.data_source`, `config.data_dir`)."""
  registry.check_new(SPECS, spec.name, spec, "dataset", key=id)
  SPECS[spec.name] = spec
  return spec

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DatasetError(RuntimeError):
  """A dataset is missing, truncated or does not match its checksum."""


def get_spec(name: str) -> DatasetSpec:
  if name not in SPECS:
    raise ValueError(
        f"config.dataset={name!r} is not a known dataset; valid names: "
        f"{sorted(SPECS)}.")
  return SPECS[name]


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(images, np.uint8).tobytes())
  digest.update(np.ascontiguousarray(labels, np.uint8).tobytes())
  return digest.hexdigest()


def _find_idx_file(directory: str, stem: str) -> str:
  for candidate in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz",
                    stem.replace("-idx", ".idx")):
    path = os.path.join(directory, candidate)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(os.path.join(directory, stem + ".gz"))


def _read_idx(path: str, expected_ndim: int) -> np.ndarray:
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DatasetError(f"Cannot read IDX file {path}: {e}. The file is "
                       "damaged or truncated; reinstall or re-download it.")
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise DatasetError(f"{path} is not an IDX file of uint8 values.")
  ndim = raw[3]
  if ndim != expected_ndim:
    raise DatasetError(f"{path} has {ndim} dimensions, expected "
                       f"{expected_ndim}.")
  header = 4 + 4 * ndim
  shape = tuple(int(d) for d in np.frombuffer(raw[4:header], ">u4"))
  count = int(np.prod(shape))
  if len(raw) != header + count:
    raise DatasetError(
        f"{path} is truncated or padded: header says shape {shape} "
        f"({header + count} bytes) but the file decodes to {len(raw)} bytes.")
  return np.frombuffer(raw, np.uint8, count, header).reshape(shape)


def load_idx(directory: str, split: str):
  """Reads one split from the four standard IDX files in `directory`."""
  image_stem, label_stem = IDX_FILES[split]
  images = _read_idx(_find_idx_file(directory, image_stem), 3)
  labels = _read_idx(_find_idx_file(directory, label_stem), 1)
  return images, labels


def load_npz(directory: str, split: str):
  """Reads `directory/<split>.npz` (uint8 `images`, integer `labels`): any
  data in a dataset's shape, e.g. a copy made elsewhere, or test data."""
  path = os.path.join(directory, f"{split}.npz")
  try:
    with np.load(path) as f:
      return f["images"], f["labels"].astype(np.uint8)
  except KeyError as e:
    raise DatasetError(f"{path} has no array {e}; it needs uint8 `images` "
                       "and integer `labels`.") from e
  except (OSError, ValueError, EOFError) as e:
    if not os.path.exists(path):
      raise FileNotFoundError(path) from e
    raise DatasetError(f"Cannot read {path}: {e}. The file is damaged.") from e


def _stored_shape(spec) -> tuple:
  """A split's image shape as loaded: (H, W) for one channel, else (H, W, C)."""
  return spec.image_shape[:2] if spec.image_shape[2] == 1 else spec.image_shape


def load_tfds(name: str, split: str, data_dir: Optional[str]):
  """Reads a prepared TFDS dataset (array_record) without TensorFlow."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    raise FileNotFoundError(f"TFDS {name} is not prepared in "
                            f"{builder.data_dir}")
  source = builder.as_data_source(split=split)
  n = len(source)
  shape = _stored_shape(get_spec(name))
  images = np.empty((n, *shape), np.uint8)
  labels = np.empty((n,), np.uint8)
  for i, example in enumerate(source.__getitems__(range(n))):
    images[i] = np.asarray(example["image"]).reshape(shape)
    labels[i] = example["label"]
  return images, labels


def tfds_available(name: str, data_dir: Optional[str]) -> bool:
  """Whether a prepared TFDS copy exists (checked without importing TFDS when
  its directory is absent)."""
  root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")
  if not os.path.isdir(os.path.join(root, name)):
    return False
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  try:
    return tfds.builder(name, data_dir=data_dir).is_prepared()
  except Exception:  # pylint: disable=broad-except
    return False


def load(name: str, split: str, *, source: str = "auto",
         data_dir: Optional[str] = None, tfds_data_dir: Optional[str] = None):
  """Loads a whole split as uint8 arrays `(images_NxHxW, labels_N)`.

  Args:
    name: a key of SPECS.
    split: "train" or "test".
    source: "tfds", "idx", "npz" or "auto" (TFDS when a prepared copy exists,
      else the IDX files).
    data_dir: directory of IDX files (default: Debian's package location) or
      of train.npz/test.npz. An .npz split may have any number of examples;
      its checksum is recorded, not checked.
    tfds_data_dir: TFDS data directory; None means TFDS' default.

  Returns:
    images (N, H, W) (one channel) or (N, H, W, C) uint8, labels (N,) uint8,
    and a dict describing where the data came from and its content checksum.

  Raises:
    DatasetError: the data is missing, damaged or fails its checksum; the
      message says how to get it.
  """
  spec = get_spec(name)
  if split not in spec.sizes:
    raise ValueError(f"split={split!r} is not one of {sorted(spec.sizes)}.")
  if source not in SOURCES:
    raise ValueError(f"config.data_source={source!r} is not one of "
                     f"{list(SOURCES)}.")
  if spec.derive is not None:
    return spec.derive(split, source=source, data_dir=data_dir,
                       tfds_data_dir=tfds_data_dir)
  if source == "auto":
    source = "tfds" if tfds_available(name, tfds_data_dir) else "idx"
  if source == "tfds":
    try:
      images, labels = load_tfds(name, split, tfds_data_dir)
    except (ImportError, FileNotFoundError) as e:
      raise DatasetError(f"TFDS copy of {name} is not available ({e}). "
                         + spec.how_to_get) from e
    origin = f"tfds:{tfds_data_dir or 'default'}"
  elif source == "npz":
    if not data_dir:
      raise DatasetError("config.data_source='npz' needs config.data_dir, the "
                         "directory of train.npz and test.npz.")
    try:
      images, labels = load_npz(data_dir, split)
    except FileNotFoundError as e:
      raise DatasetError(f"{name} {split} split not found: missing file "
                         f"{e.args[0]}. " + spec.how_to_get) from e
    origin = f"npz:{os.path.abspath(data_dir)}"
  else:
    directory = data_dir or DEBIAN_DIRS.get(name)
    if directory is None:
      raise DatasetError(f"No directory of IDX files is known for {name}. "
                         + spec.how_to_get)
    try:
      images, labels = load_idx(directory, split)
    except FileNotFoundError as e:
      raise DatasetError(f"{name} {split} split not found: missing file "
                         f"{e.args[0]}. " + spec.how_to_get) from e
    origin = f"idx:{os.path.abspath(directory)}"
  _check(spec, split, images, labels, origin, any_size=source == "npz")
  images, labels = canonical_order(images, labels)
  digest = content_sha256(images, labels)
  expected = None if source == "npz" else spec.sha256[split]
  if expected is not None and digest != expected:
    raise DatasetError(
        f"{name} {split} from {origin} fails its checksum: contents hash to "
        f"{digest}, expected {expected}. The files are damaged or are not "
        f"{name}. " + spec.how_to_get)
  info = {"dataset": name, "split": split, "origin": origin,
          "sha256": digest, "verified": expected is not None,
          "num_examples": int(images.shape[0])}
  return images, labels, info


def canonical_order(images, labels):
  """Sorts examples by (label, image bytes): the same order from any source."""
  rows = np.concatenate([labels[:, None], images.reshape(len(labels), -1)],
                        axis=1)
  keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1])))
  order = np.argsort(keys[:, 0], kind="stable")
  return images[order], labels[order]


def _check(spec, split, images, labels, origin, any_size=False):
  count = len(labels) if any_size else spec.sizes[split]
  expected = (count, *_stored_shape(spec))
  if images.shape != expected or labels.shape != expected[:1]:
    raise DatasetError(
        f"{spec.name} {split} from {origin} has images {images.shape} and "
        f"labels {labels.shape}; expected {expected} and {expected[:1]}. The "
        "files are truncated or belong to another dataset. " + spec.how_to_get)
  if labels.max() >= spec.num_classes:
    raise DatasetError(f"{spec.name} {split} from {origin} has label "
                       f"{labels.max()} >= {spec.num_classes}.")


def to_model_range(images_uint8):
  """uint8 [0, 255] -> float in [-1, 1], works on numpy and jax arrays."""
  return images_uint8.astype("float32") / 127.5 - 1.0


# Made from Fashion-MNIST; registered as a user's dataset would be.
from ganjax import stacked  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import
