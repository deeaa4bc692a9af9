"""Preconditioned conjugate gradients for kernel systems (K + λI) A = Y, and Nyström preconditioners.

:func:`conjugate_gradient` solves a symmetric positive-(semi)definite system given only
products with the operator (a :class:`~ntknotes.operators.KernelOperator`, a matrix, or any
``matvec``), for k right-hand sides at once (one operator product per iteration serves all k;
each column runs its own CG recurrence).  It stops when every column's relative residual
‖(K + λI) a − y‖ / ‖y‖ is at most ``tol`` and reports the achieved residual and the iteration
count in a :class:`CGResult`.  It never returns a silent answer: a tolerance <= 0 is a
``ValueError``; a direction of non-positive curvature pᵀ(K + λI)p <= 0 means the operator is
not positive definite and raises :class:`NotPositiveDefiniteError`; running out of iterations
warns (:class:`ConvergenceWarning`, the default) or raises (``on_failure="raise"``) with the
residual reached.

:class:`NystromPreconditioner` approximates K by a rank-r Nyström factor K ≈ U diag(s) Uᵀ built
from r kernel columns (landmarks drawn uniformly, or by randomly pivoted Cholesky, which picks
points with large residual variance), and applies

    P⁻¹ = U diag((s_r + λ) / (s + λ)) Uᵀ + (I − U Uᵀ),

which maps the top r eigen-directions of K + λI to about s_r + λ and leaves the rest alone: the
preconditioned spectrum runs from λ_min to about s_r + λ instead of λ_max.  This is the
Nyström PCG of Frangella, Tropp and Udell (2023) and, read as a spectral rescaling of the top
eigen-directions, the EigenPro idea (Ma and Belkin 2017) applied to CG.

Example::

    from ntknotes.operators import KernelOperator, fc_kernel
    from ntknotes.solvers import NystromPreconditioner, conjugate_gradient
    op = KernelOperator(fc_kernel("ntk", depth=3), x)                 # x (N, d)
    pc = NystromPreconditioner.from_operator(op, rank=500, ridge=1e-3, key=jax.random.PRNGKey(0))
    res = conjugate_gradient(lambda v: op.matvec(v, ridge=1e-3), y, tol=1e-8, preconditioner=pc)
    res.solution, res.iterations, res.residual
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_bool, check_choice, check_finite, check_key, check_nonnegative, check_positive, check_positive_int

__all__ = [
    "CGResult",
    "ConvergenceWarning",
    "NotPositiveDefiniteError",
    "CGNotConvergedError",
    "NystromPreconditioner",
    "conjugate_gradient",
    "predicted_iterations",
    "as_matvec",
]

Array = jax.Array


class ConvergenceWarning(UserWarning):
    """An iterative solve stopped at its iteration budget above the requested tolerance."""


class NotPositiveDefiniteError(ValueError):
    """CG met a direction p with pᵀ A p <= 0: the operator is not positive definite."""


class CGNotConvergedError(ValueError):
    """CG did not reach its tolerance within ``max_iter`` (raised with ``on_failure="raise"``)."""

    def __init__(self, message: str, result: "CGResult"):
        super().__init__(message)
        self.result = result


@dataclass
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes:
      solution: A, shape of the right-hand side, (N,) or (N, k).
      iterations: operator products used.
      residual: achieved relative residual max_columns ‖A_op a − y‖ / ‖y‖ (the recursively
        updated residual; :attr:`true_residual` is recomputed from the solution when asked).
      converged: whether ``residual <= tol``.
      tol: the requested tolerance.
      history: relative residual (max over columns) after each iteration, starting with the
        initial one.
      seconds: wall time of the solve.
      true_residual: ‖A_op a − y‖ / ‖y‖ from one extra product (``check_residual=True``), else None.
    """

    solution: Array
    iterations: int
    residual: float
    converged: bool
    tol: float
    history: list = field(default_factory=list)
    seconds: float = 0.0
    true_residual: Optional[float] = None


def as_matvec(a: Union[Callable, Array], ridge: float = 0.0) -> Callable[[Array], Array]:
    """A function v ↦ (A + ridge·I) v from a matrix (N, N), a KernelOperator, or a callable."""
    ridge = check_nonnegative(ridge, "ridge")
    if hasattr(a, "matvec"):
        return lambda v: a.matvec(v, ridge=ridge)
    if callable(a):
        return (lambda v: a(v) + ridge * v) if ridge else a
    m = jnp.asarray(a)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the operator must be a square matrix, a KernelOperator or a callable, got shape {m.shape}")
    return lambda v: m @ v + ridge * v


