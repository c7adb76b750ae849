"""A GAN and its training step: the math, with no devices in it.

    gan = ganjax.GAN(generator=G(), discriminator=D(), g_optimizer=...,
                     d_optimizer=..., latent_dim=64)
    state = gan.init(jax.random.key(0), image_shape=(28, 28, 1))
    step = jax.jit(gan.step)
    state, metrics = step(state, {"images": x}, jax.random.key(1))

One step, as in the reference recipe:
  phase 1: D learns on B fakes (label 0) and B reals (label 1);
  phase 2: with fresh noise, G learns to make D (as updated in phase 1) say 1.
There is no "trainable" switch and no `stop_gradient`: each phase's loss is
differentiated (`jax.value_and_grad`) with respect to one network's parameters
only. The other network's parameters enter that loss as constants, so they get
no gradient and their optimizer is not applied (tests/test_step_semantics.py
checks both directions).

`GAN.step(state, batch, key)` is a pure function of a batch: it runs under
plain `jax.jit`, and under `jax.jit` with the batch sharded over a `Mesh`
(`ganjax.parallel`), where XLA splits it over the devices and the result
does not depend on how many there are. Inside `pmap` or `shard_map` it is
given the mapped axis' name (`axis_name=`); it then draws the noise and
per-example randomness for the global batch and keeps this device's rows, and
averages gradients and metrics over the axis.

What the step asks of the modules (any Flax modules, see ganjax.models for
examples):
- `generator(z, [labels,] train=...)` -> images in D's input range;
  non-parameter collections (BatchNorm's "batch_stats") are updated in
  training mode.
- `discriminator(images, [labels,] train=...)` -> logits (B,); it draws
  dropout from the "dropout" rng. Its non-parameter collections (say spectral
  norm's power-iteration vectors) are mutable in exactly one call per step,
  phase 1's pass over fakes and reals: a layer that keeps state updates it
  when its collection is mutable (`self.is_mutable_collection(name)`).
- Labels are passed only when `num_classes` > 0.
"""

import dataclasses
import math
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax import augment as augment_lib
from ganjax import layers
from ganjax import losses as losses_lib
from ganjax import regularizers


@flax.struct.dataclass
class TrainState:
  """Everything that decides the rest of a run; what a checkpoint holds.

  `noise_key`, `data_key` and `perm` serve `ganjax.parallel`'s on-device
  data order (the batch of step t is slice t mod steps_per_epoch of `perm`,
  redrawn at each epoch's first step) and the per-step keys; `GAN.step`
  carries them unchanged.
  """
  step: jax.Array  # int32 (), steps completed
  g_params: Any
  g_batch_stats: Any  # G's non-parameter variables; {} if it has none
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  noise_key: jax.Array  # uint32 key data: noise and dropout, folded with step
  data_key: jax.Array  # uint32 key data: data order, folded with the epoch
  perm: jax.Array  # int32 (N,): this epoch's order of the training set
  # D's non-parameter variables (say {"spectral": ...}), else {}.
  d_stats: Any = flax.struct.field(default_factory=dict)
  # G's parameters averaged over steps (GAN.ema_decay), or None when off.
  g_ema_params: Any = None
  # ADA's augmentation probability p, float32 (), or None when off.
  augment_p: Any = None


def _labels_args(labels):
  return () if labels is None else (labels,)


