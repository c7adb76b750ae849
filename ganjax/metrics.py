"""Sample-quality metrics on the evaluation classifier's features.

All statistics are computed on device in float64 (`jax.enable_x64` around
them); the classifier itself runs in float32.

- FID: the Frechet distance between Gaussians fitted to the real and the
  generated features (the classifier's 128-d penultimate layer), and the same
  on its logits (`fid_logits`, TF-GAN's MNIST convention). The trace of the
  matrix square root, tr (A B)^1/2, is taken as the sum of the singular
  values of A^1/2 B^1/2, with A^1/2 and B^1/2 from symmetric
  eigendecompositions (eigenvalues that rounding makes slightly negative
  clipped to 0): no general `sqrtm`, no complex parts, and rank-deficient
  covariances (dead units, fewer samples than dimensions) stay exact.
- KID: the unbiased MMD^2 with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over `kid_subsets` random subsets of
  `kid_subset_size` samples from each side; std over the subsets.
- Classifier score: the Inception Score with this classifier,
  exp(E_x KL(p(y|x) || p(y))), mean and std over 10 splits.
- Precision and recall: k-nearest-neighbour manifolds (Kynkaanniemi et al.
  2019, k=3). Precision: the fraction of generated samples inside the real
  manifold (within the k-NN radius of some real sample); recall: the fraction
  of real samples inside the generated manifold. One real outlier with a
  large radius can cover much of feature space, so precision also comes as
  density and coverage (Naeem et al. 2020, same k): density counts how many
  real balls hold each sample (divided by k; about 1 for real data), coverage
  is the fraction of real samples whose own ball holds a generated sample.
- Mode coverage: the histogram of the classifier's predicted classes, its
  entropy (nats; log(10) = 2.303 is uniform) and the number of classes covered,
  a class counting as covered when it receives at least 10% of its fair share
  N / num_classes of the samples.

These numbers are NOT comparable with Inception-v3 FIDs. Every result carries
its `protocol` name; see `protocol_name`.
"""

import functools
import hashlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from ganjax import classifier as classifier_lib
from ganjax import input_pipeline
from ganjax import sampling

PROTOCOL_VERSION = "v1"
SAMPLE_BATCH = 1000  # part of the protocol: the noise is drawn per batch
KNN_K = 3


def protocol_name(dataset, num_real, num_fake, seed) -> str:
  """E.g. "fashion_mnist-cls128-v1/real:test10000/fake:10000@seed0"."""
  return (f"{dataset}-cls{classifier_lib.FEATURE_DIM}-{PROTOCOL_VERSION}/"
          f"real:test{num_real}/fake:{num_fake}@seed{seed}")


def _f64(x):
  return jnp.asarray(x, jnp.float64)


def _in_x64(jitted):
  """Runs `jitted` with 64-bit types enabled, so its float64 is real."""
  @functools.wraps(jitted)
  def wrapper(*args, **kwargs):
    with jax.enable_x64(True):
      return jitted(*args, **kwargs)
  return wrapper


@_in_x64
@jax.jit
def moments(features_NxD):
  """Mean and unbiased covariance, float64."""
  x = _f64(features_NxD)
  mu = x.mean(0)
  centered = x - mu[None, :]
  return mu, centered.T @ centered / (x.shape[0] - 1)


def _psd_sqrt(matrix):
  eigenvalues, vectors = jnp.linalg.eigh(matrix)
  return (vectors * jnp.sqrt(jnp.clip(eigenvalues, 0.0))[None, :]) @ vectors.T


@_in_x64
@jax.jit
def frechet_distance(mu1, cov1, mu2, cov2):
  """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), float64."""
  mu1, cov1, mu2, cov2 = map(_f64, (mu1, cov1, mu2, cov2))
  # tr (C1 C2)^1/2 = tr (C1^1/2 C2 C1^1/2)^1/2 = the nuclear norm of
  # C1^1/2 C2^1/2. Singular values carry no square root of their own, so
  # directions of (near-)zero variance add rounding of order eps, not
  # sqrt(eps) as an eigenvalue square root would.
  trace_sqrt = jnp.linalg.svd(_psd_sqrt(cov1) @ _psd_sqrt(cov2),
                              compute_uv=False).sum()
  diff = mu1 - mu2
  return diff @ diff + jnp.trace(cov1) + jnp.trace(cov2) - 2 * trace_sqrt


