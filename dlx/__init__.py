"""dlx: deep-learning fundamentals as pure functional, tested JAX/Flax code."""

__version__ = "0.1.0"
