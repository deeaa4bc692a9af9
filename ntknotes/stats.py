"""Small statistics used to check theory against experiment: log-log slopes and bootstrap intervals."""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from ._checks import check_key

__all__ = ["Fit", "loglog_slope", "BootstrapCI", "bootstrap_ci", "relative_error"]


class Fit(NamedTuple):
    """A least-squares line log y = slope · log x + intercept (natural logs)."""

    slope: float
    intercept: float

    def __call__(self, x):
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope


def loglog_slope(x, y) -> Fit:
    """Least-squares slope of log y against log x.

    Args:
      x, y: 1-D arrays of positive numbers of equal length >= 2.
    Returns:
      Fit(slope, intercept).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must be 1-D arrays of equal length >= 2, got shapes {x.shape} and {y.shape}")
    if np.any(~np.isfinite(x)) or np.any(~np.isfinite(y)) or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("loglog_slope needs finite, positive x and y")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return Fit(float(slope), float(intercept))


def relative_error(estimate, reference) -> float:
    """‖estimate − reference‖_F / ‖reference‖_F."""
    estimate = np.asarray(estimate, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if estimate.shape != reference.shape:
        raise ValueError(f"shapes differ: {estimate.shape} vs {reference.shape}")
    denom = np.linalg.norm(reference)
    if denom == 0:
        raise ValueError("the reference is zero: a relative error is undefined")
    return float(np.linalg.norm(estimate - reference) / denom)


class BootstrapCI(NamedTuple):
    """A point estimate with a percentile bootstrap interval [low, high]."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def bootstrap_ci(
    samples,
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    key: jax.Array,
    n_boot: int = 2000,
    level: float = 0.95,
) -> BootstrapCI:
    """Percentile bootstrap interval of ``statistic`` over the first axis of ``samples``.

    Args:
      samples: array (n, ...) of i.i.d. draws.
      statistic: maps an array like ``samples`` to a float (applied along axis 0 per resample).
      key: JAX PRNG key (resampling indices are drawn from it).
      n_boot: number of bootstrap resamples.
      level: coverage of the interval, in (0, 1).
    """
    samples = np.asarray(samples)
    if samples.ndim < 1 or samples.shape[0] < 2:
        raise ValueError(f"bootstrap needs at least 2 samples along axis 0, got shape {samples.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    check_key(key)
    n = samples.shape[0]
    idx = np.asarray(jax.random.randint(key, (int(n_boot), n), 0, n))
    stats = np.array([statistic(samples[i]) for i in idx])
    alpha = 0.5 * (1.0 - level)
    return BootstrapCI(float(statistic(samples)), float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha)))
