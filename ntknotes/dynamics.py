"""Closed-form MSE training dynamics of kernel (linearized-network) models.

With the total loss ½‖f(X) − y‖² and a fixed kernel Θ = Θ(X, X) on the N training points,
gradient flow in function space solves du/dt = −Θ(u − y), so

* residuals:        u_t − y = e^{−Θt}(u_0 − y);
* any inputs X*:    f_t(X*) = f_0(X*) − Θ(X*, X) Θ⁻¹(I − e^{−Θt})(u_0 − y);
* parameters:       θ_t − θ_0 = −J_0ᵀ Θ⁻¹(I − e^{−Θt})(u_0 − y)  (J_0 = ∂f_0(X)/∂θ);
* loss:             L_t = ½ Σ_i e^{−2λ_i t} ‖v_iᵀ(u_0 − y)‖²  ≤  e^{−2λ_min t} L_0.

Gradient descent with step η replaces e^{−Θt} by (I − ηΘ)^k after k steps (``lr=η``,
``times`` = step counts). Every function takes the kernel once, diagonalizes it once
(Θ = V diag(λ) Vᵀ, or pass a precomputed :class:`ntknotes.linalg.Eigh`) and evaluates all
requested times at once as spectral filters of λ. The filter Θ⁻¹(I − e^{−Θt}) is applied
as (1 − e^{−λt})/λ = −expm1(−λt)/λ, which tends to t as λ → 0, so no inverse of a
near-singular Θ is ever formed; only the t → ∞ limit needs Θ⁻¹, taken as a pseudo-inverse
that drops eigenvalues below ``rcond·λ_max``.

Also here: the NTK-GP predictive moments of an ensemble of infinitely wide networks trained
by gradient flow or descent (Lee et al. 2019, eqs. 14–16) and the NNGP posterior.

Shapes: kernels are per scalar output, (N, N) on the training set and (M, N) between M new
points and the training set; targets and outputs are (N, k) (a 1-D ``y`` is read as k = 1);
results carry a leading time axis T.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_finite, check_nonnegative, check_positive
from .linalg import Eigh, check_square_symmetric, eigh_psd, solve_psd

__all__ = [
    "GPMoments",
    "LabelProjections",
    "decay_factors",
    "inverse_filter",
    "residuals",
    "train_outputs",
    "test_outputs",
    "loss",
    "loss_bound",
    "label_projections",
    "projected_loss",
    "parameter_displacement",
    "ntkgp_moments",
    "nngp_posterior",
    "critical_lr",
]

Array = jax.Array
KernelLike = Union[Array, np.ndarray, Eigh]


class GPMoments(NamedTuple):
    """Gaussian predictive moments: ``mean`` (..., M, k) and ``cov`` (..., M, M) over the M points."""

    mean: Array
    cov: Array


class LabelProjections(NamedTuple):
    """The targets in the kernel eigenbasis, eigenvalues in descending order.

    Attributes:
      eigenvalues: (N,) λ_1 ≥ … ≥ λ_N of the kernel.
      projections: (N,) ‖v_iᵀ y‖² summed over the k outputs; they sum to ‖y‖².
    """

    eigenvalues: Array
    projections: Array


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def _eig(kernel: KernelLike, name: str) -> Eigh:
    """Eigendecomposition of a kernel given as a matrix or as a precomputed Eigh.

    Raises ValueError unless the kernel is positive semi-definite up to rounding: an eigenvalue
    below −tol, with tol = 1e3·N·eps·max|λ| (the same threshold below which the t = ∞ limits
    treat an eigenvalue as zero), means the matrix is not a kernel and the dynamics it would
    define grow instead of decaying.
    """
    if isinstance(kernel, Eigh):
        eig = kernel
    elif not hasattr(kernel, "shape"):
        raise TypeError(f"{name} must be an (N, N) array or an ntknotes.linalg.Eigh, got {type(kernel).__name__}")
    else:
        if np.dtype(getattr(kernel, "dtype", np.float64)).kind == "c":
            raise TypeError(f"{name} must be real, got dtype {kernel.dtype}")
        eig = eigh_psd(kernel, name)
    w = jnp.asarray(eig.values)
    if w.ndim != 1 or w.shape[0] == 0:
        raise ValueError(f"{name} must have at least one eigenvalue, got eigenvalues of shape {w.shape}")
    check_finite(w, f"eigenvalues of {name}")
    tol = _pinv_tol(w, None)
    wmin = float(jnp.min(w))
    if wmin < -tol:
        scale = float(jnp.max(jnp.abs(w)))
        raise ValueError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {wmin:.3g} "
            f"({wmin / scale:.3g} relative to the largest |λ| = {scale:.3g}); a kernel matrix has λ ≥ 0"
        )
    return eig


def _targets(y: Any, n: int, name: str) -> Array:
    """Return y as (n, k), raising on a wrong number of rows or non-finite entries."""
    if not hasattr(y, "shape"):
        raise TypeError(f"{name} must be an array of shape (N,) or (N, k), got {type(y).__name__}")
    if np.dtype(y.dtype).kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {y.dtype}")
    y = jnp.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k) to match the kernel, got {tuple(y.shape)}")
    check_finite(y, name)
    return y


def _cross(k: Any, n: int, name: str) -> Array:
    """A cross kernel (M, n) between new points and the n training points."""
    if not hasattr(k, "shape"):
        raise TypeError(f"{name} must be an (M, {n}) array, got {type(k).__name__}")
    if len(k.shape) != 2 or k.shape[1] != n:
        raise ValueError(f"{name} must have shape (M, {n}) (new points × training points), got {tuple(k.shape)}")
    if np.dtype(k.dtype).kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {k.dtype}")
    check_finite(k, name)
    return jnp.asarray(k)


def _outputs_and_targets(f0_train: Any, y_train: Any, n: int) -> tuple[Array, Array]:
    """Initial outputs and targets as two (n, k) arrays of the same shape."""
    y = _targets(y_train, n, "y_train")
    f0 = _targets(f0_train, n, "f0_train")
    if f0.shape != y.shape:
        raise ValueError(f"f0_train {tuple(f0.shape)} and y_train {tuple(y.shape)} must have the same shape")
    return f0, y


def _nngp_blocks(nngp_train_train: Any, nngp_test_train: Any, nngp_test_test: Any, n: int) -> tuple[Array, ...]:
    """Validate the NNGP blocks K(X, X) (n, n), K(X*, X) (m, n), K(X*, X*) (m, m); return them as arrays."""
    check_square_symmetric(nngp_train_train, "nngp_train_train")
    if nngp_train_train.shape != (n, n):
        raise ValueError(f"nngp_train_train must be ({n}, {n}), got {tuple(nngp_train_train.shape)}")
    kxs = _cross(nngp_test_train, n, "nngp_test_train")
    m = kxs.shape[0]
    check_square_symmetric(nngp_test_test, "nngp_test_test")
    if nngp_test_test.shape != (m, m):
        raise ValueError(f"nngp_test_test must be ({m}, {m}) to match nngp_test_train, got {tuple(nngp_test_test.shape)}")
    return jnp.asarray(nngp_train_train), kxs, jnp.asarray(nngp_test_test)


def _times(times: Any, lr: Optional[float]) -> np.ndarray:
    """Times as a 1-D float array of values >= 0 (np.inf allowed); step counts when lr is given."""
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a scalar or a non-empty 1-D array, got shape {t.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError(f"times must be >= 0 (np.inf allowed), got {t[np.isnan(t) | (t < 0)][:5]}")
    if lr is not None:
        finite = t[np.isfinite(t)]
        if np.any(finite != np.round(finite)):
            raise ValueError(f"with lr given, times are numbers of gradient-descent steps (integers), got {finite[:5]}")
    return t


def _lr(lr: Optional[float]) -> Optional[float]:
    return None if lr is None else check_positive(lr, "lr")


def _pinv_tol(w: Array, rcond: Optional[float]) -> float:
    eps = float(jnp.finfo(w.dtype).eps)
    rcond = 1e3 * w.shape[0] * eps if rcond is None else check_nonnegative(rcond, "rcond")
    return rcond * float(jnp.max(jnp.abs(w)))


# ----------------------------------------------------------------------------
# spectral filters
# ----------------------------------------------------------------------------
def decay_factors(
    eigenvalues: Any, times: Any, *, lr: Optional[float] = None, rcond: Optional[float] = None
) -> Array:
    """The residual filter on each eigen-direction: e^{−λt} (gradient flow) or (1 − ηλ)^k (GD).

    Args:
      eigenvalues: (N,) kernel eigenvalues λ_i (tiny negative rounding errors are read as 0).
      times: (T,) times t ≥ 0, or step counts k when ``lr`` is given. ``np.inf`` gives the
        t → ∞ limit: 0 on directions with λ > rcond·λ_max and 1 on the null space (λ at or
        below that threshold), which the dynamics never move; for GD the limit exists only
        when η λ_max < 2.
      lr: step size η of gradient descent, or ``None`` for gradient flow.
      rcond: relative threshold below which an eigenvalue counts as zero at t = ∞ (default
        1e3·N·machine epsilon, as in :func:`inverse_filter`).
    Returns:
      (T, N) array of filter values.

    Example:
      >>> decay_factors(jnp.array([0.0, 1.0]), [0.0, 1.0, np.inf]).tolist()  # doctest: +SKIP
      [[1.0, 1.0], [1.0, 0.3678...], [1.0, 0.0]]
    """
    lr = _lr(lr)
    t = _times(times, lr)
    w = jnp.maximum(jnp.asarray(eigenvalues), 0.0)
    if w.ndim != 1:
        raise ValueError(f"eigenvalues must be 1-D, got shape {w.shape}")
    inf = jnp.isinf(jnp.asarray(t))[:, None]
    tf = jnp.asarray(np.where(np.isfinite(t), t, 0.0))[:, None]
    if lr is None:
        out = jnp.exp(-w[None, :] * tf)
    else:
        if np.any(np.isinf(t)) and lr * float(jnp.max(w)) >= 2:
            raise ValueError(
                f"gradient descent with lr={lr} does not converge (lr·λ_max = {lr * float(jnp.max(w)):.3g} >= 2); "
                "the t = inf limit does not exist"
            )
        out = _int_power(1.0 - lr * w[None, :], tf)
    null = (w <= _pinv_tol(w, rcond))[None, :]
    return jnp.where(inf, jnp.where(null, 1.0, 0.0), out)


def inverse_filter(eigenvalues: Any, times: Any, *, lr: Optional[float] = None, rcond: Optional[float] = None) -> Array:
    """The filter of Θ⁻¹(I − e^{−Θt}) (or Θ⁻¹(I − (I − ηΘ)^k)) on each eigen-direction, stably.

    (1 − e^{−λt})/λ is computed as −expm1(−λt)/λ and equals t when λ = 0; the GD version
    (1 − (1 − ηλ)^k)/λ equals ηk at λ = 0. At t = ∞ the filter is 1/λ for λ > rcond·λ_max and
    0 below (a pseudo-inverse: directions the kernel cannot see are not fitted).

    Args:
      eigenvalues: (N,) kernel eigenvalues.
      times: (T,) times, or step counts when ``lr`` is given; may contain ``np.inf``.
      lr: GD step size η, or ``None`` for gradient flow.
      rcond: relative threshold of the t = ∞ pseudo-inverse (default 1e3·N·machine epsilon).
    Returns:
      (T, N) array.
    """
    lr = _lr(lr)
    t = _times(times, lr)
    w = jnp.maximum(jnp.asarray(eigenvalues), 0.0)
    decay_factors(w, t, lr=lr, rcond=rcond)  # validates (and rejects a divergent t = inf for GD)
    tol = _pinv_tol(w, rcond)
    tf = jnp.asarray(np.where(np.isfinite(t), t, 0.0))[:, None]
    pos = w > 0
    ws = jnp.where(pos, w, 1.0)[None, :]
    if lr is None:
        finite = jnp.where(pos[None, :], -jnp.expm1(-ws * tf) / ws, tf)
    else:
        a = lr * ws
        # 1 − (1 − a)^k: via log1p where 1 − a > 0 (accurate for small a), directly otherwise
        small = a < 1.0
        log_base = jnp.log1p(-jnp.where(small, a, 0.0))
        one_minus = jnp.where(small, -jnp.expm1(tf * log_base), 1.0 - _int_power(1.0 - a, tf))
        finite = jnp.where(pos[None, :], one_minus / ws, lr * tf)
    limit = jnp.where(w > tol, 1.0 / jnp.where(w > tol, w, 1.0), 0.0)[None, :]
    return jnp.where(jnp.isinf(jnp.asarray(t))[:, None], limit, finite)


def _int_power(base: Array, k: Array) -> Array:
    """base ** k for integer-valued float exponents k >= 0, correct for negative bases."""
    mag = jnp.abs(base) ** k
    odd = jnp.mod(k, 2.0) == 1.0
    return jnp.where((base < 0) & odd, -mag, mag)


def _apply_filter(eig: Eigh, filt: Array, r: Array) -> Array:
    """V diag(filt_t) Vᵀ r for every time: filt (T, N), r (N, k) -> (T, N, k)."""
    coef = eig.vectors.T @ r  # (N, k)
    return jnp.einsum("ni,ti,ik->tnk", eig.vectors, filt, coef)


# ----------------------------------------------------------------------------
# function space
# ----------------------------------------------------------------------------
def residuals(
    ntk_train_train: KernelLike, residual0: Any, times: Any, *, lr: Optional[float] = None, rcond: Optional[float] = None
) -> Array:
    """Training residuals u_t − y = e^{−Θt}(u_0 − y) (or (I − ηΘ)^k (u_0 − y)).

    Args:
      ntk_train_train: (N, N) kernel on the training set, or its :class:`~ntknotes.linalg.Eigh`.
      residual0: (N,) or (N, k) initial residual u_0 − y.
      times: (T,) times (step counts with ``lr``).
      lr: GD step size, or ``None`` for gradient flow.
      rcond: eigenvalues at or below ``rcond·λ_max`` count as zero at t = ∞ (default
        1e3·N·eps): the part of the residual in that null space stays (see :func:`decay_factors`).
    Returns:
      (T, N, k) residuals.
    Raises:
      ValueError if the kernel is not positive semi-definite (an eigenvalue below −1e3·N·eps·max|λ|),
      TypeError for complex inputs.
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    r0 = _targets(residual0, eig.values.shape[0], "residual0")
    return _apply_filter(eig, decay_factors(eig.values, times, lr=lr, rcond=rcond), r0)


