"""Second round of the tuning sweep of experiments/fashion_ns_adam.py.

The first round (experiments/sweeps/fashion_ns_adam.py, summary in
benchmarks/results/sweeps/fashion_ns_adam.json) found learning rate 1e-3
best (FID 148.8), in the middle of its grid, and still worse than the
reference (131.6; three seeds 129.2 +- 5.4). At that rate the recipe
differs from the reference only in its optimizer: the reference's loss is
the same non-saturating one, and its RMSprop (rho 0.9) is Adam with beta1 0
and beta2 0.9, less the bias correction. This round asks which of Adam's
two constants costs the FID: beta1 0 / beta2 0.9 (RMSprop's) and beta1 0.5
/ beta2 0.9 (round 1's momentum with RMSprop's shorter memory), against
round 1's beta1 0.5 / beta2 0.999. Budget: 2 points x 1 seed x 3,000
steps in one program, one evaluation at the end.

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_ns_adam_2.py \
      --workdir=runs/sweep_ns_adam_2
"""

from ganjax import recipes

ns_adam = recipes.sibling(__file__, "../fashion_ns_adam")


def get_config(arg=None):
  return recipes.tuning_sweep(ns_adam, arg, "adam_b1+adam_b2=0/0.9,0.5/0.9")
