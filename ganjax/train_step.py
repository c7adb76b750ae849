"""The training state and the compiled GAN step (both phases in one function).

One step, as in the reference recipe:
  phase 1: D learns on B fakes (label 0) and B reals (label 1); gradients are
           taken w.r.t. D's parameters only and the fakes are wrapped in
           `stop_gradient`, so nothing reaches G.
  phase 2: with fresh noise, G learns to make D say 1; gradients are taken
           w.r.t. G's parameters only and D's (just updated) parameters enter
           through `stop_gradient`.
There is no "trainable" switch: which parameters move is decided by what
`jax.grad` differentiates.

Under `pmap` every device holds the whole training set (uint8), computes the
same global batch indices from the seeded per-epoch permutation and takes its
slice; the noise is drawn for the global batch and sliced the same way. So the
data order and the noise do not depend on the device count. Gradients and
metrics are averaged over devices, and the generator's BatchNorm uses the
statistics of the global batch.
"""

import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax import input_pipeline

AXIS = "batch"  # the pmap axis name


@flax.struct.dataclass
class TrainState:
  """Everything that decides the rest of a run; what a checkpoint holds.

  The data position is `step` itself: the batch of step t is slice
  t mod steps_per_epoch of `perm`, the permutation of epoch
  t // steps_per_epoch, which the step redraws at each epoch's first step
  (drawing it every step cost ~10% of a step on CPU).
  """
  step: jax.Array  # int32 (), steps completed
  g_params: Any
  g_batch_stats: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  noise_key: jax.Array  # uint32 key data: noise and dropout, folded with step
  data_key: jax.Array  # uint32 key data: data order, folded with the epoch
  perm: jax.Array  # int32 (N,): this epoch's order of the training set


def init_state(*, generator, discriminator, g_tx, d_tx, latent_dim: int,
               image_shape, num_examples: int, init_key, noise_key,
               data_key) -> TrainState:
  """Initializes parameters and optimizer states from `init_key`."""
  g_key, d_key = jax.random.split(init_key)
  g_vars = generator.init(g_key, jnp.zeros((2, latent_dim)), train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((2, *image_shape)),
                              train=False)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_vars["params"],
      g_batch_stats=g_vars["batch_stats"],
      d_params=d_vars["params"],
      g_opt_state=g_tx.init(g_vars["params"]),
      d_opt_state=d_tx.init(d_vars["params"]),
      # Copies: the state's buffers are donated to the step, and the caller
      # may build a second initial state from the same keys (a rollback).
      noise_key=jnp.copy(jax.random.key_data(noise_key)),
      data_key=jnp.copy(jax.random.key_data(data_key)),
      perm=jnp.arange(num_examples, dtype=jnp.int32))  # redrawn at step 0


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


def _device_slice(x, batch_per_device, device):
  return jax.lax.dynamic_slice_in_dim(x, device * batch_per_device,
                                      batch_per_device)


