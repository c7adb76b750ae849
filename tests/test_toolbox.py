"""The toolbox: losses, penalties, spectral norm, DiffAugment, EMA,
conditional models and the 32x32 architectures, each against its math."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ganjax import build
from ganjax import augment
from ganjax import configs
from ganjax import gan as gan_lib
from ganjax import losses
from ganjax import metrics
from ganjax import models
from ganjax import optimizers
from ganjax import regularizers
from ganjax import sampling
from ganjax import parallel
from ganjax import trainer
from tests.conftest import smoke_config

FAKE = np.array([-2.0, -0.5, 0.3, 1.5], np.float32)
REAL = np.array([1.0, 2.5, -0.2, 0.7], np.float32)


def _softplus(x):
  return np.log1p(np.exp(x))


# Each loss by its textbook formula, in numpy: (D's loss, G's loss).
EXPECTED = {
    "minimax": (np.mean(_softplus(FAKE)) + np.mean(_softplus(-REAL)),
                -np.mean(_softplus(FAKE))),  # = E log(1 - D(G(z)))
    "non_saturating": (np.mean(_softplus(FAKE)) + np.mean(_softplus(-REAL)),
                       np.mean(_softplus(-FAKE))),  # = -E log D(G(z))
    "hinge": (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(
        0, 1 + FAKE)), -np.mean(FAKE)),
    "wasserstein": (np.mean(FAKE) - np.mean(REAL), -np.mean(FAKE)),
    "least_squares": (0.5 * (np.mean((REAL - 1) ** 2) + np.mean(FAKE ** 2)),
                      0.5 * np.mean((FAKE - 1) ** 2)),
    "relativistic": (
        np.mean(_softplus(-(REAL - FAKE.mean())))
        + np.mean(_softplus(FAKE - REAL.mean())),
        np.mean(_softplus(-(FAKE - REAL.mean())))
        + np.mean(_softplus(REAL - FAKE.mean()))),
    "rpgan": (np.mean(_softplus(FAKE - REAL)),  # pairs (fake i, real i)
              np.mean(_softplus(REAL - FAKE))),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values_on_fixed_logits(name):
  loss = losses.get_loss(name)
  d_expected, g_expected = EXPECTED[name]
  np.testing.assert_allclose(loss.d(FAKE, REAL), d_expected, rtol=1e-6)
  np.testing.assert_allclose(loss.g(FAKE, REAL), g_expected, rtol=1e-6)


def test_reference_loss_is_the_keras_bce_step():
  """D: one BCE mean over [fakes (label 0), reals (label 1)]; G: BCE with
  label 1, i.e. the non-saturating loss."""
  ref = losses.get_loss("reference", "logits")
  probs = lambda l: 1 / (1 + np.exp(-l))
  bce_d = -np.mean(np.concatenate([np.log(1 - probs(FAKE)),
                                   np.log(probs(REAL))]))
  np.testing.assert_allclose(ref.d(FAKE, REAL), bce_d, rtol=1e-6)
  np.testing.assert_allclose(ref.g(FAKE, REAL),
                             EXPECTED["non_saturating"][1], rtol=1e-6)
  keras = losses.get_loss("reference", "keras")
  saturated = np.array([-40.0, 40.0], np.float32)
  assert float(jax.grad(lambda l: keras.g(l, l))(saturated)[0]) == 0.0


@pytest.mark.parametrize("field,value,valid", [
    ("loss", "wgan", "hinge"), ("architecture", "biggan", "resnet32"),
    ("augment", "color,flip", "translation"), ("optimizer", "sgd", "adam"),
    ("bce", "focal", "keras"), ("lr_schedule", "step", "cosine")])
def test_unknown_names_list_the_valid_ones(field, value, valid):
  config = smoke_config(**{field: value})
  with pytest.raises(ValueError, match=f"config.{field}=.*{valid}"):
    configs.validate(config, 1)


def _r1(d_fn, reals):
  return regularizers.r1_penalty(d_fn, reals, None, key=None, rows=None)


def _gp(d_fn, reals, fakes, key):
  """WGAN-GP with its e ~ U[0, 1] drawn from `key` for the whole batch."""
  return regularizers.gradient_penalty(d_fn, reals, fakes, key=key,
                                       rows=(0, reals.shape[0]))


def test_gradient_penalties_of_known_functions():
  """For D(x) = <a, x>, grad D = a everywhere: GP = (|a| - 1)^2 and
  R1 = |a|^2 / 2. For D(x) = |x|^2 / 2, grad D = x: R1 = E|x|^2 / 2."""
  key = jax.random.key(0)
  a = jax.random.normal(key, (1, 5, 5, 2))
  reals = jax.random.normal(jax.random.key(1), (6, 5, 5, 2))
  fakes = jax.random.normal(jax.random.key(2), (6, 5, 5, 2))
  linear = lambda x: (a * x).sum((1, 2, 3))
  norm_a = float(jnp.linalg.norm(a))
  eps = jax.random.uniform(key, (6,))
  np.testing.assert_allclose(
      _gp(linear, reals, fakes, key),
      (norm_a - 1) ** 2, rtol=1e-5)
  np.testing.assert_allclose(_r1(linear, reals),
                             norm_a ** 2 / 2, rtol=1e-5)
  quadratic = lambda x: 0.5 * jnp.square(x).sum((1, 2, 3))
  np.testing.assert_allclose(
      _r1(quadratic, reals),
      0.5 * np.mean(np.square(np.asarray(reals)).sum((1, 2, 3))), rtol=1e-5)
  # GP at x_hat = e r + (1 - e) f: for the quadratic, grad = x_hat.
  e = eps[:, None, None, None]
  mixed = np.asarray(e * reals + (1 - e) * fakes).reshape(6, -1)
  np.testing.assert_allclose(
      _gp(quadratic, reals, fakes, key),
      np.mean((np.linalg.norm(mixed, axis=1) - 1) ** 2), rtol=1e-5)


def test_r2_is_half_the_squared_input_gradient_at_the_fakes():
  """R2 against gradients taken one image at a time of a real, conditional
  D (the penalty takes them for the batch at once): at the fakes, with the
  fakes' labels, not the reals' (images or labels)."""
  reals = jax.random.normal(jax.random.key(0), (3, 28, 28, 1))
  fakes = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
  labels = {"reals": jnp.array([0, 1, 2]), "fakes": jnp.array([7, 8, 9])}
  d = models.Discriminator(width=8, dropout_rate=0.0, num_classes=10)
  params = d.init(jax.random.key(2), fakes, labels["fakes"],
                  train=False)["params"]
  d_fn = lambda x, labels_of="reals": d.apply(
      {"params": params}, x, labels[labels_of], train=False)

  def direct(images, y):
    one = lambda x, c: d.apply({"params": params}, x[None], c[None],
                               train=False)[0]
    return np.mean([0.5 * float(jnp.square(jax.grad(one)(x, c)).sum())
                    for x, c in zip(images, y)])

  r2 = regularizers.r2_penalty(d_fn, reals, fakes, key=None, rows=None)
  np.testing.assert_allclose(r2, direct(fakes, labels["fakes"]), rtol=1e-5)
  for wrong in (direct(fakes, labels["reals"]), float(_r1(d_fn, reals))):
    assert abs(wrong - float(r2)) > 1e-3 * float(r2)


@pytest.mark.parametrize("impl", ["hybrid", "matmul"])
def test_penalty_gradients_agree_across_conv_impls(impl):
  """R1's and GP's gradients w.r.t. D's parameters (a second-order gradient,
  through the hybrid convolutions' custom VJP) equal XLA's."""
  images = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1)) * 2 - 1
  fakes = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1)) * 2 - 1

  def grads(conv_impl):
    d = models.Discriminator(width=8, conv_impl=conv_impl, dropout_rate=0.0)
    params = d.init(jax.random.key(2), images, train=False)["params"]

    def total(p):
      d_fn = lambda x: d.apply({"params": p}, x, train=False)
      return _r1(d_fn, images) + _gp(d_fn, images, fakes, jax.random.key(3))
    return jax.grad(total)(params)

  for a, b in zip(jax.tree.leaves(grads(impl)), jax.tree.leaves(grads("xla"))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


def test_spectral_norm_matches_the_svd():
  """After enough power iterations every layer's sigma is the largest
  singular value of its kernel (as a matrix, output axis last), and the layer
  computes with the kernel divided by it."""
  d = models.Discriminator(width=8, spectral_norm=True, dropout_rate=0.0)
  x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  variables = d.init(jax.random.key(1), x, train=False)
  # The power iteration advances when the collection is mutable.
  update = jax.jit(lambda v: d.apply(v, x, train=False,
                                     mutable=[models.SPECTRAL])[1])
  for _ in range(60):
    variables = {"params": variables["params"], **update(variables)}
  params = jax.tree_util.tree_leaves_with_path(variables["params"])
  sigmas = jax.tree_util.tree_leaves_with_path(variables[models.SPECTRAL])
  kernels = {jax.tree_util.keystr(p): v for p, v in params
             if "kernel" in jax.tree_util.keystr(p)}
  checked = 0
  for path, sigma in sigmas:
    if not jax.tree_util.keystr(path).endswith("sigma']"):
      continue
    layer = jax.tree_util.keystr(path).split("'")[-2].split("/")[0]
    (kernel,) = [k for name, k in kernels.items() if layer in name]
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    np.testing.assert_allclose(float(sigma),
                               np.linalg.svd(matrix, compute_uv=False)[0],
                               rtol=1e-3)
    checked += 1
  assert checked == 3  # two convolutions and the dense layer

  dense = nn.SpectralNorm(nn.Dense(3), collection_name="s")
  v = dense.init(jax.random.key(2), jnp.ones((1, 4)), update_stats=False)
  for _ in range(60):
    _, s = dense.apply(v, jnp.ones((1, 4)), update_stats=True, mutable=["s"])
    v = {"params": v["params"], **s}
  kernel = np.asarray(v["params"]["layer_instance"]["kernel"])
  inputs = np.asarray(jax.random.normal(jax.random.key(3), (5, 4)))
  expected = inputs @ (kernel / np.linalg.svd(kernel, compute_uv=False)[0])
  np.testing.assert_allclose(dense.apply(v, inputs, update_stats=False),
                             expected + np.asarray(
                                 v["params"]["layer_instance"]["bias"]),
                             rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("size,fraction,shift", [
    (28, 0.125, 4), (32, 0.125, 4), (28, 0.25, 7), (16, 0.125, 2)])
def test_translation_shifts_by_the_papers_range(size, fraction, shift):
  """A marked pixel moves by every offset in [-shift, shift]^2 and no other
  (shift = int(size * fraction + 0.5), the paper's rounding), and nothing
  else changes: the shift is exact."""
  x = -np.ones((2048, size, size, 1), np.float32)
  x[:, size // 2, size // 2, 0] = 1.0
  policy = augment.parse_policy("translation", translation=fraction)
  out = np.asarray(augment.augment(jnp.asarray(x) + 1, jax.random.key(0),
                                   policy))
  rows, cols = np.divmod(out.reshape(len(x), -1).argmax(1), size)
  offsets = set(zip((rows - size // 2).tolist(), (cols - size // 2).tolist()))
  assert offsets == {(dy, dx) for dy in range(-shift, shift + 1)
                     for dx in range(-shift, shift + 1)}
  np.testing.assert_array_equal(out.sum((1, 2, 3)), 2.0)


@pytest.mark.parametrize("size,fraction,side", [
    (28, 0.5, 14), (32, 0.5, 16), (28, 0.25, 7), (15, 0.5, 8)])
def test_cutout_zeroes_a_square_of_the_papers_size(size, fraction, side):
  """Each image loses one axis-aligned square of side int(size * fraction +
  0.5), clipped where it crosses the border; centres cover the whole image
  (every row and column is cut by some draw)."""
  policy = augment.parse_policy("cutout", cutout=fraction)
  out = np.asarray(augment.augment(jnp.ones((1024, size, size, 1)),
                                   jax.random.key(1), policy))[..., 0]
  assert np.isin(out, (0.0, 1.0)).all()
  cut = out == 0
  heights, widths = cut.any(2).sum(1), cut.any(1).sum(1)
  # A rectangle: exactly its rows x its columns are zero.
  np.testing.assert_array_equal(cut.sum((1, 2)), heights * widths)
  assert heights.max() == side and widths.max() == side
  # At worst half outside, at the top and the bottom alike: the centre
  # ranges over 0..size (even side) or 0..size-1 (odd), as in the paper.
  for edge in (cut[:, 0].any(1), cut[:, -1].any(1)):
    assert heights[edge].min() == side - side // 2
  interior = (cut[:, 0].sum(1) == 0) & (cut[:, -1].sum(1) == 0)
  assert (heights[interior] == side).all() and interior.any()
  assert cut.any((0, 2)).all() and cut.any((0, 1)).all()


@pytest.mark.parametrize("fill", [-1.0, 0.5])
def test_translation_and_cutout_leave_the_fill_value(fill):
  """With augment_fill, the pixels translation vacates and cutout removes
  take that value and the others are the paper's zero-fill result, exactly:
  the same draws, on images that hold true zeros (mid-grey) too. Images of
  ones, with the same key, show which pixels were vacated or cut out."""
  key = jax.random.key(2)
  x = jax.random.randint(jax.random.key(3), (256, 16, 16, 1), -2, 3) / 2.0
  zero_policy = augment.parse_policy("translation,cutout")
  removed = np.asarray(augment.augment(jnp.ones_like(x), key,
                                       zero_policy)) == 0
  zero = np.asarray(augment.augment(x, key, zero_policy))
  filled = np.asarray(augment.augment(
      x, key, augment.parse_policy("translation,cutout", fill=fill)))
  assert removed.any() and (~removed).any() and (zero[~removed] == 0).any()
  np.testing.assert_array_equal(filled, np.where(removed, fill, zero))


def test_diffaugment_per_device_rows_and_gradients():
  """A device's rows of a global batch get the transforms of those rows
  (so augmentation does not depend on the device count), other keys give
  other transforms, and gradients pass through to the images."""
  key = jax.random.key(0)
  policy = augment.parse_policy("color,translation,cutout")
  reals = jax.random.uniform(jax.random.key(1), (64, 16, 16, 1)) * 2 - 1
  out = augment.augment(reals, key, policy)
  part = augment.augment(reals[16:32], key, policy, rows=(16, 64))
  np.testing.assert_allclose(part, out[16:32], rtol=1e-6)
  assert not np.allclose(out, augment.augment(reals, jax.random.key(9),
                                              policy))
  grad = jax.grad(lambda x: augment.augment(x, key, policy).sum())(reals)
  assert np.abs(np.asarray(grad)).sum() > 0


def test_ada_p_follows_its_rule():
  """p += sign(r_t - target) * B / (kimg * 1000), clipped to [0, 1]."""
  ada = augment.Adaptive(target=0.6, kimg=2.0)
  np.testing.assert_allclose(ada.update(0.5, 0.9, 128), 0.5 + 128 / 2000)
  np.testing.assert_allclose(ada.update(0.5, 0.1, 128), 0.5 - 128 / 2000)
  assert float(ada.update(0.5, 0.6, 128)) == 0.5
  assert float(ada.update(0.99, 1.0, 128)) == 1.0
  assert float(ada.update(0.01, -1.0, 128)) == 0.0
  for bad in (dict(target=0.0), dict(target=1.0), dict(kimg=0.0)):
    with pytest.raises(ValueError, match="config.ada_"):
      augment.Adaptive(**bad)
  with pytest.raises(ValueError, match="config.ada_target=0.6 needs "
                     "transforms"):
    configs.validate(smoke_config(ada_target=0.6), 1)


def test_ada_applies_each_transform_with_probability_p():
  """p = 0 leaves every image as it is, p = 1 transforms every one, and in
  between each image is transformed or not on its own draw: 2,000 images at
  p = 0.3 change 30% +- 4% (4 standard deviations of the binomial); xflip,
  once chosen, mirrors half of them."""
  images = jax.random.uniform(jax.random.key(0), (2000, 8, 8, 1))
  policy = augment.parse_policy("color")  # changes every image it is given
  key = jax.random.key(1)
  changed = lambda p, policy=policy: np.asarray(jnp.any(
      augment.augment(images, key, policy, p=p) != images, axis=(1, 2, 3)))
  assert not changed(0.0).any() and changed(1.0).all()
  assert abs(changed(0.3).mean() - 0.3) < 0.04
  flip = augment.parse_policy("xflip")
  for p, share in ((None, 0.5), (1.0, 0.5), (0.3, 0.15)):
    assert abs(changed(p, flip).mean() - share) < 0.05
  out = augment.augment(images, key, flip)
  mirrored = np.asarray(jnp.all(out == images[:, :, ::-1], axis=(1, 2, 3)))
  np.testing.assert_array_equal(mirrored, changed(None, flip))
  part = augment.augment(images[100:200], key, policy, rows=(100, 2000),
                         p=0.3)  # a device's rows: the same draws
  np.testing.assert_array_equal(
      part, augment.augment(images, key, policy, p=0.3)[100:200])


def test_ada_in_the_step(fashion_train):
  """p starts at 0 (so the first step equals that of the GAN without
  augmentation, bit for bit), is logged, moves by the rule from the logged
  r_t after every step, and lives in the state."""
  images = fashion_train[0][:2048]
  base = dict(steps_per_call=1, d_dropout=0.0)
  config = smoke_config(augment="xflip,translation,color", ada_target=0.6,
                        ada_kimg=0.05, **base)
  history = _steps(config, 3, images=images)
  p = 0.0
  for state, metrics in history:
    np.testing.assert_allclose(metrics["augment_p"], p, atol=1e-7)
    p = np.clip(p + np.sign(metrics["ada_r_t"] - 0.6) * 16 / 50, 0, 1)
    np.testing.assert_allclose(state.augment_p, [p], atol=1e-6)
  assert 0 < p  # it moved
  ((plain, _),) = _steps(smoke_config(**base), 1, images=images)
  for a, b in zip(jax.tree.leaves(plain.d_params),
                  jax.tree.leaves(history[0][0].d_params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_diffaugment_sizes_are_validated():
  for field in ("augment_translation", "augment_cutout"):
    with pytest.raises(ValueError, match=f"config.{field}=0"):
      configs.validate(smoke_config(**{field: 0.0}), 1)
  with pytest.raises(ValueError,
                     match=r"config.augment_fill=2\.0 .*\[-1, 1\]"):
    configs.validate(smoke_config(augment_fill=2.0), 1)
  for field in ("augment_translation", "augment_fill"):  # a bool is no size
    # A fresh ConfigDict keeps the bool (setting a float field casts it).
    config = ml_collections.ConfigDict({**smoke_config().to_dict(),
                                       field: True})
    with pytest.raises(ValueError, match=f"config.{field}=True"):
      configs.validate(config, 1)


def _steps(config, calls, num_devices=1, images=None, labels=None):
  """The states after each of `calls` single-step calls."""
  devices = jax.local_devices()[:num_devices]
  state = parallel.replicate_state(
      build.initial_state(config, build.make_keys(config.seed),
                            images.shape[0]), devices)
  train_fn = build.compile_train_fn(config, devices)
  data = parallel.replicate_data(images, devices, labels)
  out = []
  for _ in range(calls):
    state, metrics = train_fn(state, data)
    out.append((jax.device_get(state), jax.device_get(metrics)))
  return out


def test_learning_rate_schedules():
  """Warm-up from 0, then linear or half-cosine decay to 0 at
  lr_decay_steps, 0 after; "constant" is the configured float."""
  peak = 2e-3
  assert optimizers.learning_rate(smoke_config(), peak) == peak
  # Decay ending exactly at num_steps (8 in :smoke) is accepted.
  configs.validate(smoke_config(lr_schedule="linear", lr_decay_steps=8), 1)
  linear = optimizers.learning_rate(
      smoke_config(lr_schedule="linear", lr_decay_steps=100), peak)
  cosine = optimizers.learning_rate(
      smoke_config(lr_schedule="cosine", lr_decay_steps=100), peak)
  warm = optimizers.learning_rate(smoke_config(
      lr_schedule="linear", lr_warmup_steps=20, lr_decay_steps=100), peak)
  for t in (0, 10, 20, 25, 50, 60, 99, 100, 150):
    frac = min(t, 100) / 100
    np.testing.assert_allclose(linear(t), peak * (1 - frac), rtol=1e-5,
                               atol=1e-10)
    np.testing.assert_allclose(
        cosine(t), peak * 0.5 * (1 + np.cos(np.pi * frac)), rtol=1e-5,
        atol=1e-10)
    expected = (peak * t / 20 if t < 20
                else peak * (1 - (min(t, 100) - 20) / 80))
    np.testing.assert_allclose(warm(t), expected, rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_schedule_scales_each_update(optimizer):
  """With the same gradients, update t of a scheduled optimizer is update t
  of the constant one times schedule(t) / peak: the schedule scales the step
  and leaves the optimizer's statistics alone."""
  base = dict(optimizer=optimizer, g_learning_rate=1e-3)
  scheduled = smoke_config(lr_schedule="cosine", lr_warmup_steps=2,
                           lr_decay_steps=6, **base)
  constant, _ = optimizers.make_optimizers(smoke_config(**base))
  tx, _ = optimizers.make_optimizers(scheduled)
  schedule = optimizers.learning_rate(scheduled, 1e-3)
  params = {"w": jnp.ones(3)}
  states = [constant.init(params), tx.init(params)]
  for t in range(8):
    grads = {"w": jnp.array([1.0, -2.0, 0.5]) * (t + 1)}
    (u_c, states[0]), (u_s, states[1]) = [
        opt.update(grads, s, params) for opt, s in zip((constant, tx), states)]
    np.testing.assert_allclose(u_s["w"], u_c["w"] * schedule(t) / 1e-3,
                               rtol=1e-5, atol=1e-12)
  assert float(schedule(1)) == pytest.approx(0.5e-3)  # warming up
  assert float(schedule(7)) == 0.0  # past lr_decay_steps


@pytest.mark.parametrize("overrides,field", [
    ({"lr_decay_steps": 8}, "lr_schedule"),  # constant: nothing to shape
    ({"lr_schedule": "linear"}, "lr_decay_steps"),  # decay end missing
    ({"lr_schedule": "cosine", "lr_warmup_steps": 8, "lr_decay_steps": 8},
     "lr_decay_steps"),
    ({"lr_schedule": "linear", "lr_decay_steps": 4}, "num_steps")])  # 8 > 4
def test_schedule_errors_name_the_field(overrides, field):
  with pytest.raises(ValueError, match=f"config.{field}="):
    configs.validate(smoke_config(**overrides), 1)


def test_ema_in_the_step(fashion_train):
  """e_t = d e_{t-1} + (1 - d) p_t from ema_start on, the parameters before;
  sampling uses the average."""
  config = smoke_config(steps_per_call=1, ema_decay=0.9, ema_start=2)
  history = _steps(config, 4, images=fashion_train[0][:2048])
  for t, (state, _) in enumerate(history):
    ema = (state.g_params if t < 2 else jax.tree.map(
        lambda e, p: 0.9 * e + 0.1 * p, ema, state.g_params))
    for a, b in zip(jax.tree.leaves(state.g_ema_params), jax.tree.leaves(ema)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_ema_generator_samples_with_its_own_batchnorm_statistics(
    fashion_train):
  """Sampling uses the averaged weights with BatchNorm statistics measured
  for them: G in inference mode with them computes, on the noise they were
  measured on, what G in training mode (batch statistics) computes. The live
  G's moving statistics, gathered with other weights, do not."""
  # A narrow G (width 8): the property does not depend on the width, and
  # the 4,096-sample passes cost far less than at the published width.
  config = smoke_config(steps_per_call=1, ema_decay=0.9, g_width=8)
  state = _steps(config, 3, images=fashion_train[0][:2048])[-1][0]
  sampler, _ = models.make_models(config)
  g_vars = sampling.sampling_variables(sampler, state, config.latent_dim)
  assert g_vars["params"] is state.g_ema_params
  z = jax.random.normal(jax.random.key(sampling.STANDING_STATS_SEED),
                        (sampling.STANDING_STATS_SAMPLES, config.latent_dim))
  in_training, _ = gan_lib.apply_g_train(
      sampler, state.g_ema_params, state.g_batch_stats, z, None)
  sampled = sampler.apply(g_vars, z, train=False)
  # float32 rounding of statistics over 4096 x 7 x 7 values (and of the
  # momentum folded out of them): far below one 8-bit grey level (2/255).
  np.testing.assert_allclose(sampled, in_training, atol=1e-4)
  stale = sampler.apply({"params": state.g_ema_params,
                         "batch_stats": state.g_batch_stats}, z, train=False)
  assert np.abs(stale - in_training).max() > 0.1
  # The first BatchNorm's statistics, from the Dense layer's output computed
  # here: its mean and (biased) variance over the batch and the 7x7 grid.
  dense = state.g_ema_params["Dense_0"]
  h = (np.asarray(z, np.float64) @ np.asarray(dense["kernel"], np.float64)
       + np.asarray(dense["bias"], np.float64)).reshape(len(z), 7, 7, -1)
  stats = g_vars["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], h.mean((0, 1, 2)), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(stats["var"], h.var((0, 1, 2)), rtol=1e-4)


def test_lazy_r1_is_one_weighted_step_in_r1_every(fashion_train):
  """Two steps with r1_every=2 and weight w equal a step with R1 at weight
  2w followed by a step without R1."""
  images = fashion_train[0][:2048]
  base = dict(d_dropout=0.0, loss="non_saturating", conv_impl="xla")
  lazy = smoke_config(steps_per_call=2, r1_weight=0.5, r1_every=2, **base)
  ((lazy_state, lazy_metrics),) = _steps(lazy, 1, images=images)
  devices = jax.local_devices()[:1]
  state = parallel.replicate_state(build.initial_state(
      lazy, build.make_keys(lazy.seed), images.shape[0]), devices)
  data = parallel.replicate_data(images, devices)
  r1_values = []
  for weight in (1.0, 0.0):  # = 2 x 0.5, then none
    config = smoke_config(steps_per_call=1, r1_weight=weight, **base)
    state, metrics = build.compile_train_fn(config, devices)(state, data)
    r1_values.append(float(metrics.get("r1", 0.0)))
  assert r1_values[0] > 0
  # The logged penalty is that of the step that computes it (not halved by
  # the step without R1).
  np.testing.assert_allclose(lazy_metrics["r1"], r1_values[0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(jax.device_get(state)),
                  jax.tree.leaves(lazy_state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="config.r1_every=3 .*must divide"):
    configs.validate(smoke_config(r1_weight=1.0, r1_every=3), 1)


def test_conditional_models_use_the_label():
  """G: same z, other class, other image. D: the label enters only through
  the projection <embed(y), features>: with zero embeddings every label gives
  the same logit, and the difference is linear in the embedding."""
  g = models.Generator(width=8, num_classes=10)
  d = models.Discriminator(width=8, num_classes=10, dropout_rate=0.0)
  z = jnp.ones((2, 16))
  g_vars = g.init(jax.random.key(0), z, jnp.array([0, 0]), train=False)
  images = g.apply(g_vars, z, jnp.array([0, 3]), train=False)
  assert not np.allclose(images[0], images[1])
  same = jnp.concatenate([images[:1], images[:1]])
  d_vars = d.init(jax.random.key(1), same, jnp.array([0, 0]), train=False)
  row = d_vars["params"]["projection"]["embedding"][2]

  def logits(scale):
    table = jnp.zeros((10, row.shape[0])).at[2].set(scale * row)
    params = {**d_vars["params"], "projection": {"embedding": table}}
    return d.apply({"params": params}, same, jnp.array([2, 7]), train=False)

  zero, one, two = logits(0.0), logits(1.0), logits(2.0)
  np.testing.assert_allclose(zero[0], zero[1], rtol=1e-6)
  np.testing.assert_allclose(one[1], zero[1], rtol=1e-6)
  assert abs(float(one[0] - zero[0])) > 1e-4
  np.testing.assert_allclose(two[0] - zero[0], 2 * (one[0] - zero[0]),
                             rtol=1e-3)


def test_conditional_accuracy():
  logits = np.eye(3)[[0, 1, 2, 2, 0, 1]]
  result = metrics.conditional_accuracy(logits, np.array([0, 1, 2, 0, 1, 2]))
  assert result["conditional_accuracy"] == 0.5
  assert result["conditional_accuracy_per_class"] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("architecture", ["dcgan32", "resnet32"])
def test_32x32_architectures(architecture):
  """Shapes, the published parameter counts at width 64, and a conditional
  G whose BatchNorm (resnet) or input (dcgan) depends on the class."""
  g_cls, d_cls, (h, w) = models.ARCHITECTURES[architecture]
  z = jnp.zeros((2, 128))
  labels = jnp.array([0, 1])
  for num_classes in (0, 10):
    g = g_cls(width=8, channels=3, num_classes=num_classes)
    d = d_cls(width=8, channels=3, num_classes=num_classes,
              spectral_norm=True)
    g_vars = g.init(jax.random.key(0), z, labels, train=False)
    images = g.apply(g_vars, z, labels, train=False)
    assert images.shape == (2, h, w, 3)
    assert np.abs(np.asarray(images)).max() <= 1
    d_vars = d.init(jax.random.key(1), images, labels, train=False)
    assert d.apply(d_vars, images, labels, train=False).shape == (2,)
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  g_full = jax.eval_shape(lambda: g_cls(channels=3).init(
      jax.random.key(0), z, train=False)["params"])
  d_full = jax.eval_shape(lambda: d_cls(channels=3).init(
      jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)["params"])
  assert (count(g_full), count(d_full)) == PARAMETERS[architecture]


# Trainable parameters (G, D) at width 64, z 128: the sizes of SNGAN's
# CIFAR-10 networks (ResNet G 4.3M, D 1.05M).
PARAMETERS = {"dcgan32": (3_813_379, 2_935_873),
              "resnet32": (4_276_739, 1_053_825)}


def test_runs_from_before_the_size_fields_keep_their_augmentation():
  """A saved config without augment_translation / augment_cutout gets the
  fractions that give the sizes it was trained with: shifts of size // 8
  and cutouts of 13 (28 px) and 15 (32 px) pixels."""
  old = configs.with_added_defaults({})
  for size, shift, cutout in ((28, 3, 13), (32, 4, 15)):
    assert augment.pixels(old["augment_translation"], size) == shift
    assert augment.pixels(old["augment_cutout"], size) == cutout
