"""A run directory: its saved config, the check that a workdir holds no other
run, run.json (the manifest of everything that can make two runs differ),
and restoring its state or generator from a checkpoint."""

import hashlib
import json
import os
import platform
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np

import ganjax
from ganjax import build
from ganjax import checkpointing
from ganjax import configs
from ganjax import distributed
from ganjax import input_pipeline
from ganjax import metric_writers
from ganjax import models
from ganjax import parallel
from ganjax import sampling
from ganjax import seeds as seeds_lib
from ganjax import sweeps


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """A run's config.json, with fields added since it was written filled in
  with the values it ran with."""
  check_is_run(workdir)
  path = os.path.join(workdir, "config.json")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(
        configs.with_added_defaults(json.load(f)))



def prepare_workdir(workdir: str, config) -> None:
  """Creates `workdir`, checks it is writable and holds no other run."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test{jax.process_index()}")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ValueError(f"--workdir={workdir} is not writable ({e}). Choose a "
                     "directory you can write to.") from e
  saved_path = os.path.join(workdir, "config.json")
  if os.path.exists(saved_path):
    with open(saved_path, encoding="utf-8") as f:
      saved = json.load(f)
    diffs = configs.differences(configs.trajectory_fields(saved),
                                configs.trajectory_fields(config))
    if diffs:
      raise ValueError(
          f"--workdir={workdir} holds a run of another config; these fields "
          f"differ (saved -> now): {'; '.join(diffs)}. Use a new --workdir, "
          "or the saved values to resume that run.")
  if distributed.is_writer():
    metric_writers.write_json(saved_path, config.to_dict())


def _git(*args):
  try:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True,
        cwd=os.path.dirname(os.path.abspath(ganjax.__file__)), timeout=10,
        check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None


def config_sha256(config) -> str:
  """SHA-256 of the fields that decide the result
  (`configs.trajectory_fields`)."""
  return hashlib.sha256(json.dumps(configs.trajectory_fields(config),
                                   sort_keys=True).encode()).hexdigest()


def check_is_run(workdir: str) -> None:
  """Raises FileNotFoundError, naming the run directories beside it, unless
  `workdir` holds a run's config.json."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: --workdir={workdir} is "
                            f"not a ganjax run directory.{_runs_near(workdir)}")


def _runs_near(workdir: str) -> str:
  """A hint naming the run directories beside `workdir`, if there are any
  (`make report` after `make train-short` looks in runs/fashion, the run is
  in runs/fashion_short)."""
  parent = os.path.dirname(os.path.abspath(workdir))
  try:
    names = sorted(os.listdir(parent))
  except OSError:
    return ""
  runs = [os.path.join(os.path.dirname(workdir.rstrip("/")), n) for n in names
          if os.path.exists(os.path.join(parent, n, "config.json"))]
  if not runs:
    return ""
  return (f" Run directories beside it: {', '.join(runs)}; give one with "
          "--workdir= (with make: WORKDIR=).")


def write_manifest(workdir, config, data_info, conv_impl, devices):
  """run.json, the reproduce report: everything that can make two runs
  differ. `python -m ganjax.reproduce` prints it and compares two runs."""
  if not distributed.is_writer():
    return
  import flax, optax, orbax.checkpoint  # pylint: disable=g-import-not-at-top,multiple-imports
  status = _git("status", "--porcelain", "--untracked-files=no")
  manifest = {
      "ganjax": ganjax.__version__, "jax": jax.__version__,
      "jaxlib": jax.lib.__version__, "flax": flax.__version__,
      "optax": optax.__version__, "orbax_checkpoint":
          orbax.checkpoint.__version__, "numpy": np.__version__,
      "python": sys.version.split()[0], "platform": platform.platform(),
      "cpu_count": os.cpu_count(),
      # XLA:CPU sizes its thread pool by the usable cores, and the float
      # results of a step depend on it (`taskset -c 0` changes them).
      "cpus_usable": (len(os.sched_getaffinity(0))
                      if hasattr(os, "sched_getaffinity") else os.cpu_count()),
      "backend": jax.default_backend(),
      "devices": [d.device_kind for d in devices],
      "process_count": jax.process_count(),
      "seed_batching": (parallel.resolve_seed_batching(config.seed_batching)
                        if config.num_seeds > 1 else None),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "environment": {k: v for k, v in sorted(os.environ.items())
                      if k.startswith(("JAX_", "XLA_", "TF_CPP"))},
      "jax_config": {name: jax.config.values.get(name) for name in (
          "jax_enable_x64", "jax_default_matmul_precision",
          "jax_threefry_partitionable", "jax_numpy_rank_promotion")},
      "seed": config.seed, "config_sha256": config_sha256(config),
      "git_commit": _git("rev-parse", "HEAD"),
      "git_dirty": None if status is None else bool(status),
      "conv_impl_resolved": conv_impl,
      "phase1_bn": config.phase1_bn, "bce": config.bce,
      "data": data_info, "argv": sys.argv,
      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  metric_writers.write_json(os.path.join(workdir, "run.json"), manifest)


def restore_state(workdir: str, step=None):
  """(TrainState, its step, the run's config) from the latest or a given
  checkpoint of the run in `workdir`, on this process's first device."""
  config = load_run_config(workdir)
  if config.sweep:
    raise FileNotFoundError(
        f"{workdir} is a sweep; each point is a run directory in it: "
        f"--workdir={workdir}/<point> for the points "
        f"{sweeps.point_names(config)}"
        f"{' (and seed_<s> inside each)' if config.num_seeds > 1 else ''}; "
        f"the summary over points is in {workdir}/eval/.")
  if config.num_seeds > 1:
    raise FileNotFoundError(
        f"{workdir} is a run of {config.num_seeds} seeds; each seed's "
        "checkpoints are in its own run directory: --workdir="
        f"{seeds_lib.member_workdir(workdir, config.seed)} (or seed_<s> for "
        f"s in {seeds_lib.seeds_of(config)}).")
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints.")
    # The data order's length is the training set's, which for an .npz
    # dataset is whatever it held: read it from the checkpoint.
    num_examples = checkpointing.saved_shape(
        checkpointer.read_meta(step), "perm",
        default=(input_pipeline.get_spec(config.dataset).sizes["train"],))[0]
    template = jax.eval_shape(lambda: build.initial_state(
        config, build.make_keys(0), num_examples))
    state = checkpointer.restore(step, template, config)
  finally:
    checkpointer.close()
  return state, step, config


def restore_generator(workdir: str, step=None):
  """(generator module, its sampling variables, the step, the run's config)
  from the latest or a given checkpoint of the run in `workdir`."""
  state, step, config = restore_state(workdir, step)
  sampler, _ = models.make_models(config, axis_name=None)
  return (sampler, sampling.sampling_variables(sampler, state,
                                               config.latent_dim),
          step, config)
