"""Fast dual maps of any activation from per-point Hermite expansions.

For a centred Gaussian pair (u, v) with variances q1, q2 and correlation ρ, write
u = √q1 z1, v = √q2 z2 with (z1, z2) standard and correlated by ρ. Mehler's formula gives

    E[φ(u) φ(v)]   = Σ_k a_k(q1) a_k(q2) ρ^k,   a_k(q) = E[φ(√q Z) h_k(Z)],
    E[φ'(u) φ'(v)] = Σ_k b_k(q1) b_k(q2) ρ^k,   b_k(q) = E[φ'(√q Z) h_k(Z)],

with h_k = He_k/√k! the normalized Hermite polynomials. The coefficients depend on one
point only, so a kernel of N points costs N coefficient vectors plus one polynomial of
degree K - 1 in ρ per pair: O(N·K) + O(N²·K) time, O(N²) memory.

The tail after K terms is not dropped. Splitting it by parity, its even and odd parts at
q1 = q2 = q are known exactly from two one-dimensional integrals,

    T_e(q) = Σ_{k >= K, k even} a_k(q)²,   T_o(q) = Σ_{k >= K, k odd} a_k(q)²,

because Σ_k a_k² = E[φ(√q Z)²] and Σ_k (-1)^k a_k² = E[φ(√q Z) φ(-√q Z)]. The pair's tail is
modelled per parity as √(T(q1) T(q2)) ρ^{K_p} (1 - μ)/(1 - μ ρ²), a geometric tail a_k² ∝ μ^{k/2}
with μ = √(μ1 μ2) and μ_i = T/(T + a_last²) matched to each point's last kept coefficient
(K_e, K_o the first even and odd index >= K; T itself is the direct sum of the coefficients
K..K+111 plus the remainder of E[φ²] when that exceeds rounding). This is exact at ρ = ±1 when
q1 = q2 (every diagonal entry of a kernel, and parallel points of equal norm), where the series
converges slowly, and by Cauchy–Schwarz the true tail of each parity lies within √(T(q1) T(q2)) |ρ|^{K_p} of zero, so::

    |error| <= 2 (√(T_e(q1) T_e(q2)) |ρ|^{K_e} + √(T_o(q1) T_o(q2)) |ρ|^{K_o})

(plus ~1e-12 from the tables), which :meth:`HermiteDual.error_bound` returns. The bound is
small unless |ρ| is near 1 *and* φ(√q z) is steep (large q for tanh-like activations, whose
coefficients decay slowly). Checked against nested adaptive quadrature for tanh at q = 900
(tests/test_reliability_accuracy.py): exact to 1e-10 at ρ = 0.5 and ρ = 1, but 0.3% and 14%
off (dual and derivative dual) at ρ = 0.999, inside the bound. :meth:`HermiteDual.relative_bound`
gives the bound relative to each map's scale.

Where that relative bound exceeds :func:`refine_tolerance` (1e-11 in float64), the dual maps
(:meth:`HermiteDual.dual_and_derivative`) and the fused kernels (``ntknotes/stax/_fc.py``)
recompute the pair by :meth:`HermiteDual.accurate_pair`, a two-dimensional product rule that
stays accurate as |ρ| → 1 (u = √q1 z, v = √q2 (ρ z + √(1-ρ²) w), Gauss–Legendre panels in z and
in w placed where the arguments of φ cross its steep region). Checked against nested adaptive
scipy quadrature (tests/test_activation_duals.py) for tanh, SiLU and softplus at q = 1e-3..1e3
and ρ up to ±(1 - 1e-12): within 3e-13 of each value (or of 1e-3 of the Cauchy–Schwarz scale),
for both maps. The rule resolves φ whose structure lies within |φ argument| <~ 32 plus slow
variation (not, e.g., cos z at q = 900, whose ~170 oscillations neither it nor the tables
resolve). The flagged pairs are gathered (``jnp.nonzero`` with a static size) a batch at a time,
so a call where none is flagged pays only the bound and one test; the dual maps and kernels warn
(:class:`ntknotes.activations.AccuracyWarning`) when more were flagged than are recomputed and the
remaining bound exceeds 1e-5.

The coefficients and tails are tabulated once per activation, in float64, as piecewise
Chebyshev interpolants in log q over [q_min, q_max] (each value from a one-dimensional
Gauss–Legendre rule with panels at z = ±u/√q for u = 1/2, 1, ..., 64, so steep φ(√q z) is
resolved, and at the integers up to |z| = 15). A point's coefficients are then one table
lookup: no evaluation of φ at run time. Variances below q_min use the leading small-q
behaviour a_k ∝ q^{k/2}; variances above q_max give NaN (outside the certified range).

Example:
  >>> import jax; jax.config.update("jax_enable_x64", True)
  >>> import jax.numpy as jnp
  >>> from ntknotes.hermite_duals import HermiteDual
  >>> hd = HermiteDual(jnp.tanh, lambda z: 1 - jnp.tanh(z) ** 2)
  >>> k, kd = hd.dual_and_derivative(jnp.array(1.0), jnp.array(0.5), jnp.array(2.0))
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import precision

__all__ = ["HermiteDual", "PointFeatures", "DEFAULT_TERMS"]

Array = jax.Array

DEFAULT_TERMS = 64  # series terms in float64 (24 are used in float32)
_F32_TERMS = 24
_Q_MIN = 1e-10
_Q_MAX = 1e8
_PANEL = 0.5  # width of a Chebyshev panel in ln q
_DEG = 24  # Chebyshev degree per panel (float64)
_DEG_F32 = 12  # the same fit truncated, enough for float32
_Z_CUT = 15.0  # |z| beyond this carries negligible mass even against h_48
_GL_NODES = 20  # Gauss–Legendre nodes per quadrature panel
_EXTRA_TERMS = 112  # coefficients K..K+111 are summed directly into the tails
_NOISE = 256 * np.finfo(np.float64).eps  # remainders below this fraction of E[φ²] are rounding
_U_EDGES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # panel edges in u = √q z

# the accurate two-dimensional rule of HermiteDual.accurate_pair (pairs the series leaves inaccurate)
_ACC_EDGES = (0.0,) + tuple(s * e for e in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0) for s in (1.0, -1.0))
_ACC_CUT = 9.0  # |z|, |w| beyond this carry Gaussian mass below 1e-18
_ACC_GRID = 18  # uniform panels over [-_ACC_CUT, _ACC_CUT]
_ACC_NODES = 12  # Gauss–Legendre nodes per panel
_ACC_CHUNK = 8  # pairs evaluated at once (8 pairs hold ~1.8e6 nodes)
REFINE_BATCH = 256  # flagged pairs gathered per refinement round
_MAX_ROUNDS = 64  # refinement rounds of one dual-map call at most
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def refine_tolerance(dtype) -> float:
    """Relative error bound above which a pair's series value is replaced by :meth:`HermiteDual.accurate_pair`:
    1e-11 in float64 (the actual error is then below ~1e-12), 1e-5 in float32."""
    return 1e-11 if jnp.dtype(dtype).itemsize >= 8 else 1e-5


def _panel_rule(edges: Array) -> tuple[Array, Array]:
    """Gauss–Legendre nodes and weights (..., P·n) on the panels between sorted edges (..., P+1)."""
    x, w = np.polynomial.legendre.leggauss(_ACC_NODES)
    x, w = jnp.asarray(x, edges.dtype), jnp.asarray(w, edges.dtype)
    half = 0.5 * (edges[..., 1:] - edges[..., :-1])
    mid = 0.5 * (edges[..., 1:] + edges[..., :-1])
    shape = edges.shape[:-1] + (-1,)
    return (mid[..., None] + half[..., None] * x).reshape(shape), (half[..., None] * w).reshape(shape)


class PointFeatures(NamedTuple):
    """Per-point data of φ(√q z): coefficient arrays (..., K) and the tail roots (...,)."""

    a: Array  # a_k(q), k = 0..K-1, on a leading axis: shape (K,) + S
    b: Array  # b_k(q) (coefficients of φ'(√q z)), shape (K,) + S
    ta_even: Array  # √T_e of φ
    ta_odd: Array
    tb_even: Array  # √T_e of φ'
    tb_odd: Array


def _hermite_rows(z: np.ndarray, n: int) -> np.ndarray:
    """h_0(z)..h_{n-1}(z) stacked on a new leading axis (normalized recurrence), shape (n,) + z.shape."""
    out = np.empty((n,) + z.shape)
    out[0] = 1.0
    if n > 1:
        out[1] = z
    for k in range(1, n - 1):
        out[k + 1] = (z * out[k] - math.sqrt(k) * out[k - 1]) * (1.0 / math.sqrt(k + 1))
    return out


def _line_rules(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (Q, M) and weights (Q, M) with Σ w f(z) ≈ E[f(Z)], panels adapted to each √q."""
    s = np.sqrt(q)[:, None]
    edges = np.concatenate(
        [np.minimum(np.asarray(_U_EDGES)[None, :] / s, _Z_CUT),
         np.broadcast_to(np.arange(0.0, _Z_CUT + 1.0), (q.size, 16))],
        axis=1,
    )
    edges = np.sort(edges, axis=1)
    lo, hi = edges[:, :-1], edges[:, 1:]
    x, w = np.polynomial.legendre.leggauss(_GL_NODES)
    half = 0.5 * (hi - lo)
    z = (0.5 * (hi + lo))[..., None] + half[..., None] * x  # (Q, P, n)
    wz = half[..., None] * w * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    z = z.reshape(q.size, -1)
    wz = wz.reshape(q.size, -1)
    return np.concatenate([-z, z], axis=1), np.concatenate([wz, wz], axis=1)


