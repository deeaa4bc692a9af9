"""Activations as data: φ, φ', dual maps, Hermite coefficients and the scalars A, A', B.

An :class:`Activation` bundles an elementwise nonlinearity φ with everything the
infinite-width theory needs from it:

* the *dual maps* ``dual(k11, k12, k22) = E[φ(u) φ(v)]`` and
  ``dual_derivative(k11, k12, k22) = E[φ'(u) φ'(v)]`` for a centred bivariate
  Gaussian ``(u, v)`` with covariance ``[[k11, k12], [k12, k22]]``, in closed form
  where one is known (ReLU and leaky ReLU via the arc-cosine kernel
  :cite:`cho2009kernel`, erf via arcsin, GELU, identity, sin) and otherwise from a
  series in the correlation with per-point Hermite coefficients, tabulated once per
  activation (:mod:`ntknotes.hermite_duals`: O(N·K) + O(N²·K) for a kernel, with an error
  bound); the two-dimensional quadrature below stays as the reference the tests use;
* the normalized Hermite coefficients ``a_k = E[φ(Z) h_k(Z)]`` with
  ``h_k = He_k / sqrt(k!)`` and ``Z ~ N(0, 1)``;
* ``A = E[φ(Z)]``, ``A' = E[φ'(Z)]``, ``B = E[φ'(Z)^2]`` and the second moment
  ``E[φ(Z)^2]``; :meth:`Activation.normalized` rescales φ so that it equals 1.

Quadrature (the reference): smooth activations use a tensor Gauss–Legendre rule in whitened
coordinates (truncated at |z| = 11, split at 0); activations with kinks at 0 (ReLU-like) use a polar rule whose
angular panels are split exactly where ``u = 0`` or ``v = 0``, with a
Gauss–Legendre rule in the radius. Both reach ~1e-12 on the closed forms.

Accuracy (tests/test_reliability_accuracy.py, against a long-double reference): the closed forms
keep 1e-12 relative accuracy (1e-15 of the map's Cauchy–Schwarz scale for values below 1e-3 of it)
for variances from 1e-300 to 1e300 and correlations up to ±(1 - 1e-12) and ±1, apart from the
maps' own conditioning at |ρ| → 1. They are written without products of variances (which overflow
beyond ~1e154), with 1 - |r| as a sum of non-negative terms and arcsin r and 1 - r² from it (no
cancellation near r = ±1), and sinh with expm1. The Hermite series is accurate to its bound, which is small
except at |ρ| near 1 with large variances (for tanh, variances above ~2): there the dual maps
issue an :class:`AccuracyWarning` (as do the kernels built on them).

Constructors are cached, so ``relu() is relu()``; this lets jitted kernels
reuse their compilation.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import hermite_duals
from . import precision  # noqa: F401  (sets the float policy)
from ._checks import check_covariance, check_positive, check_positive_int

__all__ = [
    "Activation",
    "AccuracyWarning",
    "SERIES_TOLERANCE",
    "warn_if_inaccurate",
    "get_activation",
    "relu",
    "leaky_relu",
    "abrelu",
    "erf",
    "tanh",
    "sigmoid_centered",
    "identity",
    "sin",
    "gelu",
    "silu",
    "softplus",
    "abs_centered",
    "hermite",
    "hermite_series",
    "phi_opt",
    "from_callable",
    "gaussian_expectation",
    "bivariate_expectation",
    "arccos",
    "arcsin",
    "correlation",
    "ACTIVATIONS",
]

Array = jax.Array
DualFn = Callable[[Array, Array, Array], Array]

# ----------------------------------------------------------------------------
# quadrature rules (numpy, built once)
# ----------------------------------------------------------------------------
_SMOOTH_NODES = 40  # Gauss–Legendre nodes per half axis for smooth activations (tensor rule)
_SMOOTH_CUTOFF = 11.0  # whitened coordinates are truncated to [-c, c]
_POLAR_ANGULAR = 24  # Gauss–Legendre nodes per angular panel (4 panels)
_POLAR_RADIAL = 64  # Gauss–Legendre nodes in the radius r on [0, _LINE_CUTOFF]
_LINE_NODES = 256  # Gauss–Legendre nodes per half line for 1-D expectations
_LINE_CUTOFF = 12.0  # |z| beyond this carries Gaussian mass below 1e-32


@functools.lru_cache(maxsize=None)
def _split_line_rule(n: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with sum(w f(z)) ≈ E[f(Z)]: Gauss–Legendre on [-c, 0] and [0, c].

    Unlike Gauss–Hermite, this converges fast also for steep functions such as
    erf(10 z), whose growth off the real axis ruins Gauss–Hermite rules.
    """
    x, w = _gauss_legendre(n)
    half = 0.5 * cutoff
    zp = half * (x + 1.0)
    wp = half * w * np.exp(-0.5 * zp**2) / math.sqrt(2.0 * math.pi)
    return np.concatenate([-zp[::-1], zp]), np.concatenate([wp[::-1], wp])


