"""Class-conditional DCGAN: label-embedding G and projection D.

G concatenates a learned embedding of the class to z; D adds the projection
term <embed(y), features> to its logit. Otherwise the fashion_ns_adam recipe.
Sample grids have one column per class, and evaluation adds how often the
evaluation classifier recognizes the class asked for ("conditional_accuracy").

Launch:
  python -m ganjax.train --config=experiments/fashion_conditional.py \
      --workdir=runs/fashion_conditional
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from experiments import fashion_ns_adam


def get_config(arg=None):
  config = fashion_ns_adam.get_config(arg)
  config.conditional = True
  config.num_sample_images = 100 if config.num_sample_images == 64 else 20
  return config