def train_outputs(
    ntk_train_train: KernelLike,
    f0_train: Any,
    y_train: Any,
    times: Any,
    *,
    lr: Optional[float] = None,
    rcond: Optional[float] = None,
) -> Array:
    """Outputs on the training set, u_t = y + e^{−Θt}(u_0 − y): shape (T, N, k).

    At t = ∞ with a singular kernel the outputs keep u_0 − y's null-space part (see :func:`residuals`).
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    f0, y = _outputs_and_targets(f0_train, y_train, eig.values.shape[0])
    return y[None] + residuals(eig, f0 - y, times, lr=lr, rcond=rcond)


def test_outputs(
    ntk_train_train: KernelLike,
    ntk_test_train: Any,
    f0_train: Any,
    f0_test: Any,
    y_train: Any,
    times: Any,
    *,
    lr: Optional[float] = None,
    rcond: Optional[float] = None,
) -> Array:
    """Outputs on new points, f_t(X*) = f_0(X*) − Θ(X*, X) Θ⁻¹(I − e^{−Θt})(u_0 − y).

    Args:
      ntk_train_train: (N, N) kernel or its Eigh; ntk_test_train: (M, N) cross kernel Θ(X*, X).
      f0_train: (N, k) initial outputs on X (zeros for a centred model); f0_test: (M, k) on X*.
      y_train: (N, k) targets; times: (T,) (step counts with ``lr``); lr: GD step or ``None``.
      rcond: pseudo-inverse threshold used at t = ∞ (see :func:`inverse_filter`).
    Returns:
      (T, M, k) outputs.
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    n = eig.values.shape[0]
    kx = _cross(ntk_test_train, n, "ntk_test_train")
    y = _targets(y_train, n, "y_train")
    f0 = _targets(f0_train, n, "f0_train")
    f0t = _targets(f0_test, kx.shape[0], "f0_test")
    if f0.shape[1] != y.shape[1] or f0t.shape[1] != y.shape[1]:
        raise ValueError(f"f0_train, f0_test and y_train need the same k, got {f0.shape}, {f0t.shape}, {y.shape}")
    coef = _apply_filter(eig, inverse_filter(eig.values, times, lr=lr, rcond=rcond), f0 - y)  # (T, N, k)
    return f0t[None] - jnp.einsum("mn,tnk->tmk", kx, coef)


