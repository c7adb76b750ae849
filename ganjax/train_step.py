"""The training state and the compiled GAN step (both phases in one function).

One step, as in the reference recipe:
  phase 1: D learns on B fakes (label 0) and B reals (label 1);
  phase 2: with fresh noise, G learns to make D (as updated in phase 1) say 1.
There is no "trainable" switch and no `stop_gradient`: each phase's loss is
differentiated (`jax.value_and_grad`) with respect to one network's parameters
only. The other network's parameters enter that loss as constants, so they get
no gradient and their optimizer is not applied (tests/test_step_semantics.py
checks both directions).

Under `pmap` every device holds the whole training set (uint8), computes the
same global batch indices from the seeded per-epoch permutation and takes its
slice; the noise is drawn for the global batch and sliced the same way. So the
data order and the noise do not depend on the device count. Gradients and
metrics are averaged over devices, and the generator's BatchNorm uses the
statistics of the global batch.
"""

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax import augment as augment_lib
from ganjax import input_pipeline
from ganjax import losses
from ganjax import models
from ganjax import regularizers

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
  g_batch_stats: Any  # G's BatchNorm moving statistics; {} if it has none
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  noise_key: jax.Array  # uint32 key data: noise and dropout, folded with step
  data_key: jax.Array  # uint32 key data: data order, folded with the epoch
  perm: jax.Array  # int32 (N,): this epoch's order of the training set
  # D's non-parameter variables: {"spectral": power-iteration vectors} with
  # spectral norm, else {} (no arrays, so older checkpoints still restore).
  d_stats: Any = flax.struct.field(default_factory=dict)
  # G's parameters averaged over steps (config.ema_decay), or None when off.
  g_ema_params: Any = None


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The step's static choices: what is minimized and how (see configs)."""
  loss: losses.GANLoss
  phase1_bn: str = "batch"
  gp_weight: float = 0.0
  r1_weight: float = 0.0
  r1_every: int = 1
  augment: augment_lib.Policy = augment_lib.Policy()  # DiffAugment
  ema_decay: float = 0.0  # 0 = no EMA of G
  ema_start: int = 0
  num_classes: int = 0  # > 0: conditional G and projection D

  @classmethod
  def from_config(cls, config, bce=None):
    """`bce` overrides the config's cross-entropy (tests count its traces)."""
    return cls(
        loss=losses.get_loss(config.loss, bce or config.bce),
        phase1_bn=config.phase1_bn, gp_weight=float(config.gp_weight),
        r1_weight=float(config.r1_weight), r1_every=config.r1_every,
        augment=augment_lib.policy_from_config(config),
        ema_decay=float(config.ema_decay), ema_start=config.ema_start,
        num_classes=models.num_classes(config))


def init_state(*, generator, discriminator, g_tx, d_tx, latent_dim: int,
               image_shape, num_examples: int, init_key, noise_key,
               data_key, ema: bool = False) -> TrainState:
  """Initializes parameters and optimizer states from `init_key`."""
  g_key, d_key = jax.random.split(init_key)
  labels = jnp.zeros((2,), jnp.int32)
  g_vars = generator.init(g_key, jnp.zeros((2, latent_dim)), labels,
                          train=False)
  d_vars = discriminator.init(d_key, jnp.zeros((2, *image_shape)), labels,
                              train=False)
  d_stats = {k: v for k, v in d_vars.items() if k != "params"}
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_vars["params"],
      g_batch_stats=g_vars.get("batch_stats", {}),
      d_params=d_vars["params"],
      g_opt_state=g_tx.init(g_vars["params"]),
      d_opt_state=d_tx.init(d_vars["params"]),
      # Copies: the state's buffers are donated to the step, and the caller
      # may build a second initial state from the same keys (a rollback).
      noise_key=jnp.copy(jax.random.key_data(noise_key)),
      data_key=jnp.copy(jax.random.key_data(data_key)),
      perm=jnp.arange(num_examples, dtype=jnp.int32),  # redrawn at step 0
      d_stats=d_stats,
      g_ema_params=(jax.tree.map(jnp.copy, g_vars["params"]) if ema
                    else None))


