"""MNIST-1D: ten 1-D "digit" templates turned into a classification set by random transformations.

Greydanus (2020) built a tiny benchmark that, unlike MNIST, separates linear models, MLPs, CNNs
and RNNs clearly: each example is one of ten hand-drawn templates of 12 points, padded with a
random number of zeros, stretched back to 72 points, rescaled, circularly translated, given
correlated noise where it is flat zero and i.i.d. noise everywhere, sheared, and resampled to 40
points; the whole set is then shuffled and standardized.

This module implements that procedure with the reference implementation's constants, template
values and order of random draws (a ``numpy.random.RandomState``, created here and never the
global one), so ``make_mnist1d(seed=42)`` reproduces the reference generator's default set
(``mnist1d.data.make_dataset`` of the ``mnist1d`` package, 4000 training and 1000 test
examples): ``tests/test_data_files.py`` checks them equal to 1e-12.  Passing a JAX ``key``
instead draws the seed from it.
"""
from __future__ import annotations

import math
from typing import Optional

import jax
import numpy as np
from scipy.ndimage import gaussian_filter1d

from .._checks import check_key, check_nonnegative, check_positive_int
from .core import Dataset, encode_targets, normalize_inputs

__all__ = ["mnist1d_templates", "make_mnist1d"]

_RAW_TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],      # 0
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],    # 1
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],  # 2
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],        # 3
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],      # 4
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],          # 5
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],      # 6
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],    # 7
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],        # 8
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],        # 9
], dtype=np.float64)
_EPS = 1e-8  # added to a template before padding, so that only the padding is exactly zero


def mnist1d_templates() -> np.ndarray:
    """The ten templates, shape (10, 12): standardized per row, shifted to start (and end) at 0, divided by 6."""
    x = _RAW_TEMPLATES - _RAW_TEMPLATES.mean(axis=1, keepdims=True)
    x = x / x.std(axis=1, keepdims=True)
    x = x - x[:, :1]
    return x / 6.0


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of x to n points spread over the same interval."""
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, x.size), x)


def _transform(x: np.ndarray, rng: np.random.RandomState, length: int, final_length: int, lo: int, hi: int,
               scale_coeff: float, max_translation: int, corr_noise_scale: float, iid_noise_scale: float,
               shear_scale: float) -> np.ndarray:
    """One example from one template (the draws, in order: padding, scale, shift, two noises, shear)."""
    p = lo + int(rng.rand() * (hi - lo + 1))
    x = _interpolate(np.concatenate([x + _EPS, np.zeros(p)]), length)
    x = x * (1.0 + scale_coeff * (rng.rand() - 0.5))
    x = np.roll(x, int(rng.choice(max_translation)))
    flat = x == 0  # the padding: correlated noise replaces it
    corr = gaussian_filter1d(corr_noise_scale * rng.randn(length), 2.0, mode="reflect", truncate=4.0)
    x = np.where(flat, corr, x)
    x = x + iid_noise_scale * rng.randn(length)
    x = x - shear_scale * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, length)
    return _interpolate(x, final_length)


def make_mnist1d(
    n_train: int = 4000,
    n_test: int = 1000,
    *,
    key: Optional[jax.Array] = None,
    seed: Optional[int] = None,
    final_length: int = 40,
    padding: tuple = (36, 60),
    scale_coeff: float = 0.4,
    shear_scale: float = 0.75,
    max_translation: int = 48,
    corr_noise_scale: float = 0.25,
    iid_noise_scale: float = 2e-2,
    targets: str = "onehot",
    normalize: str = "none",
) -> Dataset:
    """Generate MNIST-1D (see the module docstring): ``seed=42`` with the defaults is the reference set.

    Args:
      n_train, n_test: numbers of examples. ⌈(n_train + n_test)/10⌉ examples of every class are
        generated class by class, shuffled, and the first n_train / next n_test kept.
      key: JAX PRNG key from which the generator's seed is drawn; or
      seed: the integer seed itself (exactly one of ``key`` and ``seed``).
      final_length: points per example (40).
      padding: (low, high) number of zeros appended to a template before it is stretched to
        12 + high points.
      scale_coeff, shear_scale, max_translation, corr_noise_scale, iid_noise_scale: sizes of the
        random rescaling (factor in 1 ± scale_coeff/2), shear, circular shift (0..max_translation−1
        points), correlated noise (Gaussian-smoothed, width 2 points) and i.i.d. noise.
      targets, normalize: see :func:`ntknotes.data.encode_targets` / :func:`ntknotes.data.normalize_inputs`
        (applied after the set-wide standardization that is part of MNIST-1D).
    Returns:
      A :class:`Dataset` with inputs (N, final_length) and ``image_shape=(final_length, 1, 1)``.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    final_length = check_positive_int(final_length, "final_length")
    max_translation = check_positive_int(max_translation, "max_translation")
    for name, v in (("scale_coeff", scale_coeff), ("shear_scale", shear_scale),
                    ("corr_noise_scale", corr_noise_scale), ("iid_noise_scale", iid_noise_scale)):
        check_nonnegative(v, name)
    lo, hi = (int(p) for p in padding)
    if not 0 <= lo <= hi:
        raise ValueError(f"padding must be (low, high) with 0 <= low <= high, got {padding}")
    if (key is None) == (seed is None):
        raise TypeError("pass exactly one of key (a JAX PRNG key) and seed (an int)")
    if seed is None:
        seed = int(jax.random.randint(check_key(key), (), 0, 2**31 - 1))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise TypeError(f"seed must be an int in [0, 2**32), got {seed!r}")
    rng = np.random.RandomState(int(seed))
    templates = mnist1d_templates()
    per_class = math.ceil((n_train + n_test) / 10)
    labels = np.repeat(np.arange(10), per_class)
    length = templates.shape[1] + hi
    # one example at a time: the draws are sequential in the generator (generation runs once, offline)
    xs = np.stack([_transform(templates[lab], rng, length, final_length, lo, hi, scale_coeff, max_translation,
                              corr_noise_scale, iid_noise_scale, shear_scale) for lab in labels])
    order = rng.permutation(labels.size)[: n_train + n_test]
    xs, labels = xs[order], labels[order]
    xs = (xs - xs.mean()) / xs.std()
    xtr, xte = normalize_inputs(xs[:n_train], xs[n_train:], normalize)
    ltr, lte = labels[:n_train], labels[n_train:]
    return Dataset(
        x_train=xtr, y_train=encode_targets(ltr, 10, targets),
        x_test=xte, y_test=encode_targets(lte, 10, targets),
        labels_train=ltr, labels_test=lte,
        name="MNIST-1D", image_shape=(final_length, 1, 1),
    )