def loss(
    ntk_train_train: KernelLike,
    f0_train: Any,
    y_train: Any,
    times: Any,
    *,
    lr: Optional[float] = None,
    rcond: Optional[float] = None,
) -> Array:
    """Training loss L_t = ½‖u_t − y‖² = ½ Σ_i filter_i(t)² ‖v_iᵀ(u_0 − y)‖²: shape (T,).

    At t = ∞ the loss is ½ of the squared null-space part of u_0 − y (0 for a full-rank kernel).
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    f0, y = _outputs_and_targets(f0_train, y_train, eig.values.shape[0])
    proj = jnp.sum((eig.vectors.T @ (f0 - y)) ** 2, axis=1)
    return projected_loss(eig.values, proj, times, lr=lr, rcond=rcond)


def loss_bound(ntk_train_train: KernelLike, loss0: float, times: Any, *, lr: Optional[float] = None) -> Array:
    """Upper bound on the loss: e^{−2λ_min t} L_0 for gradient flow, max_i (1 − ηλ_i)^{2k} L_0 for GD.

    Gradient flow gives dL/dt = −(u − y)ᵀΘ(u − y) ≤ −2λ_min L, hence the bound.

    Args:
      ntk_train_train: (N, N) kernel or its Eigh; loss0: initial loss L_0 ≥ 0.
      times: (T,) (step counts with ``lr``); lr: GD step or ``None``.
    Returns:
      (T,) bound values.
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    loss0 = check_nonnegative(loss0, "loss0")
    d = decay_factors(eig.values, times, lr=lr)
    return loss0 * jnp.max(d**2, axis=1)


