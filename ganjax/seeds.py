"""Several seeds of one experiment in one run (`config.num_seeds`).

An N-seed run with `config.seed` = s trains seeds s, s+1, ..., s+N-1 in one
compiled program. Each seed is an ordinary run directory, `workdir/seed_<k>`,
holding the config of a single run with `seed=k` (so `ganjax.evaluate`,
`ganjax.sample` and `ganjax.report` take it as it is, and
`ganjax.train --config.seed=k --workdir=workdir/seed_k` resumes it alone).
The run's own workdir holds its config and, per evaluation, the summary over
seeds: each seed's numbers, their mean and a 95% confidence interval.
"""

import math
import os

import numpy as np

# Two-sided 95% quantiles of Student's t, t_{0.975}(df) for df = 1..30
# (tests/test_seeds.py checks them against scipy).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060,
         2.2622, 2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199,
         2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def seeds_of(config) -> list:
  return [config.seed + k for k in range(config.num_seeds)]


def member_workdir(workdir: str, seed: int) -> str:
  return os.path.join(workdir, f"seed_{seed}")


def members(config, workdir: str) -> list:
  """(config, workdir) of each seed: the run itself when it has one seed."""
  if config.num_seeds == 1:
    return [(config, workdir)]
  result = []
  for seed in seeds_of(config):
    member = config.copy_and_resolve_references()
    member.seed, member.num_seeds = seed, 1
    result.append((member, member_workdir(workdir, seed)))
  return result


def t975(df: int) -> float:
  """t_{0.975}(df); the normal quantile past the table (error < 2%)."""
  if df < 1:
    raise ValueError(f"degrees of freedom must be >= 1, got {df}")
  return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci95(values) -> tuple:
  """(mean, half-width of the 95% confidence interval of the mean), from
  Student's t with n-1 degrees of freedom; the half-width is NaN for n = 1."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if values.size < 2:
    return mean, math.nan
  sem = float(values.std(ddof=1)) / math.sqrt(values.size)
  return mean, t975(values.size - 1) * sem


def welch_t_test(a, b) -> tuple:
  """Welch's t-test that two sets of seeds share a mean, their variances
  unequal: (t, degrees of freedom (Welch-Satterthwaite), two-sided p).

  For "is recipe A's FID different from recipe B's?" over a few seeds each.
  Raises ValueError for fewer than two values on a side or no spread at all.
  """
  a, b = (np.asarray(x, np.float64) for x in (a, b))
  if a.size < 2 or b.size < 2:
    raise ValueError(f"Welch's t-test needs >= 2 values on each side, got "
                     f"{a.size} and {b.size}")
  var_a, var_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  if var_a + var_b == 0:
    raise ValueError("Welch's t-test: neither side varies; t is undefined")
  t = float(a.mean() - b.mean()) / math.sqrt(var_a + var_b)
  df = float((var_a + var_b) ** 2 / (var_a ** 2 / (a.size - 1)
                                     + var_b ** 2 / (b.size - 1)))
  # P(|T| > |t|) for Student's t with df degrees of freedom.
  import jax  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    p = float(jax.scipy.special.betainc(df / 2, 0.5, df / (df + t * t)))
  return t, df, p


def summarize(results: dict) -> dict:
  """{"seeds": [...], "per_seed": {metric: [...]}, "mean": {...},
  "ci95": {...}} over `results` ({seed: evaluation dict}), for every numeric
  scalar all seeds report."""
  seeds = sorted(results)
  names = set.intersection(*(set(r) for r in results.values()))
  per_seed = {name: [results[s][name] for s in seeds] for name in sorted(names)
              if all(isinstance(results[s][name], (int, float))
                     and not isinstance(results[s][name], bool)
                     for s in seeds)}
  per_seed.pop("step", None)
  stats = {name: mean_ci95(v) for name, v in per_seed.items()}
  return {"seeds": seeds, "num_seeds": len(seeds), "per_seed": per_seed,
          "mean": {k: m for k, (m, _) in stats.items()},
          "ci95": {k: h for k, (_, h) in stats.items()}}
