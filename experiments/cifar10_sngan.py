"""SNGAN on CIFAR-10: the ResNet generator and discriminator for 32x32 RGB.

Miyato et al. 2018's CIFAR-10 ResNet (G width 256, D width 128, z 128), hinge
loss, spectral norm on every D layer, Adam with beta1 0 and beta2 0.9. The
paper takes five D steps per G step at one learning rate; ganjax takes one,
with the two time-scale rule (D 4e-4, G 1e-4) in their place.

CIFAR-10 cannot be downloaded at run time: prepare it with TFDS elsewhere and
point config.tfds_data_dir at a copy, or give train.npz/test.npz in
config.data_dir with config.data_source=npz. No evaluation classifier ships
for CIFAR-10 (FID there is computed with Inception features, which need
downloading), so config.eval_every is 0.

Launch:
  python -m ganjax.train --config=experiments/cifar10_sngan.py \
      --workdir=runs/cifar10_sngan
Variants: :conditional (class-conditional BatchNorm in G, projection D),
:smoke (narrow networks, a few steps), :short (3,000 steps).
"""

from ganjax import recipes

fashion = recipes.sibling(__file__, "fashion")


def get_config(arg=None):
  variants = (arg or "").split(",")
  config = fashion.get_config(",".join(v for v in variants
                                       if v != "conditional"))
  config.dataset = "cifar10"
  config.architecture = "resnet32"
  config.latent_dim = 128
  config.loss = "hinge"
  config.spectral_norm = True
  config.d_dropout = 0.0
  config.optimizer = "adam"
  config.g_learning_rate = 1e-4
  config.d_learning_rate = 4e-4
  config.adam_b1 = 0.0
  config.adam_b2 = 0.9
  config.eval_every = 0
  config.conditional = "conditional" in variants
  if "smoke" in variants:
    config.g_width = 8
    config.d_width = 8
  else:
    config.batch_size = 64
    config.num_steps = 50_000 if "short" not in variants else 3000
  return config
