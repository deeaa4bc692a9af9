"""ntknotes: the Neural Tangent Kernel in JAX, and the executable lecture notes built on it."""
from . import precision  # noqa: F401  (float64 policy; must come first)

__version__ = "0.1.0"
