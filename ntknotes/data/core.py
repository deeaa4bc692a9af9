"""The Dataset record and the preprocessing shared by every loader."""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import jax
import numpy as np

from .._checks import check_choice, check_finite, check_key, check_positive_int

__all__ = ["Dataset", "check_labels", "encode_targets", "normalize_inputs", "train_test_split"]

TARGETS = ("onehot", "onehot_centered", "pm1", "labels")
NORMALIZATIONS = ("sphere", "standardize", "unit", "none")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A supervised dataset split into train and test.

    Attributes:
      x_train: (N, d) inputs (images are flattened unless a loader says otherwise).
      y_train: (N, k) float targets (one-hot, ±1 or labels, see ``targets``).
      x_test, y_test: the same for the test split.
      labels_train, labels_test: integer class labels (N,), or ``None`` for regression.
      name: a short description.
      image_shape: (H, W, C) of the images before flattening, if any.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: Optional[np.ndarray] = None
    labels_test: Optional[np.ndarray] = None
    name: str = "dataset"
    image_shape: Optional[tuple] = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def in_dim(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    def images(self, split: str = "train") -> np.ndarray:
        """The inputs of ``split`` reshaped to (N, H, W, C); needs ``image_shape``."""
        if self.image_shape is None:
            raise ValueError(f"{self.name} has no image shape")
        x = self.x_train if check_choice(split, "split", ("train", "test")) == "train" else self.x_test
        return x.reshape((x.shape[0],) + tuple(self.image_shape))


def check_labels(labels: Any, n_classes: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array after checking they are integers in [0, n_classes).

    Raises:
      TypeError for non-integer labels (floats with fractions, strings), ValueError for a wrong
      shape, an empty array, or a label outside the class range (naming the first one found).
    """
    n_classes = check_positive_int(n_classes, "n_classes")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; at least one labelled point is needed")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(f"{name} must be integer class indices, got non-integer values such as {arr[arr != np.round(arr)][:3]}")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n_classes)
    if np.any(bad):
        raise ValueError(
            f"{name} must lie in [0, {n_classes}) for {n_classes} classes; "
            f"found {int(bad.sum())} outside, e.g. {int(arr[bad][0])} at index {int(np.flatnonzero(bad)[0])}"
        )
    return arr


def encode_targets(labels: np.ndarray, n_classes: int, targets: str) -> np.ndarray:
    """Encode integer labels as (N, k) float targets.

    ``"onehot"``: e_y; ``"onehot_centered"``: e_y − 1/k (zero-mean rows, as in Arora et al. 2019);
    ``"pm1"``: +1/−1 for two classes (class 1 is +1), shape (N, 1); ``"labels"``: the integers, (N, 1).
    """
    check_choice(targets, "targets", TARGETS)
    labels = check_labels(labels, n_classes)
    if targets == "labels":
        return labels.astype(np.float64)[:, None]
    if targets == "pm1":
        if n_classes != 2:
            raise ValueError(f"targets='pm1' needs exactly two classes, got {n_classes}")
        return np.where(labels == 1, 1.0, -1.0)[:, None]
    onehot = np.eye(n_classes)[labels]
    return onehot - 1.0 / n_classes if targets == "onehot_centered" else onehot


def normalize_inputs(x_train: np.ndarray, x_test: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess inputs with statistics of the training split only.

    ``"sphere"``: center by the training mean, then scale every point to norm √d (so x·x/d = 1);
    ``"unit"``: the same but to norm 1; ``"standardize"``: per-feature z-scores; ``"none"``.
    """
    check_choice(how, "normalize", NORMALIZATIONS)
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    for arr, name in ((x_train, "x_train"), (x_test, "x_test")):
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (N, d) array, got shape {arr.shape}")
        check_finite(arr, name)
    if how == "none":
        return x_train, x_test
    if how == "standardize":
        mu, sd = x_train.mean(0), x_train.std(0)
        sd = np.where(sd > 0, sd, 1.0)
        return (x_train - mu) / sd, (x_test - mu) / sd
    mu = x_train.mean(0)
    target = np.sqrt(x_train.shape[1]) if how == "sphere" else 1.0

    def scale(x):
        x = x - mu
        n = np.linalg.norm(x, axis=1, keepdims=True)
        if np.any(n == 0):
            raise ValueError("a point equals the training mean and cannot be put on the sphere")
        return target * x / n

    return scale(x_train), scale(x_test)


def train_test_split(
    n_total: int, n_train: int, n_test: int, key: jax.Array, stratify: Optional[Sequence[int]] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random index sets of sizes n_train and n_test drawn from range(n_total).

    With ``stratify`` (labels), the training indices cycle through the classes so that
    every class is represented as evenly as the data allow.
    """
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    check_key(key)
    if n_train + n_test > n_total:
        raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {n_total} available points")
    perm = np.asarray(jax.random.permutation(key, n_total))
    if stratify is not None:
        labels = np.asarray(stratify)[perm]
        # rank of each point within its class, then sort by (rank, class): round-robin over classes
        order = np.lexsort((labels, _rank_within_class(labels)))
        perm = perm[order]
    return perm[:n_train], perm[n_train : n_train + n_test]


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    ranks = np.empty(labels.size, dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        ranks[idx] = np.arange(idx.size)
    return ranks