def _point_values(fn: Callable, deriv: Callable, q: np.ndarray, terms: int) -> np.ndarray:
    """(Q, 2K + 4) float64: a_0..a_{K-1}, b_0..b_{K-1}, √T_e, √T_o of φ, then of φ'."""
    z, w = _line_rules(q)
    s = np.sqrt(q)[:, None]
    with precision.x64_scope(), jax.ensure_compile_time_eval():
        u = jnp.asarray(s * z, jnp.float64)
        f = np.asarray(fn(u), np.float64)
        g = np.asarray(deriv(u), np.float64)
        fr = np.asarray(fn(-u), np.float64)
        gr = np.asarray(deriv(-u), np.float64)
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        raise ValueError("the activation or its derivative is not finite on the quadrature nodes")
    big = terms + _EXTRA_TERMS
    h = _hermite_rows(z, big)  # (K + extra, Q, M)
    out = []
    for vals, refl in ((f, fr), (g, gr)):
        allc = np.einsum("qm,kqm->qk", w * vals, h)
        coef = allc[:, :terms]
        m2 = np.sum(w * vals * vals, axis=1)
        mr = np.sum(w * vals * refl, axis=1)
        roots = []
        for par, half in ((0, 0.5 * (m2 + mr)), (1, 0.5 * (m2 - mr))):
            # the tail is the direct sum of the computed coefficients K..K+extra (no cancellation)
            # plus the remainder half - Σ_all; the remainder is rounding noise of size
            # eps·E[φ²] once the series has converged, and its square root (1e-8·√E[φ²]) would
            # swamp a converged tail, so it is kept only above that noise level
            start = terms + ((par - terms) % 2)
            direct = np.sum(allc[:, start::2] ** 2, axis=1)
            rest = half - np.sum(allc[:, par::2] ** 2, axis=1)
            rest = np.where(rest > _NOISE * np.maximum(m2, 0.0), rest, 0.0)
            roots.append(np.sqrt(direct + rest))
        out.append((coef, roots[0], roots[1]))
    (a, tae, tao), (b, tbe, tbo) = out
    return np.concatenate([a, b, tae[:, None], tao[:, None], tbe[:, None], tbo[:, None]], axis=1)


