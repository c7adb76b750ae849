"""From an experiment config to the library's pieces: the `GAN`, its initial
state and the compiled training call (what `ganjax.train` runs)."""

import jax

from ganjax import augment
from ganjax import gan as gan_lib
from ganjax import input_pipeline
from ganjax import losses
from ganjax import models
from ganjax import optimizers
from ganjax import parallel
from ganjax import regularizers
from ganjax import sweeps


def make_keys(seed: int) -> dict:
  """The run's named random streams, all from one root key."""
  init, noise, data, sample = jax.random.split(jax.random.key(seed), 4)
  return {"init": init, "noise": noise, "data": data, "sample": sample}


def penalties(config) -> tuple:
  """config.gp_weight, r1_weight (r1_every) and penalties as Penalty's."""
  out = []
  if config.gp_weight:
    out.append(regularizers.Penalty("gp", float(config.gp_weight)))
  if config.r1_weight:
    out.append(regularizers.Penalty("r1", float(config.r1_weight),
                                    config.r1_every))
  return (*out, *regularizers.parse(config.penalties))


def make_gan(config, axis_name=None, objective=True) -> gan_lib.GAN:
  """The config's GAN; `axis_name` for modules run under pmap/shard_map.
  Without `objective` the loss and penalties are left at their defaults:
  enough for the state's shapes (restoring a run whose recipe registered a
  penalty or loss that this program has not)."""
  generator, discriminator = models.make_models(config, axis_name)
  g_tx, d_tx = optimizers.make_optimizers(config)
  if objective:
    extra = dict(loss=losses.get_loss(config.loss, config.bce),
                 penalties=penalties(config))
  else:
    extra = {}
  return gan_lib.GAN(
      generator=generator, discriminator=discriminator, g_optimizer=g_tx,
      d_optimizer=d_tx, latent_dim=config.latent_dim,
      augment=augment.policy_from_config(config),
      ada=augment.adaptive_from_config(config),
      ema_decay=float(config.ema_decay), ema_start=config.ema_start,
      num_classes=models.num_classes(config), phase1_bn=config.phase1_bn,
      **extra)


def training_gan(config) -> gan_lib.GAN:
  """The GAN as `config.parallelism` runs it: the mapped layers give the
  modules the axis (global BatchNorm statistics and dropout masks)."""
  mapped = config.parallelism in ("pmap", "shard_map")
  return make_gan(config, parallel.AXIS if mapped else None)


def initial_state(config, keys, num_examples: int):
  """The state at step 0, drawn from `keys` "init", "noise" and "data"."""
  return make_gan(config, objective=False).init(
      keys["init"], input_pipeline.get_spec(config.dataset).image_shape,
      noise_key=keys["noise"], data_key=keys["data"],
      num_examples=num_examples)


def compile_train_fn(config, devices, gan=None, seeds=False):
  """The compiled call of `config.steps_per_call` steps over `devices`, of
  `gan` (default: the config's). With `seeds`, it maps a tuple of
  `config.num_seeds` states (one per seed) instead of one state (see
  `parallel.over_seeds`), and with a `config.sweep` the states of every
  point's seeds, point by point (ganjax/sweeps.py)."""
  if gan is None and seeds and config.sweep:
    gan = [training_gan(sweeps.point_config(config, overrides))
           for overrides in sweeps.points(config)]
  return parallel.make_train_fn(
      gan or training_gan(config), batch_size=config.batch_size,
      steps_per_call=config.steps_per_call, devices=devices,
      scan_unroll=config.scan_unroll, parallelism=config.parallelism,
      num_seeds=config.num_seeds if seeds else None,
      seed_batching=config.seed_batching)


def replicate_data(config, images, labels, devices) -> dict:
  """The training set on `devices` in the layout config.parallelism uses."""
  return parallel.replicate_data(images, devices,
                                 labels if config.conditional else None,
                                 config.parallelism)
