"""Stable linear algebra for kernel matrices: eigendecompositions and PSD solves.

Kernel matrices are symmetric positive semi-definite but often badly conditioned;
these helpers never form an explicit inverse and raise a clear error instead of
returning garbage when a system is singular.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._checks import check_finite, check_nonnegative

__all__ = ["SingularKernelError", "Eigh", "eigh_psd", "solve_psd", "check_square_symmetric"]


class SingularKernelError(ValueError):
    """A kernel system is singular (or too ill-conditioned) to solve without regularization."""


class Eigh(NamedTuple):
    """Eigendecomposition K = V diag(w) Vᵀ with ascending eigenvalues w (N,) and columns V (N, N)."""

    values: jnp.ndarray
    vectors: jnp.ndarray


def check_square_symmetric(k, name: str = "kernel", rtol: float = 1e-8) -> None:
    """Raise ValueError unless ``k`` is a finite, square, (numerically) symmetric matrix."""
    shape = getattr(k, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {shape}")
    check_finite(k, name)
    a = np.asarray(k)
    scale = max(float(np.max(np.abs(a))), 1e-300)
    asym = float(np.max(np.abs(a - a.T)))
    if asym > rtol * scale:
        raise ValueError(f"{name} must be symmetric; max |K - Kᵀ| = {asym:.3g} (relative {asym / scale:.3g})")


def eigh_psd(k, name: str = "kernel") -> Eigh:
    """Eigendecomposition of a symmetric PSD matrix (symmetrized first), eigenvalues ascending.

    Tiny negative eigenvalues from rounding are kept as they are; callers decide how to treat them.
    """
    check_square_symmetric(k, name)
    k = jnp.asarray(k)
    w, v = jnp.linalg.eigh(0.5 * (k + k.T))
    return Eigh(w, v)


def solve_psd(k, y, *, ridge: float = 0.0, rcond: float | None = None, name: str = "kernel"):
    """Solve (K + ridge·I) a = y for a symmetric PSD K by eigendecomposition.

    Args:
      k: (N, N) symmetric PSD matrix.
      y: (N,) or (N, m) right-hand side(s).
      ridge: non-negative regularization added to the diagonal.
      rcond: eigenvalues below ``rcond * λ_max`` count as zero; default 1e3·N·eps of the dtype.
      name: used in error messages.
    Returns:
      a with the shape of y.
    Raises:
      SingularKernelError if (K + ridge·I) has an eigenvalue below that threshold (pass a
      positive ``ridge`` to regularize).
    """
    ridge = check_nonnegative(ridge, "ridge")
    w, v = eigh_psd(k, name)
    y = jnp.asarray(y)
    if y.shape[0] != k.shape[0]:
        raise ValueError(f"y must have {k.shape[0]} rows to match the {name}, got shape {y.shape}")
    check_finite(y, "y")
    w = w + ridge
    eps = float(jnp.finfo(w.dtype).eps)
    tol = (rcond if rcond is not None else 1e3 * k.shape[0] * eps) * float(jnp.max(jnp.abs(w)))
    wmin = float(jnp.min(w))
    if wmin <= tol:
        raise SingularKernelError(
            f"{name} + ridge·I is singular or too ill-conditioned: smallest eigenvalue {wmin:.3g} <= "
            f"threshold {tol:.3g} (largest {float(jnp.max(w)):.3g}); pass ridge > 0 to regularize"
        )
    return v @ ((v.T @ y) / (w[:, None] if y.ndim == 2 else w))
