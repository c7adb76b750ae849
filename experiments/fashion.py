"""The reference DCGAN on Fashion-MNIST.

Launch:
  python -m ganjax.train --config=experiments/fashion.py --workdir=runs/fashion

Variants, chosen after the colon:
  :keras  the reference recipe bit for bit in its two result-changing details
          (phase-1 fakes with G's moving BatchNorm statistics; Keras' clipped
          binary cross-entropy).
  :smoke  tiny settings for tests and CI: same code path, a few steps.
  :short  the documented short run (3,000 steps, 15 minutes on 2 idle CPU
          cores).
Variants combine: --config=experiments/fashion.py:keras,smoke.
Any field can be overridden from the command line, e.g. --config.seed=1.
"""

import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  config.seed = 0  # decides init, noise, dropout and data order
  # Seeds seed, seed+1, ..., seed+num_seeds-1 trained side by side in one
  # program, each in workdir/seed_<s> (see docs/training.md).
  config.num_seeds = 1
  # How: "unrolled" (each seed bit-identical to its single run), "vmap" (one
  # batched program; equal to float rounding), "auto" (unrolled on CPU).
  config.seed_batching = "auto"
  # A sweep: a grid of overrides of numbers of the recipe, every point (with
  # every seed) trained side by side in one program, each in its own run
  # directory, e.g. "g_learning_rate+d_learning_rate=1e-4,2e-4;adam_b1=0,0.5"
  # (ganjax/sweeps.py); "" = none.
  config.sweep = ""

  # Data.
  config.dataset = "fashion_mnist"  # "fashion_mnist" or "mnist"
  config.data_source = "auto"  # "auto" (TFDS if prepared, else IDX), "tfds", "idx"
  config.data_dir = ""  # IDX directory; "" = Debian's dataset-fashion-mnist
  config.tfds_data_dir = ""  # TFDS data_dir; "" = TFDS default

  # Model: the reference DCGAN (see ganjax/models.py for the others).
  config.architecture = "dcgan28"  # "dcgan28", "dcgan32", "resnet32"
  config.g_width = 64  # base widths; 64 = the published sizes
  config.d_width = 64
  config.latent_dim = 32
  config.d_dropout = 0.4
  config.spectral_norm = False  # spectral normalization of every D layer
  # Class-conditional G (label embedding) and projection D; grids get one
  # column per class and evaluation adds the per-class accuracy.
  config.conditional = False
  # Convolutions: "auto" (hybrid on CPU, xla elsewhere), "xla", "matmul",
  # "hybrid"; all compute the same function (see ganjax/layers.py).
  config.conv_impl = "auto"
  config.compute_dtype = "float32"  # "float32" or "bfloat16" (params stay f32)

  # The two details in which the Keras reference differs (see docs/toolbox.md):
  # phase1_bn: G's BatchNorm when making D's fakes: "inference" (Keras: moving
  #   statistics) or "batch" (the statistics G is trained with).
  # bce: "keras" (probabilities clipped to [1e-7, 1-1e-7]) or "logits".
  config.phase1_bn = "batch"
  config.bce = "logits"

  # The GAN objective (see ganjax/losses.py, regularizers.py, augment.py).
  # loss: "reference" (the BCE above), "minimax", "non_saturating", "hinge",
  #   "wasserstein", "least_squares", "relativistic".
  config.loss = "reference"
  config.gp_weight = 0.0  # WGAN-GP weight (lambda; 10 in the paper)
  config.r1_weight = 0.0  # R1 weight (gamma) on D's real inputs
  config.r1_every = 1  # lazy R1: every this many steps, weighted this much more
  # More penalties from ganjax.regularizers' registry: "name:weight[:every],..."
  config.penalties = ""
  # DiffAugment of every D input: comma-separated "color", "translation",
  # "cutout", "xflip"; "" = none.
  config.augment = ""
  # Their sizes as fractions of the image side (the paper's values): shift by
  # up to 1/8 (28 px: 4 px), cut out a square of 1/2 (28 px: 14x14).
  config.augment_translation = 0.125
  config.augment_cutout = 0.5
  # The pixel value translation's vacated border and cutout's square take:
  # the paper's 0 is mid-grey here (images in [-1, 1]); -1 is black.
  config.augment_fill = 0.0
  # Adaptive augmentation (ADA): > 0 applies each transform of config.augment
  # with a probability p tuned so that E[sign(D(reals))] holds this target
  # (the paper's 0.6); p moves by at most 1 per ada_kimg thousand images
  # (the paper's 500 suits runs of millions of images; 100 lets p reach 1
  # in 782 steps of 128).
  config.ada_target = 0.0
  config.ada_kimg = 100.0
  # EMA of G's weights, used for samples and evaluation when > 0.
  config.ema_decay = 0.0
  config.ema_start = 0  # the average equals the weights before this step

  # Optimization: RMSprop with Keras' defaults for both networks.
  # Learning rates may differ (two time-scale update rule, TTUR).
  config.optimizer = "rmsprop"  # "rmsprop" or "adam"
  config.g_learning_rate = 1e-3
  config.d_learning_rate = 1e-3
  # Learning rate over steps: "constant" (the reference), "linear" or
  # "cosine" (warm-up over lr_warmup_steps, then decay to 0 at
  # lr_decay_steps; see ganjax/optimizers.py).
  config.lr_schedule = "constant"
  config.lr_warmup_steps = 0
  config.lr_decay_steps = 0
  config.rmsprop_decay = 0.9
  config.rmsprop_eps = 1e-7
  config.adam_b1 = 0.5
  config.adam_b2 = 0.999
  config.batch_size = 128  # global; split evenly over the devices
  # How the step runs over the devices: "pmap"; "shard_map" (jit of
  # shard_map over a device Mesh, pmap's program); "sharding" (jit of the
  # global step, batch sharded over the Mesh). Results agree to rounding.
  config.parallelism = "pmap"
  config.num_steps = 10_000
  config.steps_per_call = 10  # steps fused into one compiled call (lax.scan)
  # lax.scan unroll factor of the fused steps; 0 = full on CPU (XLA's CPU
  # convolutions are slow inside loops), none elsewhere.
  config.scan_unroll = 0

  # Outputs.
  config.log_every = 50  # metrics leave the device only this often
  config.sample_every = 500  # PNG grid from the fixed noise batch
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3  # newest checkpoints kept
  config.num_sample_images = 64  # fixed noise batch for the grids
  # A NaN or Inf in a loss or the parameters stops the run (0), or rolls back
  # to the newest checkpoint and continues with a new noise stream, at most
  # this many times.
  config.nan_rollbacks = 0

  # Evaluation (see ganjax/metrics.py): every eval_every steps (0 = never),
  # FID, KID, precision/recall... of eval_num_samples samples drawn with noise
  # seed eval_seed, against the test split. The best checkpoint by FID is kept
  # in checkpoints_best/.
  config.eval_every = 1000
  config.eval_num_samples = 10_000
  config.eval_seed = 0

  for variant in (arg or "").split(","):
    if variant == "keras":
      config.phase1_bn = "inference"
      config.bce = "keras"
    elif variant == "short":
      config.num_steps = 3000
    elif variant == "smoke":
      config.batch_size = 16
      config.num_steps = 8
      config.steps_per_call = 2
      config.log_every = 2
      config.sample_every = 4
      config.checkpoint_every = 4
      config.num_sample_images = 16
      config.eval_every = 0
      config.eval_num_samples = 200
    elif variant:
      raise ValueError(f"Unknown config variant {variant!r} in {arg!r}; "
                       "valid: keras, short, smoke (comma-separated).")
  return config
