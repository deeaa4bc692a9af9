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

Past one machine's N³ (and N² of memory), :func:`solve_operator` solves the same system from a
matrix-free :class:`~ntknotes.operators.KernelOperator` by preconditioned conjugate gradients
(:mod:`ntknotes.solvers`), sharded over the devices of a mesh, and :func:`kernel_regression_operator`
predicts with K(X*, X) α evaluated tile by tile; for small N the same call forms the kernel and
uses :func:`solve_kernel` (``method="direct"``, chosen by ``"auto"`` up to ``direct_max`` points).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_bool, check_choice, check_finite, check_key, check_nonempty, check_nonnegative, check_positive_int
from .linalg import SingularKernelError, check_square_symmetric, solve_psd

__all__ = [
    "KernelSolve",
    "METHODS",
    "solve_kernel",
    "kernel_regression",
    "predict_classes",
    "accuracy",
    "OperatorSolve",
    "solve_operator",
    "kernel_regression_operator",
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
      ValueError / TypeError for wrong shapes, empty arrays ("k_train is empty"), non-symmetric or
      non-finite inputs, negative ridge.
    """
    ridge = check_nonnegative(ridge, "ridge")
    max_jitter = check_nonnegative(max_jitter, "max_jitter")
    check_choice(method, "method", METHODS)
    check_nonempty(k_train, "k_train")
    check_nonempty(y_train, "y_train")
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
    Raises:
      ValueError: as :func:`solve_kernel`, and for an empty ``k_test_train``.
    """
    check_nonempty(k_train, "k_train")
    check_nonempty(k_test_train, "k_test_train")
    check_square_symmetric(k_train, "k_train")
    _check_kernel_pair(k_train, k_test_train)
    sol = solve_kernel(k_train, y_train, ridge=ridge, method=method, max_jitter=max_jitter)
    return jnp.asarray(k_test_train) @ sol.weights


def predict_classes(predictions: Array) -> np.ndarray:
    """Class labels from (M, k) scores (argmax per row) or, for (M,)/(M, 1) scores, from their sign (1 if > 0)."""
    p = check_nonempty(np.asarray(predictions), "predictions")
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        return (p.reshape(-1) > 0).astype(np.int64)
    if p.ndim != 2:
        raise ValueError(f"predictions must have shape (M,) or (M, k), got {p.shape}")
    return np.argmax(p, axis=1)


def accuracy(predictions: Array, labels: Array) -> float:
    """Fraction of rows whose predicted class (see :func:`predict_classes`) equals ``labels`` (M,).

    Raises:
      ValueError: ``predictions`` or ``labels`` is empty, or their lengths differ.
    """
    labels = check_nonempty(np.asarray(labels), "labels").reshape(-1)
    pred = predict_classes(predictions)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.shape[0]} predictions but {labels.shape[0]} labels")
    return float(np.mean(pred == labels))


@dataclass
class OperatorSolve:
    """Coefficients α = (K + λI)⁻¹ Y from a kernel operator, and how they were obtained.

    Attributes:
      weights: α, shape of Y, (N,) or (N, m).
      ridge: λ.
      method: ``"direct"`` (kernel formed, :func:`solve_kernel`) or ``"cg"``.
      iterations: CG iterations (0 for direct).
      residual: achieved relative residual max_columns ‖(K + λI)α − Y‖/‖Y‖ (CG's recursive
        residual; for direct, computed from the formed kernel).
      converged: CG reached ``tol`` (always True for direct).
      rank: rank of the Nyström preconditioner (0: none).
      seconds: wall time (preconditioner and solve).
      estimate: the cost estimate taken before the solve (dict from
        :meth:`~ntknotes.operators.KernelOperator.estimate`), or None.
      cg: the :class:`~ntknotes.solvers.CGResult` (None for direct).
    """

    weights: Array
    ridge: float
    method: str
    iterations: int
    residual: float
    converged: bool
    rank: int
    seconds: float
    estimate: Optional[dict] = None
    cg: Any = None


