"""Round 2 of experiments/fashion_r1_ema_diffaug.py's tuning: the fill.

Round 1 (fashion_r1_ema_diffaug.py in this folder) found gamma 1e-3 and the
learning rate 1e-3; single runs then found that DiffAugment's translation,
not R1, is what costs the recipe its recall (docs/results.md, "What costs R1
+ EMA + DiffAugment its recall"): recall 0.262 when it shifts by up to 1/8
of the side (4 px), 0.372 at 1/16 (2 px, the recipe now), 0.525 without it.
The translation fills the border it vacates with 0, as the paper does, and 0
is mid-grey in these [-1, 1] images, whose background is black (-1): D sees
grey bars on translated real images (all but the one in 25 drawn with no
shift at 2 px) that no untranslated image has. This sweep asks whether a
black fill (`augment_fill = -1`) gives the recall back, at the recipe's
range (1/16), with the grey fill beside it as the control trained in the
same program: 2 points x 1 seed x 3,000 steps, one evaluation at the end
(10,000 samples). The grey point is the recipe itself, so it also
re-measures the ablation row "translation 1/16" (128.0, recall 0.372, one seed)
at this commit.

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_r1_ema_diffaug_2.py \
      --workdir=runs/sweep_r1_ema_diffaug_2
:smoke as in experiments/fashion.py, for trying the command.
"""

from ganjax import recipes

r1_ema_diffaug = recipes.sibling(__file__, "../fashion_r1_ema_diffaug")


def get_config(arg=None):
  return recipes.tuning_sweep(
      r1_ema_diffaug, arg, "augment_fill=-1,0")
