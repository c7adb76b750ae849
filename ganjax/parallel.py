"""The step spread over devices, on device-resident data, fused.

`GAN.step` is the math on one batch. This module adds what makes it fast and
data-parallel, around it and without touching it:
- `jit_step(gan, devices)` and `pmap_step(gan, devices)`: the step on
  batches you give it, data-parallel by sharding or by pmap.
- the data layer (`step_on_data`): the training set lives on the devices
  (uint8, put there once) and each step picks its batch from the seeded
  per-epoch permutation in `TrainState`; the step's key is the noise key
  folded with the step number. Data order and noise do not depend on the
  device count.
- fusion (`train_steps`): `steps_per_call` steps in one compiled call
  (`lax.scan`), whole lazy-penalty periods at a time.
- seeds (`over_seeds`): N independent runs in one program.
- parallelism (`make_train_fn`), three interchangeable layers:
  - "pmap": `jax.pmap`; each device runs the step on its rows, with the
    collectives over axis `AXIS` (the mission's API).
  - "shard_map": the same per-device program under `jax.jit` +
    `jax.shard_map` over a 1-D `Mesh`.
  - "sharding": `jax.jit` of the global step, the batch constrained to
    `NamedSharding(mesh, P(AXIS))`: XLA partitions it and inserts the
    collectives. The step and the models know nothing of devices (JAX's
    threefry draws the same numbers under any sharding), so any Flax modules
    are device-count invariant here. Under the two mapped layers, BatchNorm
    over the global batch and global dropout masks need modules that take
    the axis (ganjax.models do: `axis_name`, `layers.Dropout`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import input_pipeline

AXIS = "batch"  # the mapped (pmap / shard_map / mesh) axis
PARALLELISMS = ("pmap", "shard_map", "sharding")
SEED_BATCHINGS = ("auto", "vmap", "unrolled")
P = jax.sharding.PartitionSpec


def jit_step(gan, devices=None):
  """`gan.step` (state, batch, key) -> (state, metrics) under `jax.jit`; over
  `devices` (this process's), data-parallel by sharding: the batch split
  over them (`NamedSharding(mesh, P(AXIS))`), the state and key replicated,
  and XLA inserts the collectives. The result equals one device's up to
  float rounding, for any modules. None: plain `jax.jit`."""
  if devices is None:
    return jax.jit(gan.step)
  replicated = jax.sharding.NamedSharding(mesh(devices), P())
  rows = jax.sharding.NamedSharding(mesh(devices), P(AXIS))
  step = jax.jit(gan.step, in_shardings=(replicated, rows, replicated),
                 out_shardings=replicated)
  def call(state, batch, key):
    _check_divides(batch, len(devices))
    return step(state, batch, key)
  return call


def pmap_step(gan, devices):
  """`gan.step` as (state, batch, key) -> (state, metrics) under `jax.pmap`
  over `devices` (this process's): each steps on its rows of the batch
  (which this function splits), with the collectives over `AXIS`. Modules
  with BatchNorm or dropout are device-count invariant only if they use the
  axis (ganjax.models built with `axis_name=parallel.AXIS` do, see
  `build.training_gan`); `jit_step` needs nothing of them."""
  step = jax.pmap(functools.partial(gan.step, axis_name=AXIS),
                  axis_name=AXIS, in_axes=(None, 0, None), out_axes=None,
                  devices=devices)
  def call(state, batch, key):
    _check_divides(batch, len(devices))
    split = lambda x: x.reshape(len(devices), -1, *x.shape[1:])
    return step(state, jax.tree.map(split, batch), key)
  return call


def _check_divides(batch, num_devices):
  size = batch["images"].shape[0]
  if size % num_devices:
    raise ValueError(f"A batch of {size} does not split over {num_devices} "
                     f"devices; use a multiple of {num_devices}.")


def epoch_permutation(data_key, epoch, num_examples: int):
  return jax.random.permutation(jax.random.fold_in(data_key, epoch),
                                num_examples).astype(jnp.int32)


def current_permutation(perm, data_key, step, *, batch_size: int):
  """The permutation in force at `step`: a fresh one at the first step of each
  epoch (the last incomplete batch of an epoch is dropped), else `perm`."""
  num_examples = perm.shape[0]
  steps_per_epoch = num_examples // batch_size
  return jax.lax.cond(
      step % steps_per_epoch == 0,
      lambda: epoch_permutation(data_key, step // steps_per_epoch,
                                num_examples),
      lambda: perm)


def batch_indices(perm, step, *, batch_size: int):
  """Global batch indices (batch_size,) of `step` within its epoch's `perm`."""
  steps_per_epoch = perm.shape[0] // batch_size
  start = (step % steps_per_epoch) * batch_size
  return jax.lax.dynamic_slice_in_dim(perm, start, batch_size)


def step_on_data(gan, state, data, *, batch_size: int, axis_name=None,
                 batch_sharding=None, lazy_phase=None):
  """One `gan.step` on the batch of `state.step` taken from `data`.

  Args:
    gan: a `ganjax.GAN`.
    state: its TrainState.
    data: {"images": the whole training set, uint8 (N, H, W[, C])[,
      "labels": (N,)]}, on this device.
    batch_size: the global batch size.
    axis_name: inside pmap/shard_map, the mapped axis: this device takes its
      rows of the global batch.
    batch_sharding: under `jit` over a mesh, the sharding of the batch.
    lazy_phase: passed to `gan.step`.
  """
  if state.perm.shape[0] < batch_size:
    raise ValueError(
        f"The state's data order covers {state.perm.shape[0]} examples, "
        f"fewer than a batch of {batch_size}: make it with "
        "GAN.init(..., num_examples=<the training set's size>).")
  perm = current_permutation(state.perm, jax.random.wrap_key_data(
      state.data_key), state.step, batch_size=batch_size)
  idx = batch_indices(perm, state.step, batch_size=batch_size)
  if axis_name is not None:
    per_device = batch_size // jax.lax.axis_size(axis_name)
    idx = jax.lax.dynamic_slice_in_dim(
        idx, jax.lax.axis_index(axis_name) * per_device, per_device)
  images = input_pipeline.to_model_range(data["images"][idx])
  batch = {"images": images if images.ndim == 4 else images[..., None]}
  if "labels" in data:
    batch["labels"] = data["labels"][idx]
  if batch_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  key = jax.random.fold_in(jax.random.wrap_key_data(state.noise_key),
                           state.step)
  return gan.step(state.replace(perm=perm), batch, key, axis_name=axis_name,
                  lazy_phase=lazy_phase)


def resolve_unroll(scan_unroll: int, steps_per_call: int,
                   backend: str | None = None) -> int:
  """0 means: unroll fully on CPU, where XLA runs convolutions inside a loop
  body many times slower than unrolled ones, and not at all elsewhere."""
  if scan_unroll:
    return min(scan_unroll, steps_per_call)
  backend = backend or jax.default_backend()
  return steps_per_call if backend == "cpu" else 1


def train_steps(state, data, *, step_fn, steps_per_call: int,
                scan_unroll: int, lazy_period: int = 1):
  """`steps_per_call` steps of `step_fn(state, data, lazy_phase=k)` in one
  compiled call; the metrics are their mean.

  Steps go in groups of `lazy_period` (which divides steps_per_call, and
  every call starts at a multiple of it), so which step of a group applies
  each lazy penalty is known when compiling: no `lax.cond`, whose branches
  XLA's CPU backend runs several times slower.
  """
  def group(state):
    metrics = []
    for k in range(lazy_period):
      state, m = step_fn(state, data, lazy_phase=k)
      metrics.append(m)
    # Each metric is averaged over the steps that compute it: a lazy
    # penalty's value is that of its own steps, not diluted by the others.
    names = dict.fromkeys(name for m in metrics for name in m)
    return state, {name: jnp.mean(jnp.stack([m[name] for m in metrics
                                              if name in m]))
                   for name in names}

  if steps_per_call % lazy_period:
    raise ValueError(f"config.steps_per_call={steps_per_call} must be a "
                     f"multiple of the lazy penalties' period {lazy_period} "
                     "(config.r1_every, config.penalties' every).")
  groups = steps_per_call // lazy_period
  if groups == 1:
    return group(state)
  state, metrics = jax.lax.scan(lambda s, _: group(s), state, None,
                                length=groups,
                                unroll=resolve_unroll(scan_unroll, groups))
  return state, jax.tree.map(jnp.mean, metrics)


def resolve_seed_batching(seed_batching: str, backend: str | None = None):
  """"auto": "unrolled" on CPU, where it keeps every seed bit-identical to
  its single run, and "vmap" elsewhere, where batching pays."""
  if seed_batching != "auto":
    return seed_batching
  backend = backend or jax.default_backend()
  return "unrolled" if backend == "cpu" else "vmap"


def over_seeds(fn, num_seeds: int, seed_batching: str):
  """`fn(state, data) -> (state, metrics)` as a function of a tuple of
  `num_seeds` states (one per seed), all in one program:
  - "vmap": the states are stacked on a leading seed axis and `fn` is
    vectorized over it. The fastest on accelerators; on CPU a seed agrees with
    its single run only to float rounding (batched kernels sum in another
    order).
  - "unrolled": `fn` is written out once per seed; XLA runs the copies side by
    side. Each copy is the single run's program, so each seed is
    bit-identical to its single run.
  """
  if seed_batching == "vmap" and num_seeds > 1:
    def batched(states, data):
      stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
      stacked, metrics = jax.vmap(fn, in_axes=(0, None))(stacked, data)
      unstack = lambda tree, k: jax.tree.map(lambda x: x[k], tree)
      return (tuple(unstack(stacked, k) for k in range(num_seeds)),
              tuple(unstack(metrics, k) for k in range(num_seeds)))
    return batched
  if seed_batching in ("unrolled", "vmap"):  # one seed: no batching
    def unrolled(states, data):
      outs = [fn(state, data) for state in states]
      return tuple(o[0] for o in outs), tuple(o[1] for o in outs)
    return unrolled
  raise ValueError(f"config.seed_batching={seed_batching!r} is not one of "
                   f"{list(SEED_BATCHINGS)}.")


def over_points(fns, num_seeds: int):
  """The functions of a sweep's points (each mapping a tuple of `num_seeds`
  states, `over_seeds`) as one function of all their states, point by
  point, written out side by side."""
  def points(states, data):
    if len(states) != len(fns) * num_seeds:
      raise ValueError(f"{len(states)} states for {len(fns)} sweep points "
                       f"of {num_seeds} seeds")
    outs = [fn(states[i * num_seeds:(i + 1) * num_seeds], data)
            for i, fn in enumerate(fns)]
    return (tuple(s for o in outs for s in o[0]),
            tuple(m for o in outs for m in o[1]))
  return points


def make_train_fn(gan, *, batch_size, steps_per_call, devices, scan_unroll=0,
                  parallelism="pmap", num_seeds=None, seed_batching="auto"):
  """Compiles `steps_per_call` steps of `gan` as one call over `devices`.

  The returned function maps (state, data) -> (state, metrics), `data` as
  `replicate_data` put it. The state is replicated in and out; its buffers
  are donated, so the caller must not reuse the state it passed in.

  With `num_seeds` = N (an int), it maps a tuple of N states, one per seed,
  to a tuple of N states and a tuple of N metric dicts, in one program (see
  `over_seeds`). N = 1 compiles the same program as `num_seeds=None`.
  `gan` may be a sequence of P GANs (the points of a sweep, ganjax/sweeps.py;
  then `num_seeds` is required): the tuples hold P x N states, point by
  point, each point's seeds as above and the points written out side by
  side.
  """
  if parallelism not in PARALLELISMS:
    raise ValueError(f"config.parallelism={parallelism!r} is not one of "
                     f"{list(PARALLELISMS)}.")
  mapped = parallelism != "sharding"
  batch_sharding = (None if mapped or len(devices) == 1 else
                    jax.sharding.NamedSharding(mesh(devices), P(AXIS)))

  def steps_of(one_gan):
    step_fn = functools.partial(step_on_data, one_gan, batch_size=batch_size,
                                axis_name=AXIS if mapped else None,
                                batch_sharding=batch_sharding)
    return functools.partial(train_steps, step_fn=step_fn,
                             steps_per_call=steps_per_call,
                             scan_unroll=scan_unroll,
                             lazy_period=one_gan.lazy_period)

  batching = resolve_seed_batching(seed_batching, devices[0].platform)
  if isinstance(gan, (list, tuple)):
    if num_seeds is None:
      raise ValueError("make_train_fn: a sequence of GANs needs num_seeds")
    multi = over_points([over_seeds(steps_of(g), num_seeds, batching)
                         for g in gan], num_seeds)
  elif num_seeds is not None:
    multi = over_seeds(steps_of(gan), num_seeds, batching)
  else:
    multi = steps_of(gan)
  if parallelism == "pmap":
    return jax.pmap(multi, axis_name=AXIS, in_axes=(None, 0),
                    out_axes=(None, None), donate_argnums=(0,),
                    devices=devices)
  if parallelism == "shard_map":
    per_device = jax.shard_map(
        lambda state, data_1xN: multi(state, jax.tree.map(lambda x: x[0],
                                                          data_1xN)),
        mesh=mesh(devices), in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
        # The step averages its gradients itself (pmean), as under pmap.
        # With check_vma, the gradient of the replicated parameters would get
        # an implicit psum on top.
        check_vma=False)
    return jax.jit(per_device, donate_argnums=(0,))
  replicated = jax.sharding.NamedSharding(mesh(devices), P())
  return jax.jit(multi, donate_argnums=(0,), out_shardings=replicated)


def mesh(devices):
  return jax.sharding.Mesh(np.asarray(devices), (AXIS,))


def replicate_state(state, devices):
  """Places the state replicated on `devices`, the layout the compiled call
  returns it in, so the first and later calls hit the same program."""
  return jax.device_put(state, jax.sharding.NamedSharding(mesh(devices), P()))


def replicate_data(images_NxHxW, devices, labels_N=None,
                   parallelism="pmap") -> dict:
  """Puts the uint8 training set (and its labels, for conditional recipes) on
  every device, once: for "pmap" and "shard_map" stacked as (D, N, ...), one
  copy per device; for "sharding" as (N, ...) replicated. Returns
  {"images"[, "labels"]}."""
  data = {"images": images_NxHxW}
  if labels_N is not None:
    data["labels"] = labels_N
  if parallelism == "sharding":
    return jax.device_put(data, jax.sharding.NamedSharding(mesh(devices),
                                                           P()))
  sharding = jax.sharding.NamedSharding(mesh(devices), P(AXIS))
  return {name: jax.device_put(
      np.broadcast_to(x, (len(devices), *x.shape)), sharding)
          for name, x in data.items()}