class NystromPreconditioner:
    """P⁻¹ = U diag((s_r + λ)/(s + λ)) Uᵀ + (I − UUᵀ) from a rank-r Nyström approximation U diag(s) Uᵀ of K.

    Build it with :meth:`from_operator` (kernel columns from a KernelOperator) or
    :meth:`from_columns` (given C = K[:, S] (N, r) and W = K[S, S] (r, r)).  Calling it on
    r (N,) or (N, k) returns P⁻¹ r.  Memory: one (N, r) matrix.

    Attributes:
      u: (N, r') orthonormal columns (r' <= r after dropping numerically null directions);
      s: (r',) Nyström eigenvalues, descending; ridge: λ; landmarks: the indices S used.
    """

    def __init__(self, u: Array, s: Array, ridge: float, landmarks: Optional[np.ndarray] = None):
        self.u = u
        self.s = s
        self.ridge = float(ridge)
        self.landmarks = landmarks
        floor = self.s[-1] + self.ridge
        self._scale = floor / (self.s + self.ridge) - 1.0  # P⁻¹ = I + U diag(scale) Uᵀ

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])

    def __call__(self, r: Array) -> Array:
        ut_r = self.u.T @ r
        scale = self._scale if r.ndim == 1 else self._scale[:, None]
        return r + self.u @ (scale * ut_r)

    @classmethod
    def from_columns(cls, c: Array, w: Array, ridge: float = 0.0, landmarks=None) -> "NystromPreconditioner":
        """From C = K[:, S] (N, r) and W = K[S, S] (r, r): K ≈ C W⁻¹ Cᵀ (W shifted by a tiny jitter)."""
        ridge = check_nonnegative(ridge, "ridge")
        c = jnp.asarray(c)
        w = jnp.asarray(w, c.dtype)
        if c.ndim != 2 or w.shape != (c.shape[1], c.shape[1]):
            raise ValueError(f"c must be (N, r) and w (r, r), got {c.shape} and {w.shape}")
        eps = float(jnp.finfo(c.dtype).eps)
        r = w.shape[0]
        # W = V diag(e) Vᵀ; drop directions below eps·r·e_max (landmarks nearly duplicated)
        e, v = jnp.linalg.eigh(0.5 * (w + w.T))
        keep = e > 10 * r * eps * float(jnp.max(jnp.abs(e)))
        e, v = e[keep], v[:, keep]
        b = c @ (v / jnp.sqrt(e))  # K ≈ B Bᵀ, B (N, r')
        g = b.T @ b
        s, q = jnp.linalg.eigh(0.5 * (g + g.T))
        s, q = s[::-1], q[:, ::-1]
        good = s > 10 * r * eps * float(s[0])
        s, q = s[good], q[:, good]
        u = (b @ q) / jnp.sqrt(s)
        return cls(u, s, ridge, None if landmarks is None else np.asarray(landmarks))

    @classmethod
    def from_operator(
        cls,
        op,
        rank: int,
        *,
        ridge: float = 0.0,
        key: Array,
        method: str = "rpcholesky",
        block: int = 64,
    ) -> "NystromPreconditioner":
        """Nyström preconditioner of a :class:`~ntknotes.operators.KernelOperator` from ``rank`` columns.

        Args:
          op: the operator (needs ``.columns(idx)`` and ``.diagonal()``).
          rank: number of landmark columns r (1 <= r <= N); cost r kernel columns, memory N·r.
          ridge: λ of the system (K + λI).
          key: PRNG key for the landmarks.
          method: ``"rpcholesky"`` (randomly pivoted Cholesky in blocks of ``block``
            landmarks: each block drawn ∝ the diagonal of K minus its current approximation)
            or ``"uniform"`` (landmarks uniformly without replacement).
        """
        rank = check_positive_int(rank, "rank")
        check_key(key)
        check_choice(method, "method", ("rpcholesky", "uniform"))
        block = check_positive_int(block, "block")
        n = op.n
        if rank > n:
            raise ValueError(f"rank must be at most N = {n}, got {rank}")
        if method == "uniform":
            idx = np.sort(np.asarray(jax.random.choice(key, n, (rank,), replace=False)))
            c = op.columns(idx)
            return cls.from_columns(c, c[idx], ridge, idx)
        # randomly pivoted Cholesky (Chen, Epperly, Tropp, Webber 2023), block version: F Fᵀ ≈ K
        resid = np.asarray(op.diagonal(), np.float64).copy()
        f = np.zeros((n, rank))
        filled = 0
        chosen: list = []
        rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
        while len(chosen) < rank:
            resid[chosen] = 0.0
            np.clip(resid, 0.0, None, out=resid)
            total = resid.sum()
            if not total > 0:
                break
            m = min(block, rank - len(chosen), int(np.count_nonzero(resid)))
            new = np.unique(rng.choice(n, size=m, replace=False, p=resid / total))
            chosen.extend(new.tolist())
            g = np.asarray(op.columns(new), np.float64) - f[:, :filled] @ f[new, :filled].T  # residual columns
            e, v = np.linalg.eigh(0.5 * (g[new] + g[new].T))
            ok = e > 1e3 * len(new) * np.finfo(np.float64).eps * max(e.max(), 1e-300)
            if not ok.any():
                continue
            cols = g @ (v[:, ok] / np.sqrt(e[ok]))
            f[:, filled : filled + cols.shape[1]] = cols
            filled += cols.shape[1]
            resid -= np.einsum("ij,ij->i", cols, cols)
        f = f[:, :filled]
        idx = np.asarray(chosen)
        # K ≈ F Fᵀ: eigendecomposition through the small Gram matrix
        g = f.T @ f
        s, q = np.linalg.eigh(0.5 * (g + g.T))
        s, q = s[::-1], q[:, ::-1]
        good = s > 10 * f.shape[1] * np.finfo(np.float64).eps * max(s[0], 1e-300)
        s, q = s[good], q[:, good]
        u = (f @ q) / np.sqrt(s)
        return cls(jnp.asarray(u, op.dtype), jnp.asarray(s, op.dtype), check_nonnegative(ridge, "ridge"), idx)