def _unbiased_mmd2(x, y):
  d = x.shape[1]
  kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3
  m = x.shape[0]
  off_diag = lambda k: (k.sum() - jnp.trace(k)) / (m * (m - 1))
  return (off_diag(kernel(x, x)) + off_diag(kernel(y, y))
          - 2 * kernel(x, y).mean())


@_in_x64
@functools.partial(jax.jit, static_argnames=("num_subsets", "subset_size"))
def kid(real_NxD, fake_MxD, key, num_subsets=100, subset_size=1000):
  """KID mean and std over subsets (drawn without replacement each)."""
  real, fake = _f64(real_NxD), _f64(fake_MxD)
  subset_size = min(subset_size, real.shape[0], fake.shape[0])

  def one(k):
    kr, kf = jax.random.split(k)
    r = jax.random.choice(kr, real.shape[0], (subset_size,), replace=False)
    f = jax.random.choice(kf, fake.shape[0], (subset_size,), replace=False)
    return _unbiased_mmd2(real[r], fake[f])

  values = jax.lax.map(one, jax.random.split(key, num_subsets))
  return values.mean(), values.std()


@_in_x64
@functools.partial(jax.jit, static_argnames=("splits",))
def classifier_score(logits_NxC, splits=10):
  """exp(E KL(p(y|x) || p(y))) on `splits` equal parts: mean, std."""
  n = logits_NxC.shape[0] // splits * splits
  logp = jax.nn.log_softmax(_f64(logits_NxC[:n]), -1).reshape(
      splits, n // splits, -1)
  log_marginal = jax.nn.logsumexp(logp, axis=1, keepdims=True) - jnp.log(
      n // splits)
  kl = (jnp.exp(logp) * (logp - log_marginal)).sum(-1).mean(-1)
  scores = jnp.exp(kl)
  return scores.mean(), scores.std()


def _squared_distances(a, b):
  return jnp.maximum(
      (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def _row_chunks(x, chunk):
  """(N, D) -> (ceil(N / chunk), chunk, D), padded by repeating row 0."""
  pad = -x.shape[0] % chunk
  x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))])
  return x.reshape(-1, chunk, x.shape[1])


def _kth_smallest(values_MxN, k):
  """The (k+1)-th smallest entry of each row, counting repeats (k+1 passes
  of argmin; much faster than top_k or a sort on CPU)."""
  rows = jnp.arange(values_MxN.shape[0])
  for _ in range(k):
    values_MxN = values_MxN.at[rows, jnp.argmin(values_MxN, 1)].set(jnp.inf)
  return values_MxN.min(1)


@_in_x64
@functools.partial(jax.jit, static_argnames=("k", "chunk"))
def knn_radii(features_NxD, k=KNN_K, chunk=500):
  """Squared distance of each point to its k-th nearest other point."""
  x = _f64(features_NxD)
  def radii(rows):
    # The point itself is among the rows' nearest (distance 0); skip it.
    return _kth_smallest(_squared_distances(rows, x), k)
  return jax.lax.map(radii, _row_chunks(x, chunk)).reshape(-1)[:x.shape[0]]


@_in_x64
@functools.partial(jax.jit, static_argnames=("chunk",))
def ball_counts(queries_MxD, centers_NxD, radii_N, chunk=500):
  """For each query: how many balls (center, squared radius) contain it, and
  its squared distance to the nearest center."""
  q, c = _f64(queries_MxD), _f64(centers_NxD)
  def one(rows):
    d = _squared_distances(rows, c)
    return (d <= radii_N[None, :]).sum(1), d.min(1)
  counts, nearest = jax.lax.map(one, _row_chunks(q, chunk))
  return counts.reshape(-1)[:q.shape[0]], nearest.reshape(-1)[:q.shape[0]]


