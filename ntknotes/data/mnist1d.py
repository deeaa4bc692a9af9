"""MNIST-1D: ten 1-D "digit" templates turned into a classification set by random transformations.

Greydanus (2020) built a tiny benchmark that, unlike MNIST, separates linear models, MLPs, CNNs
and RNNs clearly: each example is one of ten hand-drawn templates of 12 points, padded to a random
length, stretched back, sheared, circularly translated, perturbed by correlated and i.i.d.
noise, and resampled to 40 points.  This module re-implements that procedure from its
description, with NumPy and a seed derived from a JAX key.

Faithfulness: the sequence of transformations and their default sizes follow the published
description (padding 36–60 points, shear scale 0.75, translations up to 48 points, correlated
noise of scale 0.25 smoothed by a Gaussian of width 2, i.i.d. noise of scale 0.02, 40 final
points).  The template values and the exact order of the random draws were reproduced from
memory of the reference implementation, not copied from it, and may differ from it in details;
the generated set is therefore
*statistically like* MNIST-1D, not the official file bit for bit.  For comparisons with published
MNIST-1D numbers load the official pickle instead.
"""
from __future__ import annotations

import jax
import numpy as np

from .._checks import check_nonnegative, check_positive_int
from .core import Dataset, encode_targets, normalize_inputs, train_test_split

__all__ = ["mnist1d_templates", "make_mnist1d"]

_TEMPLATES = np.array([
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


def mnist1d_templates() -> np.ndarray:
    """The ten templates, shape (10, 12), each centred to zero mean."""
    return _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, x.size), x)


def _smooth(noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing with reflecting ends (what scipy.ndimage.gaussian_filter1d does by default)."""
    radius = int(4 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    w /= w.sum()
    padded = np.pad(noise, radius, mode="symmetric")
    return np.convolve(padded, w, mode="valid")


def make_mnist1d(
    n_train: int = 4000,
    n_test: int = 1000,
    *,
    key: jax.Array,
    final_length: int = 40,
    padding: tuple = (36, 60),
    shear_scale: float = 0.75,
    max_translation: int = 48,
    corr_noise_scale: float = 0.25,
    iid_noise_scale: float = 2e-2,
    targets: str = "onehot",
    normalize: str = "none",
) -> Dataset:
    """Generate an MNIST-1D-like dataset (see the module docstring for how faithful it is).

    Args:
      n_train, n_test: numbers of examples (classes cycle 0..9, then the split is random).
      key: JAX PRNG key; all randomness derives from it.
      final_length: points per example (40 in the original).
      padding: (low, high) number of zeros appended to a template before it is stretched.
      shear_scale, max_translation, corr_noise_scale, iid_noise_scale: transformation sizes.
      targets, normalize: see :func:`ntknotes.data.encode_targets` / :func:`ntknotes.data.normalize_inputs`.
    Returns:
      A :class:`Dataset` with inputs (N, final_length) and ``image_shape=(final_length, 1, 1)``.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    final_length = check_positive_int(final_length, "final_length")
    max_translation = check_positive_int(max_translation, "max_translation")
    for name, v in (("shear_scale", shear_scale), ("corr_noise_scale", corr_noise_scale), ("iid_noise_scale", iid_noise_scale)):
        check_nonnegative(v, name)
    lo, hi = (int(p) for p in padding)
    if not 0 <= lo <= hi:
        raise ValueError(f"padding must be (low, high) with 0 <= low <= high, got {padding}")
    k_gen, k_split = jax.random.split(key)
    rng = np.random.default_rng(np.asarray(jax.random.randint(k_gen, (4,), 0, 2**31 - 1)))
    templates = mnist1d_templates()
    n = n_train + n_test
    labels = np.arange(n) % 10
    length = templates.shape[1] + hi
    xs = np.empty((n, final_length))
    for i, lab in enumerate(labels):  # a per-example loop in NumPy: generation happens once, offline
        p = int(rng.integers(lo, hi + 1))
        x = np.concatenate([templates[lab], np.zeros(p)])
        x = _interpolate(x, length)
        x = x - shear_scale * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, length)
        x = np.roll(x, int(rng.integers(0, max_translation)))
        x = x + _smooth(corr_noise_scale * rng.standard_normal(length), 2.0)
        x = x + iid_noise_scale * rng.standard_normal(length)
        xs[i] = _interpolate(x, final_length)
    tr, te = train_test_split(n, n_train, n_test, k_split, stratify=labels)
    xtr, xte = normalize_inputs(xs[tr], xs[te], normalize)
    return Dataset(
        x_train=xtr, y_train=encode_targets(labels[tr], 10, targets),
        x_test=xte, y_test=encode_targets(labels[te], 10, targets),
        labels_train=labels[tr], labels_test=labels[te],
        name="MNIST-1D (regenerated)", image_shape=(final_length, 1, 1),
    )
