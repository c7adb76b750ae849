"""Learning-rate sweep of experiments/fashion_r3gan.py at the reference's
time budget.

On this CPU an R3GAN step cost 4.6 reference steps when this sweep was
planned (benchmarks/results/recipe_cost_cpu.json of commit 0e36c24; 3.8
in a later session's), so the time the reference needs
for its 3,000 steps buys R3GAN about 650; 680 is where the equal-time run
evaluated first, at 826 s against the reference's 750 s (docs/results.md,
"Unconditional recipes at equal training time"; FID 425.2 there, one seed,
with the fix-up scale of an older commit). Its FID also falls more slowly per step than the
reference's (343.6 at 2,720 steps against the reference's 129.2 at 3,000),
so step cost is not all that holds it back. The paper's learning rate, 2e-4
for both networks with Adam beta1 0, is set for runs of tens of millions of
images; the other recipes' sweeps found their papers' rates far too low for
3,000 steps (hinge + SN: G 1e-4 -> 1.6e-3). So this sweep asks the same of
R3GAN, at the budget: both rates at the recipe's 2e-4 (the control, trained
again at this commit) and at 1e-3. Budget: 2 points x 1 seed x 680 steps in
one program, one evaluation at the end (10,000 samples).

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_r3gan.py \
      --workdir=runs/sweep_r3gan
:smoke as in experiments/fashion.py, for trying the command.
"""

from ganjax import recipes

r3gan = recipes.sibling(__file__, "../fashion_r3gan")

BUDGET_STEPS = 680  # the equal-time run's step at the reference's budget


def get_config(arg=None):
  return recipes.tuning_sweep(r3gan, arg,
                              "g_learning_rate+d_learning_rate=2e-4,1e-3",
                              steps=BUDGET_STEPS)