def g_variables(params, batch_stats) -> dict:
  """G's variables for `apply`; no "batch_stats" for a G without BatchNorm."""
  return {"params": params, **({"batch_stats": batch_stats}
                               if batch_stats else {})}


def apply_g_train(generator, params, batch_stats, z, labels):
  """G in training mode: (images, its new BatchNorm statistics)."""
  if not batch_stats:
    return generator.apply({"params": params}, z, labels, train=True), {}
  images, new_vars = generator.apply(g_variables(params, batch_stats), z,
                                     labels, train=True,
                                     mutable=["batch_stats"])
  return images, new_vars["batch_stats"]


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


def _apply_d(discriminator, params, stats, images, labels, *, key,
             segments=1, update_stats=False):
  """D's logits and its statistics (spectral norm's power iteration), which
  advance one iteration if `update_stats`."""
  variables = {"params": params, **stats}
  kwargs = dict(train=True, segments=segments, rngs={"dropout": key})
  if not update_stats:
    return discriminator.apply(variables, images, labels, **kwargs), stats
  logits, new_stats = discriminator.apply(
      variables, images, labels, update_stats=True, mutable=list(stats),
      **kwargs)
  return logits, dict(new_stats)


def train_step(state: TrainState, data, *, generator, discriminator,
               g_tx, d_tx, recipe: Recipe, batch_size: int, num_devices: int,
               latent_dim: int, with_r1: bool = True):
  """One D update and one G update; runs inside `pmap` over axis `AXIS`.

  Args:
    state: the replicated training state.
    data: {"images": the whole training set, uint8 (N, H, W[, C]),
      "labels": (N,) uint8, for conditional recipes}, resident on this device.
    generator, discriminator: the flax modules.
    g_tx, d_tx: optax optimizers.
    recipe: the loss, regularizers, augmentation, EMA and conditioning.
    batch_size: the global batch size; each device takes
      batch_size / num_devices of it.
    num_devices: number of devices in the pmap.
    latent_dim: noise dimension.
    with_r1: whether this step applies R1 (if the recipe has it); lazy R1
      is decided statically by `train_steps`, not by a `lax.cond`, whose
      branches XLA's CPU backend runs several times slower.

  Returns:
    The new state and a dict of scalar metrics averaged over devices.
  """
  per_device = batch_size // num_devices
  device = jax.lax.axis_index(AXIS)
  rows = (device * per_device, batch_size)  # this device's rows, global size
  noise_key = jax.random.wrap_key_data(state.noise_key)
  data_key = jax.random.wrap_key_data(state.data_key)
  step_key = jax.random.fold_in(noise_key, state.step)
  k_zd, k_zg, k_dropd, k_dropg = jax.random.split(step_key, 4)
  # The same dropout keys on every device: the masks are drawn for the global
  # batch (layers.Dropout), so data, noise and masks are all independent of
  # the device count. (fold_in(., 0) keeps runs made before this change, all
  # with one device, bit for bit.)
  k_dropd, k_dropg = (jax.random.fold_in(k, 0) for k in (k_dropd, k_dropg))
  # Streams of the optional pieces, apart from the four above so that the
  # reference recipe's draws are unchanged.
  (k_augd_fake, k_augd_real, k_augg_fake, k_augg_real, k_gp, k_drop_pen,
   k_yd, k_yg) = jax.random.split(jax.random.fold_in(step_key, 1), 8)

  perm = current_permutation(state.perm, data_key, state.step,
                             batch_size=batch_size)
  idx = _device_slice(batch_indices(perm, state.step, batch_size=batch_size),
                      per_device, device)
  reals = input_pipeline.to_model_range(data["images"][idx])
  if reals.ndim == 3:
    reals = reals[..., None]
  noise = lambda key: _device_slice(
      jax.random.normal(key, (batch_size, latent_dim)), per_device, device)
  z_d, z_g = noise(k_zd), noise(k_zg)
  if recipe.num_classes:
    real_y = data["labels"][idx].astype(jnp.int32)
    fake_label = lambda key: _device_slice(jax.random.randint(
        key, (batch_size,), 0, recipe.num_classes), per_device, device)
    fake_yd, fake_yg = fake_label(k_yd), fake_label(k_yg)
    d_y = jnp.concatenate([fake_yd, real_y])
  else:
    real_y = fake_yd = fake_yg = d_y = None
  augment = lambda images, key: augment_lib.augment(
      images, key, recipe.augment, rows=rows)
  metrics = {}

  # Phase 1: the discriminator.
  if recipe.phase1_bn == "inference":
    fakes = generator.apply(
        g_variables(state.g_params, state.g_batch_stats), z_d, fake_yd,
        train=False)
  else:  # batch statistics; the moving averages are updated in phase 2 only.
    fakes, _ = apply_g_train(generator, state.g_params, state.g_batch_stats,
                             z_d, fake_yd)
  if recipe.augment:
    fakes_d, reals_d = augment(fakes, k_augd_fake), augment(reals, k_augd_real)
  else:
    fakes_d, reals_d = fakes, reals
  d_inputs = jnp.concatenate([fakes_d, reals_d], axis=0)

  def d_loss_fn(d_params):
    logits, d_stats = _apply_d(
        discriminator, d_params, state.d_stats, d_inputs, d_y, key=k_dropd,
        segments=2, update_stats=bool(state.d_stats))
    loss = recipe.loss.d(logits[:per_device], logits[per_device:])
    penalties = {}
    d_fn = lambda images: _apply_d(discriminator, d_params, d_stats, images,
                                   real_y, key=k_drop_pen)[0]
    if recipe.gp_weight:
      eps = _device_slice(jax.random.uniform(k_gp, (batch_size,)),
                          per_device, device)  # drawn for the global batch
      penalties["gp"] = regularizers.gradient_penalty(d_fn, reals_d, fakes_d,
                                                      eps)
      loss = loss + recipe.gp_weight * penalties["gp"]
    if recipe.r1_weight and with_r1:  # lazy R1 is weighted r1_every x
      penalties["r1"] = regularizers.r1_penalty(d_fn, reals_d)
      loss = loss + (recipe.r1_weight * recipe.r1_every) * penalties["r1"]
    return loss, (logits, d_stats, penalties)

  (d_loss, (d_logits, d_stats, penalties)), d_grads = jax.value_and_grad(
      d_loss_fn, has_aux=True)(state.d_params)
  metrics.update(penalties)
  d_params, d_opt_state = _update(d_tx, d_grads, state.d_opt_state,
                                  state.d_params)

  # Phase 2: the generator, against the updated discriminator (constants in
  # g_loss_fn, which is differentiated w.r.t. G's parameters only).
  real_logits_g = None
  if recipe.loss.g_needs_reals:
    real_logits_g = _apply_d(
        discriminator, d_params, d_stats,
        augment(reals, k_augg_real) if recipe.augment else reals, real_y,
        key=jax.random.fold_in(k_dropg, 1))[0]

  def g_loss_fn(g_params):
    fakes, new_batch_stats = apply_g_train(
        generator, g_params, state.g_batch_stats, z_g, fake_yg)
    if recipe.augment:
      fakes = augment(fakes, k_augg_fake)
    logits, _ = _apply_d(discriminator, d_params, d_stats, fakes, fake_yg,
                         key=k_dropg)
    return recipe.loss.g(logits, real_logits_g), new_batch_stats

  (g_loss, g_batch_stats), g_grads = jax.value_and_grad(
      g_loss_fn, has_aux=True)(state.g_params)
  g_params, g_opt_state = _update(g_tx, g_grads, state.g_opt_state,
                                  state.g_params)
  g_ema_params = state.g_ema_params
  if recipe.ema_decay:  # until ema_start the average is the parameters
    decay = jnp.where(state.step >= recipe.ema_start, recipe.ema_decay, 0.0)
    g_ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                                g_ema_params, g_params)

  probs = jax.nn.sigmoid(d_logits)
  metrics.update({"d_loss": d_loss, "g_loss": g_loss,
                  "d_real": probs[per_device:].mean(),
                  "d_fake": probs[:per_device].mean()})
  new_state = state.replace(
      step=state.step + 1, perm=perm, g_params=g_params,
      g_batch_stats=g_batch_stats, d_params=d_params, d_stats=d_stats,
      g_opt_state=g_opt_state, d_opt_state=d_opt_state,
      g_ema_params=g_ema_params)
  return new_state, jax.lax.pmean(metrics, AXIS)