def _check_range(q) -> None:
    """Raise ValueError if concrete variances exceed the tables' range (skipped for traced values)."""
    try:
        qmax = float(np.max(np.asarray(q, dtype=np.float64), initial=0.0))
    except Exception:  # a JAX tracer: cannot be checked eagerly
        return
    if qmax > _Q_MAX:
        raise ValueError(
            f"a variance of {qmax:.3g} is out of range for the Hermite-series dual maps (tabulated for "
            f"variances up to {_Q_MAX:.0e}): rescale the inputs (or σ_w) so that the pre-activation "
            f"variances stay below {_Q_MAX:.0e}"
        )


def _ratio(root_tail: Array, last: Array) -> Array:
    """μ = T/(T + a_last²) in [0, 1): the per-parity decay of a geometric tail a_k² ∝ μ^{k/2}.

    It is the one geometric model that matches both the last kept coefficient and the exact
    tail sum T (so the model is still exact at |ρ| = 1 for q1 = q2); 0 when T = 0.
    """
    t = root_tail * root_tail
    den = t + last * last
    return jnp.where(den > 0, t / jnp.where(den > 0, den, 1.0), 0.0)


class HermiteDual:
    """Dual maps of φ from tabulated per-point Hermite coefficients (see the module docstring).

    Args:
      fn: φ, elementwise and jnp-traceable.
      deriv: φ', elementwise.
      terms: K, the number of series terms in float64 (float32 uses min(K, 24)).

    The table (about 2 MB) is built on first use, in float64 whatever JAX's default dtype.
    """

    def __init__(self, fn: Callable[[Array], Array], deriv: Callable[[Array], Array], terms: int = DEFAULT_TERMS):
        if isinstance(terms, bool) or not isinstance(terms, int) or not 2 <= terms <= 64:
            raise ValueError(f"terms must be an integer in [2, 64], got {terms!r}")
        self.fn, self.deriv, self.terms = fn, deriv, terms

    # -- the table ----------------------------------------------------------------------
    @functools.cached_property
    def _values(self) -> tuple[np.ndarray, np.ndarray]:
        """Values (P, DEG+1, 2K+4) at the Chebyshev points of every ln-q panel, and (φ(0), φ'(0))."""
        x0, x1 = math.log(_Q_MIN), math.log(_Q_MAX)
        panels = int(math.ceil((x1 - x0) / _PANEL))
        nodes = np.cos(np.pi * (np.arange(_DEG + 1) + 0.5) / (_DEG + 1))  # Chebyshev points
        centers = x0 + (np.arange(panels) + 0.5) * _PANEL
        lnq = (centers[:, None] + 0.5 * _PANEL * nodes[None, :]).ravel()
        chunks = np.array_split(lnq, max(1, lnq.size // 100))
        vals = np.concatenate([_point_values(self.fn, self.deriv, np.exp(c), self.terms) for c in chunks])
        with precision.x64_scope(), jax.ensure_compile_time_eval():
            zero = jnp.zeros((1,), jnp.float64)
            at0 = (float(np.asarray(self.fn(zero))[0]), float(np.asarray(self.deriv(zero))[0]))
        return vals.reshape(panels, _DEG + 1, -1), np.asarray(at0)

    @functools.lru_cache(maxsize=4)
    def _table(self, k: int, deg: int) -> np.ndarray:
        """Chebyshev coefficients (P, deg+1, 2k+4) per ln-q panel for a k-term series.

        The columns are a_0..a_{k-1}, b_0..b_{k-1} and √T_e, √T_o of φ and of φ' for k terms
        (the coefficients dropped from the full table join the tails). A degree-24 fit is
        truncated to ``deg`` (12 suffices for float32).
        """
        vals, _ = self._values
        kmax = self.terms
        a, b = vals[..., :kmax], vals[..., kmax : 2 * kmax]
        roots = vals[..., 2 * kmax :]
        cols = [a[..., :k], b[..., :k]]
        for c, col in ((a, 0), (b, 2)):
            even = roots[..., col] ** 2 + np.sum(c[..., k + (k % 2) :: 2] ** 2, -1)
            odd = roots[..., col + 1] ** 2 + np.sum(c[..., k + 1 - (k % 2) :: 2] ** 2, -1)
            cols.append(np.stack([np.sqrt(even), np.sqrt(odd)], -1))
        cols = np.concatenate([cols[0], cols[1], cols[2], cols[3]], -1)
        # values at Chebyshev points -> Chebyshev coefficients (discrete cosine transform)
        j = np.arange(_DEG + 1)
        tmat = np.cos(np.outer(j, np.pi * (np.arange(_DEG + 1) + 0.5) / (_DEG + 1))) * (2.0 / (_DEG + 1))
        tmat[0] *= 0.5
        return np.ascontiguousarray(np.einsum("jn,pnf->pjf", tmat, cols)[:, : deg + 1])

    def build(self) -> "HermiteDual":
        """Tabulate now (otherwise on first use; ~2 s per activation); returns self."""
        self._values  # noqa: B018
        return self

    # -- per-point features ---------------------------------------------------------------
    def features(self, q: Array, terms: int | None = None) -> PointFeatures:
        """The per-point coefficients of φ(√q z) and φ'(√q z).

        Args:
          q: variances, any shape S (>= 0). Entries above 1e8 (outside the tables) raise a
            ValueError when ``q`` is concrete; under ``jax.jit`` the check cannot run and they
            give NaN.
          terms: series length K (default: ``self.terms`` in float64, min(terms, 24) otherwise).
        Returns:
          PointFeatures with ``a``, ``b`` of shape (K,) + S (series index first, so that each
          term of a pair's polynomial reads contiguous memory) and the tail roots of shape S.
        """
        _check_range(q)
        q = jnp.asarray(q)
        dtype = q.dtype if jnp.issubdtype(q.dtype, jnp.floating) else jnp.result_type(float)
        q = q.astype(dtype)
        k = self._terms_for(dtype, terms)
        deg = _DEG if jnp.dtype(dtype).itemsize >= 8 else _DEG_F32
        table = jnp.asarray(self._table(k, deg), dtype)
        at0 = self._values[1]
        x0 = math.log(_Q_MIN)
        x = jnp.log(jnp.clip(q, _Q_MIN, _Q_MAX))
        pos = (x - x0) / _PANEL
        idx = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, table.shape[0] - 1)
        t = 2.0 * (pos - idx.astype(dtype)) - 1.0
        cheb = [jnp.ones_like(t), t]
        for _ in range(deg - 1):
            cheb.append(2.0 * t * cheb[-1] - cheb[-2])
        tv = jnp.stack(cheb, axis=-1)  # S + (deg+1,)
        vals = jnp.einsum("...j,...jf->f...", tv, table[idx])  # (F,) + S
        a, b = vals[:k], vals[k : 2 * k]
        tails = [vals[2 * k + i] ** 2 for i in range(4)]  # T_e, T_o of φ, then of φ'
        # below q_min: a_k ∝ q^{k/2} (k >= 1), a_0 -> φ(0) linearly in q
        small = q < _Q_MIN
        ratio = jnp.where(small, jnp.maximum(q, 0.0) / _Q_MIN, 1.0)
        r = jnp.sqrt(ratio)
        powers = jnp.cumprod(jnp.concatenate([jnp.ones_like(r)[None], jnp.broadcast_to(r, (k - 1,) + r.shape)], 0), 0)
        a = a * powers
        b = b * powers
        f0, d0 = (jnp.asarray(v, dtype) for v in at0)
        a = a.at[0].set(jnp.where(small, f0 + (a[0] - f0) * ratio, a[0]))
        b = b.at[0].set(jnp.where(small, d0 + (b[0] - d0) * ratio, b[0]))
        scale_tail = ratio**k
        nan = q > _Q_MAX
        roots = [jnp.where(nan, jnp.nan, jnp.sqrt(tl * scale_tail)) for tl in tails]
        return PointFeatures(a, b, *roots)

    def layer_features(self, q: Array, terms: int | None = None) -> PointFeatures:
        """:meth:`features` of variances q of shape (L,) + S, one row q[l] at a time, row axis first.

        Returns PointFeatures with ``a``, ``b`` of shape (L, K) + S and tail roots (L,) + S, the
        layout a ``lax.scan`` over the L rows (the layers of a kernel recursion) takes. Row by row
        (``lax.map``) the table lookup holds |S| × 25 × (2K + 4) numbers at a time instead of L
        times as many (L = 10 rows of 512 points in float64: 13 MB instead of 135 MB, and about
        20× faster on CPU).
        """
        q = jnp.asarray(q)
        if q.ndim < 1:
            raise ValueError(f"q must have a leading row axis, got shape {q.shape}")
        _check_range(q)
        return jax.lax.map(lambda row: self.features(row, terms), q)

    def _terms_for(self, dtype, terms: int | None) -> int:
        if terms is not None:
            if isinstance(terms, bool) or not isinstance(terms, int) or not 1 <= terms <= self.terms:
                raise ValueError(f"terms must be an integer in [1, {self.terms}], got {terms!r}")
            return terms
        return self.terms if jnp.dtype(dtype).itemsize >= 8 else min(self.terms, _F32_TERMS)

    # -- pairs ------------------------------------------------------------------------------
    @staticmethod
    def _series(c1: Array, c2: Array, te1, te2, to1, to2, rho: Array) -> Array:
        """Σ_{k<K} c1_k c2_k ρ^k + tail model, by four interleaved Horner chains in ρ⁴ (more ILP)."""
        k = c1.shape[0]
        r2 = rho * rho
        r4 = r2 * r2
        chains = []
        for j in range(min(4, k)):
            top = j + 4 * ((k - 1 - j) // 4)
            acc = c1[top] * c2[top]
            for i in range(top - 4, -1, -4):
                acc = acc * r4 + c1[i] * c2[i]
            chains.append(acc)
        while len(chains) < 4:
            chains.append(jnp.zeros_like(chains[0]))
        poly = (chains[0] + rho * chains[1]) + r2 * (chains[2] + rho * chains[3])
        ke = k + (k % 2)
        ko = k + 1 - (k % 2)
        tail = 0.0
        for kp, t1, t2 in ((ke, te1, te2), (ko, to1, to2)):
            last = kp - 2  # the last kept coefficient of this parity
            if last < 0:
                tail = tail + (t1 * t2) * rho**kp
                continue
            mu = jnp.sqrt(_ratio(t1, c1[last]) * _ratio(t2, c2[last]))
            # μ rounds to 1 when the last coefficient is below the tail's rounding (float32):
            # keep 1 - μ > 0 so that the factor is 1 at ρ² = 1 instead of 0/0
            mu = jnp.minimum(mu, 1.0 - 4.0 * jnp.finfo(mu.dtype).eps)
            tail = tail + (t1 * t2) * rho**kp * ((1.0 - mu) / (1.0 - mu * r2))
        return poly + tail

    def pair(self, f1: PointFeatures, f2: PointFeatures, rho: Array) -> tuple[Array, Array]:
        """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) from two points' features and their correlation ρ."""
        dual = self._series(f1.a, f2.a, f1.ta_even, f2.ta_even, f1.ta_odd, f2.ta_odd, rho)
        ddual = self._series(f1.b, f2.b, f1.tb_even, f2.tb_even, f1.tb_odd, f2.tb_odd, rho)
        return dual, ddual

    def dual_and_derivative(self, k11: Array, k12: Array, k22: Array, terms: int | None = None, *,
                            bound: bool = False, refine: bool = True) -> tuple[Array, ...]:
        """Both dual maps for broadcastable (k11, k12, k22); per-point work stays on k11's and k22's shapes.

        Pairs whose :meth:`relative_bound` exceeds :func:`refine_tolerance` (near |ρ| = 1 for steep
        φ) are recomputed by :meth:`accurate_pair` (``refine=False``: the series values as they
        are), up to ``REFINE_BATCH · 64`` pairs per call. With ``bound=True`` a third array is
        returned: the relative error bound of each pair, 0 for refined pairs.
        """
        _check_range(k11)
        _check_range(k22)  # before either point's features build the tables
        # one compiled program per shape (refine's lax.cond and scan would otherwise be traced and
        # compiled anew at every eager call: ~0.6 s each)
        return _pair_duals(self, k11, k12, k22, terms, bound, refine)

    def _pair_duals(self, k11: Array, k12: Array, k22: Array, terms: int | None, bound: bool,
                    refine: bool) -> tuple[Array, ...]:
        """The body of :meth:`dual_and_derivative` (traced by :func:`_pair_duals`)."""
        from .activations import correlation  # local: activations imports this module

        rho = correlation(k11, k12, k22)
        f1, f2 = self.features(k11, terms), self.features(k22, terms)
        k, kd = self.pair(f1, f2, rho)
        if not bound and not refine:
            return k, kd
        # the tail model is exact at ρ = ±1 for equal variances (every pinned diagonal entry)
        exact = (jnp.abs(rho) == 1.0) & (jnp.asarray(k11) == jnp.asarray(k22))
        rel = jnp.where(exact, 0.0, self.relative_bound(f1, f2, rho))
        if refine:
            shape = jnp.broadcast_shapes(k.shape, kd.shape, rel.shape)
            k, kd, rel = (jnp.broadcast_to(t, shape) for t in (k, kd, rel))
            n = math.prod(shape)
            rounds = max(1, min(-(-n // REFINE_BATCH), _MAX_ROUNDS))
            flag = rel > refine_tolerance(k.dtype)
            k, kd, left = self.refine(flag, k11, k22, rho, k, kd, rounds=rounds)
            # refined pairs (the two-dimensional rule, ~1e-13) carry no bound, unless some flagged
            # pair was left over (more than REFINE_BATCH · 64): then all flagged keep theirs
            rel = jnp.where(flag & ~left, 0.0, rel)
        return (k, kd, rel) if bound else (k, kd)

    @staticmethod
    def normalized_tails(f: PointFeatures) -> tuple[Array, Array, Array, Array]:
        """Per-point tail roots over each map's scale: (√T_e, √T_o) / √E[φ(√q Z)²] and the same for φ'.

        The per-point half of :meth:`relative_bound` (a sum over the K coefficients per point), so
        that a kernel computes it once per point and layer and :meth:`pair_bound` per pair.
        """
        out = []
        for c, te, to in (("a", "ta_even", "ta_odd"), ("b", "tb_even", "tb_odd")):
            e, o = getattr(f, te), getattr(f, to)
            m = jnp.sum(getattr(f, c) ** 2, axis=0) + e * e + o * o  # E[φ(√q Z)²] of each point
            inv = jnp.where(m > 0, jax.lax.rsqrt(jnp.where(m > 0, m, 1.0)), 0.0)
            out += [e * inv, o * inv]
        return tuple(out)

    @staticmethod
    def pair_bound(n1: tuple, n2: tuple, rho: Array, terms: int) -> Array:
        """:meth:`relative_bound` from two points' :meth:`normalized_tails` and a ``terms``-term series."""
        ke, ko = terms + (terms % 2), terms + 1 - (terms % 2)
        r = jnp.abs(rho)
        r_even = r**ke
        r_odd = r_even * r if ko == ke + 1 else r**ko
        dual = 2.0 * (n1[0] * n2[0] * r_even + n1[1] * n2[1] * r_odd)
        ddual = 2.0 * (n1[2] * n2[2] * r_even + n1[3] * n2[3] * r_odd)
        return jnp.maximum(dual, ddual)

    @staticmethod
    def relative_bound(f1: PointFeatures, f2: PointFeatures, rho: Array) -> Array:
        """The larger of the two maps' error bounds (:meth:`error_bound`), each relative to its
        Cauchy–Schwarz scale √(E[φ(u)²] E[φ(v)²]) (√(E[φ'(u)²] E[φ'(v)²]) for the derivative map).

        The bound is attained only near |ρ| = 1 (it carries |ρ|^K) and is exact, i.e. zero
        error, at |ρ| = 1 for equal variances; it is typically ~20 times the actual error.
        Per-point tails are normalized first (:meth:`normalized_tails`), so a pair costs a power
        of |ρ| and a few products (:meth:`pair_bound`).
        """
        n1, n2 = HermiteDual.normalized_tails(f1), HermiteDual.normalized_tails(f2)
        return HermiteDual.pair_bound(n1, n2, rho, f1.a.shape[0])

    # -- accurate evaluation where the series is not ------------------------------------------
    def accurate_pair(self, q1: Array, q2: Array, rho: Array) -> tuple[Array, Array]:
        """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) by a two-dimensional product rule, for any |ρ| <= 1.

        With u = √q1 z and v = √q2 (ρ z + √(1-ρ²) w), z and w independent standard normals, the
        outer integral over z and the inner one over w each use Gauss–Legendre panels: a uniform
        grid over [-9, 9] plus edges where the argument of φ crosses 0, ±1/2, ±1, ..., ±32 (as the
        coefficient tables resolve steep φ(√q z)). The inner edges follow the inner Gaussian's mean
        √q2 ρ z and width √q2 √(1-ρ²), so nothing degenerates as |ρ| → 1, where the series
        converges slowly and the inner Gaussian narrows. About 1e5 evaluations of φ and φ' per
        pair, so only the pairs flagged by :meth:`relative_bound` take it (:meth:`refine`).

        Args:
          q1, q2, rho: arrays of one shape (M,): variances and correlation of each pair.
        """
        dtype = jnp.result_type(q1, q2, rho, float)
        q1, q2, rho = (jnp.asarray(v, dtype) for v in (q1, q2, rho))
        cut = _ACC_CUT
        grid = jnp.linspace(-cut, cut, _ACC_GRID + 1, dtype=dtype)
        feat = jnp.asarray(_ACC_EDGES, dtype)
        tiny = jnp.finfo(dtype).tiny
        r1, r2 = jnp.sqrt(q1), jnp.sqrt(q2)
        t = (1.0 - rho) * (1.0 + rho)  # 1 ∓ ρ exact near ±1
        s = jnp.where(t > 0, jnp.sqrt(jnp.where(t > 0, t, 1.0)), 0.0)  # no 0·∞ in gradients at |ρ| = 1
        inv1 = 1.0 / jnp.maximum(r1, tiny)
        inv2 = 1.0 / jnp.maximum(r2 * jnp.abs(rho), tiny)  # where the inner mean crosses the edges
        outer = jnp.concatenate([jnp.broadcast_to(grid, q1.shape + grid.shape),
                                 jnp.clip(feat * inv1[..., None], -cut, cut),
                                 jnp.clip(feat * inv2[..., None], -cut, cut)], axis=-1)
        z, wz = _panel_rule(jnp.sort(outer, axis=-1))
        wz = wz * jnp.exp(-0.5 * z * z) * _INV_SQRT_2PI
        m = (r2 * rho)[..., None] * z  # the inner Gaussian's mean at each outer node
        sig = (r2 * s)[..., None, None]
        inner = jnp.concatenate([jnp.broadcast_to(grid, m.shape + grid.shape),
                                 jnp.clip((feat - m[..., None]) / jnp.maximum(sig, tiny), -cut, cut)], axis=-1)
        w, ww = _panel_rule(jnp.sort(inner, axis=-1))
        ww = ww * jnp.exp(-0.5 * w * w) * _INV_SQRT_2PI
        v = m[..., None] + sig * w
        g = jnp.sum(ww * self.fn(v), axis=-1)
        gd = jnp.sum(ww * self.deriv(v), axis=-1)
        u = r1[..., None] * z
        return jnp.sum(wz * self.fn(u) * g, axis=-1), jnp.sum(wz * self.deriv(u) * gd, axis=-1)

    def _accurate_chunked(self, q1: Array, q2: Array, rho: Array) -> tuple[Array, Array]:
        """:meth:`accurate_pair` of (M,) arrays, :data:`_ACC_CHUNK` pairs at a time (bounded memory)."""
        n = q1.shape[0]
        c = min(_ACC_CHUNK, n)
        pad = (-n) % c
        args = [jnp.pad(t, (0, pad), mode="edge").reshape(-1, c) for t in (q1, q2, rho)]
        k, kd = jax.lax.map(lambda t: self.accurate_pair(*t), tuple(args))
        return k.reshape(-1)[:n], kd.reshape(-1)[:n]

    def refine_updates(self, flag: Array, q1: Array, q2: Array, rho: Array, *, batch: int = REFINE_BATCH,
                       rounds: int = 4) -> tuple[Array, Array, Array, Array]:
        """:meth:`accurate_pair` of the flagged entries, as updates for the flattened arrays.

        Up to ``rounds`` rounds, each gathering at most ``batch`` flagged entries
        (``jnp.nonzero`` with a static size); a round with nothing left to do is skipped
        (``lax.cond``). Traceable and differentiable.

        Args:
          flag: bool array; q1, q2, rho broadcasting to its shape.
        Returns:
          (idx, k, kd, left): flat indices (rounds · batch,), n = flag.size where unused (drop them
          when scattering: ``.at[idx].set(k, mode="drop")``), the two accurate duals there, and
          whether flagged entries were left over (more than ``batch · rounds``).
        """
        shape = flag.shape
        n = math.prod(shape)
        size = max(1, min(batch, n))
        q1, q2, rho, left = (jnp.broadcast_to(t, shape).reshape(-1) for t in (q1, q2, rho, flag))
        dtype = jnp.result_type(q1, q2, rho, float)

        def one(left):
            idx = jnp.nonzero(left, size=size, fill_value=n)[0].astype(jnp.int32)
            j = jnp.minimum(idx, n - 1)
            k, kd = self._accurate_chunked(q1[j], q2[j], rho[j])
            return left.at[idx].set(False, mode="drop"), (idx, k.astype(dtype), kd.astype(dtype))

        def skip(left):
            zero = jnp.zeros((size,), dtype)
            return left, (jnp.full((size,), n, jnp.int32), zero, zero)

        def step(left, _):
            return jax.lax.cond(jnp.any(left), one, skip, left)

        left, (idx, k, kd) = jax.lax.scan(step, left, None, length=rounds)
        return idx.reshape(-1), k.reshape(-1), kd.reshape(-1), jnp.any(left)

    def refine(self, flag: Array, q1: Array, q2: Array, rho: Array, k: Array, kd: Array, *,
               batch: int = REFINE_BATCH, rounds: int = 4) -> tuple[Array, Array, Array]:
        """Replace the flagged entries of the series values (k, kd) (of ``flag``'s shape) by
        :meth:`accurate_pair` (:meth:`refine_updates`); returns (k, kd, any flagged entry left).

        When nothing is flagged this costs one reduction (``lax.cond``). Gradients of refined
        entries are those of the series (the rule's nodes move with ρ and have an infinite
        derivative at |ρ| = 1)."""
        shape = flag.shape
        n = math.prod(shape)
        if n == 0:
            return k, kd, jnp.zeros((), bool)

        def work(ops):
            k, kd = ops
            sg = jax.lax.stop_gradient
            idx, kv, kdv, left = self.refine_updates(sg(flag), sg(q1), sg(q2), sg(rho), batch=batch, rounds=rounds)
            j = jnp.minimum(idx, n - 1)

            def put(a, v):  # the accurate value, differentiated as the series (no 0·∞ at |ρ| = 1)
                a = a.reshape(-1)
                return a.at[idx].add(sg(v.astype(a.dtype) - a[j]), mode="drop").reshape(shape)

            return put(k, kv), put(kd, kdv), left

        return jax.lax.cond(jnp.any(flag), work, lambda ops: (*ops, jnp.zeros((), bool)), (k, kd))

    def error_bound(self, k11: Array, k12: Array, k22: Array, terms: int | None = None) -> tuple[Array, Array]:
        """Bounds on |series − truth| of both dual maps: 2 Σ_parity √(T(q1)T(q2)) |ρ|^{K_parity}."""
        from .activations import correlation

        _check_range(k11)
        _check_range(k22)
        rho = jnp.abs(correlation(k11, k12, k22))
        f1, f2 = self.features(k11, terms), self.features(k22, terms)
        k = f1.a.shape[0]
        ke, ko = k + (k % 2), k + 1 - (k % 2)
        ba = 2.0 * (f1.ta_even * f2.ta_even * rho**ke + f1.ta_odd * f2.ta_odd * rho**ko)
        bb = 2.0 * (f1.tb_even * f2.tb_even * rho**ke + f1.tb_odd * f2.tb_odd * rho**ko)
        return ba, bb


@functools.partial(jax.jit, static_argnames=("hd", "terms", "bound", "refine"))
def _pair_duals(hd: HermiteDual, k11: Array, k12: Array, k22: Array, terms, bound: bool, refine: bool):
    return hd._pair_duals(k11, k12, k22, terms, bound, refine)
