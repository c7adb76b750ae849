"""Tuning sweep of experiments/fashion_hinge_sn.py at the short schedule.

The recipe's FID at 3,000 steps was still falling fast (496.6 / 420.4 /
317.9 at 1k / 2k / 3k steps, the reference 211.7 / 162.6 / 131.6): it
learns too slowly for the schedule, and the reference's learning rate (1e-3,
RMSprop) is 2.5 to 10 times the SNGAN/SAGAN rates the recipe took. So the
sweep scales G's and D's learning rates, each on its own axis: the recipe's
two time-scale pair (G 1e-4, D 4e-4) is point p0, the same pair four times
larger is p3, and p1/p2 raise one network's rate only. Adam's betas (0, 0.9)
stay as in the papers. Budget: 4 points x 1 seed x 3,000 steps in one
program, one evaluation at the end (10,000 samples).

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_hinge_sn.py \
      --workdir=runs/sweep_hinge_sn
:smoke as in experiments/fashion.py, for trying the command.
"""

from ganjax import recipes

hinge_sn = recipes.sibling(__file__, "../fashion_hinge_sn")


def get_config(arg=None):
  return recipes.tuning_sweep(
      hinge_sn, arg, "g_learning_rate=1e-4,4e-4;d_learning_rate=4e-4,1.6e-3")
