"""The reference DCGAN trained with the non-saturating loss and Adam.

Adam with the DCGAN paper's settings (learning rate 2e-4, beta1 0.5) for both
networks, in place of the reference's RMSprop at 1e-3; architecture and
dropout as in the reference.

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
  config.g_learning_rate = 2e-4
  config.d_learning_rate = 2e-4
  config.adam_b1 = 0.5
  config.adam_b2 = 0.999
  return config
