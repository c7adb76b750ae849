"""Tuning sweep of experiments/fashion_wgan_gp.py at the short schedule.

The recipe was WGAN-GP (gradient penalty 10, Adam beta1 0 / beta2 0.9) with
one critic step per G step and the critic at 3x G's learning rate (G 1e-4,
D 3e-4) standing in for the paper's five critic steps (its rates are now
this sweep's best, G 1e-3 / D 3e-3; the sweep sets both, so it still trains
what it trained). Its FID at 3,000
steps was still falling (415.2 / 400.1 / 263.4 at 1k / 2k / 3k): it learns
too slowly for the schedule. The paper keeps the penalty weight at 10
across its experiments and names the critic's lead over G as what matters,
so the ratio stays 3x and the sweep scales both rates together, as the
hinge + SN sweeps found rates 8-16x their paper's best at this schedule:
G/D 4e-4/1.2e-3, 1e-3/3e-3 and 2e-3/6e-3. (The recipe's own point is its
row of the results table, 263.4.) Budget: 3 points x 1 seed x 3,000 steps
in one program, one evaluation at the end (10,000 samples).

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_wgan_gp.py \
      --workdir=runs/sweep_wgan_gp
:smoke as in experiments/fashion.py, for trying the command.
"""

from ganjax import recipes

wgan_gp = recipes.sibling(__file__, "../fashion_wgan_gp")


def get_config(arg=None):
  return recipes.tuning_sweep(
      wgan_gp, arg,
      "g_learning_rate+d_learning_rate=4e-4/1.2e-3,1e-3/3e-3,2e-3/6e-3")