def label_projections(ntk_train_train: KernelLike, y_train: Any) -> LabelProjections:
    """Eigenvalues (descending) and the squared projections ‖v_iᵀ y‖² of the targets on the eigenvectors.

    With f_0 = 0 the loss is L_t = ½ Σ_i e^{−2λ_i t} ‖v_iᵀ y‖² (Arora et al. 2019): targets whose
    energy sits on the top eigenvectors are learned fast.
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    y = _targets(y_train, eig.values.shape[0], "y_train")
    proj = jnp.sum((eig.vectors.T @ y) ** 2, axis=1)
    return LabelProjections(eig.values[::-1], proj[::-1])


def projected_loss(
    eigenvalues: Any, projections: Any, times: Any, *, lr: Optional[float] = None, rcond: Optional[float] = None
) -> Array:
    """½ Σ_i filter_i(t)² p_i for eigenvalues λ_i (N,) and projections p_i (N,): shape (T,)."""
    w = jnp.asarray(eigenvalues)
    p = jnp.asarray(projections)
    if w.ndim != 1 or p.shape != w.shape:
        raise ValueError(f"eigenvalues and projections must be 1-D of equal length, got {w.shape} and {p.shape}")
    return 0.5 * decay_factors(w, times, lr=lr, rcond=rcond) ** 2 @ p


def critical_lr(ntk_train_train: KernelLike) -> float:
    """The largest stable GD step 2/λ_max: (1 − ηλ)^k converges on every direction iff η < 2/λ_max.

    Raises:
      ValueError for a kernel that is not positive semi-definite, or that is zero (every step is
      then stable and nothing is learned, so there is no critical step).
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    lam_max = float(jnp.max(eig.values))
    if not lam_max > 0:
        raise ValueError(
            "ntk_train_train is zero (largest eigenvalue 0): gradient descent does not move the outputs "
            "at any step size, so there is no critical learning rate"
        )
    return 2.0 / lam_max