def predicted_iterations(history: "list[float] | np.ndarray", tol: float) -> Optional[int]:
    """CG's total iteration count extrapolated from its residuals so far.

    Takes the mean decay rate of the relative residual over the second half of the iterations so
    far (CG's residuals oscillate from one iteration to the next but fall roughly geometrically
    over many) and extends it to ``tol``.
    Returns None before two iterations or while the residual does not fall; the prediction is a
    guide for progress bars and time estimates, not a bound.

    Args:
      history: relative residuals, history[0] at the start and one per iteration.
      tol: the target relative residual (> 0).
    Raises:
      ValueError for tol <= 0 or non-finite, a history that is not 1-D or holds negative or
      non-finite residuals; TypeError for a history that is not numbers.

    Example::

        predicted_iterations([1.0, 0.1, 0.01], 1e-6)   # -> 6
    """
    tol = check_positive(tol, "tol")
    try:
        h = np.asarray(history, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"history must be a sequence of relative residuals (numbers), got {history!r}") from None
    if h.ndim != 1:
        raise ValueError(f"history must be one-dimensional (one residual per iteration), got shape {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise ValueError("history must hold finite residuals >= 0 (CG stops with an error on a non-finite one)")
    if h.size < 3 or not np.all(h > 0):
        return None
    done = h.size - 1
    if h[-1] <= tol:
        return done
    k = max(done - done // 2, 2)
    rate = (np.log(h[-1]) - np.log(h[-1 - k])) / k  # mean log-decay per iteration
    if not np.isfinite(rate) or rate >= 0:
        return None
    return done + int(np.ceil((np.log(tol) - np.log(h[-1])) / rate - 1e-9))


def conjugate_gradient(
    a: Union[Callable, Array],
    b: Array,
    *,
    tol: float = 1e-8,
    max_iter: Optional[int] = None,
    ridge: float = 0.0,
    preconditioner: Optional[Callable[[Array], Array]] = None,
    x0: Optional[Array] = None,
    on_failure: str = "warn",
    progress: bool = False,
    check_residual: bool = False,
) -> CGResult:
    """Solve (A + ridge·I) x = b by (preconditioned) conjugate gradients, all columns of b at once.

    Args:
      a: the operator: a (N, N) matrix, a :class:`~ntknotes.operators.KernelOperator`, or a
        callable v ↦ A v on (N,) or (N, k) arrays. Must be symmetric positive definite (a PSD
        kernel with ridge > 0, or a strictly PD kernel ridgeless).
      b: right-hand side(s) (N,) or (N, k).
      tol: relative residual ‖(A + ridge·I)x − b‖ / ‖b‖ to reach in every column (> 0).
      max_iter: iteration budget (default N).
      ridge: λ >= 0 added to the diagonal.
      preconditioner: callable r ↦ P⁻¹ r (symmetric positive definite), e.g. a
        :class:`NystromPreconditioner`.
      x0: starting guess (default zeros).
      on_failure: ``"warn"`` (:class:`ConvergenceWarning`, result with ``converged=False``) or
        ``"raise"`` (:class:`CGNotConvergedError`) when the budget runs out.
      progress: show a tqdm bar (iterations, current residual); its total is re-estimated each
        iteration by :func:`predicted_iterations`, so its remaining time is an estimate.
      check_residual: recompute the residual from the solution with one more product
        (reported as ``true_residual``).
    Returns:
      :class:`CGResult`.
    Raises:
      ValueError for tol <= 0, shapes that do not match, non-finite b;
      NotPositiveDefiniteError when a search direction has pᵀ(A + ridge·I)p <= 0.
    """
    tol = check_positive(tol, "tol")
    ridge = check_nonnegative(ridge, "ridge")
    check_bool(progress, "progress")
    check_bool(check_residual, "check_residual")
    check_choice(on_failure, "on_failure", ("warn", "raise"))
    matvec = as_matvec(a, ridge)
    b = jnp.asarray(b)
    if b.ndim not in (1, 2) or b.shape[0] < 1:
        raise ValueError(f"b must have shape (N,) or (N, k), got {b.shape}")
    check_finite(b, "b")
    n = b.shape[0]
    max_iter = n if max_iter is None else check_positive_int(max_iter, "max_iter")
    vec = b.ndim == 1
    b2 = b.reshape(n, -1)
    precond = (lambda r: r) if preconditioner is None else preconditioner

    def mv(v):
        out = jnp.asarray(matvec(v))
        if out.shape != v.shape:
            raise ValueError(f"the operator maps a {v.shape} array to {out.shape}; expected {v.shape}")
        return out

    t0 = time.perf_counter()
    bnorm = jnp.linalg.norm(b2, axis=0)
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    x = jnp.zeros_like(b2) if x0 is None else jnp.asarray(x0, b2.dtype).reshape(n, -1)
    if x.shape != b2.shape:
        raise ValueError(f"x0 must have the shape of b {b.shape}, got {jnp.shape(x0)}")
    r = b2 - mv(x) if x0 is not None else b2
    rel = jnp.linalg.norm(r, axis=0) / bnorm
    history = [float(jnp.max(rel))]
    z = precond(r)
    p = z
    rz = jnp.sum(r * z, axis=0)
    it = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc="CG", unit="it", leave=False)
    try:
        while history[-1] > tol and it < max_iter:
            active = rel > tol
            ap = mv(p)
            it += 1
            curv = jnp.sum(p * ap, axis=0)
            pp = jnp.sum(p * p, axis=0)
            bad = active & (curv <= 0) & (pp > 0)
            if bool(jnp.any(bad)):
                col = int(jnp.argmax(bad))
                raise NotPositiveDefiniteError(
                    f"the operator is not positive definite: CG found a direction with pᵀAp = "
                    f"{float(curv[col]):.3g} <= 0 (column {col}, iteration {it}, relative residual "
                    f"{history[-1]:.3g}); the kernel is not PSD, or it is singular and needs ridge > 0"
                )
            alpha = jnp.where(active & (curv > 0), rz / jnp.where(curv > 0, curv, 1.0), 0.0)
            x = x + alpha * p
            r = r - alpha * ap
            rel = jnp.linalg.norm(r, axis=0) / bnorm
            history.append(float(jnp.max(rel)))
            z = precond(r)
            rz_new = jnp.sum(r * z, axis=0)
            beta = jnp.where(active & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
            p = z + beta * p
            rz = rz_new
            if bar is not None:
                # the bar's total is the predicted count (max_iter is only the budget), so its
                # remaining-time estimate means something
                guess = predicted_iterations(history, tol)
                if guess is not None:
                    bar.total = min(max(guess, it + 1), max_iter)
                    bar.refresh()
                bar.update(1)
                bar.set_postfix(residual=f"{history[-1]:.2e}")
            if not np.isfinite(history[-1]):
                raise NotPositiveDefiniteError(
                    f"CG produced a non-finite residual at iteration {it}: the operator or preconditioner is not "
                    "positive definite or overflowed"
                )
    finally:
        if bar is not None:
            bar.close()
    sol = x[:, 0] if vec else x
    result = CGResult(sol, it, history[-1], history[-1] <= tol, tol, history, time.perf_counter() - t0)
    if check_residual:
        result.true_residual = float(jnp.max(jnp.linalg.norm(b2 - mv(x), axis=0) / bnorm))
    if not result.converged:
        msg = (
            f"CG stopped after max_iter={max_iter} iterations at relative residual {result.residual:.3g} "
            f"> tol={tol:.3g}; raise max_iter, add ridge, or use a (stronger) preconditioner"
        )
        if on_failure == "raise":
            raise CGNotConvergedError(msg, result)
        warnings.warn(msg, ConvergenceWarning, stacklevel=2)
    return result
