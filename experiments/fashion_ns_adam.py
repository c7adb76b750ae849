"""The reference DCGAN trained with the non-saturating loss and Adam.

Adam for both networks in place of the reference's RMSprop; architecture
and dropout as in the reference. Tuned in two sweeps from the DCGAN paper's
settings (2e-4, beta1 0.5: FID 334.7 at 3,000 steps): the learning rate
(experiments/sweeps/fashion_ns_adam.py: 1e-3 best, FID 148.8 at beta1 0.5 /
beta2 0.999), then Adam's constants at 1e-3
(experiments/sweeps/fashion_ns_adam_2.py: beta1 0 / beta2 0.9 best, FID
132.9, one seed; beta1 0.5 / beta2 0.9 gave 174.6). Summaries in
benchmarks/results/sweeps/. Three seeds of it: 124.8 +- 5.3
(benchmarks/results/runs/seeds/fashion_ns_adam.json).

Launch:
  python -m ganjax.train --config=experiments/fashion_ns_adam.py \
      --workdir=runs/fashion_ns_adam
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  config = fashion.get_config(arg)
  config.loss = "non_saturating"
  config.optimizer = "adam"
  config.g_learning_rate = 1e-3
  config.d_learning_rate = 1e-3
  config.adam_b1 = 0.0
  config.adam_b2 = 0.9
  return config
