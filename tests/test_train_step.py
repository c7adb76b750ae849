"""The compiled step: golden values, device-count invariance, one compile."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import build
from ganjax import layers
from ganjax import losses
from ganjax import metric_writers
from ganjax import parallel
from ganjax import trainer
from tests.conftest import smoke_config


def _build(config, num_devices, gan=None):
  devices = jax.local_devices()[:num_devices]
  state = build.initial_state(config, build.make_keys(config.seed), 60000)
  train_fn = build.compile_train_fn(config, devices, gan=gan)
  return parallel.replicate_state(state, devices), train_fn, devices


def _run(config, num_devices, images, calls=2):
  """(state, metrics of the last call) after `calls` compiled calls."""
  state, train_fn, devices = _build(config, num_devices)
  data = build.replicate_data(config, images, None, devices)
  for _ in range(calls):
    state, metrics = train_fn(state, data)
  return jax.device_get(state), jax.device_get(metrics)


def test_batch_indices_are_a_permutation_per_epoch():
  key = jax.random.key(0)
  perm, seen = jnp.zeros(10, jnp.int32), []
  for step in range(6):  # 3 steps per epoch, one example dropped
    perm = parallel.current_permutation(perm, key, jnp.int32(step),
                                          batch_size=3)
    seen.append(np.asarray(parallel.batch_indices(perm, jnp.int32(step),
                                                    batch_size=3)))
  np.testing.assert_array_equal(
      np.concatenate(seen[:3]),
      parallel.epoch_permutation(key, 0, 10)[:9])
  for epoch in (seen[:3], seen[3:]):
    flat = np.concatenate(epoch)
    assert len(set(flat.tolist())) == 9 and flat.max() < 10
  assert not np.array_equal(np.concatenate(seen[:3]),
                            np.concatenate(seen[3:]))


def _first_steps(tmp_path, **overrides):
  """Metrics of steps 1 and 2 of `ganjax.train`'s entry point (real data,
  real seeding), logged every step, and the final state."""
  config = smoke_config(batch_size=8, steps_per_call=1, num_steps=2,
                        log_every=1, checkpoint_every=2, sample_every=2,
                        **overrides)
  state = trainer.train_and_evaluate(config, str(tmp_path))
  records = metric_writers.read_jsonl(str(tmp_path / "metrics.jsonl"))
  return config, {r["step"]: r for r in records}, jax.device_get(state)


def test_one_step_golden_values(tmp_path):
  """A fixed seed gives these losses and updates in the first two steps of
  `train_and_evaluate` (a regression guard of seeding, data order and math:
  any change to them moves these numbers)."""
  config, records, state = _first_steps(tmp_path, conv_impl="matmul")
  before = build.initial_state(config, build.make_keys(config.seed),
                                 60000)
  got = {f"{name}_{step}": records[step][name]
         for step in (1, 2) for name in ("d_loss", "g_loss", "d_real",
                                         "d_fake")}
  for name in ("g_params", "d_params"):  # total |update|: every param counts
    got[name + "_update"] = float(sum(
        np.abs(np.asarray(a, np.float64) - b).sum() for a, b in zip(
            jax.tree.leaves(getattr(state, name)),
            jax.tree.leaves(jax.device_get(getattr(before, name))))))
  assert set(got) == set(GOLDEN)
  for name, value in GOLDEN.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-4, err_msg=name)


# Recorded from `train_and_evaluate` on CPU (jax 0.10.2): :smoke, batch 8,
# one step per call, conv "matmul", seed 0, Debian's Fashion-MNIST.
GOLDEN = {
    "d_loss_1": 0.6842634677886963, "g_loss_1": 0.5959959030151367,
    "d_real_1": 0.5316462516784668, "d_fake_1": 0.520094633102417,
    "d_loss_2": 0.5988060235977173, "g_loss_2": 0.7911171913146973,
    "d_real_2": 0.8057425022125244, "d_fake_2": 0.607742190361023,
    "g_params_update": 1077.3200414553157,
    "d_params_update": 512.7584325037241,
}


def _np_correlate(x, kernel, stride):
  """Unpadded ('VALID') strided correlation of NHWC with HWIO, in numpy."""
  k = kernel.shape[0]
  out = (x.shape[1] - k) // stride + 1
  return sum(x[:, dy:dy + stride * (out - 1) + 1:stride,
               dx:dx + stride * (out - 1) + 1:stride] @ kernel[dy, dx]
             for dy in range(k) for dx in range(k))


def _np_conv(x, kernel, bias, stride):
  """'SAME' strided convolution (TensorFlow's padding rule)."""
  size, k = x.shape[1], kernel.shape[0]
  pad = max((-(-size // stride) - 1) * stride + k - size, 0)
  lo, hi = pad // 2, pad - pad // 2
  x = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  return _np_correlate(x, kernel, stride) + bias


def _np_conv_transpose(x, kernel, bias, stride):
  """'SAME' transposed convolution as Keras' Conv2DTranspose defines it:
  the input dilated by the stride, padded by k + s - 2 (the larger half
  first when k > s), correlated with the kernel."""
  batch, size, _, channels = x.shape
  k = kernel.shape[0]
  dilated = np.zeros((batch, (size - 1) * stride + 1,
                      (size - 1) * stride + 1, channels))
  dilated[:, ::stride, ::stride] = x
  pad = k + stride - 2
  lo = k - 1 if stride > k - 1 else -(-pad // 2)
  dilated = np.pad(dilated, ((0, 0), (lo, pad - lo), (lo, pad - lo), (0, 0)))
  return _np_correlate(dilated, kernel, 1) + bias


def _np_batchnorm(x, p, eps=1e-3):
  mean = x.mean(tuple(range(x.ndim - 1)))
  var = x.var(tuple(range(x.ndim - 1)))
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _np_selu(x):
  alpha, scale = 1.6732632423543772, 1.0507009873554805
  return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _np_generator(p, z):
  """The reference G in training mode (batch statistics), in float64."""
  h = (z @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]).reshape(
      len(z), 7, 7, -1)
  h = _np_batchnorm(h, p["BatchNorm_0"])
  h = _np_conv_transpose(h, p["ConvTranspose_0"]["kernel"],
                         p["ConvTranspose_0"]["bias"], 2)
  h = _np_batchnorm(_np_selu(h), p["BatchNorm_1"])
  return np.tanh(_np_conv_transpose(h, p["ConvTranspose_1"]["kernel"],
                                    p["ConvTranspose_1"]["bias"], 2))


def _np_discriminator(p, x):
  """The reference D without dropout, in float64."""
  leaky = lambda v: np.where(v > 0, v, 0.2 * v)
  h = leaky(_np_conv(x, p["Conv_0"]["kernel"], p["Conv_0"]["bias"], 2))
  h = leaky(_np_conv(h, p["Conv_1"]["kernel"], p["Conv_1"]["bias"], 2))
  return (h.reshape(len(x), -1) @ p["Dense_0"]["kernel"]
          + p["Dense_0"]["bias"])[:, 0]


def test_first_step_matches_a_numpy_computation(tmp_path, fashion_train):
  """Step 1 of `train_and_evaluate` (dropout off) against numpy: the batch
  is rows perm[:8] of the sorted training set, perm drawn from the "data"
  stream folded with epoch 0; D's fakes come from noise of the first of
  four keys split from the "noise" stream folded with step 0; D's loss is
  Keras' binary cross-entropy over the 16 logits of the reference models,
  computed here in float64. Tolerance: float32 sums of at most 6,272
  products in the step, about 1e-6 relative; 1e-5 leaves a factor 10."""
  config, records, _ = _first_steps(tmp_path, d_dropout=0.0,
                                    conv_impl="xla")
  keys = build.make_keys(config.seed)
  state = jax.device_get(build.initial_state(config, keys, 60000))
  to64 = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
  perm = np.asarray(jax.random.permutation(
      jax.random.fold_in(keys["data"], 0), 60000))
  reals = fashion_train[0][perm[:8]][..., None] / 127.5 - 1.0
  k_zd = jax.random.split(jax.random.fold_in(keys["noise"], 0), 4)[0]
  z = np.asarray(jax.random.normal(k_zd, (8, config.latent_dim)), np.float64)
  fakes = _np_generator(to64(state.g_params), z)
  d_params = to64(state.d_params)
  fake_logits = _np_discriminator(d_params, fakes)
  real_logits = _np_discriminator(d_params, reals)
  softplus = lambda v: np.logaddexp(0.0, v)
  d_loss = np.concatenate([softplus(fake_logits),
                           softplus(-real_logits)]).mean()
  sigmoid = lambda v: 1 / (1 + np.exp(-v))
  expected = {"d_loss": d_loss, "d_real": sigmoid(real_logits).mean(),
              "d_fake": sigmoid(fake_logits).mean()}
  for name, value in expected.items():
    np.testing.assert_allclose(records[1][name], value, rtol=1e-5,
                               err_msg=name)


def test_device_count_does_not_change_the_run(fashion_train):
  """Same seed and global batch on 1, 2 and 4 devices (pmap) and on 4 by
  jit + sharding: the same data order, noise and dropout masks, so the
  parameters agree after 4 steps.

  Tolerance: more devices sum gradients and BatchNorm moments in another
  order, so the parameters agree to float32 rounding. RMSprop with its
  default epsilon turns a near-zero gradient's rounding into a full step of
  the learning rate (1e-3, measured once on a Xeon: 1.3e-3 apart on 2
  devices, 1e-7 on 4), so here epsilon is 1, which makes each update about
  lr * gradient: then the runs agree to ~4e-9, and the bound 1e-7 is 25x
  that. Dropout masks drawn per device (tried) put them 4e-6 apart.
  """
  config = smoke_config(batch_size=16, steps_per_call=2, rmsprop_eps=1.0)
  assert config.d_dropout > 0  # the masks are part of what must agree
  finals = [_run(config, n, fashion_train[0])[0] for n in (1, 2, 4)]
  # jit + sharding runs the global step: XLA splits it over the devices.
  sharded = config.copy_and_resolve_references()
  sharded.parallelism = "sharding"
  finals.append(_run(sharded, 4, fashion_train[0])[0])
  one = finals[0]
  for other in finals[1:]:
    assert int(one.step) == int(other.step) == 4
    np.testing.assert_array_equal(one.perm, other.perm)
    for name in ("g_params", "g_batch_stats", "d_params"):
      for a, b in zip(jax.tree.leaves(getattr(one, name)),
                      jax.tree.leaves(getattr(other, name))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7, err_msg=name)


def _flat_params(state):
  return np.concatenate([np.ravel(x).astype(np.float64) for x in
                         jax.tree.leaves((state.g_params, state.d_params))])


def test_device_counts_stay_close_over_many_steps(fashion_train):
  """After 20 steps, 2 and 4 devices are as close to 1 device as one device
  is to itself with every initial parameter moved by one float32 ulp: the
  device count changes only rounding (sums in another order), and GAN
  training amplifies any rounding alike (RMSprop can turn a near-zero
  gradient's rounding into a full step).

  The margin: two rounding-size perturbations end at distances of the same
  order (here about 2%), so the device count must stay within 3x the
  one-ulp distance (half an order of magnitude); a change that is not
  rounding, another data order, ends an order of magnitude away (about 18%)
  and must fall outside the same 3x, so the bound tells the two apart.
  (Measured with jax 0.10.2 on CPU: ulp 1.9%, devices 2.4%, data 18%.)"""
  config = smoke_config(batch_size=16, steps_per_call=2)
  runs = {n: _flat_params(_run(config, n, fashion_train[0], calls=10)[0])
          for n in (1, 2, 4)}
  distance = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)

  def one_device(**changes):
    state, train_fn, devices = _build(config, 1)
    state = jax.device_put(state.replace(**changes), devices[0])
    data = build.replicate_data(config, fashion_train[0], None, devices)
    for _ in range(10):
      state, _ = train_fn(state, data)
    return _flat_params(jax.device_get(state))

  initial = jax.device_get(_build(config, 1)[0])
  next_ulp = lambda tree: jax.tree.map(
      lambda x: np.nextafter(x, np.float32(np.inf)), tree)
  rounding = distance(runs[1], one_device(
      g_params=next_ulp(initial.g_params), d_params=next_ulp(initial.d_params)))
  assert rounding > 0
  for n in (2, 4):
    assert distance(runs[1], runs[n]) < 3 * rounding, (n, rounding)
  other_data = distance(runs[1], one_device(
      data_key=jax.random.key_data(jax.random.key(99))))
  assert other_data > 3 * rounding


def test_shard_map_matches_pmap(fashion_train):
  """config.parallelism="shard_map" (jit over a device Mesh) runs the same
  per-device program as pmap: bit-identical on 4 devices."""
  (a, metrics_a), (b, metrics_b) = (
      _run(smoke_config(batch_size=16, steps_per_call=2,
                        parallelism=parallelism), 4, fashion_train[0])
      for parallelism in ("pmap", "shard_map"))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)
  assert metrics_a == metrics_b


def test_dropout_masks_do_not_depend_on_the_device_count():
  """The masks of a (fakes, reals) batch on 4 devices, put together, are the
  masks the same global batch gets on one device."""
  dropout = layers.Dropout(0.5, axis_name="batch")
  x = jnp.ones((4, 2 * 3, 5))  # 4 devices x (3 fakes, 3 reals) x 5 features
  key = jax.random.key(7)
  def apply(x):
    with layers.batch_segments(2):
      return dropout.apply({}, x, deterministic=False,
                           rngs={"dropout": key})
  four = jax.pmap(apply, axis_name="batch",
                  devices=jax.local_devices()[:4])(x)  # (4, 6, 5)
  one = jax.pmap(apply, axis_name="batch",
                 devices=jax.local_devices()[:1])(jnp.ones((1, 24, 5)))[0]
  fakes = four[:, :3].reshape(12, 5)
  reals = four[:, 3:].reshape(12, 5)
  np.testing.assert_array_equal(jnp.concatenate([fakes, reals]), one)
  assert 0.3 < float((one == 0).mean()) < 0.7


def test_compiles_once(fashion_train):
  """The step is traced on the first call only, never again."""
  traces = []

  def counting_bce(logits, labels):
    traces.append(1)  # Python code in the step runs only while tracing.
    return losses.bce_from_logits(logits, labels)

  config = smoke_config(batch_size=8, steps_per_call=2)
  gan = dataclasses.replace(build.training_gan(config),
                            loss=losses.reference(counting_bce))
  state, train_fn, devices = _build(config, 4, gan=gan)
  data = parallel.replicate_data(fashion_train[0], devices)
  state, _ = train_fn(state, data)
  after_first = len(traces)
  assert after_first > 0
  for _ in range(3):
    state, _ = train_fn(state, data)
  jax.block_until_ready(state)
  assert len(traces) == after_first
  assert int(state.step) == 8


def test_default_impl_step_matches_xla_step(fashion_train):
  """The CPU default ("hybrid" convolutions, fused and unrolled steps) follows
  the plain XLA formulation: same losses and parameters within float32
  rounding after 4 steps."""
  (xla_state, xla_metrics), (hybrid_state, hybrid_metrics) = (
      _run(smoke_config(batch_size=8, steps_per_call=2, conv_impl=impl), 1,
           fashion_train[0]) for impl in ("xla", "hybrid"))
  for name in xla_metrics:
    np.testing.assert_allclose(hybrid_metrics[name], xla_metrics[name],
                               rtol=1e-4, err_msg=name)
  for a, b in zip(jax.tree.leaves(xla_state), jax.tree.leaves(hybrid_state)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
