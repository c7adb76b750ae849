"""Trains the evaluation classifier of `ganjax.classifier` by its fixed recipe.

  python -m ganjax.train_classifier --dataset=fashion_mnist

writes the packaged weights file (or --out) and prints its SHA-256 and test
accuracy; on CPU the result is bit-identical to the shipped file, which the
command checks. About 12 minutes on 2 CPU cores.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from ganjax import classifier as classifier_lib
from ganjax import input_pipeline

flags.DEFINE_string("dataset", "fashion_mnist", "Dataset to train on.")
flags.DEFINE_string("out", None, "Output file; default the packaged path.")
flags.DEFINE_string("data_dir", None, "IDX directory (default: Debian's).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  dataset = FLAGS.dataset
  out = FLAGS.out or classifier_lib.weights_path(dataset)
  try:
    images, labels, _ = input_pipeline.load(dataset, "train",
                                            data_dir=FLAGS.data_dir)
    test_images, test_labels, _ = input_pipeline.load(dataset, "test",
                                                      data_dir=FLAGS.data_dir)
  except input_pipeline.DatasetError as e:
    raise SystemExit(f"ganjax.train_classifier: error: {e}") from e
  spec = input_pipeline.get_spec(dataset)
  t0 = time.perf_counter()
  params = classifier_lib.train(images, labels, spec.num_classes)
  blob = classifier_lib.serialize(params)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "wb") as f:
    f.write(blob)
  extractor = classifier_lib.FeatureExtractor(params, spec.num_classes)
  acc = classifier_lib.accuracy(extractor, test_images, test_labels)
  digest = classifier_lib.sha256(blob)
  pinned = classifier_lib.WEIGHTS[dataset][1]
  logging.info("Wrote %s (%d bytes, sha256 %s) in %.0f s; test accuracy "
               "%.4f", out, len(blob), digest, time.perf_counter() - t0, acc)
  if pinned is not None:
    logging.info("Pinned sha256 %s: %s", pinned,
                 "identical" if digest == pinned else "DIFFERENT")


if __name__ == "__main__":
  app.run(main)
