"""Stacked Fashion-MNIST: a mode-coverage benchmark with 1,000 known modes.

As Stacked MNIST (Metz et al. 2017; used by PacGAN, VEEGAN, R3GAN), with
Fashion-MNIST: each image is three Fashion-MNIST images stacked as the
channels of one 28x28x3 image, and its mode is the triple of their classes
(10 x 10 x 10 = 1,000 modes). A generator's samples are assigned modes by the
shipped Fashion-MNIST classifier, channel by channel; the benchmark reports
how many of the 1,000 modes occur (`modes_covered`) and the KL divergence of
the mode histogram from the uniform one (`mode_kl`, 0 when every mode is
equally frequent).

`config.dataset = "stacked_fashion_mnist"` trains on it. Its splits are made
from Fashion-MNIST's (through `input_pipeline.load`, so from any source) by
drawing three images per example with a fixed seed per split: 60,000
training images (seed 0) and 10,000 test images (seed 1). The labels kept
with the images are the first channel's class; the mode is not a label.

`ganjax.metrics.Evaluator` scores it with the base classifier applied to each
channel: features for FID, KID, precision/recall and density/coverage are the
three channels' features side by side (384-d), and the class metrics are the
first channel's, plus `modes_covered` and `mode_kl`.
"""

import numpy as np

from ganjax import input_pipeline

NAME = "stacked_fashion_mnist"
BASE = "fashion_mnist"
NUM_MODES = 1000
SIZES = {"train": 60000, "test": 10000}
SEEDS = {"train": 0, "test": 1}


def stack(images_NxHxW, labels_N, num: int, seed: int):
  """`num` stacked images (num, H, W, 3) and their modes (num,): channel c
  of image i is images[idx[i, c]] for idx drawn uniformly with `seed`."""
  idx = np.random.default_rng(seed).integers(0, len(labels_N), (num, 3))
  stacked = np.stack([images_NxHxW[idx[:, c]] for c in range(3)], axis=-1)
  return stacked, modes_of(labels_N[idx])


def modes_of(channel_classes_Nx3) -> np.ndarray:
  """The mode of each image from its channels' classes: 100 a + 10 b + c."""
  c = np.asarray(channel_classes_Nx3, np.int64)
  return 100 * c[:, 0] + 10 * c[:, 1] + c[:, 2]


def coverage(modes_N, num_modes: int = NUM_MODES) -> dict:
  """Modes covered (occurring at least once) and KL(histogram || uniform)."""
  counts = np.bincount(np.asarray(modes_N), minlength=num_modes)
  q = counts[counts > 0] / counts.sum()
  return {"modes_covered": int((counts > 0).sum()),
          "mode_kl": float(max(0.0, (q * np.log(q * num_modes)).sum()))}


def _load(split, **kwargs):
  """A stacked split, made from the base dataset's split of the same name."""
  images, labels, base_info = input_pipeline.load(BASE, split, **kwargs)
  stacked, modes = stack(images, labels, SIZES[split], SEEDS[split])
  first = (modes // 100).astype(np.uint8)
  info = {"dataset": NAME, "split": split,
          "origin": f"{base_info['origin']} stacked with seed {SEEDS[split]}",
          "sha256": input_pipeline.content_sha256(stacked, first),
          "verified": base_info["verified"],
          "num_examples": int(stacked.shape[0])}
  return stacked, first, info


SPEC = input_pipeline.register_dataset(input_pipeline.DatasetSpec(
    name=NAME, image_shape=(28, 28, 3), num_classes=10, sizes=SIZES,
    sha256={"train": None, "test": None},
    how_to_get=input_pipeline.SPECS[BASE].how_to_get, derive=_load,
    base=BASE, score_channels=True,
    mode_coverage=lambda classes_Nx3: coverage(modes_of(classes_Nx3))))
