"""Kernel regression with any kernel: the predictor of an infinitely wide network trained to convergence.

Given a kernel k, training inputs X (N points) with targets Y (N, m) and test inputs X* (M points),
kernel (ridge) regression predicts::

    f(X*) = k(X*, X) (k(X, X) + λ I)⁻¹ Y,          shape (M, m)

with λ = 0 for the ridgeless interpolant.  With k the NTK Θ, this is the limit t → ∞ of the
gradient-flow dynamics of an infinitely wide network whose output starts at zero; with k the
NNGP kernel it is the posterior mean of the Gaussian process (and the prediction of a wide net
whose last layer alone is trained).  Multi-class problems use one column of Y per class
(one-hot targets) and one shared solve; the predicted class is the argmax of the row.

Every function takes precomputed kernel matrices, so it works for fully-connected
(:mod:`ntknotes.kernels`), convolutional (:mod:`ntknotes.conv`) and empirical kernels alike.
Predictive (co)variances of the NTK-GP and the NNGP are in :mod:`ntknotes.dynamics`
(:func:`~ntknotes.dynamics.ntkgp_moments`, :func:`~ntknotes.dynamics.nngp_posterior`).
The solves never form an inverse: ``method="eigh"`` goes through :func:`ntknotes.linalg.solve_psd`
(eigendecomposition, singular systems raise :class:`~ntknotes.linalg.SingularKernelError`) and
``method="cholesky"`` uses a Cholesky factorization (about 25 times cheaper for large N) with an
optional jitter that is reported back in :class:`KernelSolve`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, check_finite, check_nonnegative
from .linalg import SingularKernelError, check_square_symmetric, solve_psd

__all__ = [
    "KernelSolve",
    "METHODS",
    "solve_kernel",
    "kernel_regression",
    "predict_classes",
    "accuracy",
]

Array = jax.Array
METHODS = ("eigh", "cholesky")


class KernelSolve(NamedTuple):
    """Coefficients of a kernel predictor.

    Attributes:
      weights: α = (K + λI)⁻¹ Y, shape (N, m) (or (N,) for a 1-D Y).
      ridge: the λ that was requested.
      jitter: the extra diagonal the Cholesky path had to add to succeed (0.0 if none; always 0.0
        for ``method="eigh"``).
      method: ``"eigh"`` or ``"cholesky"``.
    """

    weights: Array
    ridge: float
    jitter: float
    method: str


def _check_kernel_pair(k_train, k_cross, name_cross: str = "k_test_train") -> None:
    shape = getattr(k_cross, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"{name_cross} must be a matrix of shape (M, N), got shape {shape}")
    if shape[1] != k_train.shape[0]:
        raise ValueError(
            f"{name_cross} has {shape[1]} columns but the training kernel is {k_train.shape[0]}×{k_train.shape[0]}"
        )
    check_finite(k_cross, name_cross)


def _cholesky_solve(k: np.ndarray, y: np.ndarray, ridge: float, max_jitter: float) -> tuple[Array, float]:
    """Solve (K + (ridge + jitter) I) a = y by Cholesky, growing the jitter from 0 by factors of 10."""
    n = k.shape[0]
    scale = float(np.mean(np.diag(k))) if n else 1.0
    jitter = 0.0
    eye = jnp.eye(n, dtype=k.dtype)
    kj = jnp.asarray(k)
    trial = 1e-12 * max(scale, 1e-300)
    while True:
        chol = jnp.linalg.cholesky(kj + (ridge + jitter) * eye)
        if bool(jnp.all(jnp.isfinite(chol))):
            # a factor whose diagonal collapses to rounding level is numerically singular
            d = jnp.diag(chol)
            if float(jnp.min(d)) ** 2 > 1e3 * n * float(jnp.finfo(k.dtype).eps) * float(jnp.max(d)) ** 2:
                break
        if jitter >= max_jitter:
            raise SingularKernelError(
                f"kernel + ridge·I is singular or too ill-conditioned for a Cholesky solve even with jitter "
                f"{jitter:.3g} (ridge {ridge:.3g}, mean diagonal {scale:.3g}); pass a larger ridge or max_jitter"
            )
        jitter = trial if jitter == 0.0 else min(10.0 * jitter, max_jitter)
    a = jax.scipy.linalg.cho_solve((chol, True), jnp.asarray(y))
    return a, jitter


def solve_kernel(
    k_train: Array,
    y_train: Array,
    *,
    ridge: float = 0.0,
    method: str = "eigh",
    max_jitter: float = 0.0,
) -> KernelSolve:
    """Coefficients α = (K + λI)⁻¹ Y of the kernel predictor f(x) = k(x, X) α.

    Args:
      k_train: (N, N) symmetric PSD kernel matrix on the training inputs.
      y_train: (N,) or (N, m) targets (one column per output, e.g. one-hot classes).
      ridge: λ >= 0 (0: interpolate the training targets exactly).
      method: ``"eigh"`` (eigendecomposition, the most robust) or ``"cholesky"`` (faster).
      max_jitter: largest extra diagonal the Cholesky path may add when the factorization fails
        (default 0: fail instead); the jitter used is reported in the result.
    Returns:
      A :class:`KernelSolve`.
    Raises:
      SingularKernelError if K + λI is singular to working precision.
      ValueError / TypeError for wrong shapes, non-symmetric or non-finite inputs, negative ridge.
    """
    ridge = check_nonnegative(ridge, "ridge")
    max_jitter = check_nonnegative(max_jitter, "max_jitter")
    check_choice(method, "method", METHODS)
    check_square_symmetric(k_train, "k_train")
    y = jnp.asarray(y_train)
    if y.ndim not in (1, 2) or y.shape[0] != k_train.shape[0]:
        raise ValueError(
            f"y_train must have shape (N,) or (N, m) with N = {k_train.shape[0]} (the kernel's size), got {y.shape}"
        )
    check_finite(y, "y_train")
    if method == "eigh":
        return KernelSolve(solve_psd(k_train, y, ridge=ridge, name="k_train"), ridge, 0.0, method)
    k = np.asarray(k_train)
    k = 0.5 * (k + k.T)
    a, jitter = _cholesky_solve(k, np.asarray(y), ridge, max_jitter)
    return KernelSolve(a, ridge, jitter, method)


def kernel_regression(
    k_train: Array,
    y_train: Array,
    k_test_train: Array,
    *,
    ridge: float = 0.0,
    method: str = "eigh",
    max_jitter: float = 0.0,
) -> Array:
    """Predictions k(X*, X)(k(X, X) + λI)⁻¹ Y of kernel (ridge) regression.

    Args:
      k_train: (N, N) kernel on the training inputs.
      y_train: (N,) or (N, m) targets.
      k_test_train: (M, N) kernel between test and training inputs.
      ridge, method, max_jitter: as in :func:`solve_kernel`.
    Returns:
      (M,) or (M, m) predictions, matching the shape of ``y_train``.
    """
    check_square_symmetric(k_train, "k_train")
    _check_kernel_pair(k_train, k_test_train)
    sol = solve_kernel(k_train, y_train, ridge=ridge, method=method, max_jitter=max_jitter)
    return jnp.asarray(k_test_train) @ sol.weights


def predict_classes(predictions: Array) -> np.ndarray:
    """Class labels from (M, k) scores (argmax per row) or, for (M,)/(M, 1) scores, from their sign (1 if > 0)."""
    p = np.asarray(predictions)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return (p.reshape(-1) > 0).astype(np.int64)
    if p.ndim != 2:
        raise ValueError(f"predictions must have shape (M,) or (M, k), got {p.shape}")
    return np.argmax(p, axis=1)


def accuracy(predictions: Array, labels: Array) -> float:
    """Fraction of rows whose predicted class (see :func:`predict_classes`) equals ``labels`` (M,)."""
    labels = np.asarray(labels).reshape(-1)
    pred = predict_classes(predictions)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.shape[0]} predictions but {labels.shape[0]} labels")
    return float(np.mean(pred == labels))
