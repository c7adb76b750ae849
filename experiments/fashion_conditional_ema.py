"""The conditional recipe with an EMA generator; learning rates 2e-3.

`fashion_conditional.py` (label-embedding G, projection D, the reference's
RMSprop, BCE and dropout 0.4) plus:
- an exponential moving average of G's weights (decay 0.99), which samples
  and evaluation use;
- both learning rates at 2e-3, twice the reference's (fashion_conditional.py
  has them too since its tuning sweep; set here as well so that this recipe
  stays what its results measured).
See docs/results.md, "The recipes compared", for what each change does to FID.

Launch:
  python -m ganjax.train --config=experiments/fashion_conditional_ema.py \\
      --workdir=runs/fashion_conditional_ema
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion_conditional = recipes.sibling(__file__, "fashion_conditional")


def get_config(arg=None):
  config = fashion_conditional.get_config(arg)
  config.ema_decay = 0.99
  config.g_learning_rate = 2e-3
  config.d_learning_rate = 2e-3
  return config