def resolve_unroll(scan_unroll: int, steps_per_call: int,
                   backend: str | None = None) -> int:
  """0 means: unroll fully on CPU, where XLA runs convolutions inside a loop
  body many times slower than unrolled ones, and not at all elsewhere."""
  if scan_unroll:
    return min(scan_unroll, steps_per_call)
  backend = backend or jax.default_backend()
  return steps_per_call if backend == "cpu" else 1


def train_steps(state, data, *, step_fn, steps_per_call: int,
                scan_unroll: int, r1_every: int = 1):
  """`steps_per_call` steps in one compiled call; metrics are their mean.

  Steps go in groups of `r1_every` (which divides steps_per_call, and every
  call starts at a multiple of it): the first step of each group applies R1,
  the others do not.
  """
  def group(state):
    metrics = []
    for k in range(r1_every):
      state, m = step_fn(state, data, with_r1=k == 0)
      metrics.append(m)
    # Each metric is averaged over the steps that compute it: "r1" is the
    # penalty of the group's one R1 step, not diluted by the others.
    return state, {name: jnp.mean(jnp.stack([m[name] for m in metrics
                                              if name in m]))
                   for name in metrics[0]}

  if steps_per_call % r1_every:
    raise ValueError(f"config.r1_every={r1_every} must divide "
                     f"config.steps_per_call={steps_per_call}.")
  groups = steps_per_call // r1_every
  if groups == 1:
    return group(state)
  state, metrics = jax.lax.scan(lambda s, _: group(s), state, None,
                                length=groups,
                                unroll=resolve_unroll(scan_unroll, groups))
  return state, jax.tree.map(jnp.mean, metrics)


