"""GAN losses on discriminator logits, selectable by name (`config.loss`).

Each loss is a pair of functions of D's logits on a batch of fakes and a
batch of reals: `d(fake_logits, real_logits)` is what D minimizes and
`g(fake_logits, real_logits)` what G minimizes (only the relativistic loss
reads `real_logits` in G's phase).

- "reference": the Keras recipe's binary cross-entropy with labels 0 for
  fakes and 1 for reals; G is trained with label 1 on its fakes, which is the
  non-saturating loss. Its cross-entropy follows `config.bce`:
  - "logits": -[y log sigmoid(l) + (1 - y) log sigmoid(-l)], exact and stable
    for any logit; its gradient never vanishes, however saturated D is.
  - "keras": Keras applies a sigmoid, clips the probability to
    [1e-7, 1 - 1e-7] and takes logs, so outside |logit| ~ 15.9 the loss is
    flat and passes no gradient.
- "minimax": Goodfellow et al.'s original game; G minimizes log(1 - D(G(z))),
  which saturates when D rejects the fakes.
- "non_saturating": D as in "minimax", G maximizes log D(G(z)); the same
  function as "reference" with bce "logits", written as softplus.
- "hinge": D minimizes relu(1 - l_real) + relu(1 + l_fake); G -l_fake
  (Lim & Ye 2017, SNGAN, BigGAN).
- "wasserstein": D minimizes l_fake - l_real, G -l_fake (WGAN; pair it with
  the gradient penalty, config.gp_weight).
- "least_squares": LSGAN with targets 0 / 1: D (l_real - 1)^2 + l_fake^2,
  G (l_fake - 1)^2, each halved (Mao et al. 2017).
- "relativistic": relativistic average GAN (Jolicoeur-Martineau 2018): the
  non-saturating loss on l_real - mean(l_fake) and l_fake - mean(l_real),
  symmetric for G. Under several devices the means are over each device's
  part of the batch, so this one loss depends on the device count.
- "rpgan": the relativistic pairing GAN (Jolicoeur-Martineau 2018; R3GAN,
  Huang et al. 2024): D minimizes softplus(l_fake_i - l_real_i) over pairs
  (fake i, real i), G softplus(l_real_i - l_fake_i). Pairs are rows of the
  same batch, so it does not depend on the device count. R3GAN pairs it with
  the zero-centred penalties R1 and R2 (config.penalties "r1:g,r2:g").
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from ganjax import registry

KERAS_EPSILON = 1e-7


def bce_from_logits(logits, labels):
  return -(labels * jax.nn.log_sigmoid(logits)
           + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def bce_keras_clipped(logits, labels):
  probs = jnp.clip(jax.nn.sigmoid(logits), KERAS_EPSILON, 1.0 - KERAS_EPSILON)
  return -(labels * jnp.log(probs) + (1.0 - labels) * jnp.log(1.0 - probs))


BCE = {"logits": bce_from_logits, "keras": bce_keras_clipped}


def get_bce(name: str):
  if name not in BCE:
    raise ValueError(f"config.bce={name!r} is not one of {sorted(BCE)}.")
  return BCE[name]


@dataclasses.dataclass(frozen=True)
class GANLoss:
  """What D and G minimize, as functions of (fake_logits, real_logits)."""
  d: Callable
  g: Callable
  g_needs_reals: bool = False  # G's loss reads D's logits on reals


def reference(bce: Callable) -> GANLoss:
  def d(fake, real):  # one mean over the 2B examples, as Keras computes it
    logits = jnp.concatenate([fake, real])
    labels = jnp.concatenate([jnp.zeros_like(fake), jnp.ones_like(real)])
    return bce(logits, labels).mean()
  return GANLoss(d=d, g=lambda fake, real: bce(fake, jnp.ones_like(fake)).mean())


def _d_bce(fake, real):
  """-log(1 - D(fake)) - log D(real), each averaged over its batch."""
  return jax.nn.softplus(fake).mean() + jax.nn.softplus(-real).mean()


def _relativistic(fake, real):
  return _d_bce(fake - real.mean(), real - fake.mean())


def _rpgan(fake, real):
  """E[softplus(fake_i - real_i)]: what the side whose logits come first
  minimizes (D with (fake, real), G with (real, fake))."""
  return jax.nn.softplus(fake - real).mean()


LOSSES = {
    "minimax": GANLoss(d=_d_bce, g=lambda fake, real: -jax.nn.softplus(
        fake).mean()),
    "non_saturating": GANLoss(d=_d_bce, g=lambda fake, real: jax.nn.softplus(
        -fake).mean()),
    "hinge": GANLoss(
        d=lambda fake, real: (jax.nn.relu(1.0 - real).mean()
                              + jax.nn.relu(1.0 + fake).mean()),
        g=lambda fake, real: -fake.mean()),
    "wasserstein": GANLoss(d=lambda fake, real: fake.mean() - real.mean(),
                           g=lambda fake, real: -fake.mean()),
    "least_squares": GANLoss(
        d=lambda fake, real: 0.5 * (jnp.square(real - 1.0).mean()
                                    + jnp.square(fake).mean()),
        g=lambda fake, real: 0.5 * jnp.square(fake - 1.0).mean()),
    "relativistic": GANLoss(
        d=_relativistic, g=lambda fake, real: _relativistic(real, fake),
        g_needs_reals=True),
    "rpgan": GANLoss(d=_rpgan, g=lambda fake, real: _rpgan(real, fake),
                     g_needs_reals=True),
}
NAMES = ["reference", *LOSSES]  # grows with `register`


def register(name: str, loss: GANLoss) -> GANLoss:
  """Makes `loss` available as `config.loss=name` and `GAN(loss=name)`."""
  if name == "reference":
    raise ValueError("A loss named 'reference' is already registered; "
                     "choose another name.")
  registry.check_new(LOSSES, name, loss, "loss",
                     key=lambda l: registry.origin(getattr(l, "d", None)))
  LOSSES[name] = loss
  if name not in NAMES:
    NAMES.append(name)
  return loss


def get_loss(name: str, bce: Callable | str = "logits") -> GANLoss:
  """The loss called `name`; `bce` (a name or function) is the cross-entropy
  of "reference"."""
  if name == "reference":
    return reference(get_bce(bce) if isinstance(bce, str) else bce)
  if name not in LOSSES:
    raise ValueError(f"config.loss={name!r} is not one of {list(NAMES)}.")
  return LOSSES[name]
