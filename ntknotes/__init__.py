"""ntknotes: the Neural Tangent Kernel in JAX, and the executable lecture notes built on it.

Importing ntknotes changes no global JAX setting; call :func:`enable_x64` (or
``jax.config.update("jax_enable_x64", True)``) first where float64 is wanted.
"""
from .precision import default_dtype, enable_x64, x64_enabled  # noqa: F401

__version__ = "0.1.0"