def manifold_metrics(real_NxD, real_radii, fake_MxD, fake_radii, k=KNN_K):
  """Precision and recall (Kynkaanniemi et al. 2019), density and coverage
  (Naeem et al. 2020) from k-NN balls of the two feature sets."""
  fake_in_real, _ = jax.device_get(
      ball_counts(fake_MxD, real_NxD, real_radii))
  real_in_fake, real_to_fake = jax.device_get(
      ball_counts(real_NxD, fake_MxD, fake_radii))
  real_radii = np.asarray(real_radii)
  mean = lambda x: float(np.mean(x, dtype=np.float64))
  return {"precision": mean(fake_in_real > 0),
          "recall": mean(real_in_fake > 0),
          "density": mean(fake_in_real) / k,
          "coverage": mean(real_to_fake <= real_radii)}


def class_histogram(logits_NxC) -> dict:
  predicted = np.asarray(jnp.argmax(logits_NxC, -1))
  num_classes = logits_NxC.shape[1]
  counts = np.bincount(predicted, minlength=num_classes)
  p = counts / counts.sum()
  nonzero = p[p > 0]
  covered = int((counts >= 0.1 * counts.sum() / num_classes).sum())
  return {"class_histogram": counts.tolist(),
          "class_entropy": max(0.0, float(-(nonzero * np.log(nonzero)).sum())),
          "classes_covered": covered,
          "classes_missing": num_classes - covered}


def conditional_accuracy(logits_NxC, labels_N) -> dict:
  """How often the classifier names the class a conditional G was asked
  for: overall and per class (a class-conditional quality measure)."""
  predicted = np.asarray(jnp.argmax(logits_NxC, -1))
  labels = np.asarray(labels_N)
  hits = predicted == labels
  per_class = [float(hits[labels == c].mean()) if (labels == c).any()
               else float("nan") for c in range(logits_NxC.shape[1])]
  return {"conditional_accuracy": float(hits.mean()),
          "conditional_accuracy_per_class": per_class}


# Evaluator._real_statistics: {(classifier id, channels scored apart, shape,
# dtype, sha256 of the images): (classifier, statistics)}.
_REAL_STATISTICS = {}


class Evaluator:
  """Scores uint8 images against a dataset's test split.

  The reference features and their statistics are computed once, at
  construction; each `evaluate` call then costs one classifier pass over the
  samples plus the statistics.
  """

  def __init__(self, dataset="fashion_mnist", *, data_dir=None,
               source="auto", tfds_data_dir=None, classifier_path=None,
               kid_subsets=100, kid_subset_size=1000, seed=0):
    self.dataset = dataset
    # A dataset made of another's images (Stacked Fashion-MNIST) is scored
    # with that dataset's classifier, channel by channel where it says so.
    self.spec = input_pipeline.get_spec(dataset)
    self.extractor = classifier_lib.load(self.spec.base or dataset,
                                         classifier_path)
    images, self.real_labels, self.data_info = input_pipeline.load(
        dataset, "test", source=source, data_dir=data_dir,
        tfds_data_dir=tfds_data_dir)
    self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
    self.seed = seed
    self.real = self._real_statistics(images)

  def _real_statistics(self, images_uint8):
    """The statistics of the real images, computed once per process for each
    classifier and set of images (their bytes' SHA-256): an Evaluator built
    again (run after run in one program) reuses them, bit for bit."""
    key = (id(self.extractor), self.spec.score_channels, images_uint8.shape,
           images_uint8.dtype.str, hashlib.sha256(
               np.ascontiguousarray(images_uint8)).hexdigest())
    if key not in _REAL_STATISTICS:  # (holding the classifier, so that no
      _REAL_STATISTICS[key] = (self.extractor,  # other object takes its id)
                               self._statistics(images_uint8))
    return dict(_REAL_STATISTICS[key][1])

  def _statistics(self, images_uint8):
    classes = None  # of each channel, when scored channel by channel
    if self.spec.score_channels:  # the channels' features side by side,
      parts = [self.extractor(images_uint8[..., c])  # the first's logits
               for c in range(images_uint8.shape[-1])]
      features = jnp.concatenate([f for f, _ in parts], axis=-1)
      logits = parts[0][1]
      classes = np.stack([np.asarray(jnp.argmax(l, -1)) for _, l in parts],
                         -1)
    else:
      features, logits = self.extractor(images_uint8)
    return {"features": features, "logits": logits, "classes": classes,
            "moments": moments(features), "logit_moments": moments(logits),
            "radii": knn_radii(features)}

  def evaluate(self, images_uint8, sample_seed=None, labels=None) -> dict:
    """All metrics of `images_uint8` (N, H, W[, C]) as a flat dict.

    `labels`: the classes a conditional generator was asked for; adds
    "conditional_accuracy" (how often the classifier agrees) overall and
    per class.
    """
    images_uint8 = check_images(images_uint8, self.dataset)
    t0 = time.perf_counter()
    real = self.real
    fake = self._statistics(images_uint8)
    with jax.enable_x64(True):
      kid_mean, kid_std = kid(real["features"], fake["features"],
                              jax.random.key(self.seed),
                              num_subsets=self.kid_subsets,
                              subset_size=self.kid_subset_size)
      score, score_std = classifier_score(fake["logits"])
      result = {
          "fid": frechet_distance(*real["moments"], *fake["moments"]),
          "fid_logits": frechet_distance(*real["logit_moments"],
                                         *fake["logit_moments"]),
          "kid": kid_mean, "kid_std": kid_std,
          "classifier_score": score, "classifier_score_std": score_std,
      }
      result = {k: float(v) for k, v in result.items()}
      result.update(manifold_metrics(real["features"], real["radii"],
                                     fake["features"], fake["radii"]))
    result.update(class_histogram(fake["logits"]))
    if self.spec.mode_coverage is not None:
      result.update(self.spec.mode_coverage(fake["classes"]))
    if labels is not None:
      result.update(conditional_accuracy(fake["logits"], labels))
    result["num_samples"] = int(images_uint8.shape[0])
    result["protocol"] = protocol_name(
        self.dataset, int(real["features"].shape[0]),
        int(images_uint8.shape[0]),
        "?" if sample_seed is None else sample_seed)
    result["seconds"] = time.perf_counter() - t0
    return result


