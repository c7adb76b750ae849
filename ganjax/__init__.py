"""ganjax: GANs in JAX/Flax, fast, exact and reproducible."""

__version__ = "0.1.0"
