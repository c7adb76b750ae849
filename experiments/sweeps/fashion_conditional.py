"""Tuning sweep of experiments/fashion_conditional.py at the short schedule.

The recipe was the reference (RMSprop 1e-3, BCE, dropout 0.4) made
class-conditional (label-embedding G, projection D); its rate is 2e-3 now,
this sweep's best (FID 64.4; 4e-3: 90.8;
benchmarks/results/sweeps/fashion_conditional.json). At 3,000 steps it
scored FID 163.7 with recall 0.202 (docs/results.md, "The recipes
compared"): worse than the unconditional reference (131.6), though it is
given the labels, and its recall was low. The same recipe with an EMA
generator and both learning rates doubled to 2e-3,
experiments/fashion_conditional_ema.py, scores 43.2 +- 4.0 over three
seeds. That recipe changed two things at once; this sweep asks how much of
it the learning rate alone gives, and whether the rate should go further:
both networks' rate at 2e-3 and 4e-3 (the untuned recipe's 1e-3 is its
row of the results table, not trained again). The EMA only shadows G's weights
(nothing trains against it), so the 2e-3 point trains what
fashion_conditional_ema.py's seed 0 trains and scores the raw generator
instead of the average: what the EMA adds at 3,000 steps is the
difference. The projection-discriminator paper keeps
its optimizer's settings fixed for its own hinge/SN setup, so it names no
axis for this recipe; the learning rate is the one the unconditional
sweeps found mattered most. Budget: 2 points x 1 seed x 3,000 steps in one
program, one evaluation at the end (10,000 samples).

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_conditional.py \
      --workdir=runs/sweep_conditional
:smoke as in experiments/fashion.py, for trying the command.
"""

from ganjax import recipes

conditional = recipes.sibling(__file__, "../fashion_conditional")


def get_config(arg=None):
  return recipes.tuning_sweep(conditional, arg,
                              "g_learning_rate+d_learning_rate=2e-3,4e-3")