# ----------------------------------------------------------------------------
# weight space
# ----------------------------------------------------------------------------
def parameter_displacement(
    apply: Callable[[Any, Array], Array],
    params: Any,
    x_train: Any,
    ntk_train_train: KernelLike,
    y_train: Any,
    times: Any,
    *,
    lr: Optional[float] = None,
    f0_train: Any = None,
    rcond: Optional[float] = None,
) -> Any:
    """θ_t − θ_0 = −J_0ᵀ Θ⁻¹(I − e^{−Θt})(u_0 − y) of the linearized model, without forming J_0.

    The coefficients c_t = Θ⁻¹(I − e^{−Θt})(u_0 − y) (T, N, k) come from the spectral filter;
    J_0ᵀ c_t is one vector-Jacobian product per time (``jax.vjp``, vmapped over the T times).
    With ``lr`` this is the displacement after k steps of GD on the linearized model.

    Args:
      apply: ``apply(params, x)`` returning (N, k) or (N,).
      params: parameters θ_0 at which the model is linearized (a pytree).
      x_train: (N, ...) training inputs; ntk_train_train: the empirical NTK J_0 J_0ᵀ (N, N) or its Eigh.
      y_train: (N, k) targets; times: (T,) (step counts with ``lr``); lr: GD step or ``None``.
      f0_train: initial outputs (default: ``apply(params, x_train)``).
      rcond: pseudo-inverse threshold used at t = ∞.
    Returns:
      A pytree like ``params`` whose leaves have a leading axis T.
    """
    if not callable(apply):
        raise TypeError(f"apply must be callable as apply(params, x), got {type(apply).__name__}")
    eig = _eig(ntk_train_train, "ntk_train_train")
    n = eig.values.shape[0]
    if not hasattr(x_train, "shape") or x_train.shape[0] != n:
        raise ValueError(f"x_train must have {n} points to match the kernel, got {getattr(x_train, 'shape', None)}")
    check_finite(x_train, "x_train")
    y = _targets(y_train, n, "y_train")

    def f(p):
        out = apply(p, x_train)
        return out[:, None] if out.ndim == 1 else out

    out0, vjp_fn = jax.vjp(f, params)
    f0 = out0 if f0_train is None else _targets(f0_train, n, "f0_train")
    if f0.shape != y.shape:
        raise ValueError(f"network outputs {tuple(f0.shape)} and y_train {tuple(y.shape)} must have the same shape")
    coef = _apply_filter(eig, inverse_filter(eig.values, times, lr=lr, rcond=rcond), f0 - y)
    coef = coef.astype(out0.dtype)
    return jax.vmap(lambda c: jax.tree_util.tree_map(jnp.negative, vjp_fn(c)[0]))(coef)