def _update(tx, grads, opt_state, params):
  """Averages the gradients over devices and applies one optimizer step."""
  updates, opt_state = tx.update(jax.lax.pmean(grads, AXIS), opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def train_step(state: TrainState, images_NxHxW, *, generator, discriminator,
               g_tx, d_tx, bce: Callable, batch_size: int, num_devices: int,
               latent_dim: int, phase1_bn: str):
  """One D update and one G update; runs inside `pmap` over axis `AXIS`.

  Args:
    state: the replicated training state.
    images_NxHxW: the whole training set, uint8, resident on this device.
    generator, discriminator: the flax modules.
    g_tx, d_tx: optax optimizers.
    bce: elementwise binary cross-entropy on logits (see `losses`).
    batch_size: the global batch size; each device takes
      batch_size / num_devices of it.
    num_devices: number of devices in the pmap.
    latent_dim: noise dimension.
    phase1_bn: "inference" (the reference: D's fakes come from G with its moving
      BatchNorm statistics) or "batch" (with the batch statistics G trains with).

  Returns:
    The new state and a dict of scalar metrics averaged over devices.
  """
  per_device = batch_size // num_devices
  device = jax.lax.axis_index(AXIS)
  noise_key = jax.random.wrap_key_data(state.noise_key)
  data_key = jax.random.wrap_key_data(state.data_key)
  k_zd, k_zg, k_dropd, k_dropg = jax.random.split(
      jax.random.fold_in(noise_key, state.step), 4)
  # The same dropout keys on every device: the masks are drawn for the global
  # batch (layers.Dropout), so data, noise and masks are all independent of
  # the device count. (fold_in(., 0) keeps runs made before this change, all
  # with one device, bit for bit.)
  k_dropd, k_dropg = (jax.random.fold_in(k, 0) for k in (k_dropd, k_dropg))

  perm = current_permutation(state.perm, data_key, state.step,
                             batch_size=batch_size)
  idx = batch_indices(perm, state.step, batch_size=batch_size)
  reals = images_NxHxW[_device_slice(idx, per_device, device)]
  reals = input_pipeline.to_model_range(reals)[..., None]
  z_d = _device_slice(jax.random.normal(k_zd, (batch_size, latent_dim)),
                      per_device, device)
  z_g = _device_slice(jax.random.normal(k_zg, (batch_size, latent_dim)),
                      per_device, device)
  g_vars = {"params": state.g_params, "batch_stats": state.g_batch_stats}

  # Phase 1: the discriminator.
  if phase1_bn == "inference":
    fakes = generator.apply(g_vars, z_d, train=False)
  else:  # batch statistics; the moving averages are updated in phase 2 only.
    fakes, _ = generator.apply(g_vars, z_d, train=True,
                               mutable=["batch_stats"])
  fakes = jax.lax.stop_gradient(fakes)
  d_inputs = jnp.concatenate([fakes, reals], axis=0)
  d_labels = jnp.concatenate([jnp.zeros(per_device), jnp.ones(per_device)])

  def d_loss_fn(d_params):
    logits = discriminator.apply(
        {"params": d_params}, d_inputs, train=True, segments=2,
        rngs={"dropout": k_dropd})
    return bce(logits, d_labels).mean(), logits

  (d_loss, d_logits), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.d_params)
  d_params, d_opt_state = _update(d_tx, d_grads, state.d_opt_state,
                                  state.d_params)

  # Phase 2: the generator, against the updated and frozen discriminator.
  frozen_d_params = jax.lax.stop_gradient(d_params)

  def g_loss_fn(g_params):
    fakes, new_vars = generator.apply(
        {"params": g_params, "batch_stats": state.g_batch_stats}, z_g,
        train=True, mutable=["batch_stats"])
    logits = discriminator.apply(
        {"params": frozen_d_params}, fakes, train=True,
        rngs={"dropout": k_dropg})
    return bce(logits, jnp.ones(per_device)).mean(), new_vars["batch_stats"]

  (g_loss, g_batch_stats), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(state.g_params)
  g_params, g_opt_state = _update(g_tx, g_grads, state.g_opt_state,
                                  state.g_params)

  probs = jax.nn.sigmoid(d_logits)
  metrics = {"d_loss": d_loss, "g_loss": g_loss,
             "d_real": probs[per_device:].mean(),
             "d_fake": probs[:per_device].mean()}
  new_state = state.replace(
      step=state.step + 1, perm=perm, g_params=g_params,
      g_batch_stats=g_batch_stats,
      d_params=d_params, g_opt_state=g_opt_state, d_opt_state=d_opt_state)
  return new_state, jax.lax.pmean(metrics, AXIS)


def resolve_unroll(scan_unroll: int, steps_per_call: int,
                   backend: str | None = None) -> int:
  """0 means: unroll fully on CPU, where XLA runs convolutions inside a loop
  body many times slower than unrolled ones, and not at all elsewhere."""
  if scan_unroll:
    return min(scan_unroll, steps_per_call)
  backend = backend or jax.default_backend()
  return steps_per_call if backend == "cpu" else 1


