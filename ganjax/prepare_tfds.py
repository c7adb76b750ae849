"""Prepares the TFDS Fashion-MNIST (or MNIST) dataset from local IDX files.

TFDS' own builders download from the internet and check the checksums of the
original .gz files; Debian re-compressed its copy, so those checks would fail
even though the contents are the originals. This command feeds TFDS' builder
the decoded local arrays instead (after ganjax's content checksum), producing
the standard prepared dataset (array_record) that `tfds.builder(name)` reads.

Preparing needs TensorFlow (`pip install -e .[tfds]`); reading does not.

  python -m ganjax.prepare_tfds --dataset=fashion_mnist --tfds_data_dir=DIR \
      [--idx_dir=/usr/share/datasets/fashion-mnist]
"""

from absl import app
from absl import flags
from absl import logging

from ganjax import input_pipeline

flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist or mnist.")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir; default TFDS'.")
flags.DEFINE_string("idx_dir", None, "Directory of the four IDX files; "
                    "default Debian's location.")
FLAGS = flags.FLAGS


def prepare(dataset: str, tfds_data_dir=None, idx_dir=None) -> str:
  """Writes the prepared TFDS dataset; returns its directory."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.image_classification import mnist  # pylint: disable=g-import-not-at-top

  base = {"fashion_mnist": mnist.FashionMNIST, "mnist": mnist.MNIST}[dataset]
  splits = {split: input_pipeline.load(dataset, split, source="idx",
                                       data_dir=idx_dir)[:2]
            for split in ("train", "test")}

  class LocalBuilder(base, skip_registration=True):
    """TFDS' builder, reading already verified local arrays."""
    name = base.name  # write where, and as what, tfds.builder(name) reads

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: self._generate_examples(split) for split in splits}

    def _generate_examples(self, split):  # pylint: disable=arguments-differ
      images, labels = splits[split]
      for index in range(len(labels)):
        yield index, {"image": images[index][..., None],
                      "label": int(labels[index])}

  builder = LocalBuilder(data_dir=tfds_data_dir, file_format="array_record")
  builder.download_and_prepare()
  return str(builder.data_path)


def main(argv):
  del argv
  path = prepare(FLAGS.dataset, FLAGS.tfds_data_dir, FLAGS.idx_dir)
  logging.info("Prepared %s in %s", FLAGS.dataset, path)


if __name__ == "__main__":
  app.run(main)