@dataclasses.dataclass(frozen=True)
class GAN:
  """A generator, a discriminator and how they are trained.

  Attributes:
    generator, discriminator: Flax modules (see the module docstring).
    g_optimizer, d_optimizer: optax transformations.
    latent_dim: the dimension of G's Gaussian noise.
    loss: a `losses.GANLoss` or the name of a registered one.
    penalties: `regularizers.Penalty`s added to D's loss.
    augment: DiffAugment policy applied to every image D sees.
    ada: with an `augment.Adaptive`, each transform of `augment` applies to
      each image with probability p (`TrainState.augment_p`, from 0), which
      the step adjusts from D's outputs on the reals (ADA).
    ema_decay: > 0 keeps an exponential moving average of G's parameters
      (`TrainState.g_ema_params`), equal to them before step `ema_start`.
    num_classes: > 0 makes G and D conditional: batches carry "labels" and
      fakes get uniformly drawn classes.
    phase1_bn: G's BatchNorm mode when making phase 1's fakes: "batch"
      (batch statistics, moving averages updated in phase 2 only) or
      "inference" (the moving averages).
  """
  generator: nn.Module
  discriminator: nn.Module
  g_optimizer: optax.GradientTransformation
  d_optimizer: optax.GradientTransformation
  latent_dim: int
  loss: Any = "non_saturating"
  penalties: tuple = ()
  augment: augment_lib.Policy = augment_lib.Policy()
  ada: augment_lib.Adaptive | None = None
  ema_decay: float = 0.0
  ema_start: int = 0
  num_classes: int = 0
  phase1_bn: str = "batch"

  def __post_init__(self):
    names = [p.name for p in self.penalties]
    reserved = {"d_loss", "g_loss", "d_real", "d_fake", "augment_p",
                "ada_r_t"}
    if len(set(names)) < len(names) or reserved & set(names):
      raise ValueError(f"GAN penalties {names}: each needs its own name, "
                       f"none of {sorted(reserved)} (the metrics' names).")
    if self.ada and not self.augment:
      raise ValueError("GAN ada needs transforms to apply (augment, "
                       "config.augment), e.g. 'xflip,translation,color'.")
    if self.phase1_bn not in ("batch", "inference"):
      raise ValueError(f"GAN phase1_bn={self.phase1_bn!r} is not 'batch' or "
                       "'inference'.")

  @property
  def gan_loss(self) -> losses_lib.GANLoss:
    return (losses_lib.get_loss(self.loss) if isinstance(self.loss, str)
            else self.loss)

  @property
  def lazy_period(self) -> int:
    """The steps after which every penalty's schedule repeats."""
    return math.lcm(1, *(p.every for p in self.penalties))

  def init(self, key, image_shape, *, noise_key=None, data_key=None,
           num_examples: int = 0) -> TrainState:
    """The state at step 0: parameters and optimizer states from `key`.

    `noise_key` and `data_key` (default: drawn from `key`) and
    `num_examples` (the training set's size) feed `ganjax.parallel`'s data
    layer; a step on given batches does not read them.
    """
    default_noise, default_data = jax.random.split(jax.random.fold_in(key, 1))
    noise_key = default_noise if noise_key is None else noise_key
    data_key = default_data if data_key is None else data_key
    g_key, d_key = jax.random.split(key)
    labels = _labels_args(jnp.zeros((2,), jnp.int32) if self.num_classes
                          else None)
    g_vars = self.generator.init(g_key, jnp.zeros((2, self.latent_dim)),
                                 *labels, train=False)
    d_vars = self.discriminator.init(d_key, jnp.zeros((2, *image_shape)),
                                     *labels, train=False)
    g_params = g_vars["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        g_batch_stats={k: v for k, v in g_vars.items() if k != "params"}.get(
            "batch_stats", {}),
        d_params=d_vars["params"],
        g_opt_state=self.g_optimizer.init(g_params),
        d_opt_state=self.d_optimizer.init(d_vars["params"]),
        # Copies: the state's buffers are donated to the step, and the caller
        # may build a second initial state from the same keys (a rollback).
        noise_key=jnp.copy(jax.random.key_data(noise_key)),
        data_key=jnp.copy(jax.random.key_data(data_key)),
        perm=jnp.arange(num_examples, dtype=jnp.int32),  # redrawn at step 0
        d_stats={k: v for k, v in d_vars.items() if k != "params"},
        g_ema_params=(jax.tree.map(jnp.copy, g_params) if self.ema_decay
                      else None),
        augment_p=jnp.zeros((), jnp.float32) if self.ada else None)

  def _apply_g(self, params, batch_stats, z, labels):
    return apply_g_train(self.generator, params, batch_stats, z, labels)

  def _apply_d(self, params, stats, images, labels, key, update=False):
    """D's logits and its statistics, updated if `update`."""
    variables = {"params": params, **stats}
    kwargs = dict(train=True, rngs={"dropout": key})
    if not update:
      return self.discriminator.apply(variables, images,
                                      *_labels_args(labels), **kwargs), stats
    logits, new_stats = self.discriminator.apply(
        variables, images, *_labels_args(labels), mutable=list(stats),
        **kwargs)
    return logits, dict(new_stats)

  def step(self, state: TrainState, batch: dict, key, *,
           axis_name: str | None = None, lazy_phase: int | None = None):
    """One D update and one G update on `batch`.

    Args:
      state: the training state.
      batch: {"images": (B, H, W, C) floats in D's input range[, "labels":
        (B,) ints]}; inside pmap/shard_map, this device's rows.
      key: this step's random key (noise, dropout, augmentation, penalties).
      axis_name: the mapped axis inside pmap/shard_map, else None.
      lazy_phase: the step's place in `lazy_period`, known statically
        (`ganjax.parallel` fuses whole periods): a penalty of `every` k
        applies at phases 0, k, 2k, ...; None decides from `state.step` with
        `lax.cond`.

    Returns:
      The new state and a dict of scalar metrics (averaged over the axis).
    """
    inputs = self._draw(batch, key, axis_name)
    state, metrics = self._d_phase(state, inputs, axis_name, lazy_phase)
    state, g_loss = self._g_phase(state, inputs, axis_name)
    metrics["g_loss"] = g_loss
    if self.ada:  # one p for the whole step; the next step gets the new one
      r_t = _mean(metrics.pop("real_sign"), axis_name)
      metrics.update(augment_p=state.augment_p, ada_r_t=r_t)
      state = state.replace(augment_p=self.ada.update(
          state.augment_p, r_t, inputs.rows[1]))
    return state.replace(step=state.step + 1), _mean(metrics, axis_name)

  def _draw(self, batch, key, axis_name) -> "_Inputs":
    """The step's batch, noise, fake labels and keys. Under an axis, noise
    and labels are drawn for the global batch and this device keeps its rows:
    the randomness does not depend on the device count."""
    reals, real_y = batch["images"], batch.get("labels")
    if self.num_classes and real_y is None:
      raise ValueError(f"This GAN is conditional (num_classes="
                       f"{self.num_classes}): its batches need \"labels\".")
    per_device = reals.shape[0]
    if axis_name is None:
      device, batch_size = 0, per_device
    else:
      device = jax.lax.axis_index(axis_name)
      batch_size = per_device * jax.lax.axis_size(axis_name)
    rows = (device * per_device, batch_size)  # this device's rows, global size
    global_rows = lambda draw: jax.lax.dynamic_slice_in_dim(
        draw(batch_size), rows[0], per_device)

    k_zd, k_zg, k_dropd, k_dropg = jax.random.split(key, 4)
    # The same dropout keys on every device: the masks are drawn for the
    # global batch (layers.Dropout). (fold_in(., 0) keeps runs made before
    # this change, all with one device, bit for bit.)
    k_dropd, k_dropg = (jax.random.fold_in(k, 0) for k in (k_dropd, k_dropg))
    # Streams of the optional pieces, apart from the four above so that the
    # reference recipe's draws are unchanged.
    (k_augd_fake, k_augd_real, k_augg_fake, k_augg_real, k_pen, k_drop_pen,
     k_yd, k_yg) = jax.random.split(jax.random.fold_in(key, 1), 8)
    noise = lambda k: global_rows(
        lambda n: jax.random.normal(k, (n, self.latent_dim)))
    fake_yd = fake_yg = None
    if self.num_classes:
      real_y = real_y.astype(jnp.int32)
      fake_label = lambda k: global_rows(
          lambda n: jax.random.randint(k, (n,), 0, self.num_classes))
      fake_yd, fake_yg = fake_label(k_yd), fake_label(k_yg)
    else:
      real_y = None
    return _Inputs(
        reals=reals, real_y=real_y, z_d=noise(k_zd), z_g=noise(k_zg),
        fake_yd=fake_yd, fake_yg=fake_yg, rows=rows,
        keys=dict(drop_d=k_dropd, drop_g=k_dropg, aug_d_fake=k_augd_fake,
                  aug_d_real=k_augd_real, aug_g_fake=k_augg_fake,
                  aug_g_real=k_augg_real, penalty=k_pen,
                  drop_penalty=k_drop_pen))

  def _augment(self, images, key, rows, p):
    if not self.augment:
      return images
    return augment_lib.augment(images, key, self.augment, rows=rows, p=p)

  def _d_phase(self, state, inputs, axis_name, lazy_phase):
    """Phase 1: D learns on B fakes and the B reals; (state, metrics)."""
    x, keys, per_device = inputs, inputs.keys, inputs.reals.shape[0]
    if self.phase1_bn == "inference":
      fakes = self.generator.apply(
          g_variables(state.g_params, state.g_batch_stats), x.z_d,
          *_labels_args(x.fake_yd), train=False)
    else:  # batch statistics; the moving averages are updated in phase 2.
      fakes, _ = self._apply_g(state.g_params, state.g_batch_stats, x.z_d,
                               x.fake_yd)
    fakes_d = self._augment(fakes, keys["aug_d_fake"], x.rows,
                            state.augment_p)
    reals_d = self._augment(x.reals, keys["aug_d_real"], x.rows,
                            state.augment_p)
    d_inputs = jnp.concatenate([fakes_d, reals_d], axis=0)
    d_y = (None if x.real_y is None
           else jnp.concatenate([x.fake_yd, x.real_y]))
    gan_loss = self.gan_loss

    def d_loss_fn(d_params):
      # Fakes then reals: under an axis, dropout's global masks follow the
      # global batch's layout (all fakes, then all reals).
      with layers.batch_segments(2):
        logits, d_stats = self._apply_d(d_params, state.d_stats, d_inputs,
                                        d_y, keys["drop_d"],
                                        update=bool(state.d_stats))
      loss = gan_loss.d(logits[:per_device], logits[per_device:])
      # A conditional D scores images with the labels of the reals (the
      # default) or, for penalties at the fakes, of the fakes.
      d_fn = lambda images, labels_of="reals": self._apply_d(
          d_params, d_stats, images,
          x.fake_yd if labels_of == "fakes" else x.real_y,
          keys["drop_penalty"])[0]
      values = {}
      for penalty in self.penalties:
        value, term = regularizers.apply_penalty(
            penalty, d_fn, reals_d, fakes_d, key=keys["penalty"],
            rows=x.rows, step=state.step, lazy_phase=lazy_phase)
        if value is not None:
          values[penalty.name] = value
          loss = loss + term
      return loss, (logits, d_stats, values)

    (d_loss, (logits, d_stats, metrics)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d_params)
    d_params, d_opt_state = _update(self.d_optimizer, d_grads,
                                    state.d_opt_state, state.d_params,
                                    axis_name)
    probs = jax.nn.sigmoid(logits)
    metrics.update({"d_loss": d_loss, "d_real": probs[per_device:].mean(),
                    "d_fake": probs[:per_device].mean()})
    if self.ada:  # ADA's overfitting heuristic, from this step's reals
      metrics["real_sign"] = jnp.sign(logits[per_device:]).mean()
    return state.replace(d_params=d_params, d_stats=d_stats,
                         d_opt_state=d_opt_state), metrics

  def _g_phase(self, state, inputs, axis_name):
    """Phase 2: with fresh noise, G learns against the updated D (constants
    in g_loss_fn, which is differentiated w.r.t. G's parameters only);
    (state, G's loss)."""
    x, keys, gan_loss = inputs, inputs.keys, self.gan_loss
    real_logits = None
    if gan_loss.g_needs_reals:
      real_logits = self._apply_d(
          state.d_params, state.d_stats,
          self._augment(x.reals, keys["aug_g_real"], x.rows,
                        state.augment_p), x.real_y,
          jax.random.fold_in(keys["drop_g"], 1))[0]

    def g_loss_fn(g_params):
      fakes, new_batch_stats = self._apply_g(g_params, state.g_batch_stats,
                                             x.z_g, x.fake_yg)
      logits, _ = self._apply_d(
          state.d_params, state.d_stats,
          self._augment(fakes, keys["aug_g_fake"], x.rows, state.augment_p),
          x.fake_yg,
          keys["drop_g"])
      return gan_loss.g(logits, real_logits), new_batch_stats

    (g_loss, g_batch_stats), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(state.g_params)
    g_params, g_opt_state = _update(self.g_optimizer, g_grads,
                                    state.g_opt_state, state.g_params,
                                    axis_name)
    g_ema_params = state.g_ema_params
    if self.ema_decay:  # until ema_start the average is the parameters
      decay = jnp.where(state.step >= self.ema_start, self.ema_decay, 0.0)
      g_ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                                  g_ema_params, g_params)
    return state.replace(g_params=g_params, g_batch_stats=g_batch_stats,
                         g_opt_state=g_opt_state,
                         g_ema_params=g_ema_params), g_loss


class _Inputs(NamedTuple):
  """What one step draws before its two phases (see `GAN._draw`)."""
  reals: jax.Array
  real_y: Any
  z_d: jax.Array
  z_g: jax.Array
  fake_yd: Any
  fake_yg: Any
  rows: tuple
  keys: dict


def g_variables(params, batch_stats) -> dict:
  """G's variables for `apply`; no "batch_stats" for a G without BatchNorm."""
  return {"params": params, **({"batch_stats": batch_stats}
                               if batch_stats else {})}


def apply_g_train(generator, params, batch_stats, z, labels=None):
  """G in training mode: (images, its new BatchNorm statistics)."""
  if not batch_stats:
    return generator.apply({"params": params}, z, *_labels_args(labels),
                           train=True), {}
  images, new_vars = generator.apply(
      g_variables(params, batch_stats), z, *_labels_args(labels), train=True,
      mutable=["batch_stats"])
  return images, new_vars["batch_stats"]


def _mean(tree, axis_name):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _update(tx, grads, opt_state, params, axis_name):
  """Averages the gradients over the axis and applies one optimizer step."""
  updates, opt_state = tx.update(_mean(grads, axis_name), opt_state, params)
  return optax.apply_updates(params, updates), opt_state
