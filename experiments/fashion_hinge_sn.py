"""Hinge loss with a spectrally normalized discriminator (SNGAN-style).

Every layer of D is spectrally normalized (no dropout); Adam with beta1 0,
beta2 0.9 and two time-scale learning rates (D 4e-4, G 1e-4), as in the
SNGAN/SAGAN recipes.

Launch:
  python -m ganjax.train --config=experiments/fashion_hinge_sn.py \
      --workdir=runs/fashion_hinge_sn
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  config = fashion.get_config(arg)
  config.loss = "hinge"
  config.spectral_norm = True
  config.d_dropout = 0.0
  config.optimizer = "adam"
  config.g_learning_rate = 1e-4
  config.d_learning_rate = 4e-4
  config.adam_b1 = 0.0
  config.adam_b2 = 0.9
  return config
