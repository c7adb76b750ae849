"""The same model and step in other frameworks, for side-by-side timing.

Each runner returns ({"impl": name}, ms-per-step samples) or None when its
package is not installed.
"""

import time

import numpy as np


def _timed(step, repeats, warmup=2):
  for _ in range(warmup):
    step()
  samples = []
  for _ in range(repeats):
    t = time.perf_counter()
    step()
    samples.append((time.perf_counter() - t) * 1e3)
  return samples


def keras_reference(images, batch, repeats):
  """The classic recipe on Keras 3 (JAX backend): two Sequential models,
  `train_on_batch` for D, then the stacked model with D frozen."""
  import os  # pylint: disable=g-import-not-at-top
  os.environ.setdefault("KERAS_BACKEND", "jax")
  try:
    import keras  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  if keras.backend.backend() != "jax":
    raise RuntimeError("Set KERAS_BACKEND=jax for the Keras reference.")
  keras.utils.set_random_seed(0)
  layers = keras.layers
  generator = keras.Sequential([
      keras.Input((32,)),
      layers.Dense(7 * 7 * 128),
      layers.Reshape((7, 7, 128)),
      layers.BatchNormalization(),
      layers.Conv2DTranspose(64, 5, strides=2, padding="same",
                             activation="selu"),
      layers.BatchNormalization(),
      layers.Conv2DTranspose(1, 5, strides=2, padding="same",
                             activation="tanh"),
  ])
  discriminator = keras.Sequential([
      keras.Input((28, 28, 1)),
      layers.Conv2D(64, 5, strides=2, padding="same",
                    activation=layers.LeakyReLU(0.2)),
      layers.Dropout(0.4),
      layers.Conv2D(128, 5, strides=2, padding="same",
                    activation=layers.LeakyReLU(0.2)),
      layers.Dropout(0.4),
      layers.Flatten(),
      layers.Dense(1, activation="sigmoid"),
  ])
  gan = keras.Sequential([generator, discriminator])
  discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
  discriminator.trainable = False
  gan.compile(loss="binary_crossentropy", optimizer="rmsprop")
  rng = np.random.default_rng(0)
  reals = (images[:batch].astype(np.float32) / 127.5 - 1.0)[..., None]
  y1 = np.array([[0.0]] * batch + [[1.0]] * batch, np.float32)
  y2 = np.ones((batch, 1), np.float32)

  def step():
    noise = rng.standard_normal((batch, 32)).astype(np.float32)
    fakes = generator(noise)
    discriminator.trainable = True
    discriminator.train_on_batch(np.concatenate([np.asarray(fakes), reals]),
                                 y1)
    noise = rng.standard_normal((batch, 32)).astype(np.float32)
    discriminator.trainable = False
    gan.train_on_batch(noise, y2)

  return {"impl": "keras-reference"}, _timed(step, repeats)


def torch_eager(images, batch, repeats):
  """The same model and step in PyTorch eager mode (float32, CPU)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from torch import nn  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  torch.manual_seed(0)
  generator = nn.Sequential(
      nn.Linear(32, 7 * 7 * 128), nn.Unflatten(1, (128, 7, 7)),
      nn.BatchNorm2d(128, momentum=0.01, eps=1e-3),
      nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1),
      nn.SELU(), nn.BatchNorm2d(64, momentum=0.01, eps=1e-3),
      nn.ConvTranspose2d(64, 1, 5, stride=2, padding=2, output_padding=1),
      nn.Tanh())
  discriminator = nn.Sequential(
      nn.Conv2d(1, 64, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
      nn.Dropout(0.4), nn.Conv2d(64, 128, 5, stride=2, padding=2),
      nn.LeakyReLU(0.2), nn.Dropout(0.4), nn.Flatten(),
      nn.Linear(7 * 7 * 128, 1))
  g_opt = torch.optim.RMSprop(generator.parameters(), lr=1e-3, alpha=0.9,
                              eps=1e-7)
  d_opt = torch.optim.RMSprop(discriminator.parameters(), lr=1e-3, alpha=0.9,
                              eps=1e-7)
  loss_fn = nn.BCEWithLogitsLoss()
  reals = torch.from_numpy(
      (images[:batch].astype(np.float32) / 127.5 - 1.0)[:, None])
  y1 = torch.cat([torch.zeros(batch, 1), torch.ones(batch, 1)])
  y2 = torch.ones(batch, 1)

  def step():
    with torch.no_grad():
      fakes = generator(torch.randn(batch, 32))
    d_opt.zero_grad()
    loss_fn(discriminator(torch.cat([fakes, reals])), y1).backward()
    d_opt.step()
    for p in discriminator.parameters():
      p.requires_grad_(False)
    g_opt.zero_grad()
    loss_fn(discriminator(generator(torch.randn(batch, 32))), y2).backward()
    g_opt.step()
    for p in discriminator.parameters():
      p.requires_grad_(True)

  return {"impl": "torch-eager",
          "torch_threads": torch.get_num_threads()}, _timed(step, repeats)


RUNNERS = {"keras": keras_reference, "torch": torch_eager}
