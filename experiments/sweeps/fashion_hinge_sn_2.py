"""Second round of the tuning sweep of experiments/fashion_hinge_sn.py.

The first round (experiments/sweeps/fashion_hinge_sn.py, summary in
benchmarks/results/sweeps/fashion_hinge_sn.json) found that G's learning
rate is what held the recipe back (G 1e-4 -> 4e-4: FID 303.8 -> 146.8 with
D at 1.6e-3; raising D's rate alone made it worse, 448.2), best at its
largest G rate. This round goes on up from that best point: G 8e-4 and
1.6e-3, D 1.6e-3 and 3.2e-3. Budget as the first round: 4 points x 1 seed
x 3,000 steps in one program, one evaluation at the end.

Launch:
  python -m ganjax.train --config=experiments/sweeps/fashion_hinge_sn_2.py \
      --workdir=runs/sweep_hinge_sn_2
"""

from ganjax import recipes

first = recipes.sibling(__file__, "fashion_hinge_sn")


def get_config(arg=None):
  config = first.get_config(arg)
  config.sweep = "g_learning_rate=8e-4,1.6e-3;d_learning_rate=1.6e-3,3.2e-3"
  return config
