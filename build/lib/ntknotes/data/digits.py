"""scikit-learn's handwritten digits (1,797 8×8 grey images, shipped with scikit-learn)."""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np

from .core import Dataset, encode_targets, normalize_inputs, train_test_split

__all__ = ["load_digits"]


def load_digits(
    n_train: int = 1000,
    n_test: int = 500,
    *,
    key: jax.Array,
    classes: Optional[Sequence[int]] = None,
    targets: str = "onehot",
    normalize: str = "sphere",
) -> Dataset:
    """A random, class-balanced train/test split of scikit-learn's digits.

    Args:
      n_train, n_test: split sizes (together at most the number of images of the chosen classes).
      key: JAX PRNG key for the split.
      classes: keep only these digits, relabelled 0..len(classes)-1 in the given order
        (e.g. ``classes=(3, 8)`` with ``targets="pm1"`` gives a ±1 task with 8 as +1).
      targets: see :func:`ntknotes.data.encode_targets`.
      normalize: see :func:`ntknotes.data.normalize_inputs` (default: centred, on the sphere of radius √64).
    Returns:
      A :class:`Dataset` with 64-dimensional inputs and ``image_shape=(8, 8, 1)``.
    """
    from sklearn.datasets import load_digits as _sk_load

    raw = _sk_load()
    x, labels = raw.data.astype(np.float64), raw.target.astype(np.int64)
    if classes is not None:
        classes = [int(c) for c in classes]
        if len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes) or len(classes) < 2:
            raise ValueError(f"classes must be at least two distinct digits in 0..9, got {classes}")
        keep = np.isin(labels, classes)
        x, labels = x[keep], np.array([classes.index(c) for c in labels[keep]])
    n_classes = int(labels.max()) + 1
    tr, te = train_test_split(x.shape[0], n_train, n_test, key, stratify=labels)
    xtr, xte = normalize_inputs(x[tr], x[te], normalize)
    return Dataset(
        x_train=xtr,
        y_train=encode_targets(labels[tr], n_classes, targets),
        x_test=xte,
        y_test=encode_targets(labels[te], n_classes, targets),
        labels_train=labels[tr],
        labels_test=labels[te],
        name="digits" if classes is None else f"digits {tuple(classes)}",
        image_shape=(8, 8, 1),
    )
