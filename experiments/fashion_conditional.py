"""Class-conditional reference DCGAN: label-embedding G and projection D.

The reference recipe (RMSprop 1e-3, dropout 0.4, BCE) made conditional: G
concatenates a learned embedding of the class to z; D adds the projection
term <embed(y), features> to its logit. Sample grids have one column per
class, and evaluation adds how often the evaluation classifier recognizes the
class asked for ("conditional_accuracy", overall and per class).

Launch:
  python -m ganjax.train --config=experiments/fashion_conditional.py \
      --workdir=runs/fashion_conditional
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  config = fashion.get_config(arg)
  config.conditional = True
  # A grid of 10 columns, one per class (:smoke: two rows).
  config.num_sample_images = 100 if config.num_sample_images == 64 else 20
  return config