# ----------------------------------------------------------------------------
# Gaussian-process predictive moments
# ----------------------------------------------------------------------------
def ntkgp_moments(
    ntk_train_train: KernelLike,
    ntk_test_train: Any,
    nngp_train_train: Any,
    nngp_test_train: Any,
    nngp_test_test: Any,
    y_train: Any,
    times: Any,
    *,
    lr: Optional[float] = None,
    rcond: Optional[float] = None,
) -> GPMoments:
    """Mean and covariance over random initializations of infinitely wide networks trained with MSE.

    Lee et al. (2019), eqs. 14–16: with P_t = Θ(X*, X) Θ⁻¹(I − e^{−Θt}) and K the NNGP kernel
    (the prior covariance of f_0),

      μ_t = P_t y,    Σ_t = K(X*, X*) + P_t K(X, X) P_tᵀ − (P_t K(X, X*) + [P_t K(X, X*)]ᵀ).

    At t = ∞ the mean is Θ(X*, X) Θ⁻¹ y (NTK kernel regression).

    Args:
      ntk_train_train: (N, N) NTK on the training set (or its Eigh); ntk_test_train: (M, N).
      nngp_train_train: (N, N), nngp_test_train: (M, N), nngp_test_test: (M, M) NNGP kernels.
      y_train: (N, k) or (N,) targets.
      times: (T,) times (gradient flow) or step counts (with ``lr``); may contain ``np.inf``.
      lr: GD step size η ((I − ηΘ)^k), or ``None`` for gradient flow.
      rcond: pseudo-inverse threshold used at t = ∞ (see :func:`inverse_filter`).
    Returns:
      GPMoments(mean (T, M, k), cov (T, M, M)); the covariance is the same for every output.
    """
    eig = _eig(ntk_train_train, "ntk_train_train")
    n = eig.values.shape[0]
    kx = _cross(ntk_test_train, n, "ntk_test_train")
    k_tr, kxs, k_te = _nngp_blocks(nngp_train_train, nngp_test_train, nngp_test_test, n)
    if kxs.shape[0] != kx.shape[0]:
        raise ValueError(f"nngp_test_train must have {kx.shape[0]} rows like ntk_test_train, got {tuple(kxs.shape)}")
    y = _targets(y_train, n, "y_train")
    filt = inverse_filter(eig.values, times, lr=lr, rcond=rcond)  # (T, N)
    p = jnp.einsum("mi,ti,ni->tmn", kx @ eig.vectors, filt, eig.vectors)  # P_t, (T, M, N)
    mean = p @ y  # (T, M, k)
    cross = p @ kxs.T  # P_t K(X, X*), (T, M, M)
    cov = k_te[None] + p @ k_tr @ jnp.swapaxes(p, 1, 2) - cross - jnp.swapaxes(cross, 1, 2)
    return GPMoments(mean, 0.5 * (cov + jnp.swapaxes(cov, 1, 2)))


