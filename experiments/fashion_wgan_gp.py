"""WGAN-GP: the Wasserstein loss with a gradient penalty (lambda 10).

One critic update per generator update, with the critic's faster learning
rate standing in for the paper's five critic steps (two time-scale rule):
Adam beta1 0, beta2 0.9, D 3e-3, G 1e-3 (the best of the tuning sweep
experiments/sweeps/fashion_wgan_gp.py, FID 94.9 at 3,000 steps against
263.4 at D 3e-4 / G 1e-4; benchmarks/results/sweeps/fashion_wgan_gp.json).
Three seeds of it: 92.1 +- 6.7
(benchmarks/results/runs/seeds/fashion_wgan_gp.json).
No dropout in the critic.

Launch:
  python -m ganjax.train --config=experiments/fashion_wgan_gp.py \
      --workdir=runs/fashion_wgan_gp
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  config = fashion.get_config(arg)
  config.loss = "wasserstein"
  config.gp_weight = 10.0
  config.d_dropout = 0.0
  config.optimizer = "adam"
  config.g_learning_rate = 1e-3
  config.d_learning_rate = 3e-3
  config.adam_b1 = 0.0
  config.adam_b2 = 0.9
  return config
