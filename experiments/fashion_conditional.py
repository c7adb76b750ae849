"""Class-conditional reference DCGAN: label-embedding G and projection D.

The reference recipe (RMSprop 1e-3, dropout 0.4, BCE) made conditional: G
concatenates a learned embedding of the class to z; D adds the projection
term <embed(y), features> to its logit. Sample grids have one column per
class, and evaluation adds how often the evaluation classifier recognizes the
class asked for ("conditional_accuracy", overall and per class).

Both learning rates at 2e-3, twice the reference's: the best of the tuning
sweep experiments/sweeps/fashion_conditional.py (FID 64.4 at 3,000 steps,
one seed, against 163.7 at 1e-3 and 90.8 at 4e-3;
benchmarks/results/sweeps/fashion_conditional.json).

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
  config.g_learning_rate = 2e-3
  config.d_learning_rate = 2e-3
  # A grid of 10 columns, one per class (:smoke: two rows).
  config.num_sample_images = 100 if config.num_sample_images == 64 else 20
  return config
