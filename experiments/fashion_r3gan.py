"""R3GAN on Fashion-MNIST: the modern unconditional baseline (Huang et al.,
NeurIPS 2024), scaled to 28x28 and a 2-core CPU.

- Architecture "r3gan28" (ganjax/r3gan.py): residual inverted-bottleneck
  blocks, fix-up initialization, no normalization; widths 64/32/16 at
  7/14/28 pixels (g_width = d_width = 32), one block at 7 and at 14 pixels.
  The 3x3 convolutions are not grouped here: XLA:CPU's gradients of grouped
  convolutions are about 7x slower than the dense ones (ganjax/r3gan.py).
- Loss "rpgan" (relativistic pairing) with the zero-centred penalties R1 on
  the reals and R2 on the fakes, both gamma 0.1 (the paper's R3GAN
  objective); Adam with beta1 = 0 and beta2 = 0.99, learning rate 2e-4 for
  both networks (1e-3 did no better at the reference's time budget: FID
  431.2 against 424.5 at 680 steps, experiments/sweeps/fashion_r3gan.py);
  an EMA of G's weights (decay 0.99: runs here are a few
  thousand steps at most) for samples and evaluation.

Launch:
  python -m ganjax.train --config=experiments/fashion_r3gan.py \
      --workdir=runs/fashion_r3gan
Variants as in experiments/fashion.py (:short = 3,000 steps, :smoke).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  config = fashion.get_config(arg)
  config.architecture = "r3gan28"
  config.g_width = config.d_width = 32
  config.d_dropout = 0.0
  config.loss = "rpgan"
  config.penalties = "r1:0.1,r2:0.1"
  config.optimizer = "adam"
  config.adam_b1 = 0.0
  config.adam_b2 = 0.99
  config.g_learning_rate = 2e-4
  config.d_learning_rate = 2e-4
  config.ema_decay = 0.99
  return config
