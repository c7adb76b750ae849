"""The same model and step in other frameworks, for side-by-side timing.

Each runner takes (images, batch, device=..., dtype=...), builds the model
and runs its warm-up steps, and returns ({"impl": name, ...}, step), `step` a
function of no arguments that runs one training step and waits for it; or
None when its package is not installed. The caller times the steps
(benchmarks/step_time.py), in turn with the other implementations. Keras
runs on CPU in float32 only.
"""

import numpy as np


def _warmed_up(step, warmup):
  for _ in range(warmup):
    step()
  return step


def new_batch_size():
  """Call before preparing the runners of another batch size: compiled
  graphs of earlier batch sizes count toward dynamo's per-function
  recompile limit, and past it calls silently run eager."""
  import sys  # pylint: disable=g-import-not-at-top
  if "torch" in sys.modules:
    dynamo = sys.modules["torch"]._dynamo  # pylint: disable=protected-access
    dynamo.reset()
    # One batch size compiles G and D for each dtype timed, and D for two
    # input shapes and both requires_grad settings: room for all of them.
    dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)


def keras_reference(images, batch, *, device="cpu", dtype="float32"):
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

  return {"impl": "keras-reference"}, _warmed_up(step, 2)


def _torch_step(images, batch, *, device, dtype, compiled):
  """The reference model and two-phase step in PyTorch on `device`
  (float32, or bfloat16 under autocast), G and D `torch.compile`d when
  `compiled`; a function of no arguments that runs one step and waits."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  if dtype not in ("float32", "bfloat16"):
    raise ValueError(f"dtype {dtype!r}: float32 or bfloat16")
  torch.manual_seed(0)
  # On CUDA as XLA does by default: TF32 matmuls and convolutions in
  # float32, autotuned convolution algorithms.
  torch.set_float32_matmul_precision("high")
  torch.backends.cudnn.benchmark = True
  generator = nn.Sequential(
      nn.Linear(32, 7 * 7 * 128), nn.Unflatten(1, (128, 7, 7)),
      nn.BatchNorm2d(128, momentum=0.01, eps=1e-3),
      nn.ConvTranspose2d(128, 64, 5, stride=2, padding=2, output_padding=1),
      nn.SELU(), nn.BatchNorm2d(64, momentum=0.01, eps=1e-3),
      nn.ConvTranspose2d(64, 1, 5, stride=2, padding=2, output_padding=1),
      nn.Tanh()).to(device)
  discriminator = nn.Sequential(
      nn.Conv2d(1, 64, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
      nn.Dropout(0.4), nn.Conv2d(64, 128, 5, stride=2, padding=2),
      nn.LeakyReLU(0.2), nn.Dropout(0.4), nn.Flatten(),
      nn.Linear(7 * 7 * 128, 1)).to(device)
  g_opt = torch.optim.RMSprop(generator.parameters(), lr=1e-3, alpha=0.9,
                              eps=1e-7)
  d_opt = torch.optim.RMSprop(discriminator.parameters(), lr=1e-3, alpha=0.9,
                              eps=1e-7)
  # dynamic=False: D sees two batch sizes (2B reals and fakes, B fakes),
  # each its own static graph, as in ganjax's program.
  g_fn, d_fn = ((torch.compile(generator, dynamic=False),
                 torch.compile(discriminator, dynamic=False))
                if compiled else (generator, discriminator))
  loss_fn = nn.BCEWithLogitsLoss()
  # Under bfloat16 autocast G's images are bfloat16; the reals match them,
  # so D is called (and compiled) for one input dtype.
  reals = torch.from_numpy(
      (images[:batch].astype(np.float32) / 127.5 - 1.0)[:, None]).to(
          device, torch.bfloat16 if dtype == "bfloat16" else torch.float32)
  y1 = torch.cat([torch.zeros(batch, 1), torch.ones(batch, 1)]).to(device)
  y2 = torch.ones(batch, 1, device=device)
  autocast = torch.autocast(device_type=torch.device(device).type,
                            dtype=torch.bfloat16,
                            enabled=dtype == "bfloat16")
  wait = (torch.cuda.synchronize if torch.device(device).type == "cuda"
          else lambda: None)

  def step():
    with autocast:
      with torch.no_grad():
        fakes = g_fn(torch.randn(batch, 32, device=device))
      d_opt.zero_grad()
      loss_fn(d_fn(torch.cat([fakes, reals])).float(), y1).backward()
      d_opt.step()
      for p in discriminator.parameters():
        p.requires_grad_(False)
      g_opt.zero_grad()
      loss_fn(d_fn(g_fn(torch.randn(batch, 32, device=device))).float(),
              y2).backward()
      g_opt.step()
      for p in discriminator.parameters():
        p.requires_grad_(True)
    wait()

  return torch, step


def _torch_runner(compiled):
  def run(images, batch, *, device="cpu", dtype="float32"):
    try:
      import torch  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      return None
    torch, step = _torch_step(images, batch, device=device, dtype=dtype,
                              compiled=compiled)
    # torch.compile compiles on the first calls (both requires_grad
    # settings of D), so it gets more warm-up than eager needs.
    return {"impl": "torch-compile" if compiled else "torch-eager",
            "torch": torch.__version__, "torch_device": device,
            "torch_threads": torch.get_num_threads()}, _warmed_up(
                step, 5 if compiled else 2)
  run.__doc__ = ("The same model and step in PyTorch, "
                 + ("G and D torch.compile'd (inductor)." if compiled
                    else "eager."))
  return run


torch_eager = _torch_runner(compiled=False)
torch_compiled = _torch_runner(compiled=True)


RUNNERS = {"keras": keras_reference, "torch": torch_eager,
           "torch_compile": torch_compiled}