def calibration_sets(train_images, num, seed=0) -> dict:
  """Image sets of known quality, `num` each, from uint8 training images: a
  random part of them (scored against the test split, so near zero), the
  same blurred (Gaussian, sigma 1 and 2 pixels), one image repeated (mode
  collapse) and uniform noise. Good metrics order them."""
  rng = np.random.default_rng(seed)
  real = train_images[rng.permutation(len(train_images))[:num]]
  blur = lambda sigma: np.round(scipy.ndimage.gaussian_filter(
      real.astype(np.float64),
      (0, sigma, sigma) + (0,) * (real.ndim - 3))).astype(np.uint8)
  return {
      "train split": real,
      "blurred train, sigma 1": blur(1.0),
      "blurred train, sigma 2": blur(2.0),
      "one image repeated": np.repeat(real[:1], num, 0),
      "uniform noise": rng.integers(0, 256, real.shape, dtype=np.uint8),
  }


def check_images(images, dataset):
  """uint8 (N, H, W) or (N, H, W, C) matching the dataset's image shape."""
  images = np.asarray(images)
  h, w, c = input_pipeline.get_spec(dataset).image_shape
  if images.dtype != np.uint8:
    raise ValueError(f"Samples must be uint8 in [0, 255]; got {images.dtype}. "
                     "Convert from [-1, 1] with (x + 1) * 127.5, rounded.")
  if images.ndim == 4 and images.shape[-1] == c:
    images = images[..., 0] if c == 1 else images
  if images.shape[1:3] != (h, w) or images.ndim not in (3, 4):
    raise ValueError(f"Samples have shape {images.shape}; {dataset} needs "
                     f"(N, {h}, {w}) or (N, {h}, {w}, {c}).")
  if images.shape[0] < 2 * KNN_K + 2:
    raise ValueError(f"Need at least {2 * KNN_K + 2} samples; got "
                     f"{images.shape[0]}.")
  return images


def evaluate_generator(evaluator, sampler, g_vars, latent_dim, num_samples,
                       seed) -> dict:
  """Draws the protocol's `num_samples` from G (noise seed `seed`, batches of
  `SAMPLE_BATCH`, inference mode) and scores them; "seconds" covers both."""
  t0 = time.perf_counter()
  samples = sampling.generate(sampler, g_vars, num_samples, seed, latent_dim,
                              batch_size=SAMPLE_BATCH)
  result = evaluator.evaluate(samples, sample_seed=seed, labels=(
      sampling.balanced_labels(0, num_samples, sampling.classes_of(sampler))))
  result["seconds"] = time.perf_counter() - t0
  return result