PARALLELISMS = ("pmap", "shard_map")
SEED_BATCHINGS = ("auto", "vmap", "unrolled")


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


def make_train_fn(*, generator, discriminator, g_tx, d_tx, recipe, batch_size,
                  latent_dim, steps_per_call, devices,
                  scan_unroll=0, parallelism="pmap", num_seeds=None,
                  seed_batching="auto"):
  """Compiles `steps_per_call` training steps as one call over `devices`.

  The returned function maps (state, images_DxNxHxW) -> (state, metrics). The
  state is replicated (unstacked) in and out; its buffers are donated, so the
  caller must not reuse the state it passed in. The images are stacked per
  device, put there once with `replicate_data`.

  With `num_seeds` = N (an int), it maps a tuple of N states, one per seed,
  to a tuple of N states and a tuple of N metric dicts, in one program (see
  `over_seeds`; `seed_batching` picks how). N = 1 compiles the same program
  as `num_seeds=None`.

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
      d_tx=d_tx, recipe=recipe, batch_size=batch_size,
      num_devices=len(devices), latent_dim=latent_dim)
  multi = functools.partial(
      train_steps, step_fn=step_fn, steps_per_call=steps_per_call,
      scan_unroll=scan_unroll, r1_every=recipe.r1_every if recipe.r1_weight
      else 1)
  if num_seeds is not None:
    multi = over_seeds(multi, num_seeds, resolve_seed_batching(
        seed_batching, devices[0].platform))
  if parallelism == "pmap":
    return jax.pmap(multi, axis_name=AXIS, in_axes=(None, 0),
                    out_axes=(None, None), donate_argnums=(0,),
                    devices=devices)
  if parallelism == "shard_map":
    P = jax.sharding.PartitionSpec  # pylint: disable=invalid-name
    per_device = jax.shard_map(
        lambda state, data_1xN: multi(state, jax.tree.map(lambda x: x[0],
                                                          data_1xN)),
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


def replicate_data(images_NxHxW, devices, labels_N=None) -> dict:
  """Puts the uint8 training set (and its labels, for conditional recipes) on
  every device, once, stacked as (D, N, ...) with one copy per device: the
  layout `pmap` with in_axes=0 consumes. Returns {"images"[, "labels"]}."""
  sharding = jax.sharding.NamedSharding(_mesh(devices),
                                        jax.sharding.PartitionSpec(AXIS))
  data = {"images": images_NxHxW}
  if labels_N is not None:
    data["labels"] = labels_N
  return {name: jax.device_put(
      np.broadcast_to(x, (len(devices), *x.shape)), sharding)
          for name, x in data.items()}
