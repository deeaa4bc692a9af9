"""Small 1-D regression problems for pictures of training dynamics."""
from __future__ import annotations

from typing import Optional

import jax
import numpy as np

from .._checks import check_key, check_matrix, check_nonnegative, check_positive_int

__all__ = ["toy_1d", "augment_with_one"]


def toy_1d(
    n: int = 6,
    *,
    key: Optional[jax.Array] = None,
    low: float = -2.5,
    high: float = 2.5,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A handful of scalar points (x_i, y_i) with y = sin(1.3 x) + 0.3 x (+ noise).

    Args:
      n: number of points.
      key: PRNG key for random x positions and noise; ``None`` gives evenly spaced x, no noise.
      low, high: the interval of x.
      noise: standard deviation of Gaussian noise added to y (needs ``key``).
    Returns:
      x of shape (n, 1) and y of shape (n, 1), float64.
    """
    n = check_positive_int(n, "n")
    noise = check_nonnegative(noise, "noise")
    if not high > low:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    if key is None:
        if noise > 0:
            raise ValueError("noise > 0 needs a PRNG key")
        x = np.linspace(low, high, n)
    else:
        k1, k2 = jax.random.split(check_key(key))
        x = np.sort(np.asarray(jax.random.uniform(k1, (n,), minval=low, maxval=high), dtype=np.float64))
    y = np.sin(1.3 * x) + 0.3 * x
    if noise > 0:
        y = y + noise * np.asarray(jax.random.normal(k2, (n,)), dtype=np.float64)
    return x[:, None], y[:, None]


def augment_with_one(x) -> np.ndarray:
    """Append a constant 1 to every input, (N, d) -> (N, d + 1): a bias folded into the first layer."""
    check_matrix(x, "x")
    x = np.asarray(x, dtype=np.float64)
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
