"""ganjax: GANs in JAX/Flax, fast, exact and reproducible.

The library in brief (see docs/library.md):
  ganjax.GAN          a generator, a discriminator and how they are trained;
                      `GAN.step(state, batch, key)` is the pure step.
  ganjax.TrainState   the state a step maps and a checkpoint holds.
  ganjax.Penalty      a regularizer of D from `ganjax.regularizers`.
  ganjax.parallel     the step on device-resident data, fused, over devices
                      (pmap, shard_map, jit + sharding) and seeds.
"""

__version__ = "0.1.0"

# pylint: disable=g-import-not-at-top,wrong-import-position
from ganjax import losses
from ganjax import parallel
from ganjax import regularizers
from ganjax.gan import GAN
from ganjax.gan import TrainState
from ganjax.regularizers import Penalty