@functools.lru_cache(maxsize=None)
def _radial_rule(n: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes r and weights with sum(w h(r)) ≈ ∫_0^∞ h(r) r e^{-r²/2} dr, Gauss–Legendre in r.

    A rule in r (not Gauss–Laguerre in r²/2) converges exponentially for any polynomial growth
    in r, including odd powers such as the constant offset of |z| - sqrt(2/pi).
    """
    x, w = _gauss_legendre(n)
    r = 0.5 * cutoff * (x + 1.0)
    return r, 0.5 * cutoff * w * r * np.exp(-0.5 * r * r)


@functools.lru_cache(maxsize=None)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _line_rule() -> tuple[np.ndarray, np.ndarray]:
    """The rule for 1-D expectations: it tolerates a kink at 0."""
    return _split_line_rule(_LINE_NODES, _LINE_CUTOFF)


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray]) -> float:
    """E[f(Z)] for Z ~ N(0, 1), accurate to ~1e-14 for piecewise-smooth f of moderate growth.

    Args:
      f: a vectorized function of a 1-D float64 array.
    Returns:
      The expectation as a Python float.
    """
    z, w = _line_rule()
    vals = np.asarray(f(z), dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise ValueError("the integrand returned NaN or inf on the quadrature nodes")
    return float(np.sum(w * vals))


def _correlation(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array, Array]:
    """sqrt(k11), sqrt(k22) and the clipped correlation ρ (0 where a variance vanishes)."""
    s1 = jnp.sqrt(jnp.maximum(k11, 0.0))
    s2 = jnp.sqrt(jnp.maximum(k22, 0.0))
    return s1, s2, correlation(k11, k12, k22)


@jax.jit  # one program per shape: an eager lax.cond would be traced and compiled at every call (60 ms)
def correlation(k11: Array, k12: Array, k22: Array) -> Array:
    """ρ = k12/√(k11 k22) clipped to [-1, 1], 0 where a variance vanishes; arrays broadcast.

    Computed in scaled form, ρ = (k12/m)/√((k11/m)(k22/m)) with m = max(k11, k22), so variances
    anywhere in the floating-point range work (the product k11·k22 would overflow above ~1e154
    and underflow below ~1e-154). When k11 = k12 = k22 the result is exactly 1 (all three
    ratios are 1), which matters because arccos(1 - ε) ≈ √(2ε).

    Example:
      >>> float(correlation(1e200, 1e200, 1e200))
      1.0
    """
    k11, k12, k22 = jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22)
    m = jnp.maximum(k11, k22)
    ok = (k11 > 0) & (k22 > 0)
    safe = jnp.where(ok, m, 1.0)
    prod = (k11 / safe) * (k22 / safe)
    # variances more than ~1e308 apart: the ratio underflows; then ρ = k12 (1/√k11)(1/√k22). Behind a
    # cond, as XLA would otherwise evaluate the fallback's square roots for every pair
    normal = prod >= jnp.finfo(prod.dtype).tiny
    denom = jnp.sqrt(jnp.where(ok & normal, prod, 1.0))
    rho = (k12 / safe) / denom

    def far(rho):
        alt = (k12 * jax.lax.rsqrt(jnp.where(k11 > 0, k11, 1.0))) * jax.lax.rsqrt(jnp.where(k22 > 0, k22, 1.0))
        return jnp.where(normal, rho, alt)

    rho = jax.lax.cond(jnp.any(ok & ~normal), far, lambda r: r, rho)
    return jnp.where(ok, jnp.clip(rho, -1.0, 1.0), 0.0)


def _rho(k11: Array, k12: Array, k22: Array) -> Array:
    return correlation(k11, k12, k22)


def bivariate_expectation(
    f: Callable[[Array], Array],
    g: Callable[[Array], Array],
    k11: Array,
    k12: Array,
    k22: Array,
    *,
    smooth: bool = True,
) -> Array:
    """E[f(u) g(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]), by quadrature.

    Args:
      f, g: elementwise functions (jnp-traceable).
      k11, k12, k22: broadcastable arrays of variances and covariance.
      smooth: True for a tensor Gauss–Legendre rule on the truncated whitened
        plane, split at 0 (smooth f, g); False for the
        polar rule split at the kinks ``u = 0`` and ``v = 0`` (ReLU-like f, g).
    Returns:
      An array of the broadcast shape of the inputs.
    """
    k11, k12, k22 = jnp.broadcast_arrays(*(jnp.asarray(k) for k in (k11, k12, k22)))
    s1, s2, rho = _correlation(k11, k12, k22)
    c = jnp.sqrt(jnp.maximum(1.0 - rho**2, 0.0))
    dtype = k11.dtype if jnp.issubdtype(k11.dtype, jnp.floating) else precision.default_dtype()
    if smooth:
        z, w = (jnp.asarray(a, dtype) for a in _split_line_rule(_SMOOTH_NODES, _SMOOTH_CUTOFF))

        def body(acc, zw):
            zi, wi = zw
            u = s1 * zi
            v = s2[..., None] * (rho[..., None] * zi + c[..., None] * z)
            inner = jnp.sum(w * g(v), axis=-1)
            return acc + wi * f(u) * inner, None

        out, _ = jax.lax.scan(body, jnp.zeros_like(s1), (z, w))
        return out
    # polar rule: (z1, z2) = r (cos t, sin t); u = s1 z1, v = s2 (rho z1 + c z2)
    t0 = jnp.arctan2(-rho, c)  # v = 0 on t = t0 and t0 + π
    two_pi = 2.0 * math.pi
    breaks = jnp.stack(
        [
            jnp.full_like(t0, 0.5 * math.pi),
            jnp.full_like(t0, 1.5 * math.pi),
            jnp.mod(t0, two_pi),
            jnp.mod(t0 + math.pi, two_pi),
        ],
        axis=-1,
    )
    breaks = jnp.sort(breaks, axis=-1)
    ends = jnp.concatenate([breaks[..., 1:], breaks[..., :1] + two_pi], axis=-1)
    xg, wg = (jnp.asarray(a, dtype) for a in _gauss_legendre(_POLAR_ANGULAR))
    half = 0.5 * (ends - breaks)  # (..., 4)
    mid = 0.5 * (ends + breaks)
    t = (mid[..., None] + half[..., None] * xg).reshape(*mid.shape[:-1], -1)  # (..., 4m)
    wt = (half[..., None] * wg).reshape(*mid.shape[:-1], -1) / two_pi
    cos_t, sin_t = jnp.cos(t), jnp.sin(t)
    sr, wr = (jnp.asarray(a, dtype) for a in _radial_rule(_POLAR_RADIAL, _LINE_CUTOFF))

    def rbody(acc, sw):
        r, wi = sw
        u = s1[..., None] * r * cos_t
        v = s2[..., None] * r * (rho[..., None] * cos_t + c[..., None] * sin_t)
        return acc + wi * jnp.sum(wt * f(u) * g(v), axis=-1), None

    out, _ = jax.lax.scan(rbody, jnp.zeros_like(s1), (sr, wr))
    return out


# ----------------------------------------------------------------------------
# accuracy of the Hermite-series duals
# ----------------------------------------------------------------------------
SERIES_TOLERANCE = 1e-5  # relative error bound above which the Hermite-series duals warn


class AccuracyWarning(UserWarning):
    """The certified error bound of a result exceeds :data:`SERIES_TOLERANCE` (Hermite-series duals)."""


def warn_if_inaccurate(name: str, relative_bound: Array, *variances: Array) -> None:
    """Warn (:class:`AccuracyWarning`) when concrete relative error bounds exceed :data:`SERIES_TOLERANCE`.

    The Hermite series of an activation without a closed form (tanh, SiLU, softplus, ...) keeps
    K = 64 terms plus a modelled tail. Its error is bounded (:meth:`Activation.dual_error_bound`)
    and vanishes at |ρ| = 1 for equal variances, but near |ρ| = 1 it grows with the variance q:
    φ(√q z) steepens, its Hermite coefficients decay slowly, and the bound reaches ~1e-2 for tanh
    at q ≈ 30 (the actual error is typically 20 times smaller). Pairs whose bound exceeds
    ``ntknotes.hermite_duals.refine_tolerance(dtype)`` are recomputed by a two-dimensional rule
    (:meth:`ntknotes.hermite_duals.HermiteDual.accurate_pair`) and carry no bound, so this warns only
    where more such pairs came at once than are recomputed (256 × 64 per dual-map call, 256 × 4 per
    kernel tile and layer). Traced values (under ``jax.jit``) cannot be inspected and are not checked.
    """
    try:
        worst = float(np.max(np.asarray(relative_bound), initial=0.0))
        qmax = max((float(np.max(np.asarray(v), initial=0.0)) for v in variances), default=float("nan"))
    except Exception:  # a JAX tracer: no values to check
        return
    if worst > SERIES_TOLERANCE:
        warnings.warn(
            f"{name}: the Hermite-series dual maps are certified only to a relative error of {worst:.1e} "
            f"here (tolerance {SERIES_TOLERANCE:.0e}; the actual error is typically ~20 times smaller). "
            f"The 64-term series converges slowly at correlations near ±1 when the pre-activation "
            f"variance is large (here up to {qmax:.3g}; for tanh the bound stays below 1e-5 only for "
            f"variances up to about 2), and more such pairs came at once than are recomputed by the "
            f"accurate rule: rescale the inputs, lower sigma_w or pass fewer points per call",
            AccuracyWarning,
            stacklevel=3,
        )


# ----------------------------------------------------------------------------
# the Activation record
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation with the data the infinite-width theory needs.

    Attributes:
      name: a readable name, e.g. ``"relu"`` or ``"phi_opt(d=4)"``.
      fn: φ, an elementwise jnp-traceable function.
      deriv: φ' (elementwise); ``None`` means automatic differentiation of ``fn``.
      dual_fn: closed form of E[φ(u)φ(v)] as a function of (k11, k12, k22), or ``None``.
      dual_deriv_fn: closed form of E[φ'(u)φ'(v)], or ``None``.
      smooth: whether φ is smooth (selects the quadrature rule when no closed form exists).
      homogeneous_dual: for positively homogeneous φ (φ(cz) = cφ(z) for c > 0: ReLU, leaky
        ReLU, ABReLU, identity) a map ρ ↦ (J(ρ), J̇(ρ)), the two duals at unit variances and
        correlation ρ; then E[φ(u)φ(v)] = √(k11 k22) J(ρ) and E[φ'(u)φ'(v)] = J̇(ρ). Kernels use
        it for a fast recursion on correlations; ``None`` otherwise.
      dual_pair_fn: both closed forms at once, (k11, k12, k22) -> (E[φφ], E[φ'φ']), sharing work
        (per-point factors are computed on k11's and k22's own shapes); ``None`` otherwise.
      hermite_terms: K, the series length of the fast general path
        (:class:`ntknotes.hermite_duals.HermiteDual`) used when no closed form exists.
      fast_series: False keeps the two-dimensional quadrature for an activation without a
        closed form (the Hermite polynomials of :func:`hermite_series`, whose deep-limit tests
        iterate the dual map at an unstable fixed point and need ρ = 1 ↦ 1 to the last ulp).
      scaled_pair_fn: for activations whose duals stay finite as the variances leave float64's range
        (erf), ``(k11, k12, k22, e1, e2) -> (E[φφ], 2^{e1+e2} E[φ'φ'])`` at the covariance
        (4^{e1} k11, 2^{e1+e2} k12, 4^{e2} k22), e1, e2 integer arrays; the fused kernels use it for the
        first layer of inputs beyond |x| ~ 1e30, whose x·x'/d may overflow; ``None`` otherwise.

    Instances compare and hash by identity; the constructors below are cached.
    """

    name: str
    fn: Callable[[Array], Array]
    deriv: Optional[Callable[[Array], Array]] = None
    dual_fn: Optional[DualFn] = None
    dual_deriv_fn: Optional[DualFn] = None
    smooth: bool = True
    homogeneous_dual: Optional[Callable[[Array], tuple[Array, Array]]] = None
    dual_pair_fn: Optional[Callable[[Array, Array, Array], tuple[Array, Array]]] = None
    hermite_terms: int = hermite_duals.DEFAULT_TERMS
    fast_series: bool = True
    scaled_pair_fn: Optional[Callable[[Array, Array, Array, Array, Array], tuple[Array, Array]]] = None

    # -- evaluation --------------------------------------------------------
    def __call__(self, z: Array) -> Array:
        """φ(z), elementwise."""
        return self.fn(z)

    def derivative(self, z: Array) -> Array:
        """φ'(z), elementwise."""
        if self.deriv is not None:
            return self.deriv(z)
        z = jnp.asarray(z)
        return jax.jvp(self.fn, (z,), (jnp.ones_like(z),))[1]

    @property
    def has_closed_form(self) -> bool:
        """True when both dual maps are known in closed form."""
        return self.dual_fn is not None and self.dual_deriv_fn is not None

    # -- dual maps ---------------------------------------------------------
    @functools.cached_property
    def hermite(self) -> hermite_duals.HermiteDual:
        """The fast general path: per-point Hermite coefficients tabulated in the variance."""
        return hermite_duals.HermiteDual(self.fn, self.derivative, self.hermite_terms)

    @property
    def uses_series(self) -> bool:
        """True when the duals come from the Hermite series (no closed form, not homogeneous)."""
        return (
            self.fast_series
            and self.homogeneous_dual is None
            and not self.has_closed_form
            and self.dual_pair_fn is None
        )

    def dual(self, k11: Array, k12: Array, k22: Array) -> Array:
        """E[φ(u)φ(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]); arrays broadcast.

        Closed form where known, otherwise the Hermite series of :attr:`hermite`
        (error bounded by :meth:`dual_error_bound`; an :class:`AccuracyWarning` when that bound
        exceeds :data:`SERIES_TOLERANCE` of the map's scale, for concrete inputs).

        Raises:
          ValueError: for concrete inputs that are not a covariance (a negative variance, NaN,
            or |k12| > √(k11 k22) beyond rounding, i.e. a correlation outside [-1, 1]), and, for
            activations on the Hermite series, variances above the tables' range (1e8). Under
            ``jax.jit`` the inputs are traced and these checks cannot run: the covariance is then
            taken as given (the correlation clipped to [-1, 1]) and out-of-range variances give NaN.
        """
        check_covariance(k11, k12, k22)
        if self.dual_fn is not None:
            return self.dual_fn(*jnp.broadcast_arrays(jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22)))
        if not self.fast_series:
            return self.dual_quadrature(k11, k12, k22)
        return self.dual_and_derivative(k11, k12, k22)[0]

    def dual_derivative(self, k11: Array, k12: Array, k22: Array) -> Array:
        """E[φ'(u)φ'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]); arrays broadcast.

        Raises: as :meth:`dual`.
        """
        check_covariance(k11, k12, k22)
        if self.dual_deriv_fn is not None:
            return self.dual_deriv_fn(*jnp.broadcast_arrays(jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22)))
        if not self.fast_series:
            return self.dual_derivative_quadrature(k11, k12, k22)
        return self.dual_and_derivative(k11, k12, k22)[1]

    def dual_and_derivative(self, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
        """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) together, sharing work; arrays broadcast.

        Args:
          k11, k12, k22: variances and covariance, broadcastable (e.g. (N, 1), (N, M), (1, M)).
            Per-point work (square roots, Hermite coefficients) is done on k11's and k22's own
            shapes, so pass them unbroadcast for speed.
        Returns:
          Two arrays of the broadcast shape.
        Raises:
          ValueError: as :meth:`dual` (concrete inputs only; not under ``jax.jit``).

        Example:
          >>> q = jnp.array([1.0, 2.0])
          >>> k, kd = gelu().dual_and_derivative(q[:, None], 0.5 * jnp.ones((2, 2)), q[None, :])
        """
        check_covariance(k11, k12, k22)
        k11, k12, k22 = jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22)
        if self.homogeneous_dual is not None:
            s1, s2, rho = _correlation(k11, k12, k22)
            j, jdot = self.homogeneous_dual(rho)
            return s1 * s2 * j, jdot
        if self.dual_pair_fn is not None:
            return self.dual_pair_fn(k11, k12, k22)
        if self.has_closed_form or not self.fast_series:
            return self.dual(k11, k12, k22), self.dual_derivative(k11, k12, k22)
        shape = jnp.broadcast_shapes(k11.shape, k12.shape, k22.shape)
        k, kd, rel = self.hermite.dual_and_derivative(k11, k12, k22, bound=True)
        warn_if_inaccurate(self.name, rel, k11, k22)
        return jnp.broadcast_to(k, shape), jnp.broadcast_to(kd, shape)

    def diagonal_duals(self, q: Array) -> tuple[Array, Array]:
        """(E[φ(u)²], E[φ'(u)²]) for u ~ N(0, q): the dual maps at k11 = k12 = k22 = q.

        The diagonal passes of the kernel recursions take this. On the Hermite series the tail
        model is exact at ρ = 1 for equal variances, so the value carries no series error and no
        pair needs the two-dimensional rule (which is then not compiled into the diagonal pass).

        Args:
          q: variances, any shape (>= 0).
        Returns:
          Two arrays of q's shape.

        Example:
          >>> k, kd = tanh().diagonal_duals(jnp.array([0.5, 2.0]))
        """
        if not isinstance(q, jax.core.Tracer):
            try:
                q = jnp.asarray(q)
            except TypeError:
                raise TypeError(f"q must be an array of variances, got {type(q).__name__}") from None
            if not (jnp.issubdtype(q.dtype, jnp.floating) or jnp.issubdtype(q.dtype, jnp.integer)):
                raise TypeError(f"q must be an array of real variances, got dtype {q.dtype}")
        check_covariance(q, q, q, names=("q", "q", "q"))
        if self.uses_series:
            return self.hermite.dual_and_derivative(q, q, q, refine=False)
        return self.dual_and_derivative(q, q, q)

    def dual_error_bound(self, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
        """Bounds on the error of (dual, dual_derivative): zeros for closed forms, else the series bound.

        See :meth:`ntknotes.hermite_duals.HermiteDual.error_bound`; tabulation adds ~1e-12·E[φ²].
        Raises ValueError as :meth:`dual`.
        """
        check_covariance(k11, k12, k22)
        k11, k12, k22 = jnp.asarray(k11), jnp.asarray(k12), jnp.asarray(k22)
        if not self.uses_series:
            z = jnp.zeros(jnp.broadcast_shapes(k11.shape, k12.shape, k22.shape), jnp.result_type(k11, k12, k22, float))
            return z, z
        return self.hermite.error_bound(k11, k12, k22)

    def dual_quadrature(self, k11: Array, k12: Array, k22: Array) -> Array:
        """E[φ(u)φ(v)] by quadrature, whether or not a closed form exists; raises as :meth:`dual`."""
        check_covariance(k11, k12, k22)
        return bivariate_expectation(self.fn, self.fn, k11, k12, k22, smooth=self.smooth)

    def dual_derivative_quadrature(self, k11: Array, k12: Array, k22: Array) -> Array:
        """E[φ'(u)φ'(v)] by quadrature, whether or not a closed form exists; raises as :meth:`dual`."""
        check_covariance(k11, k12, k22)
        return bivariate_expectation(self.derivative, self.derivative, k11, k12, k22, smooth=self.smooth)

    # -- one-dimensional Gaussian quantities -------------------------------
    def _np(self, f: Callable[[Array], Array]) -> Callable[[np.ndarray], np.ndarray]:
        return lambda z: np.asarray(f(jnp.asarray(z, jnp.float64)), dtype=np.float64)

    @functools.cached_property
    def second_moment(self) -> float:
        """E[φ(Z)^2] for Z ~ N(0, 1)."""
        f = self._np(self.fn)
        return gaussian_expectation(lambda z: f(z) ** 2)

    @functools.cached_property
    def A(self) -> float:
        """A = E[φ(Z)] = a_0."""
        return gaussian_expectation(self._np(self.fn))

    @functools.cached_property
    def A_prime(self) -> float:
        """A' = E[φ'(Z)] = a_1 (Stein's lemma)."""
        return gaussian_expectation(self._np(self.derivative))

    @functools.cached_property
    def B(self) -> float:
        """B = E[φ'(Z)^2]; for a normalized φ this is the slope of its dual at ρ = 1."""
        d = self._np(self.derivative)
        return gaussian_expectation(lambda z: d(z) ** 2)

    def hermite_coefficients(self, n: int = 16) -> np.ndarray:
        """Coefficients a_0..a_{n-1} of φ in the normalized Hermite basis h_k = He_k/√k!.

        Returns:
          A float64 array of shape (n,). For a normalized φ, sum(a_k^2) = 1 and the
          unit-variance dual is Σ a_k^2 ρ^k.
        """
        n = check_positive_int(n, "n")
        f = self._np(self.fn)
        z, w = _line_rule()
        fz = f(z)
        hk = _hermite_table(z, n)
        return hk @ (w * fz)

    # -- derived activations ----------------------------------------------
    def normalized(self) -> "Activation":
        """A copy c·φ with c = 1/sqrt(E[φ(Z)^2]), so that E[φ(Z)^2] = 1."""
        return _normalized(self)

    def scaled(self, c: float) -> "Activation":
        """The activation c·φ (duals scale by c^2)."""
        return _scaled(self, float(c))

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _hermite_table(z: np.ndarray, n: int) -> np.ndarray:
    """Rows h_0(z)..h_{n-1}(z), h_k = He_k / sqrt(k!), by the stable normalized recurrence."""
    out = np.empty((n, z.size))
    out[0] = 1.0
    if n > 1:
        out[1] = z
    for k in range(1, n - 1):
        out[k + 1] = (z * out[k] - math.sqrt(k) * out[k - 1]) / math.sqrt(k + 1)
    return out


@functools.lru_cache(maxsize=None)
def _scaled(act: Activation, c: float) -> Activation:
    if not np.isfinite(c):
        raise ValueError(f"scale must be finite, got {c}")
    c2 = c * c
    fn, dv = act.fn, act.derivative
    dual = (lambda a, b, d: c2 * act.dual_fn(a, b, d)) if act.dual_fn else None
    ddual = (lambda a, b, d: c2 * act.dual_deriv_fn(a, b, d)) if act.dual_deriv_fn else None
    hom = act.homogeneous_dual
    unit = (lambda r: tuple(c2 * v for v in hom(r))) if hom is not None else None
    both = act.dual_pair_fn
    pair = (lambda a, b, d: tuple(c2 * v for v in both(a, b, d))) if both is not None else None
    big = act.scaled_pair_fn
    scaled_pair = (lambda a, b, d, e1, e2: tuple(c2 * v for v in big(a, b, d, e1, e2))) if big is not None else None
    return Activation(
        name=f"{c:.6g}*{act.name}",
        fn=lambda z: c * fn(z),
        deriv=lambda z: c * dv(z),
        dual_fn=dual,
        dual_deriv_fn=ddual,
        smooth=act.smooth,
        homogeneous_dual=unit,
        dual_pair_fn=pair,
        hermite_terms=act.hermite_terms,
        fast_series=act.fast_series,
        scaled_pair_fn=scaled_pair,
    )


@functools.lru_cache(maxsize=None)
def _normalized(act: Activation) -> Activation:
    m2 = act.second_moment
    if not m2 > 0:
        raise ValueError(f"cannot normalize {act.name}: E[phi(Z)^2] = {m2} is not positive")
    out = _scaled(act, 1.0 / math.sqrt(m2))
    return dataclasses.replace(out, name=f"{act.name} (normalized)")


# ----------------------------------------------------------------------------
# closed forms
# ----------------------------------------------------------------------------
# asin(t) = t + t z P(z), z = t^2, on 0 <= t <= 1/2: a degree-12 least-squares fit (Chebyshev
# nodes) to the Taylor series of asin, max relative error 4e-16 against long-double arcsin.
_ASIN_COEFFS = (
    0.16666666666666755, 0.0749999999990931, 0.04464285728169333, 0.03038193620613076,
    0.02237240743129071, 0.017348460362192255, 0.014010284469554372, 0.011255603009753966,
    0.010911352078674963, 0.006084828431028421, 0.008378031523913016, 0.009022694871895911,
    0.006715692205959629,
)  # fmt: skip


_INV_2PI = 0.5 / math.pi
_SQRT_HALF = math.sqrt(0.5)


def arccos(rho: Array) -> Array:
    """arccos ρ for ρ in [-1, 1], elementwise, to ~2 ulp, from one sqrt and a polynomial.

    XLA lowers ``jnp.arccos`` to ``atan2``, a scalar libm call on CPU (~20 ns per entry);
    this branch-free version vectorizes (~4 ns) and is what the ReLU-family duals use.
    Uses arccos|ρ| = 2 asin(√((1-|ρ|)/2)) for |ρ| > 1/2 and π/2 - asin|ρ| otherwise.
    Values outside [-1, 1] are clipped.
    """
    rho = jnp.asarray(rho)
    a = jnp.minimum(jnp.abs(rho), 1.0)
    big = a > 0.5
    t = jnp.where(big, jnp.sqrt(0.5 * (1.0 - a)), a)
    asin_t = _asin_small(t)
    acos_a = jnp.where(big, 2.0 * asin_t, 0.5 * math.pi - asin_t)
    return jnp.where(rho < 0, math.pi - acos_a, acos_a)


@jax.custom_jvp
def _relu_unit_inside(rho: Array) -> tuple[Array, Array]:
    """The ReLU unit duals (J, J̇) of ρ already clipped to [-1, 1] (see :func:`_relu_unit`)."""
    theta = arccos(rho)
    sine = jnp.sqrt(jnp.maximum((1.0 - rho) * (1.0 + rho), 0.0))
    return (sine + (math.pi - theta) * rho) * _INV_2PI, (math.pi - theta) * _INV_2PI


@_relu_unit_inside.defjvp
def _relu_unit_inside_jvp(primals: tuple, tangents: tuple) -> tuple:
    """J' = J̇ (finite on [-1, 1]) and J̇' = 1/(2π√(1-ρ²)) inside, 0 at |ρ| = 1.

    Autodiff of the primal gives ∞·0 = NaN at |ρ| = 1, the diagonal of every kernel. There
    ρ = ±1 is an extremum of the correlation (Cauchy–Schwarz), so its first-order change is
    zero and the chain-rule term J̇'(ρ)·dρ vanishes; J̇ itself behaves like |t| along a line
    x + t·v through parallel points, whose central difference is 0, which this rule returns.
    """
    (rho,), (t,) = primals, tangents
    j, jdot = _relu_unit_inside(rho)
    one_minus = (1.0 - rho) * (1.0 + rho)
    inside = one_minus > 0
    slope = jnp.where(inside, _INV_2PI * jax.lax.rsqrt(jnp.where(inside, one_minus, 1.0)), 0.0)
    return (j, jdot), (jdot * t, slope * t)


def _relu_unit(rho: Array) -> tuple[Array, Array]:
    """ReLU duals at unit variances: ((√(1-ρ²) + (π-θ)ρ)/2π, (π-θ)/2π) with θ = arccos ρ.

    Differentiable everywhere, including |ρ| = 1 (a custom JVP rule, :func:`_relu_unit_inside_jvp`).
    """
    return _relu_unit_inside(jnp.clip(rho, -1.0, 1.0))


def _relu_dual(k11: Array, k12: Array, k22: Array) -> Array:
    s1, s2, rho = _correlation(k11, k12, k22)
    return s1 * s2 * _relu_unit(rho)[0]


def _relu_dual_deriv(k11: Array, k12: Array, k22: Array) -> Array:
    return _relu_unit(_rho(k11, k12, k22))[1]


def _asin_small(t: Array) -> Array:
    """asin t for 0 <= t <= 1/2 from the polynomial above (~1 ulp)."""
    z = t * t
    p = jnp.full_like(z, _ASIN_COEFFS[-1])
    for coeff in _ASIN_COEFFS[-2::-1]:
        p = p * z + coeff
    return t + t * z * p


def arcsin(x: Array) -> Array:
    """arcsin x for x in [-1, 1], elementwise, to a few ulp (values outside are clipped).

    Branch-free and vectorizable like :func:`arccos` (XLA's arcsin is a scalar libm call on CPU):
    asin|x| = π/2 - 2 asin(√((1-|x|)/2)) for |x| > 1/2, the polynomial otherwise. Relative
    accuracy is kept near 0 (asin x ≈ x).
    """
    x = jnp.asarray(x)
    a = jnp.minimum(jnp.abs(x), 1.0)
    big = a > 0.5
    t = jnp.where(big, jnp.sqrt(0.5 * (1.0 - a)), a)
    s = _asin_small(t)
    out = jnp.where(big, 0.5 * math.pi - 2.0 * s, s)
    return jnp.where(x < 0, -out, out)


def _pair_correlation(k11: Array, k12: Array, k22: Array) -> Array:
    """ρ for the closed forms, cheaply: k12 (1/√k11)(1/√k22) with the factors on k11's and k22's own
    shapes (two products per pair, no product of variances, so any variances in range work), 0 where
    a variance vanishes, and snapped to ±1 within 8 ulp of it, as the ReLU path does: identical
    points (k12 = k11 = k22, ρ computed within 3 ulp of 1) get exactly 1, which matters at large
    variances, where 1 - ρ² multiplies huge terms (:func:`_one_minus_abs_r`). A comparison-based
    pin costs a third more; :func:`correlation` spends divisions per pair for a last ulp."""
    pos1, pos2 = k11 > 0, k22 > 0
    i1 = jnp.where(pos1, jax.lax.rsqrt(jnp.where(pos1, k11, 1.0)), 0.0)
    i2 = jnp.where(pos2, jax.lax.rsqrt(jnp.where(pos2, k22, 1.0)), 0.0)
    rho = (k12 * i1) * i2
    snap = 1.0 - 8 * jnp.finfo(rho.dtype).eps
    return jnp.where(rho > snap, 1.0, jnp.where(rho < -snap, -1.0, rho))


def _one_minus_abs_r(rho: Array, w1: Array, w2: Array) -> Array:
    """1 - |r| for r = ρ (1 - w1)(1 - w2), w_i in [0, 1], as (1 - |ρ|) + |ρ| (w1 + w2 - w1 w2).

    Both terms are >= 0, so nothing cancels: the closed forms below have r = ρ √u1 √u2 with
    per-point 1 - √u_i = w_i known accurately, and this keeps 1 - |r| (hence arcsin r near ±1 and
    1 - r² in the derivative maps) accurate where forming r first would round it away: on the
    diagonal of an erf kernel at variance q, 1 - r ≈ 1/(2q) is below the rounding of r once q > 1e16,
    and asin r would then be off by √ulp ~ 1e-8. Two products and four sums per pair, no division.
    """
    a = jnp.abs(rho)
    return (1.0 - a) + a * (w1 + w2 - w1 * w2)


def _asin_parts(r: Array, onem: Array) -> tuple[Array, Array]:
    """(big, s) with asin|r| = π/2 - 2s where ``big`` (|r| > 1/2) and s elsewhere, given onem = 1 - |r|."""
    a = jnp.minimum(jnp.abs(r), 1.0)
    big = a > 0.5
    t = jnp.where(big, jnp.sqrt(0.5 * jnp.maximum(onem, 0.0)), a)
    return big, _asin_small(t)


def _arcsin_onem(r: Array, onem: Array) -> Array:
    """arcsin r from r and onem = 1 - |r| (see :func:`_asin_parts`)."""
    big, s = _asin_parts(r, onem)
    out = jnp.where(big, 0.5 * math.pi - 2.0 * s, s)
    return jnp.where(r < 0, -out, out)


def _quarter_plus_asin_over_2pi(r: Array, onem: Array) -> Array:
    """1/4 + asin(r)/2π = arccos(-r)/2π from r and onem = 1 - |r|, exactly 0 at r = -1 (no cancellation)."""
    big, s = _asin_parts(r, onem)
    acos_abs = jnp.where(big, 2.0 * s, 0.5 * math.pi - s)  # arccos |r|
    return _INV_2PI * jnp.where(r < 0, acos_abs, math.pi - acos_abs)


def _scaled_one_minus_r2(t1sq: Array, t2sq: Array, u1: Array, u2: Array, rho: Array,
                         p1: Array, p2: Array) -> tuple[Array, Array]:
    """(m, P) with 1 - r² = m·4^P, for r = ρ √(u1 u2), u_i = 1 - t_i², when the t_i² given are 4^{p_i}
    times the true ones (the scaled first layer of :func:`_erf_pair_scaled`, where 1 - r² itself
    may be far below float64's range).

    1 - r² = t1² t2² + u1 t2² + u2 t1² + u1 u2 (1 - ρ²), a sum of non-negative terms; P is the
    largest power of 4 among the non-zero ones, and the others are scaled to it exactly (ldexp).
    """
    terms = (t1sq * t2sq, u1 * t2sq, u2 * t1sq, u1 * u2 * ((1.0 - rho) * (1.0 + rho)))
    powers = (-(p1 + p2), -p2, -p1, jnp.zeros_like(p1 + p2))  # the true term is term · 4^power
    low = jnp.iinfo(jnp.int32).min // 4
    top = functools.reduce(jnp.maximum, [jnp.where(t > 0, pw, low) for t, pw in zip(terms, powers)])
    total = sum(jnp.ldexp(t, 2 * (pw - top)) for t, pw in zip(terms, powers))
    return total, top


def _erf_pair_scaled(k11: Array, k12: Array, k22: Array, e1: Array, e2: Array) -> tuple[Array, Array]:
    """erf duals of the covariance (4^{e1} k11, 2^{e1+e2} k12, 4^{e2} k22) for integer arrays e1, e2 >= 0.

    Returns (E[erf erf], 2^{e1+e2} E[erf' erf']): the first is scale-free, the second is the derivative
    dual times the scale of k12, which is what the NTK needs (Θ¹ = 2^{e1+e2} Θ̃¹ multiplies it). Inputs
    with |x| ~ 1e200 have first-layer variances ~1e400 (beyond float64) whose erf duals are finite:
    with t̃_i = 1/√(4^{-e_i} + 2k_ii) = 2^{e_i}/√(1 + 2·true k_ii), r = 2 k12 t̃1 t̃2 needs no scale at all,
    and 1 - r² is formed as a sum of terms with explicit powers of 4 (:func:`_scaled_one_minus_r2`).
    With e1 = e2 = 0 this is :func:`_erf_pair`, which is cheaper (no powers of two per pair).
    """
    k11, k22 = jnp.maximum(k11, 0.0), jnp.maximum(k22, 0.0)
    a1 = jax.lax.rsqrt(jnp.ldexp(jnp.ones_like(k11), -2 * e1) + 2.0 * k11)  # t̃_1
    a2 = jax.lax.rsqrt(jnp.ldexp(jnp.ones_like(k22), -2 * e2) + 2.0 * k22)
    t1sq, t2sq = a1 * a1, a2 * a2  # 4^{e_i} t_i²
    u1, u2 = 2.0 * k11 * t1sq, 2.0 * k22 * t2sq  # scale-free, in [0, 1)
    rho = _pair_correlation(k11, k12, k22)
    r = rho * (jnp.sqrt(u1) * jnp.sqrt(u2))  # = 2 k12 t1 t2, consistent with ρ (exactly ±1 with it)
    om, top = _scaled_one_minus_r2(t1sq, t2sq, u1, u2, rho, e1, e2)  # (1 - r²) = om · 4^{top}
    om = jnp.maximum(om, jnp.finfo(om.dtype).tiny)
    # 2^{e1+e2} (4/π) t1 t2 / √(1 - r²) = (4/π) t̃1 t̃2 / √om · 2^{-top}
    ddual = jnp.ldexp((4.0 / math.pi) * (a1 * a2) * jax.lax.rsqrt(om), -top)
    onem = jnp.ldexp(om, 2 * top) / (1.0 + jnp.abs(r))  # 1 - |r| (first layer of huge inputs only)
    return (2.0 / math.pi) * _arcsin_onem(r, onem), ddual


def _erf_pair(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    """erf duals with per-point factors computed on k11's and k22's own shapes.

    With t_i = 1/√(1 + 2k_ii) and u_i = 2k_ii t_i², r = 2 k12 t1 t2 = ρ √u1 √u2 and
    E[erf erf] = (2/π) arcsin r, E[erf' erf'] = (4/π) t1 t2 / √(1 - r²). Per point, 1 - √u_i =
    t_i²/(1 + √u_i); per pair, 1 - |r| from :func:`_one_minus_abs_r` and 1 - r² = (1 - |r|)(1 + |r|),
    so nothing cancels near r = ±1 and no product of variances is formed (any variance in range
    works). At k11 = k12 = k22 = q, 1 - r² = (1 + 4q)/(1 + 2q)² > 0: the derivative map is finite
    on the diagonal.
    """
    k11, k22 = jnp.maximum(k11, 0.0), jnp.maximum(k22, 0.0)
    # t_i and u_i = 2k/(1 + 2k) without forming 1 + 2k (inf for k > 9e307) or 1/(1 + 2k) alone
    # (subnormal there, and XLA flushes subnormals to zero)
    t1, t2 = _SQRT_HALF * jax.lax.rsqrt(0.5 + k11), _SQRT_HALF * jax.lax.rsqrt(0.5 + k22)
    su1, su2 = jnp.sqrt(k11 / (0.5 + k11)), jnp.sqrt(k22 / (0.5 + k22))  # √u_i
    w1, w2 = (t1 * t1) / (1.0 + su1), (t2 * t2) / (1.0 + su2)  # 1 - √u_i
    rho = _pair_correlation(k11, k12, k22)
    r = rho * (su1 * su2)
    onem = _one_minus_abs_r(rho, w1, w2)
    om = jnp.maximum(onem * (2.0 - onem), jnp.finfo(onem.dtype).tiny)  # 1 - r²
    return (2.0 / math.pi) * _arcsin_onem(r, onem), (4.0 / math.pi) * (t1 * t2) * jax.lax.rsqrt(om)


def _erf_dual(k11: Array, k12: Array, k22: Array) -> Array:
    return _erf_pair(k11, k12, k22)[0]


def _erf_dual_deriv(k11: Array, k12: Array, k22: Array) -> Array:
    return _erf_pair(k11, k12, k22)[1]


def _gelu_pair(k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    """GELU duals E[φφ], E[φ'φ'] for φ(z) = z Φ(z), in closed form.

    With p_i = 1 + k_ii, r = k12/√(p1 p2) and D = p1 p2 (1 - r²) = p1 p2 - k12² (derived with
    Stein's lemma and Gaussian tilting; checked against scipy quadrature in tests/test_activation_duals.py):
      E[φφ]   = k12 (1/4 + asin(r)/2π) + (k11 k22 + k12² (1/p1 + 1/p2 - 1)) / (2π √D)
      E[φ'φ'] = 1/4 + asin(r)/2π + k12/(2π √D) · (1/p1 + 1/p2 + 1/D)
    Evaluated without products of variances (which overflow beyond ~1e154) and without cancellation:
    1 - r² from :func:`_one_minus_abs_r` (u_i = k_ii/p_i), and k11 k22 + k12² (1/p1 + 1/p2 - 1)
    = k11 k22 [(1 - ρ²) + ρ² (1/p1 + 1/p2)], both terms non-negative, divided by √D as
    (k11/√p1)(k22/√p2)/√(1 - r²). At k11 = k12 = k22 = q, D = 1 + 2q > 0, so both maps are smooth at ρ = 1.
    """
    k11, k22 = jnp.maximum(k11, 0.0), jnp.maximum(k22, 0.0)
    i1, i2 = jax.lax.rsqrt(1.0 + k11), jax.lax.rsqrt(1.0 + k22)
    ip1, ip2 = i1 * i1, i2 * i2
    su1, su2 = jnp.sqrt(k11 / (1.0 + k11)), jnp.sqrt(k22 / (1.0 + k22))  # √u_i, u_i = k_ii/p_i (not k·ip:
    w1, w2 = ip1 / (1.0 + su1), ip2 / (1.0 + su2)  # ip is subnormal, flushed to 0, beyond 4e307); 1 - √u_i
    rho = _pair_correlation(k11, k12, k22)
    r = rho * (su1 * su2)  # = k12/√(p1 p2), consistent with ρ
    onem = _one_minus_abs_r(rho, w1, w2)
    om = jnp.maximum(onem * (2.0 - onem), jnp.finfo(onem.dtype).tiny)  # 1 - r² = D/(p1 p2)
    ro = jax.lax.rsqrt(om)
    c = _INV_2PI * ro  # √(p1 p2)/(2π √D)
    base = _quarter_plus_asin_over_2pi(r, onem)  # 1/4 + asin(r)/2π, accurate near r = ±1
    # k11 k22 (1 - ρ²) + k12² (1/p1 + 1/p2) = (k11 k22)·[(1 - ρ²) + ρ² (1/p1 + 1/p2)], over √(p1 p2)
    rho2 = rho * rho
    dual = k12 * base + c * (((k11 * i1) * (k22 * i2)) * ((1.0 - rho2) + rho2 * (ip1 + ip2)))
    ddual = base + c * r * (ip1 + ip2 + (ip1 * ip2) * (ro * ro))
    return dual, ddual


@functools.lru_cache(maxsize=None)
def relu() -> Activation:
    """ReLU φ(z) = max(z, 0), with the arc-cosine kernel of degree 1 as its dual."""
    return Activation(
        name="relu",
        fn=lambda z: jnp.maximum(z, 0.0),
        deriv=lambda z: jnp.where(z > 0, 1.0, 0.0).astype(jnp.result_type(z, float)),
        dual_fn=_relu_dual,
        dual_deriv_fn=_relu_dual_deriv,
        smooth=False,
        homogeneous_dual=_relu_unit,
    )


@functools.lru_cache(maxsize=None)
def abrelu(a: float, b: float) -> Activation:
    """ABReLU φ(z) = a·z for z < 0 and b·z for z >= 0 (leaky ReLU is a = slope, b = 1).

    Its dual is (b - a)^2 · relu-dual + a·b·k12, and E[φ'φ'] = a·b + (b - a)^2 (π - θ)/(2π).
    """
    a, b = float(a), float(b)
    if not (np.isfinite(a) and np.isfinite(b)):
        raise ValueError(f"abrelu slopes must be finite, got a={a}, b={b}")
    d2 = (b - a) ** 2

    def unit(rho):
        j, jdot = _relu_unit(rho)
        return d2 * j + a * b * rho, a * b + d2 * jdot

    return Activation(
        name=f"abrelu(a={a:g}, b={b:g})",
        fn=lambda z: jnp.where(z >= 0, b * z, a * z),
        deriv=lambda z: jnp.where(z > 0, b, a).astype(jnp.result_type(z, float)),
        dual_fn=lambda k11, k12, k22: d2 * _relu_dual(k11, k12, k22) + a * b * k12,
        dual_deriv_fn=lambda k11, k12, k22: a * b + d2 * _relu_dual_deriv(k11, k12, k22),
        smooth=False,
        homogeneous_dual=unit,
    )


def leaky_relu(slope: float = 0.01) -> Activation:
    """Leaky ReLU φ(z) = z for z >= 0 and slope·z otherwise."""
    act = abrelu(float(slope), 1.0)
    return act


@functools.lru_cache(maxsize=None)
def erf() -> Activation:
    """φ(z) = erf(z), with the arcsin dual of Williams (1997)."""
    return Activation(
        name="erf",
        fn=jax.scipy.special.erf,
        deriv=lambda z: (2.0 / math.sqrt(math.pi)) * jnp.exp(-jnp.square(z)),
        dual_fn=_erf_dual,
        dual_deriv_fn=_erf_dual_deriv,
        smooth=True,
        dual_pair_fn=_erf_pair,
        scaled_pair_fn=_erf_pair_scaled,
    )


@functools.lru_cache(maxsize=None)
def tanh() -> Activation:
    """φ(z) = tanh(z); duals by the Hermite series (:mod:`ntknotes.hermite_duals`)."""
    return Activation(name="tanh", fn=jnp.tanh, deriv=lambda z: 1.0 - jnp.tanh(z) ** 2, smooth=True)


@functools.lru_cache(maxsize=None)
def sigmoid_centered() -> Activation:
    """φ(z) = sigmoid(z) - 1/2 (an odd function); duals by the Hermite series."""

    def d(z):
        s = jax.nn.sigmoid(z)
        return s * (1.0 - s)

    return Activation(name="sigmoid-1/2", fn=lambda z: jax.nn.sigmoid(z) - 0.5, deriv=d, smooth=True)


@functools.lru_cache(maxsize=None)
def identity() -> Activation:
    """φ(z) = z: the network is linear and every dual is exact."""
    return Activation(
        name="identity",
        fn=lambda z: z,
        deriv=lambda z: jnp.ones_like(z),
        dual_fn=lambda k11, k12, k22: k12,
        dual_deriv_fn=lambda k11, k12, k22: jnp.ones_like(k12),
        smooth=True,
        homogeneous_dual=lambda rho: (rho, jnp.ones_like(rho)),
    )


def _sin_duals(w2: float, k11: Array, k12: Array, k22: Array) -> tuple[Array, Array]:
    """e^{-w²(k11+k22)/2} (sinh, cosh)(w² k12) as ½(e^{-w² m_-} ∓ e^{-w² m_+}), m_± = (k11+k22)/2 ± k12.

    Both exponents are <= 0 for a covariance (|k12| <= (k11+k22)/2), so nothing overflows (the
    product form gives inf·0 = NaN once w² k12 > ~710). The difference (sinh) is formed with expm1,
    ½ e^{-w² m_∓}·(1 - e^{-2w²|k12|}), so it keeps its relative accuracy for small variances (the plain
    difference of exponentials is 0 once w² k12 < 1e-16, e.g. inputs of norm 1e-150).
    """
    mean = 0.5 * (k11 + k22)
    e_minus = jnp.exp(-w2 * jnp.maximum(mean - k12, 0.0))
    e_plus = jnp.exp(-w2 * jnp.maximum(mean + k12, 0.0))
    pos = k12 >= 0
    k_pos, k_neg = jnp.where(pos, k12, 0.0), jnp.where(pos, 0.0, k12)  # where, not abs: exact gradients at 0
    sinh_part = jnp.where(pos, -0.5 * e_minus * jnp.expm1(-2.0 * w2 * k_pos),
                          0.5 * e_plus * jnp.expm1(2.0 * w2 * k_neg))
    return sinh_part, 0.5 * w2 * (e_minus + e_plus)


@functools.lru_cache(maxsize=None)
def sin(frequency: float = 1.0) -> Activation:
    """φ(z) = sin(w z) with w = ``frequency``.

    E[sin(wu) sin(wv)] = exp(-w^2 (k11 + k22)/2) sinh(w^2 k12) and
    E[φ'(u)φ'(v)] = w^2 exp(-w^2 (k11 + k22)/2) cosh(w^2 k12).
    The lecture's sin(√a z) is ``sin(frequency=sqrt(a))``.
    """
    w = check_positive(frequency, "frequency")
    w2 = w * w
    return Activation(
        name="sin" if w == 1.0 else f"sin({w:g}z)",
        fn=lambda z: jnp.sin(w * z),
        deriv=lambda z: w * jnp.cos(w * z),
        dual_fn=lambda k11, k12, k22: _sin_duals(w2, k11, k12, k22)[0],
        dual_deriv_fn=lambda k11, k12, k22: _sin_duals(w2, k11, k12, k22)[1],
        dual_pair_fn=lambda k11, k12, k22: _sin_duals(w2, k11, k12, k22),
        smooth=True,
    )


@functools.lru_cache(maxsize=None)
def gelu() -> Activation:
    """GELU φ(z) = z Φ(z) (exact, not the tanh approximation), with closed-form duals (:func:`_gelu_pair`)."""
    inv_sqrt2 = 1.0 / math.sqrt(2.0)

    def cdf(z):
        return 0.5 * (1.0 + jax.scipy.special.erf(z * inv_sqrt2))

    def d(z):
        return cdf(z) + z * jnp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)

    return Activation(
        name="gelu",
        fn=lambda z: z * cdf(z),
        deriv=d,
        dual_fn=lambda k11, k12, k22: _gelu_pair(k11, k12, k22)[0],
        dual_deriv_fn=lambda k11, k12, k22: _gelu_pair(k11, k12, k22)[1],
        dual_pair_fn=_gelu_pair,
        smooth=True,
    )


@functools.lru_cache(maxsize=None)
def silu() -> Activation:
    """SiLU (swish) φ(z) = z·sigmoid(z); duals by the Hermite series (no closed form is known)."""

    def d(z):
        s = jax.nn.sigmoid(z)
        return s * (1.0 + z * (1.0 - s))

    return Activation(name="silu", fn=lambda z: z * jax.nn.sigmoid(z), deriv=d, smooth=True)


@functools.lru_cache(maxsize=None)
def softplus() -> Activation:
    """Softplus φ(z) = log(1 + e^z) (φ' = sigmoid); duals by the Hermite series."""
    return Activation(name="softplus", fn=jax.nn.softplus, deriv=jax.nn.sigmoid, smooth=True)


@functools.lru_cache(maxsize=None)
def abs_centered() -> Activation:
    """φ(z) = |z| - sqrt(2/π): an even activation with E[φ(Z)] = 0 and E[φ'(Z)] = 0."""
    c = math.sqrt(2.0 / math.pi)
    return Activation(
        name="|z|-sqrt(2/pi)",
        fn=lambda z: jnp.abs(z) - c,
        deriv=lambda z: jnp.sign(z).astype(jnp.result_type(z, float)),
        smooth=False,
    )


def _hermite_poly(z: Array, coeffs: tuple[float, ...]) -> Array:
    """Σ c_k h_k(z) with the normalized recurrence (jnp)."""
    h_prev = jnp.ones_like(z)
    out = coeffs[0] * h_prev
    if len(coeffs) == 1:
        return out
    h = z
    out = out + coeffs[1] * h
    for k in range(1, len(coeffs) - 1):
        h_prev, h = h, (z * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
        out = out + coeffs[k + 1] * h
    return out


@functools.lru_cache(maxsize=None)
def hermite_series(coeffs: tuple[float, ...], name: Optional[str] = None) -> Activation:
    """φ = Σ_k c_k h_k with h_k = He_k/√k! (normalized probabilists' Hermite polynomials).

    Args:
      coeffs: a tuple (c_0, ..., c_K) of floats.
      name: optional display name.
    The derivative is Σ_k c_k √k h_{k-1}; duals for general covariances come from
    quadrature (accurate to ~1e-13 for moderate degrees; ``fast_series=False``, see
    :class:`Activation`).
    """
    if not isinstance(coeffs, tuple) or len(coeffs) == 0:
        raise TypeError(f"coeffs must be a non-empty tuple of floats, got {coeffs!r}")
    c = tuple(float(x) for x in coeffs)
    if not all(np.isfinite(c)):
        raise ValueError(f"Hermite coefficients must be finite, got {c}")
    dc = tuple(math.sqrt(k) * c[k] for k in range(1, len(c))) or (0.0,)
    return Activation(
        name=name or f"hermite_series{c}",
        fn=lambda z: _hermite_poly(z, c),
        deriv=lambda z: _hermite_poly(z, dc),
        smooth=True,
        fast_series=False,
    )


def hermite(k: int) -> Activation:
    """The normalized Hermite polynomial h_k = He_k/√k! as an activation (h_2 = (z^2 - 1)/√2)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"Hermite degree k must be an integer >= 0, got {k!r}")
    coeffs = tuple([0.0] * int(k) + [1.0])
    return hermite_series(coeffs, name=f"h_{int(k)}")


def phi_opt(d: int) -> Activation:
    """The optimal activation of Radhakrishnan, Belkin & Uhler for data on the d-sphere (d >= 2).

    φ_opt(z) = 2^{-d/4} h_3(z) + sqrt(1 - 2^{1-d/2}) h_2(z) + 2^{-d/4} h_1(z): normalized,
    with A = 0, A' = 2^{-d/4} and B = 2, so its deep-limit singular kernel has exponent α = d.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"phi_opt needs an integer sphere dimension d >= 2, got {d!r}")
    a = 2.0 ** (-d / 4.0)
    return hermite_series((0.0, a, math.sqrt(max(1.0 - 2.0 ** (1.0 - d / 2.0), 0.0)), a), name=f"phi_opt(d={int(d)})")


@functools.lru_cache(maxsize=None)
def _from_callable(fn: Callable, name: str, smooth: bool, deriv: Optional[Callable]) -> Activation:
    return Activation(name=name, fn=fn, deriv=deriv, smooth=smooth)


def from_callable(
    fn: Callable[[Array], Array],
    name: Optional[str] = None,
    *,
    smooth: bool = True,
    deriv: Optional[Callable[[Array], Array]] = None,
) -> Activation:
    """Wrap any elementwise jnp-traceable function as an Activation.

    Its duals come from the fast Hermite series (:mod:`ntknotes.hermite_duals`); the
    quadrature methods remain available as a reference.

    Args:
      fn: φ, elementwise.
      name: display name (defaults to ``fn.__name__``).
      smooth: False when φ has kinks at 0 only (e.g. piecewise linear); selects the polar rule.
      deriv: φ' if known; otherwise automatic differentiation.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    probe = np.asarray(fn(jnp.linspace(-2.0, 2.0, 5)))
    if probe.shape != (5,):
        raise ValueError(f"activation must act elementwise: a (5,) input gave shape {probe.shape}")
    return _from_callable(fn, name or getattr(fn, "__name__", "custom"), bool(smooth), deriv)


ACTIVATIONS: dict[str, Callable[[], Activation]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "erf": erf,
    "tanh": tanh,
    "sigmoid_centered": sigmoid_centered,
    "identity": identity,
    "linear": identity,
    "sin": sin,
    "gelu": gelu,
    "silu": silu,
    "softplus": softplus,
    "abs_centered": abs_centered,
}


@functools.lru_cache(maxsize=None)
def _named(key: str) -> Activation:
    """One shared instance per registered name, so that its Hermite tables (built once, ~1 s)
    and the programs compiled for it (jit keys on the instance) are reused across calls."""
    return ACTIVATIONS[key]()


def get_activation(spec: "str | Activation | Callable") -> Activation:
    """Resolve an activation given as an :class:`Activation`, a registered name, or a callable.

    Registered names: relu, leaky_relu, erf, tanh, sigmoid_centered, identity (linear),
    sin, gelu, silu, softplus, abs_centered. Raises ValueError for an unknown name.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"unknown activation {spec!r}; expected one of {sorted(ACTIVATIONS)} or an Activation")
        return _named(key)
    if callable(spec):
        return from_callable(spec)
    raise TypeError(f"activation must be a name, an Activation or a callable, got {type(spec).__name__}")


