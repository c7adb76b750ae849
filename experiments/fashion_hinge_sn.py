"""Hinge loss with a spectrally normalized discriminator (SNGAN-style).

Every layer of D is spectrally normalized (no dropout); Adam with beta1 0,
beta2 0.9 and two time-scale learning rates, as in the SNGAN/SAGAN recipes.
The rates are tuned for the short schedule by the sweeps of
experiments/sweeps/fashion_hinge_sn*.py (docs/results.md, "Tuning the
classic recipes"): G 1.6e-3, D 3.2e-3 (FID 101.9 at 3,000 steps, seed 0;
three seeds 93.9 +- 14.5, where the reference's two sets of three seeds
score 129.2 +- 5.4 and 131.6 +- 32.4), where the papers' G 1e-4 / D 4e-4
gave 303.8. With --config.ema_decay=0.99 (the same training, scored by an
EMA of G's weights): 81.7 +- 8.4 over three seeds, recall 0.510 +- 0.040,
the best unconditional row so far
(benchmarks/results/runs/seeds/fashion_hinge_sn_ema.json).

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
  config.g_learning_rate = 1.6e-3
  config.d_learning_rate = 3.2e-3
  config.adam_b1 = 0.0
  config.adam_b2 = 0.9
  return config
