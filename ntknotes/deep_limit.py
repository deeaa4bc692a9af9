"""Deep-limit kernels and classifiers on the non-negative unit sphere (Radhakrishnan, Belkin, Uhler).

Set-up: inputs on S^d_+ (unit norm, non-negative entries, so every correlation ρ = x·x' lies
in [0, 1]), no biases, a *normalized* activation (E[φ(Z)^2] = 1). With φ = Σ a_k h_k in the
normalized Hermite basis the unit-variance dual is φ̌(ρ) = Σ a_k^2 ρ^k, and

    Σ^0 = K^0 = ρ,   Σ^l = φ̌(Σ^{l-1}),   K^l = Σ^l + K^{l-1} φ̌'(Σ^{l-1})

are the NNGP (Σ) and the NTK (K) of a depth-L network. What happens as L → ∞ is decided by
A = a_0 = E[φ(Z)], A' = a_1 = E[φ'(Z)] and B = φ̌'(1) = E[φ'(Z)^2] (:func:`limit_case`).

Because φ̌ has non-negative coefficients, all kernel values on S^d_+ are non-negative, so the
recursion is run on their *logarithms* (:func:`deep_kernel_profile`, :func:`deep_kernels`):
the diagonal grows like B^L while off-diagonal entries shrink like (L+1) A'^{2L}, and at
depth 10^5 neither fits in float64 while their logs do. The scan over depth is one
``lax.scan``; depths at which the kernels are wanted are recorded on the way.

The classifier of kernel regression, sign(yᵀ K^{-1} k(x)), is computed from these logs by
dividing K by its (common) diagonal and every test row by its largest entry
(:func:`kernel_predict`); :func:`majority_vote`, :func:`nearest_neighbor` and
:func:`hilbert_rule` are the limiting rules.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import precision
from ._checks import check_choice, check_matrix, check_positive, check_positive_int, check_same_features
from .activations import Activation, get_activation
from .linalg import solve_psd

__all__ = [
    "CASES",
    "LimitCase",
    "limit_case",
    "UnitDual",
    "unit_dual",
    "DeepKernels",
    "check_sphere_points",
    "sphere_correlations",
    "deep_kernel_profile",
    "deep_kernels",
    "KernelTable",
    "kernel_table",
    "kernel_predict",
    "majority_vote",
    "nearest_neighbor",
    "hilbert_rule",
    "weighted_vote",
    "limit_rule",
    "SAME_POINT_TOL",
]

Array = jax.Array

CASES = ("majority vote", "1-NN", "singular kernel", "not covered")

#: correlations with 1 − ρ below this count as the same point (‖x − x'‖ < 1.4e-6): in float64 the
#: correlation of two unit vectors is known only to ~1e-16, and a deep kernel amplifies that error
#: by B per layer, so closer pairs cannot be told apart from the diagonal.
SAME_POINT_TOL = 1e-12
_TINY = 1e-30  # below this, φ̌(σ)/σ^order equals its limit to ~1e-30 relative
_LOG_FLOOR = -200.0  # σ is evaluated no lower than e^-200 (far below _TINY, far above subnormals)


# ----------------------------------------------------------------------------
# A, A', B and the case
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LimitCase:
    """The quantities that decide the deep limit of an activation, after normalization.

    Attributes:
      name: the activation's name.
      A: E[φ(Z)] = a_0.
      A_prime: E[φ'(Z)] = a_1.
      B: E[φ'(Z)^2] = φ̌'(1) = Σ k a_k^2.
      alpha: the singular-kernel exponent −4 ln|A'| / ln B (NaN unless ``case`` is "singular kernel").
      case: one of :data:`CASES`.
    """

    name: str
    A: float
    A_prime: float
    B: float
    alpha: float
    case: str


def _require_x64(where: str) -> None:
    """Raise unless JAX's float64 mode is on: depths of 10⁵ and the case rules need float64."""
    if not precision.x64_enabled():
        raise RuntimeError(
            f"{where} computes in float64, but JAX's 64-bit mode is off, so its arrays would be float32 "
            "(and, e.g., ReLU's B = 1 would round to a wrong case). Turn it on first: "
            "jax.config.update('jax_enable_x64', True)"
        )


def limit_case(activation: "str | Activation", *, tol: float = 1e-8) -> LimitCase:
    """A, A', B, α and the deep-limit case of an activation (normalized first).

    Rules (on S^d_+, no biases): A ≠ 0 and B ≥ 1 → majority vote (the kernel's off-diagonal and
    diagonal grow at different rates with a positive off-diagonal limit); A = 0, A' = 0 → 1-NN;
    A = 0, 0 < |A'| < 1 → singular kernel with α = −4 ln|A'| / ln B; anything else (a linear φ,
    for which |A'| = B = 1, or A ≠ 0 with B < 1, where every correlation tends to 1) → not covered.

    Args:
      activation: an :class:`~ntknotes.activations.Activation` or a registered name.
      tol: |A| and |A'| at most ``tol`` count as zero; |B − 1| ≤ tol counts as B = 1.
    """
    _require_x64("limit_case")
    act = get_activation(activation).normalized()
    tol = check_positive(tol, "tol")
    a, ap, b = float(act.A), float(act.A_prime), float(act.B)
    alpha = float("nan")
    if abs(a) > tol:
        case = "majority vote" if b >= 1.0 - tol else "not covered"
    elif abs(ap) <= tol:
        case = "1-NN"
    elif abs(ap) < 1.0 - tol and b > 1.0 + tol:
        case = "singular kernel"
        alpha = -4.0 * math.log(abs(ap)) / math.log(b)
    else:
        case = "not covered"
    return LimitCase(get_activation(activation).name, a, ap, b, alpha, case)


# ----------------------------------------------------------------------------
# the unit-variance dual of a normalized activation
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class UnitDual:
    """φ̌ and φ̌' on [0, 1] for a normalized activation, with what the log-domain recursion needs.

    Attributes:
      name: the activation's name.
      dual: ρ ↦ φ̌(ρ), elementwise (jnp); φ̌(1) = 1.
      derivative: ρ ↦ φ̌'(ρ), elementwise.
      order: the smallest k with a_k ≠ 0 (0 when A ≠ 0, 1 for odd-like φ, 2 for h_2).
      ratio: σ ↦ φ̌(σ)/σ^order, finite and positive down to σ = 0.
      ratio_derivative: σ ↦ φ̌'(σ)/σ^max(order−1, 0).
      B: φ̌'(1).
      source: "closed form" or "Hermite series (n terms)".
    """

    name: str
    dual: Callable[[Array], Array]
    derivative: Callable[[Array], Array]
    order: int
    ratio: Callable[[Array], Array]
    ratio_derivative: Callable[[Array], Array]
    B: float
    source: str

    def log_dual(self, t: Array) -> Array:
        """log φ̌(e^t) for t = log σ ≤ 0, without underflow (t may be −inf)."""
        s = jnp.exp(jnp.maximum(t, _LOG_FLOOR))  # no subnormals: below e^-200 only the leading term counts
        if self.order == 0:
            return jnp.log(self.dual(s))
        return self.order * t + jnp.log(self.ratio(s))

    def log_derivative(self, t: Array) -> Array:
        """log φ̌'(e^t) for t = log σ ≤ 0, without underflow."""
        s = jnp.exp(jnp.maximum(t, _LOG_FLOOR))
        if self.order <= 1:
            return jnp.log(self.derivative(s))
        return (self.order - 1) * t + jnp.log(self.ratio_derivative(s))


def _horner(coeffs: np.ndarray) -> Callable[[Array], Array]:
    c = tuple(float(v) for v in coeffs[::-1])

    def f(x):
        out = jnp.full_like(x, c[0])
        for v in c[1:]:
            out = out * x + v
        return out

    return f


def _safe_ratio(fn: Callable[[Array], Array], power: int, lead: float) -> Callable[[Array], Array]:
    if power == 0:
        return fn

    def r(s):
        small = s < _TINY
        ss = jnp.where(small, 1.0, s)
        return jnp.where(small, lead, fn(ss) / ss**power)

    return r


@functools.lru_cache(maxsize=None)
def _unit_dual(act: Activation, n_terms: int, tol: float) -> UnitDual:
    norm = act.normalized()
    a = norm.hermite_coefficients(n_terms)
    c = a**2
    c[np.abs(a) <= tol] = 0.0
    nonzero = np.flatnonzero(c)
    if nonzero.size == 0:
        raise ValueError(f"{act.name} has no Hermite coefficient above {tol}")
    order = int(nonzero[0])
    if norm.has_closed_form:
        scale = 1.0 / float(norm.dual(1.0, 1.0, 1.0))  # φ̌(1) = 1 to the last bit
        dual = lambda r: scale * norm.dual(1.0, r, 1.0)  # noqa: E731
        deriv = lambda r: scale * norm.dual_derivative(1.0, r, 1.0)  # noqa: E731
        b = float(deriv(jnp.asarray(1.0)))
        source = "closed form"
    else:
        tail = 1.0 - float(np.sum(c))
        if tail > 1e-8:
            raise ValueError(
                f"{act.name} has no closed-form dual and its first {n_terms} Hermite coefficients miss "
                f"{tail:.2e} of E[phi^2] (more than 1e-8); pass a larger n_terms or use a smooth activation "
                "or a Hermite series (e.g. hermite(2) instead of abs_centered)"
            )
        c = np.trim_zeros(c, "b")
        c = c / np.sum(c)  # the dual of the (normalized) truncated series
        k = np.arange(c.size)
        dual = _horner(c)
        deriv = _horner((k * c)[1:])
        b = float(np.sum(k * c))
        source = f"Hermite series ({n_terms} terms)"
    lead = float(c[order])
    if not norm.has_closed_form:
        k = np.arange(c.size)
        ratio = _horner(c[order:])
        ratio_d = _horner((k * c)[max(order, 1):]) if order >= 1 else deriv
    else:
        ratio = _safe_ratio(dual, order, lead)
        ratio_d = _safe_ratio(deriv, max(order - 1, 0), order * lead)
    return UnitDual(act.name, dual, deriv, order, ratio, ratio_d, b, source)


def unit_dual(activation: "str | Activation", *, n_terms: int = 96, tol: float = 1e-8) -> UnitDual:
    """The unit-variance dual φ̌ of the normalized activation, ready for the deep recursion.

    Closed-form duals (ReLU, erf, sin, ...) are used as they are (rescaled so that φ̌(1) = 1
    exactly); other activations use their first ``n_terms`` Hermite coefficients, φ̌(ρ) = Σ a_k^2 ρ^k,
    which must carry all but 1e-8 of E[φ(Z)^2] (else ValueError).

    Args:
      activation: an Activation or a registered name.
      n_terms: Hermite coefficients used when no closed form exists.
      tol: coefficients with |a_k| ≤ tol count as zero (this fixes ``order``).
    """
    _require_x64("unit_dual")
    act = get_activation(activation)
    return _unit_dual(act, check_positive_int(n_terms, "n_terms"), check_positive(tol, "tol"))


# ----------------------------------------------------------------------------
# the deep recursion in logs
# ----------------------------------------------------------------------------
class DeepKernels(NamedTuple):
    """Natural logs of the NNGP and NTK at the requested depths.

    Attributes:
      depths: (D,) int depths L (0 is the input correlation).
      log_nngp: (D, ...) log Σ^L, the shape of the input correlations after the depth axis.
      log_ntk: (D, ...) log K^L (the NTK), or ``None`` when only the NNGP was asked for.
    """

    depths: np.ndarray
    log_nngp: Array
    log_ntk: "Array | None"


def _check_depths(depths: "int | Sequence[int]") -> np.ndarray:
    arr = np.atleast_1d(np.asarray(depths))
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise TypeError(f"depths must be an int or a 1-D sequence of ints, got {depths!r}")
    if np.any(arr < 0) or np.any(np.diff(arr) <= 0):
        raise ValueError(f"depths must be non-negative and strictly increasing, got {arr.tolist()}")
    return arr.astype(np.int64)


@functools.partial(jax.jit, static_argnames=("dual", "with_ntk", "depths"))
def _scan_logs(log_rho: Array, same: Array, *, dual: UnitDual, with_ntk: bool, depths: tuple) -> tuple:
    """One lax.scan over layers 1..max(depths), recording log Σ (and log K) at ``depths``."""
    n_rec = len(depths)
    marks = jnp.asarray(depths + (-1,), dtype=jnp.int64)  # sentinel never hit
    log_b = math.log(dual.B)
    buf_s = jnp.zeros((n_rec,) + log_rho.shape, log_rho.dtype)
    buf_k = jnp.zeros_like(buf_s) if with_ntk else jnp.zeros((n_rec, 1), log_rho.dtype)
    j0 = 0
    if depths[0] == 0:
        buf_s = buf_s.at[0].set(log_rho)
        if with_ntk:
            buf_k = buf_k.at[0].set(log_rho)
        j0 = 1

    def record(args):
        bs, bk, j, t, lk = args
        bs = jax.lax.dynamic_update_index_in_dim(bs, t, j, 0)
        if with_ntk:
            bk = jax.lax.dynamic_update_index_in_dim(bk, lk, j, 0)
        return bs, bk, j + 1

    def skip(args):
        bs, bk, j, _, _ = args
        return bs, bk, j

    def layer(carry, depth):
        t, lk, bs, bk, j = carry
        t_new = jnp.where(same, 0.0, jnp.minimum(dual.log_dual(t), 0.0))
        if with_ntk:
            ld = jnp.where(same, log_b, dual.log_derivative(t))
            lk = jnp.logaddexp(t_new, lk + ld)
        bs, bk, j = jax.lax.cond(depth == marks[j], record, skip, (bs, bk, j, t_new, lk))
        return (t_new, lk, bs, bk, j), None

    lk0 = log_rho if with_ntk else jnp.zeros((), log_rho.dtype)
    steps = jnp.arange(1, depths[-1] + 1, dtype=jnp.int64)
    (_, _, buf_s, buf_k, _), _ = jax.lax.scan(layer, (log_rho, lk0, buf_s, buf_k, jnp.asarray(j0)), steps)
    return buf_s, (buf_k if with_ntk else None)


def deep_kernel_profile(
    rho,
    depths: "int | Sequence[int]",
    activation: "str | Activation | UnitDual",
    *,
    kind: str = "both",
) -> DeepKernels:
    """Deep NNGP and NTK of the normalized activation as functions of the correlation ρ.

    Args:
      rho: array of correlations in [0, 1], any shape; values within :data:`SAME_POINT_TOL`
        of 1 are the diagonal (identical points) and get Σ = 1, K^L = Σ_{l ≤ L} B^l exactly.
      depths: a depth or strictly increasing depths (0 allowed).
      activation: an Activation, a registered name, or a :class:`UnitDual`.
      kind: "both" or "nngp" (skip the NTK, about half the work).
    Returns:
      :class:`DeepKernels` with arrays of shape (len(depths),) + rho.shape.
    """
    _require_x64("deep_kernel_profile")
    check_choice(kind, "kind", ("both", "nngp"))
    dual = activation if isinstance(activation, UnitDual) else unit_dual(activation)
    d = _check_depths(depths)
    r = jnp.asarray(rho, dtype=jnp.float64)
    if r.size == 0:
        raise ValueError("rho is empty")
    if not bool(jnp.all(jnp.isfinite(r))) or float(jnp.min(r)) < 0.0 or float(jnp.max(r)) > 1.0 + 1e-9:
        raise ValueError(
            f"correlations must lie in [0, 1] (inputs on the non-negative unit sphere); got range "
            f"[{float(jnp.min(r)):.3g}, {float(jnp.max(r)):.3g}]"
        )
    same = r >= 1.0 - SAME_POINT_TOL
    log_rho = jnp.where(same, 0.0, jnp.log(jnp.minimum(r, 1.0)))
    s, k = _scan_logs(log_rho, same, dual=dual, with_ntk=kind == "both", depths=tuple(int(v) for v in d))
    return DeepKernels(d, s, k)


def check_sphere_points(x, name: str = "x", *, tol: float = 1e-8):
    """Check that ``x`` (N, d+1) holds points of S^d_+: unit norm and non-negative entries."""
    check_matrix(x, name)
    arr = np.asarray(x, dtype=np.float64)
    if np.min(arr) < 0:
        raise ValueError(f"{name} must have non-negative entries (points of S^d_+), min entry {np.min(arr):.3g}")
    dev = float(np.max(np.abs(np.linalg.norm(arr, axis=1) - 1.0)))
    if dev > tol:
        raise ValueError(f"{name} must have unit-norm rows (points of S^d_+); max | ||x|| - 1 | = {dev:.3g}")
    return arr


def sphere_correlations(x1, x2=None) -> np.ndarray:
    """Correlations x1 x2ᵀ (N1, N2) in [0, 1] of points of S^d_+; x2=None gives x1 x1ᵀ with an exact unit diagonal."""
    a = check_sphere_points(x1, "x1")
    b = a if x2 is None else check_sphere_points(x2, "x2")
    check_same_features(a, b)
    rho = np.clip(a @ b.T, 0.0, 1.0)
    if x2 is None:
        np.fill_diagonal(rho, 1.0)
    return rho


def deep_kernels(
    x1,
    x2=None,
    *,
    depths: "int | Sequence[int]",
    activation: "str | Activation | UnitDual",
    kind: str = "both",
) -> DeepKernels:
    """Log NNGP and log NTK matrices between points of S^d_+ at the requested depths.

    Args:
      x1: (N1, d+1) unit-norm, non-negative rows.
      x2: (N2, d+1) likewise, or ``None`` for the train-train matrix of x1.
      depths, activation, kind: as in :func:`deep_kernel_profile`.
    Returns:
      :class:`DeepKernels` with arrays (len(depths), N1, N2).
    """
    return deep_kernel_profile(sphere_correlations(x1, x2), depths, activation, kind=kind)


# ----------------------------------------------------------------------------
# tabulated profiles for many points
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KernelTable:
    """Deep kernels tabulated on a grid of the logit of ρ, for fast kernel matrices of many points.

    A deep kernel on the sphere is a function of ρ alone; between grid nodes its log is
    interpolated by a cubic spline in τ = log(ρ/(1 − ρ)), a coordinate in which log K is close to
    linear at both ends (∝ log ρ near 0, ∝ log(1 − ρ) near 1); the error is O(h^4) in the grid step.

    Attributes:
      depths: (D,) depths.
      tau: (G,) grid of logits.
      log_nngp, log_ntk: (D, G) logs on the grid.
      log_nngp_diag, log_ntk_diag: (D,) logs at ρ = 1 (identical points).
    """

    depths: np.ndarray
    tau: np.ndarray
    log_nngp: np.ndarray
    log_ntk: np.ndarray
    log_nngp_diag: np.ndarray
    log_ntk_diag: np.ndarray

    def __call__(self, rho, kind: str = "ntk") -> np.ndarray:
        """Log kernel at correlations ``rho`` (any shape) for every depth: (D,) + rho.shape."""
        check_choice(kind, "kind", ("nngp", "ntk"))
        r = np.asarray(rho, dtype=np.float64)
        same = r >= 1.0 - SAME_POINT_TOL
        rc = np.clip(r, 1e-300, 1.0 - SAME_POINT_TOL)
        tau = np.log(rc) - np.log1p(-rc)
        grid = self.log_ntk if kind == "ntk" else self.log_nngp
        diag = self.log_ntk_diag if kind == "ntk" else self.log_nngp_diag
        out = np.stack([_spline(self.tau, g)(tau) for g in grid])
        return np.where(same[None], diag.reshape((-1,) + (1,) * r.ndim), out)

    def matrix(self, x1, x2=None, kind: str = "ntk") -> np.ndarray:
        """Log kernel matrices (D, N1, N2) between points of S^d_+ (x2=None: train-train)."""
        return self(sphere_correlations(x1, x2), kind)


def _spline(tau: np.ndarray, values: np.ndarray):
    from scipy.interpolate import CubicSpline

    finite = np.isfinite(values)
    if np.all(finite):
        return CubicSpline(tau, values, extrapolate=True)
    # underflow to -inf (the even case at large depth): interpolate the finite part, -inf elsewhere
    if np.sum(finite) < 2:
        return lambda t: np.full(np.shape(t), -np.inf)
    lo = tau[finite][0]
    spl = CubicSpline(tau[finite], values[finite], extrapolate=True)
    return lambda t: np.where(t < lo, -np.inf, spl(t))


def kernel_table(
    activation: "str | Activation | UnitDual",
    depths: "int | Sequence[int]",
    *,
    n_grid: int = 2048,
    tau_range: tuple[float, float] = (-28.0, 27.6),
) -> KernelTable:
    """Tabulate the deep NNGP and NTK of ``activation`` on ``n_grid`` logits in ``tau_range``.

    The default range covers 7e-13 ≤ ρ ≤ 1 − 1e-12; ρ outside it takes the end values.
    """
    _require_x64("kernel_table")
    n_grid = check_positive_int(n_grid, "n_grid")
    lo, hi = float(tau_range[0]), float(tau_range[1])
    if not lo < hi:
        raise ValueError(f"tau_range must be increasing, got {tau_range}")
    tau = np.linspace(lo, hi, n_grid)
    rho = np.concatenate([1.0 / (1.0 + np.exp(-tau)), [1.0]])
    out = deep_kernel_profile(rho, depths, activation)
    s, k = np.asarray(out.log_nngp), np.asarray(out.log_ntk)
    return KernelTable(out.depths, tau, s[:, :-1], k[:, :-1], s[:, -1], k[:, -1])


# ----------------------------------------------------------------------------
# classifiers
# ----------------------------------------------------------------------------
def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size != n:
        raise ValueError(f"y must hold one label per training point ({n}), got {y.size}")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must hold labels -1 and +1")
    return y


def _sign(score: np.ndarray) -> np.ndarray:
    return np.where(score >= 0, 1.0, -1.0)


def kernel_predict(log_k_train, log_k_test, y, *, ridge: float = 0.0) -> np.ndarray:
    """sign(yᵀ K^{-1} k(x)) from log kernels, stable at any depth.

    K is divided by its diagonal (equal for unit-norm inputs) and each test row by its largest
    entry; positive scalings leave the sign unchanged and keep every number in [0, 1].

    Args:
      log_k_train: (N, N) log K(X, X) (finite diagonal).
      log_k_test: (M, N) log K(x, X) (rows may not be all −inf).
      y: (N,) labels ±1.
      ridge: added to the normalized K (see :func:`ntknotes.linalg.solve_psd`).
    Returns:
      (M,) predictions ±1.
    """
    lk = np.asarray(log_k_train, dtype=np.float64)
    lt = np.asarray(log_k_test, dtype=np.float64)
    if lk.ndim != 2 or lk.shape[0] != lk.shape[1]:
        raise ValueError(f"log_k_train must be (N, N), got shape {lk.shape}")
    if lt.ndim != 2 or lt.shape[1] != lk.shape[0]:
        raise ValueError(f"log_k_test must be (M, {lk.shape[0]}), got shape {lt.shape}")
    y = _labels(y, lk.shape[0])
    diag = np.diag(lk)
    if not np.all(np.isfinite(diag)):
        raise ValueError("the diagonal of log_k_train must be finite")
    if np.ptp(diag) > 1e-9 * max(1.0, float(np.max(np.abs(diag)))):
        raise ValueError("the diagonal of K must be constant (unit-norm inputs)")
    m = np.exp(lk - diag[0])
    top = np.max(lt, axis=1, keepdims=True)
    if not np.all(np.isfinite(top)):
        raise ValueError("a test row of the kernel underflowed even in logs (depth too large for this activation)")
    coef = np.asarray(solve_psd(jnp.asarray(0.5 * (m + m.T)), jnp.asarray(y), ridge=ridge))
    return _sign(np.exp(lt - top) @ coef)


def majority_vote(y, n_test: int) -> np.ndarray:
    """The majority label of the training set, repeated ``n_test`` times (ties: +1)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    _labels(y, y.size)
    return np.full(check_positive_int(n_test, "n_test"), _sign(np.sum(y)))


def nearest_neighbor(x_train, y, x_test) -> np.ndarray:
    """1-NN: the label of the training point with the largest correlation (smallest distance)."""
    a = check_matrix(np.asarray(x_train, dtype=np.float64), "x_train")
    b = check_matrix(np.asarray(x_test, dtype=np.float64), "x_test")
    check_same_features(a, b, "x_train", "x_test")
    y = _labels(y, a.shape[0])
    return y[np.argmax(b @ a.T, axis=1)]


def hilbert_rule(x_train, y, x_test, alpha: float) -> np.ndarray:
    """The singular-kernel rule sign(Σ_i y_i ‖x − x_i‖^{−α}); a test point equal to x_i gets y_i."""
    a = check_matrix(np.asarray(x_train, dtype=np.float64), "x_train")
    b = check_matrix(np.asarray(x_test, dtype=np.float64), "x_test")
    check_same_features(a, b, "x_train", "x_test")
    alpha = check_positive(alpha, "alpha")
    y = _labels(y, a.shape[0])
    d2 = np.maximum(np.sum(b**2, 1)[:, None] + np.sum(a**2, 1)[None] - 2.0 * b @ a.T, 0.0)
    logw = -0.5 * alpha * np.log(np.where(d2 > 0, d2, 1.0))
    hit = np.any(d2 == 0, axis=1)  # a test point that coincides with a training point
    top = np.max(logw, axis=1, keepdims=True)
    out = _sign(np.exp(logw - top) @ y)
    if np.any(hit):
        out[hit] = y[np.argmin(d2[hit], axis=1)]
    return out


def weighted_vote(log_weights, y) -> np.ndarray:
    """sign(Σ_i y_i w_i(x)) from log weights (M, N), e.g. the log of a limiting kernel k(x, x_i)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim != 2:
        raise ValueError(f"log_weights must be (M, N), got shape {lw.shape}")
    y = _labels(y, lw.shape[1])
    top = np.max(lw, axis=1, keepdims=True)
    if not np.all(np.isfinite(top)):
        raise ValueError("every row of log_weights needs a finite entry")
    return _sign(np.exp(lw - top) @ y)


def limit_rule(case: LimitCase, x_train, y, x_test) -> np.ndarray:
    """The rule the deep network tends to: majority vote, 1-NN or the Hilbert rule with ``case.alpha``."""
    if case.case == "majority vote":
        return majority_vote(y, np.asarray(x_test).shape[0])
    if case.case == "1-NN":
        return nearest_neighbor(x_train, y, x_test)
    if case.case == "singular kernel":
        return hilbert_rule(x_train, y, x_test, case.alpha)
    raise ValueError(f"{case.name}: no limiting rule is known for case {case.case!r}")
