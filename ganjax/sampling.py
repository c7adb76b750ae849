"""Samples from a trained generator, restored from a run's workdir."""

import json
import os

import jax
import ml_collections
import numpy as np

from ganjax import checkpointing
from ganjax import images as images_lib
from ganjax import input_pipeline
from ganjax import models
from ganjax import trainer


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: --workdir={workdir} is "
                            "not a ganjax run directory.")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_generator(workdir: str, step=None):
  """Returns (generator module, its variables, the step) from a checkpoint."""
  config = load_run_config(workdir)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
  step = checkpointer.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints.")
  template = jax.eval_shape(lambda: trainer.initial_state(
      config, trainer.make_keys(0),
      input_pipeline.get_spec(config.dataset).sizes["train"]))
  state = checkpointer.restore(step, template, config)
  checkpointer.close()
  sampler, _ = models.make_models(config, axis_name=None)
  return sampler, {"params": state.g_params,
                   "batch_stats": state.g_batch_stats}, step, config


def generate(sampler, g_vars, num: int, seed: int, latent_dim: int,
             batch_size: int = 1000):
  """`num` samples as uint8 (num, H, W), G in inference mode."""
  apply = jax.jit(lambda v, z: sampler.apply(v, z, train=False))
  key = jax.random.key(seed)
  out = []
  for start in range(0, num, batch_size):
    z = jax.random.normal(jax.random.fold_in(key, start),
                          (min(batch_size, num - start), latent_dim))
    out.append(images_lib.to_uint8(apply(g_vars, z)))
  return np.concatenate(out)


def write_samples(path: str, samples_uint8, step: int) -> None:
  """Writes .npz (key `images`, (N, H, W) uint8) or a .png grid."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.endswith(".npz"):
    np.savez_compressed(path, images=samples_uint8, step=step)
  elif path.endswith(".png"):
    images_lib.save_png(path, images_lib.grid(samples_uint8))
  else:
    raise ValueError(f"--out={path} must end in .npz or .png.")
