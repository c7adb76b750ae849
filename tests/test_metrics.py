"""The metric formulas on inputs whose answers are known."""

import re

import numpy as np
import pytest
import scipy.linalg

from ganjax import metrics


def _random_covariance(rng, d):
  a = rng.normal(size=(d, 2 * d))
  return a @ a.T / (2 * d)


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  d = 16
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  c1, c2 = _random_covariance(rng, d), _random_covariance(rng, d)
  expected = (np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2)
              - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2).real))
  got = metrics.frechet_distance(mu1, c1, mu2, c2)
  assert got.dtype == np.float64
  np.testing.assert_allclose(float(got), expected, rtol=1e-9)


def test_frechet_distance_of_diagonal_gaussians_and_of_itself():
  var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.0])
  mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
  expected = 1 + 4 + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
  got = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
  np.testing.assert_allclose(float(got), expected, rtol=1e-12)
  # Rank-deficient covariances (more dimensions than samples): still exact.
  x = np.random.default_rng(1).normal(size=(20, 64))
  mu, cov = metrics.moments(x)
  assert abs(float(metrics.frechet_distance(mu, cov, mu, cov))) < 1e-9


def test_moments_are_float64_mean_and_unbiased_covariance():
  x = np.random.default_rng(2).normal(size=(50, 5)).astype(np.float32)
  mu, cov = metrics.moments(x)
  assert mu.dtype == cov.dtype == np.float64
  np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False),
                             rtol=1e-10)


def _mmd2_brute_force(x, y):
  d = x.shape[1]
  k = lambda a, b: (a @ b / d + 1.0) ** 3
  m = len(x)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_is_the_unbiased_polynomial_mmd():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1.0, size=(12, 4))
  # One subset of all samples is a permutation; MMD does not depend on order.
  mean, std = metrics.kid(x, y, metrics.jax.random.key(0), num_subsets=1,
                          subset_size=12)
  np.testing.assert_allclose(float(mean), _mmd2_brute_force(x, y), rtol=1e-10)
  assert float(std) == 0.0
  # Unbiased: near zero for two samples of one distribution, can go negative.
  a, b = rng.normal(size=(400, 4)), rng.normal(size=(400, 4))
  same, _ = metrics.kid(a, b, metrics.jax.random.key(1), num_subsets=20,
                        subset_size=200)
  shifted, _ = metrics.kid(a, b + 1.0, metrics.jax.random.key(1),
                           num_subsets=20, subset_size=200)
  assert abs(float(same)) < 0.02 < float(shifted)


def test_classifier_score_limits():
  num_classes = 10
  confident = np.full((1000, num_classes), -30.0)
  confident[np.arange(1000), np.arange(1000) % num_classes] = 30.0
  score, std = metrics.classifier_score(confident)
  np.testing.assert_allclose(float(score), num_classes, rtol=1e-9)
  assert float(std) < 1e-9
  one_class = np.zeros((1000, num_classes))
  one_class[:, 3] = 30.0
  np.testing.assert_allclose(float(metrics.classifier_score(one_class)[0]),
                             1.0, rtol=1e-9)


def test_knn_radii_count_repeated_points():
  real = np.stack([np.arange(10.0), np.zeros(10)], 1)  # points 0..9 on a line
  # k=3: the third-nearest other point is 3 away at the ends, 2 inside.
  np.testing.assert_allclose(np.sqrt(metrics.knn_radii(real)),
                             [3, 2, 2, 2, 2, 2, 2, 2, 2, 3])
  # Duplicates are neighbours at distance 0: three copies of a point have a
  # positive radius, four have radius 0.
  three = np.array([[0.0], [0.0], [0.0], [5.0]])
  np.testing.assert_allclose(metrics.knn_radii(three), [25, 25, 25, 25])
  np.testing.assert_allclose(metrics.knn_radii(np.zeros((4, 1))), 0)


def test_precision_recall_density_coverage_on_known_point_sets():
  real = np.stack([np.arange(10.0), np.zeros(10)], 1)
  real_radii = metrics.knn_radii(real)
  scores = lambda fake: metrics.manifold_metrics(
      real, real_radii, fake, metrics.knn_radii(fake))
  near = real + 0.1
  far = real + 1000.0
  got = scores(near)
  assert got["precision"] == 1.0 and got["recall"] == 1.0
  assert got["coverage"] == 1.0
  # i + 0.1 lies in the ball of real c when |i + 0.1 - c| <= radius of c
  # (3 for c = 0 and 9, else 2): e.g. 3.1 in the balls of 2, 3, 4 and 5.
  counts = np.asarray(metrics.ball_counts(near, real, real_radii)[0])
  np.testing.assert_array_equal(counts, [3, 4, 5, 4, 4, 4, 5, 4, 3, 2])
  assert got["density"] == counts.mean() / 3
  got = scores(far)
  assert got["precision"] == got["recall"] == got["coverage"] == 0.0
  got = scores(np.concatenate([near[:5], far[:5]]))
  assert got["precision"] == 0.5 and got["coverage"] == 0.7
  # A generator that always draws the same image has radius 0: it covers only
  # the real points that coincide with it.
  got = scores(np.repeat(real[4:5], 10, 0))
  assert got["recall"] == 0.1 and got["precision"] == 1.0
  assert got["density"] == 5 / 3


def test_class_histogram():
  uniform = np.eye(10)[np.arange(1000) % 10] * 10
  h = metrics.class_histogram(uniform)
  assert h["class_histogram"] == [100] * 10
  np.testing.assert_allclose(h["class_entropy"], np.log(10))
  assert (h["classes_covered"], h["classes_missing"]) == (10, 0)
  # 996 of class 0 and one each of four others: those four are below 10% of
  # their fair share and do not count as covered.
  skewed = np.eye(10)[np.r_[np.zeros(996, int), [1, 2, 3, 4]]]
  h = metrics.class_histogram(skewed)
  assert (h["classes_covered"], h["classes_missing"]) == (1, 9)


@pytest.mark.parametrize("images, message", [
    (np.zeros((20, 28, 28), np.float32), "must be uint8"),
    (np.zeros((20, 32, 32), np.uint8), "needs (N, 28, 28)"),
    (np.zeros((3, 28, 28), np.uint8), "at least 8 samples"),
])
def test_bad_samples_are_rejected_with_a_clear_error(images, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    metrics.check_images(images, "fashion_mnist")