def solve_operator(
    op,
    y_train: Array,
    *,
    ridge: float = 0.0,
    method: str = "auto",
    tol: float = 1e-8,
    max_iter: Optional[int] = None,
    rank: Optional[int] = None,
    key: Optional[Array] = None,
    preconditioner: str = "rpcholesky",
    direct_max: int = 4096,
    direct_method: str = "eigh",
    on_failure: str = "warn",
    progress: bool = False,
    verbose: bool = False,
) -> OperatorSolve:
    """Kernel regression coefficients α = (K + λI)⁻¹ Y without storing K (for large N).

    Args:
      op: a :class:`~ntknotes.operators.KernelOperator` on the training inputs.
      y_train: (N,) or (N, m) targets.
      ridge: λ >= 0 (0: ridgeless, needs a strictly positive definite kernel).
      method: ``"cg"`` (matrix-free preconditioned CG), ``"direct"`` (form K tile by tile and
        call :func:`solve_kernel`), or ``"auto"``: direct when N <= ``direct_max``.
      tol: CG's relative-residual tolerance (> 0).
      max_iter: CG's iteration budget (default: N).
      rank: Nyström preconditioner rank (default min(N, max(100, ⌈√N⌉·4)); 0 for plain CG).
      key: PRNG key for the preconditioner's landmarks (required when rank > 0).
      preconditioner: ``"rpcholesky"`` or ``"uniform"`` landmarks (see
        :class:`~ntknotes.solvers.NystromPreconditioner`).
      direct_max, direct_method: the stored-kernel path's threshold and :func:`solve_kernel` method.
      on_failure: ``"warn"`` or ``"raise"`` when CG runs out of iterations.
      progress: tqdm bar over CG iterations.
      verbose: print the estimated time and memory (timed from one product) before solving.
    Returns:
      :class:`OperatorSolve`.
    Raises:
      ValueError for bad arguments; :class:`~ntknotes.solvers.NotPositiveDefiniteError`
      when CG meets negative curvature; :class:`~ntknotes.linalg.SingularKernelError` on the
      direct path.

    Example::

        op = KernelOperator(fc_kernel("ntk", depth=3), x_train)
        sol = solve_operator(op, y_train, ridge=1e-3, tol=1e-6, key=jax.random.PRNGKey(0))
        f = kernel_regression_operator(op, sol.weights, x_test)     # (M, m)
    """
    import time

    from . import solvers

    ridge = check_nonnegative(ridge, "ridge")
    check_choice(method, "method", ("auto", "cg", "direct"))
    direct_max = check_positive_int(direct_max, "direct_max")
    check_bool(progress, "progress")
    check_bool(verbose, "verbose")
    if key is not None:
        check_key(key)
    y = jnp.asarray(check_nonempty(y_train, "y_train"))
    if y.ndim not in (1, 2) or y.shape[0] != op.n:
        raise ValueError(f"y_train must have shape (N,) or (N, m) with N = {op.n} (the operator's size), got {y.shape}")
    check_finite(y, "y_train")
    t0 = time.perf_counter()
    if method == "direct" or (method == "auto" and op.n <= direct_max):
        k = op.dense()
        sol = solve_kernel(k, y, ridge=ridge, method=direct_method)
        w = sol.weights
        res = jnp.linalg.norm(k @ w + ridge * w - y, axis=0) / jnp.maximum(jnp.linalg.norm(y, axis=0), 1e-300)
        return OperatorSolve(w, ridge, "direct", 0, float(jnp.max(res)), True, 0, time.perf_counter() - t0)
    if tol <= 0 or not np.isfinite(tol):
        raise ValueError(f"tol must be a finite number > 0, got {tol}")
    max_iter = op.n if max_iter is None else check_positive_int(max_iter, "max_iter")
    if rank is None:
        rank = min(op.n, max(100, 4 * int(np.ceil(np.sqrt(op.n)))))
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
        raise ValueError(f"rank must be an integer >= 0, got {rank!r}")
    if rank > 0 and key is None:
        raise ValueError("key (a PRNG key for the preconditioner's landmarks) is required when rank > 0")
    k_cols = 1 if y.ndim == 1 else int(y.shape[1])
    est = None
    if verbose:
        est = op.estimate(k_cols, rank=int(rank))
        per = est["matvec_seconds"]
        cols_s = per * rank / max(op.n, 1)
        print(
            f"kernel solve: N={op.n:,}, {k_cols} right-hand sides, {est['tiles']:,} tiles of {op.tile}² on "
            f"{op.num_devices} device(s); one product {per:.3g} s; preconditioner (rank {rank}) ~{cols_s:.3g} s; "
            f"one product per CG iteration (progress=True predicts their number from the residual's decay; "
            f"the budget of {max_iter:,} would take ~{per * max_iter / 60:.3g} min); "
            f"memory ~{est['bytes'] / 2**30:.2f} GiB",
            file=sys.stderr,
            flush=True,
        )
    pc = None
    if rank > 0:
        pc = solvers.NystromPreconditioner.from_operator(op, int(rank), ridge=ridge, key=key, method=preconditioner)
    cg = solvers.conjugate_gradient(
        op, y, tol=tol, max_iter=max_iter, ridge=ridge, preconditioner=pc, on_failure=on_failure, progress=progress
    )
    return OperatorSolve(
        cg.solution, ridge, "cg", cg.iterations, cg.residual, cg.converged, 0 if pc is None else pc.rank,
        time.perf_counter() - t0, est, cg,
    )


def kernel_regression_operator(op, weights: Array, x_test: Array) -> Array:
    """Predictions K(x_test, X) α, tile by tile: x_test (M, ...), α (N,) or (N, m) → (M,) or (M, m)."""
    if isinstance(weights, OperatorSolve):
        weights = weights.weights
    return op.cross_matvec(x_test, jnp.asarray(weights))