def train_steps(state, images_NxHxW, *, step_fn, steps_per_call: int,
                scan_unroll: int):
  """`steps_per_call` steps in one compiled call; metrics are their mean."""
  if steps_per_call == 1:
    return step_fn(state, images_NxHxW)
  state, metrics = jax.lax.scan(lambda s, _: step_fn(s, images_NxHxW), state,
                                None, length=steps_per_call,
                                unroll=resolve_unroll(scan_unroll,
                                                      steps_per_call))
  return state, jax.tree.map(jnp.mean, metrics)


PARALLELISMS = ("pmap", "shard_map")


def make_train_fn(*, generator, discriminator, g_tx, d_tx, bce, batch_size,
                  latent_dim, phase1_bn, steps_per_call, devices,
                  scan_unroll=0, parallelism="pmap"):
  """Compiles `steps_per_call` training steps as one call over `devices`.

  The returned function maps (state, images_DxNxHxW) -> (state, metrics). The
  state is replicated (unstacked) in and out; its buffers are donated, so the
  caller must not reuse the state it passed in. The images are stacked per
  device, put there once with `replicate_data`.

  `parallelism` picks the API; both run the same per-device program (the
  step's collectives over axis `AXIS`), so they give the same results:
  - "pmap": `jax.pmap` with in_axes=(None, 0).
  - "shard_map": `jax.jit` of `jax.shard_map` over a 1-D `Mesh` of the
    devices, the state with `PartitionSpec()` and the images with
    `PartitionSpec(AXIS)`: the modern API, composable with other `jit`ted
    and sharded code.
  """
  step_fn = functools.partial(
      train_step, generator=generator, discriminator=discriminator, g_tx=g_tx,
      d_tx=d_tx, bce=bce, batch_size=batch_size, num_devices=len(devices),
      latent_dim=latent_dim, phase1_bn=phase1_bn)
  multi = functools.partial(train_steps, step_fn=step_fn,
                            steps_per_call=steps_per_call,
                            scan_unroll=scan_unroll)
  if parallelism == "pmap":
    return jax.pmap(multi, axis_name=AXIS, in_axes=(None, 0),
                    out_axes=(None, None), donate_argnums=(0,),
                    devices=devices)
  if parallelism == "shard_map":
    P = jax.sharding.PartitionSpec  # pylint: disable=invalid-name
    per_device = jax.shard_map(
        lambda state, images_1xNxHxW: multi(state, images_1xNxHxW[0]),
        mesh=_mesh(devices), in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
        # The step averages its gradients itself (pmean in _update), as under
        # pmap. With check_vma, the gradient of the replicated parameters
        # would get an implicit psum on top.
        check_vma=False)
    return jax.jit(per_device, donate_argnums=(0,))
  raise ValueError(f"config.parallelism={parallelism!r} is not one of "
                   f"{list(PARALLELISMS)}.")


def _mesh(devices):
  return jax.sharding.Mesh(np.asarray(devices), (AXIS,))


def replicate_state(state, devices):
  """Places the state replicated on `devices`, the layout the pmapped step
  returns it in, so the first and later calls hit the same compiled step."""
  return jax.device_put(state, jax.sharding.NamedSharding(
      _mesh(devices), jax.sharding.PartitionSpec()))


def replicate_data(images_NxHxW, devices):
  """Puts the uint8 training set on every device, once, stacked as (D, N, ...)
  with one copy per device: the layout `pmap` with in_axes=0 consumes."""
  sharding = jax.sharding.NamedSharding(_mesh(devices),
                                        jax.sharding.PartitionSpec(AXIS))
  stacked = np.broadcast_to(images_NxHxW, (len(devices), *images_NxHxW.shape))
  return jax.device_put(stacked, sharding)
