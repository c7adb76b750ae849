"""Writes samples from a run's latest (or a named) checkpoint.

  python -m ganjax.sample --workdir=runs/fashion --num=64 --out=samples.png
  python -m ganjax.sample --workdir=runs/fashion --num=10000 --out=s.npz
"""

from absl import app
from absl import flags
from absl import logging

from ganjax import checkpointing
from ganjax import cli
from ganjax import sampling
from ganjax import trainer

flags.DEFINE_string("workdir", None, "A ganjax run directory.")
flags.DEFINE_integer("num", 64, "Number of samples.")
flags.DEFINE_string("out", None, "Output file: .npz (key `images`, uint8 "
                    "(N, H, W)) or .png (a grid).")
flags.DEFINE_integer("step", None, "Checkpoint step; default the latest.")
flags.DEFINE_integer("seed", 0, "Seed of the noise.")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cli.quiet_logs()
  if not (FLAGS.out.endswith(".npz") or FLAGS.out.endswith(".png")):
    raise app.UsageError(f"--out={FLAGS.out} must end in .npz or .png.")
  if FLAGS.num < 1:
    raise app.UsageError(f"--num={FLAGS.num} must be at least 1.")
  try:
    sampler, g_vars, step, config = trainer.restore_generator(
        FLAGS.workdir, FLAGS.step)
  except (FileNotFoundError, checkpointing.CheckpointError) as e:
    cli.fail("ganjax.sample", e)
  samples = sampling.generate(sampler, g_vars, FLAGS.num, FLAGS.seed,
                              config.latent_dim)
  sampling.write_samples(FLAGS.out, samples, step,
                         columns=sampler.num_classes or None)
  logging.info("Wrote %d samples from step %d to %s", FLAGS.num, step,
               FLAGS.out)


if __name__ == "__main__":
  app.run(main)
