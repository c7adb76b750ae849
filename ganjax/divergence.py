"""Divergence: the check that losses and parameters are finite, and the error
that names the step, the value and the seed."""

import jax
import jax.numpy as jnp
import numpy as np


class TrainingDivergedError(FloatingPointError):
  """A loss or parameter became NaN or Inf at `step` (in member number
  `member` of the run's seeds and sweep points)."""

  def __init__(self, message, member=0, step=None):
    super().__init__(message)
    self.member, self.step = member, step


_DIVERGED_HELP = (
    "It was not checkpointed; the newest checkpoint before this step is the "
    "last good one. Resume from it with a lower learning rate, or set "
    "config.nan_rollbacks=N to roll back and continue with a new noise stream.")


@jax.jit
def _params_finite(*param_trees):
  """One bool per tree: all its entries finite (one device round trip)."""
  return [jnp.all(jnp.stack([jnp.isfinite(x).all()
                             for x in jax.tree.leaves(tree)]))
          for tree in param_trees]


def check_finite(step, scalars, state=None, member=0, where=""):
  """Raises TrainingDivergedError naming the step, the value and, in a
  run of several seeds, the seed (`where`)."""
  for name, value in scalars.items():
    if not np.isfinite(value):
      raise TrainingDivergedError(
          f"Training diverged at step {step}{where}: {name} = {value}. "
          + _DIVERGED_HELP, member, step)
  if state is not None:
    finite = jax.device_get(_params_finite(state.g_params, state.d_params))
    for name, ok in zip(("g_params", "d_params"), finite):
      if not ok:
        raise TrainingDivergedError(
            f"Training diverged at step {step}{where}: {name} holds NaN or "
            "Inf. " + _DIVERGED_HELP, member, step)
