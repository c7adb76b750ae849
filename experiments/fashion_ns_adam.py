"""The reference DCGAN trained with the non-saturating loss and Adam.

Adam with the DCGAN paper's beta1 0.5 for both networks, in place of the
reference's RMSprop; architecture and dropout as in the reference. The
learning rate, 1e-3 for both, is the best of the tuning sweep
experiments/sweeps/fashion_ns_adam.py (FID 148.8 at 3,000 steps, against
334.7 at the paper's 2e-4; benchmarks/results/sweeps/fashion_ns_adam.json).

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
  config.adam_b1 = 0.5
  config.adam_b2 = 0.999
  return config
