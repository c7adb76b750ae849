"""Runs over several processes (multi-host): `jax.distributed` set-up.

Every process runs the same command; together they see all devices of all
processes, and the step runs over all of them (`pmap` or `shard_map`, as on
one machine). The coordinator (process 0's host:port) and the process count
and index come from, in order:
  - flags: --coordinator_address=HOST:PORT --num_processes=N --process_id=I;
  - the environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
    JAX_PROCESS_ID;
  - --distributed alone: JAX's detection of the cluster (SLURM, Open MPI,
    Cloud TPU pods, Kubernetes).
On CPU the processes exchange gradients through gloo.
"""

import os

import jax


def initialize(coordinator_address=None, num_processes=None, process_id=None,
               auto=False) -> bool:
  """Joins the processes of a multi-process run; False if this is not one.

  Must run before anything touches a device.
  """
  env = os.environ.get
  address = coordinator_address or env("JAX_COORDINATOR_ADDRESS")
  if not address and not auto:
    if num_processes is not None or process_id is not None:
      raise ValueError("--num_processes and --process_id need "
                       "--coordinator_address=HOST:PORT (process 0's).")
    return False
  if num_processes is None and env("JAX_NUM_PROCESSES"):
    num_processes = _int_env("JAX_NUM_PROCESSES")
  if process_id is None and env("JAX_PROCESS_ID"):
    process_id = _int_env("JAX_PROCESS_ID")
  if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
    raise ValueError(f"--process_id={process_id} must be in [0, "
                     f"{num_processes}) for --num_processes={num_processes}.")
  # CPU devices of different processes talk through gloo (no effect on GPUs).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(address, num_processes, process_id)
  return True


def _int_env(name):
  try:
    return int(os.environ[name])
  except ValueError:
    raise ValueError(
        f"${name}={os.environ[name]!r} is not an integer.") from None


def is_writer() -> bool:
  """Whether this process writes logs, metrics, images and reports (process
  0). Checkpoints are written by all processes together."""
  return jax.process_index() == 0