def nngp_posterior(
    nngp_train_train: Any,
    nngp_test_train: Any,
    nngp_test_test: Any,
    y_train: Any,
    *,
    noise: float = 0.0,
) -> GPMoments:
    """Exact GP posterior with the NNGP kernel K and observation-noise variance ``noise``:

      mean = K(X*, X)(K + σ²I)⁻¹ y,   cov = K(X*, X*) − K(X*, X)(K + σ²I)⁻¹ K(X, X*).

    Solved by eigendecomposition (:func:`ntknotes.linalg.solve_psd`); raises
    :class:`~ntknotes.linalg.SingularKernelError` when K + σ²I is singular (pass ``noise > 0``).

    Args:
      nngp_train_train: (N, N); nngp_test_train: (M, N); nngp_test_test: (M, M).
      y_train: (N, k) or (N,) targets; noise: σ² ≥ 0.
    Returns:
      GPMoments(mean (M, k), cov (M, M)).
    """
    noise = check_nonnegative(noise, "noise")
    n = getattr(nngp_train_train, "shape", (0,))[0]
    k_tr, kxs, k_te = _nngp_blocks(nngp_train_train, nngp_test_train, nngp_test_test, n)
    y = _targets(y_train, n, "y_train")
    k = y.shape[1]
    sol = solve_psd(k_tr, jnp.concatenate([y, kxs.T], axis=1), ridge=noise, name="nngp_train_train")
    mean = kxs @ sol[:, :k]
    cov = k_te - kxs @ sol[:, k:]
    return GPMoments(mean, 0.5 * (cov + cov.T))
