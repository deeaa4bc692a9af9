"""Closed-form GELU duals and the Hermite-series path against scipy adaptive quadrature.

The reference is nested ``scipy.integrate.quad`` (adaptive Gauss–Kronrod, epsrel 1e-13) of
E[f(√q1 z1) g(√q2 (ρ z1 + √(1-ρ²) z2))], written with scalar ``math`` functions only, so it
shares no code with the package. Errors are measured relative to the scale
√(E[f(u)²] E[g(v)²]) (the Cauchy–Schwarz bound on the dual), because odd activations have
duals that vanish at ρ = 0 where a pointwise relative error means nothing.

The quadratures of the fixed grids below take minutes, so their results are stored in
``tests/data/dual_references.json``, written by this same code (``python
tests/test_activation_duals.py``); ``test_reference_table_is_complete_and_reproducible``
recomputes a sample of it and checks that it covers every grid point. Anything not in the table
is computed on the spot.
"""
import dataclasses
import functools
import json
import math
import sys
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import integrate  # noqa: E402

from ntknotes import activations as A  # noqa: E402
from ntknotes import kernels, networks  # noqa: E402

_SQ2PI = math.sqrt(2.0 * math.pi)
_CUT = 13.0
ONE = 1.0 - 1e-12
RHOS = (-ONE, -0.6, 0.0, 0.5, 0.95, ONE)


def _pdf(z):
    return math.exp(-0.5 * z * z) / _SQ2PI


def _quad(h, lo, hi, pts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return integrate.quad(h, lo, hi, points=pts or None, epsabs=1e-16, epsrel=1e-13, limit=400)[0]


def reference(f, g, q1, q2, rho):
    """E[f(u) g(v)] for (u, v) ~ N(0, [[q1, ρ√(q1q2)], [ρ√(q1q2), q2]]) by nested adaptive quad."""
    s1, s2 = math.sqrt(q1), math.sqrt(q2)
    s = math.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))

    def inner(z1):
        m, b = s2 * rho * z1, s2 * s
        if b == 0.0:
            return g(m)
        zs = -rho * z1 / s  # where the argument of g crosses 0 (kinks / steep parts live there)
        return _quad(lambda z2: g(m + b * z2) * _pdf(z2), -_CUT, _CUT, [zs] if abs(zs) < _CUT else [])

    return _quad(lambda z1: f(s1 * z1) * _pdf(z1) * inner(z1), -_CUT, _CUT, [0.0])


def _second_moment(f, q):
    return _quad(lambda z: f(math.sqrt(q) * z) ** 2 * _pdf(z), -_CUT, _CUT, [0.0])


def _phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


SCALAR = {  # (φ, φ') as scalar math functions
    "gelu": (lambda z: z * _phi(z), lambda z: _phi(z) + z * _pdf(z)),
    "tanh": (math.tanh, lambda z: 1.0 - math.tanh(z) ** 2),
    "silu": (lambda z: z * _sig(z), lambda z: _sig(z) * (1.0 + z * (1.0 - _sig(z)))),
    "softplus": (_softplus, _sig),
    # a user callable: φ(z) = z e^{-z²/8} + 0.3 cos z (neither odd nor even, no closed form)
    "callable": (
        lambda z: z * math.exp(-z * z / 8) + 0.3 * math.cos(z),
        lambda z: (1.0 - z * z / 4) * math.exp(-z * z / 8) - 0.3 * math.sin(z),
    ),
}


@functools.lru_cache(maxsize=None)
def _act(name):
    if name == "callable":
        return A.from_callable(lambda z: z * jnp.exp(-z * z / 8) + 0.3 * jnp.cos(z), name="bump")
    return A.get_activation(name)


TABLE = Path(__file__).with_name("data") / "dual_references.json"


def _key(name, q1, q2, rho) -> str:
    return f"{name} {float(q1)!r} {float(q2)!r} {float(rho)!r}"


def _live(name, q1, q2, rho):
    """(E[φφ], E[φ'φ'], and their Cauchy–Schwarz scales) by nested adaptive quadrature."""
    f, g = SCALAR[name]
    val = reference(f, f, q1, q2, rho)
    der = reference(g, g, q1, q2, rho)
    scale = math.sqrt(_second_moment(f, q1) * _second_moment(f, q2))
    dscale = math.sqrt(_second_moment(g, q1) * _second_moment(g, q2))
    return val, der, scale, dscale


@functools.lru_cache(maxsize=None)
def _table() -> dict:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {}


@functools.lru_cache(maxsize=None)
def _ref(name, q1, q2, rho):
    stored = _table().get(_key(name, q1, q2, rho))
    return tuple(stored) if stored is not None else _live(name, q1, q2, rho)


def _check(name, pairs, tol, rhos=RHOS):
    act = _act(name)
    worst = 0.0
    for q1, q2 in pairs:
        k11, k22 = jnp.asarray(q1), jnp.asarray(q2)
        for rho in rhos:
            k12 = jnp.asarray(rho * math.sqrt(q1 * q2))
            val, der, scale, dscale = _ref(name, q1, q2, rho)
            got, gotd = (float(v) for v in act.dual_and_derivative(k11, k12, k22))
            e1, e2 = abs(got - val) / scale, abs(gotd - der) / dscale
            worst = max(worst, e1, e2)
            assert e1 <= tol and e2 <= tol, (name, q1, q2, rho, got, val, gotd, der)
            # the separate maps agree with the pair
            assert float(act.dual(k11, k12, k22)) == pytest.approx(got, rel=1e-14, abs=1e-300)
    return worst


VARS = (1e-3, 1.0, 1e3)
GELU_PAIRS = [(1e-3, 1e-3), (1.0, 1.0), (1e3, 1e3), (1e-3, 1e3), (1.0, 30.0)]
SERIES_RHOS = (-ONE, 0.0, 0.5, 0.95, ONE)
STEEP = [(1e3, 1e3, 0.95), (1e3, 300.0, 0.95), (1e3, 1e3, ONE), (1e3, 1e3, -0.6)]  # (q1, q2, ρ)


def test_gelu_closed_form_against_scipy_quadrature():
    """GELU E[φφ], E[φ'φ'] to 1e-10 of the scale, over variances 1e-3..1e3 and ρ up to ±(1-1e-12)."""
    pairs = GELU_PAIRS
    _check("gelu", pairs, 1e-10)
    # pointwise relative error as well where the dual is far from 0 (ρ >= 0)
    act = A.gelu()
    for q1, q2 in pairs:
        for rho in (0.0, 0.5, ONE):
            val, der, _, _ = _ref("gelu", q1, q2, rho)
            got, gotd = act.dual_and_derivative(jnp.asarray(q1), jnp.asarray(rho * math.sqrt(q1 * q2)), jnp.asarray(q2))
            assert float(got) == pytest.approx(val, rel=1e-10)
            assert float(gotd) == pytest.approx(der, rel=1e-10)


def test_gelu_closed_form_broadcasts_and_is_finite_at_extremes():
    """Unbroadcast per-point shapes (N,1),(N,M),(1,M) work; variances 1e-300..1e100 and ρ = ±1 stay finite."""
    act = A.gelu()
    q = jnp.array([1e-300, 1e-3, 1.0, 1e3, 1e100])
    k11, k22 = q[:, None], q[None, :]
    for rho in (-1.0, 0.0, 1.0):
        k12 = rho * jnp.sqrt(k11) * jnp.sqrt(k22)
        c, cd = act.dual_and_derivative(k11, k12, k22)
        assert c.shape == cd.shape == (5, 5)
        assert bool(jnp.all(jnp.isfinite(c))) and bool(jnp.all(jnp.isfinite(cd)))
    # diagonal: E[φ(u)²] at q = 1 by 1D quadrature
    f = SCALAR["gelu"][0]
    assert float(act.dual(1.0, 1.0, 1.0)) == pytest.approx(_second_moment(f, 1.0), rel=1e-12)


# moderate variances: the series converges geometrically and is certified below 1e-9
SERIES_PAIRS = [(1e-3, 1e-3), (1.0, 1.0), (1e-3, 1e3), (0.3, 3.0)]


@pytest.mark.parametrize("name", ["tanh", "silu", "softplus", "callable"])
def test_series_path_against_scipy_quadrature(name):
    """Hermite-series duals to 1e-9 of the scale, E[φφ] and E[φ'φ'], ρ up to ±(1-1e-12)."""
    pairs = SERIES_PAIRS if name != "callable" else SERIES_PAIRS[1:3]  # its reference is slow
    _check(name, pairs, 1e-9, rhos=SERIES_RHOS)


@pytest.mark.parametrize("name", ["tanh"])
def test_series_error_bound_is_honest_for_steep_pairs(name):
    """For q = 1e3 (φ(√q z) nearly a step) the reported bound covers the true error, and
    q1 = q2 at ρ = ±(1 - 1e-12) is still accurate (the tail model is exact at |ρ| = 1)."""
    act = _act(name)
    for q1, q2, rho in STEEP:
        val, der, scale, dscale = _ref(name, q1, q2, rho)
        args = (jnp.asarray(q1), jnp.asarray(rho * math.sqrt(q1 * q2)), jnp.asarray(q2))
        got, gotd = act.dual_and_derivative(*args)
        b, bd = act.dual_error_bound(*args)
        assert abs(float(got) - val) <= float(b) + 1e-12 * scale
        assert abs(float(gotd) - der) <= float(bd) + 1e-12 * dscale
        if q1 == q2 and rho == ONE:
            assert abs(float(got) - val) <= 1e-9 * scale and abs(float(gotd) - der) <= 1e-9 * dscale


def test_series_is_exact_for_polynomials_and_uses_series():
    """A Hermite polynomial φ = Σ c_k h_k at unit variances has the exact dual Σ c_k² ρ^k."""
    assert A.tanh().uses_series and A.silu().uses_series and not A.gelu().uses_series
    assert not A.hermite_series((0.0, 1.0)).uses_series  # polynomials keep the quadrature
    c = (0.1, 0.7, -0.2, 0.3)
    p = dataclasses.replace(A.hermite_series(c), fast_series=True)
    rho = jnp.array([-1.0, -0.3, 0.0, 0.8, 1.0])
    exact = sum(ck * ck * rho**k for k, ck in enumerate(c))
    np.testing.assert_allclose(p.dual_and_derivative(1.0, rho, 1.0)[0], exact, rtol=1e-11, atol=1e-13)


def _x(n=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[1] = x[0] * 1.0  # a duplicate point: ρ = 1 exactly
    x[2] = -x[0]  # an antipodal one: ρ = -1
    return jnp.asarray(x)


@pytest.mark.parametrize("name", ["tanh", "gelu"])
@pytest.mark.parametrize("depth", [3, 100])
def test_smooth_kernels_symmetric_psd(name, depth):
    x = _x()
    kp = kernels.nngp_ntk(x, depth=depth, activation=name, sigma_w=1.5, sigma_b=0.1)
    for m in (np.asarray(kp.nngp), np.asarray(kp.ntk)):
        assert np.all(np.isfinite(m))
        np.testing.assert_allclose(m, m.T, rtol=0, atol=1e-12 * np.abs(m).max())
        assert np.linalg.eigvalsh(m).min() >= -1e-10 * np.abs(m).max()
    # the diagonal matches the diagonal-only recursion and the duplicate row
    diag = kernels.nngp_ntk(x, depth=depth, activation=name, sigma_w=1.5, sigma_b=0.1, diagonal=True)
    np.testing.assert_allclose(np.diag(np.asarray(kp.ntk)), np.asarray(diag.ntk), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(kp.ntk)[0], np.asarray(kp.ntk)[1], rtol=1e-10)


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_nngp_matches_finite_networks_monte_carlo(name):
    """Output covariance of 1000 random width-128 depth-3 networks vs the analytic NNGP: every
    entry within 5 standard errors plus a 1/width bias allowance of 3/128 of the scale."""
    x = _x(n=3, d=4, seed=1)[jnp.array([0, 3, 4])]
    depth, sw, sb, width, draws = 3, 1.5, 0.1, 128, 1000
    k = np.asarray(kernels.nngp_ntk(x, depth=depth, activation=name, sigma_w=sw, sigma_b=sb).nngp)
    net = networks.MLP(in_dim=4, width=width, depth=depth, activation=name, sigma_w=sw, sigma_b=sb)
    keys = jax.random.split(jax.random.PRNGKey(17), draws)
    out = np.asarray(jax.lax.map(lambda kk: net.apply(net.init(kk), x)[:, 0], keys, batch_size=100))  # (draws, 3)
    prods = out[:, :, None] * out[:, None, :]
    emp, se = prods.mean(0), prods.std(0) / math.sqrt(draws)
    z = (emp - k) / (se + 3.0 / width * np.abs(k).max())
    assert np.abs(z).max() < 5.0, z


def test_series_float32_kernel_is_finite_on_the_diagonal():
    """float32 (24 terms): μ used to round to 1 and give 0/0 on diagonal entries (N = 1000 benchmark)."""
    act = A.tanh()
    q = jnp.linspace(0.5, 4.0, 64, dtype=jnp.float32)
    c, cd = act.dual_and_derivative(q, q, q)
    assert c.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(c))) and bool(jnp.all(jnp.isfinite(cd)))
    ref = act.dual_and_derivative(q.astype(jnp.float64), q.astype(jnp.float64), q.astype(jnp.float64))
    np.testing.assert_allclose(np.asarray(c), np.asarray(ref[0]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cd), np.asarray(ref[1]), rtol=1e-5)


# ----------------------------------------------------------------------------
# the kernel recursion with per-point series data passed into the tiles
# ----------------------------------------------------------------------------
def _by_entries(act, x1, x2, depth, sw, sb):
    """NNGP and NTK (NTK parameterization) with every layer's duals from
    Activation.dual_and_derivative(k11, k12, k22) on the pairs' own variances and covariance: the
    per-entry evaluation the tiles used before per-point series data were passed in (one compiled
    call on vectors of 64 pairs, the diagonal passes included)."""
    duals = jax.jit(act.dual_and_derivative)
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]

    def call(k11, k12, k22):  # flat pairs, padded to 64
        m = k11.size
        pad = [np.pad(np.asarray(v, np.float64).ravel(), (0, 64 - m), constant_values=1.0) for v in (k11, k12, k22)]
        c, cd = duals(*pad)
        return np.asarray(c)[:m], np.asarray(cd)[:m]

    q1, q2 = sw**2 * np.sum(x1 * x1, 1) / d + sb**2, sw**2 * np.sum(x2 * x2, 1) / d + sb**2
    s = (sw**2 * (x1 @ x2.T) / d + sb**2).ravel()
    th = s
    for _ in range(depth):
        c, cd = call(np.repeat(q1, n2), s, np.tile(q2, n1))
        th = th * sw**2 * cd + sw**2 * c + sb**2
        s = sw**2 * c + sb**2
        qq = np.concatenate([q1, q2])
        qq = sw**2 * call(qq, qq, qq)[0] + sb**2
        q1, q2 = qq[:n1], qq[n1:]
    return s.reshape(n1, n2), th.reshape(n1, n2)


def test_tiles_with_per_point_series_data_equal_the_per_entry_duals():
    """tanh, depth 3: tiles of 4 points (7 and 5 points, so padded blocks; columns padded to 8
    inside each tile), a duplicate and an antipodal point, a symmetric and a cross kernel: both
    kernels equal the per-entry evaluation to 1e-13 of the largest entry."""
    from ntknotes.stax import _fc

    assert [_fc.padded_width(n, 8) for n in (4, 512, 520)] == [8, 520, 520]
    assert [_fc.padded_width(n, 4) for n in (4, 512)] == [16, 528]
    act = A.tanh()
    x1, x2 = np.asarray(_x(7, 5, seed=3)), np.asarray(_x(5, 5, seed=4))
    for a, b in ((x1, None), (x1, x2)):
        kp = kernels.nngp_ntk(a, b, depth=3, activation=act, sigma_w=1.4, sigma_b=0.1, block_size=4)
        ref = _by_entries(act, a, a if b is None else b, 3, 1.4, 0.1)
        for got, want in zip(kp, ref):
            np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-13 * np.abs(want).max())



# issue 17, near |ρ| = 1: the fast path against scipy at 1e-9, steep variances included
NEAR_ONE_RHOS = (0.0, 0.5, -0.5, 0.99, -0.99, 0.999, -0.999, 1 - 1e-6, -(1 - 1e-6), ONE, -ONE)
NEAR_ONE_PAIRS = ((1e-3, 1e-3), (1.0, 1.0), (30.0, 30.0), (900.0, 900.0), (900.0, 1e3))


@pytest.mark.parametrize("name", ["tanh", "silu", "softplus", "callable"])
def test_series_near_one_against_scipy_quadrature(name):
    """Both dual maps to 1e-9 relative (of the value, or of 1e-3 of the Cauchy–Schwarz scale where
    the value is smaller, e.g. odd φ at ρ = 0) at variances 1e-3..1e3 and ρ up to ±(1 - 1e-12):
    pairs whose series bound exceeds 1e-11 (steep φ near |ρ| = 1, where the series is off by up to
    40%) are recomputed by the two-dimensional rule (HermiteDual.accurate_pair), silently.

    The user callable φ(z) = z e^{-z²/8} + 0.3 cos z is checked up to q = 30: at q = 900 cos(30 z)
    oscillates ~170 times over the Gaussian's range, which neither the coefficient tables nor the
    accurate rule resolve (errors ~1e-2 at |ρ| >= 0.99, and at ρ = 1 from the tables)."""
    act = _act(name)
    pairs = NEAR_ONE_PAIRS if name != "callable" else NEAR_ONE_PAIRS[:3]
    grid = [(q1, q2, rho) for q1, q2 in pairs for rho in NEAR_ONE_RHOS]
    q1, q2, rho = (np.array(v) for v in zip(*grid))
    with warnings.catch_warnings():
        warnings.simplefilter("error", A.AccuracyWarning)
        got = np.asarray(act.dual_and_derivative(jnp.asarray(q1), jnp.asarray(rho * np.sqrt(q1 * q2)), jnp.asarray(q2)))
    worst = 0.0
    for i, key in enumerate(grid):
        val, der, scale, dscale = _ref(name, *key)
        for g, want, sc in ((got[0, i], val, scale), (got[1, i], der, dscale)):
            err = abs(g - want) / max(abs(want), 1e-3 * sc)
            worst = max(worst, err)
            assert err <= 1e-9, (name, key, g, want)
    print(name, "worst relative error", worst)


def test_series_refines_only_what_needs_it():
    """The series alone (refine=False) is off by up to 14% at q = 900, ρ = 0.999 (inside its bound);
    the refined maps return its values unchanged wherever the bound is below 1e-11."""
    hd = _act("tanh").hermite
    q = jnp.array([1.0, 900.0, 900.0, 900.0])
    rho = jnp.array([0.5, 0.5, 0.999, 1.0])
    args = (q, rho * q, q)
    series = np.asarray(hd.dual_and_derivative(*args, refine=False, bound=True))
    refined = np.asarray(hd.dual_and_derivative(*args, bound=True))
    flagged = series[2] > 1e-11
    assert flagged.tolist() == [False, False, True, False]
    np.testing.assert_array_equal(refined[:2, ~flagged], series[:2, ~flagged])
    val, der, _, _ = _ref("tanh", 900.0, 900.0, 0.999)
    assert abs(series[1, 2] / der - 1) > 0.05 and abs(refined[1, 2] / der - 1) < 1e-10
    assert refined[2, 2] == 0.0  # refined pairs carry no bound


def test_kernel_with_near_duplicate_points_at_steep_settings():
    """A tanh NTK of inputs of norm 30 (first-layer variances ~900) with near-duplicate and
    near-antipodal points equals the recursion on per-entry scipy duals to 1e-9 of √(K_ii K_jj):
    the fused tiles refine the flagged pairs layer by layer, without an AccuracyWarning."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3))
    x[1] = x[0] + 1e-6 * rng.normal(size=3)
    x[2] = -x[0] + 1e-4 * rng.normal(size=3)
    x[3] = x[4] + 1e-3 * rng.normal(size=3)
    x *= 30 / np.linalg.norm(x, axis=1, keepdims=True)
    sw, sb, depth = 1.0, 0.1, 2
    f, g = SCALAR["tanh"]
    n = len(x)
    s = sw**2 * x @ x.T / 3 + sb**2
    th = s.copy()
    for _ in range(depth):
        c, cd = np.zeros((n, n)), np.zeros((n, n))
        for i in range(n):
            for j in range(i, n):
                rho = 1.0 if i == j else s[i, j] / math.sqrt(s[i, i] * s[j, j])
                c[i, j] = c[j, i] = reference(f, f, s[i, i], s[j, j], rho)
                cd[i, j] = cd[j, i] = reference(g, g, s[i, i], s[j, j], rho)
        s, th = sw**2 * c + sb**2, th * sw**2 * cd + sw**2 * c + sb**2
    with warnings.catch_warnings():
        warnings.simplefilter("error", A.AccuracyWarning)
        k, t = kernels.nngp_ntk(jnp.asarray(x), depth=depth, activation="tanh", sigma_w=sw, sigma_b=sb)
    for got, want in ((k, s), (t, th)):
        d = np.sqrt(np.diag(want))
        err = np.abs(np.asarray(got) - want) / np.outer(d, d)
        assert err.max() <= 1e-9, err.max()



def grid_points() -> list[tuple]:
    """Every (name, q1, q2, ρ) of the fixed grids of this module (those the table stores)."""
    pts = [("gelu", q1, q2, r) for q1, q2 in GELU_PAIRS for r in RHOS]
    for name in ("tanh", "silu", "softplus", "callable"):
        pairs = SERIES_PAIRS if name != "callable" else SERIES_PAIRS[1:3]
        pts += [(name, q1, q2, r) for q1, q2 in pairs for r in SERIES_RHOS]
        pairs = NEAR_ONE_PAIRS if name != "callable" else NEAR_ONE_PAIRS[:3]
        pts += [(name, q1, q2, r) for q1, q2 in pairs for r in NEAR_ONE_RHOS]
    pts += [("tanh", *p) for p in STEEP]
    return list(dict.fromkeys(pts))


def test_reference_table_is_complete_and_reproducible():
    """The stored quadratures cover every grid point and equal a fresh computation of a sample
    (the extremes: ρ = ±(1 - 1e-12) at the steepest variances, and a moderate point) to 1e-12."""
    table = _table()
    missing = [p for p in grid_points() if _key(*p) not in table]
    assert not missing, f"{len(missing)} grid points missing from {TABLE.name}; rerun this module as a script"
    sample = [("tanh", 900.0, 1e3, ONE), ("softplus", 900.0, 900.0, -ONE), ("gelu", 1e-3, 1e3, -0.6),
              ("silu", 30.0, 30.0, 1 - 1e-6), ("callable", 1.0, 1.0, 0.95)]
    for p in sample:
        stored, fresh = table[_key(*p)], _live(*p)
        for a, b, sc in zip(stored[:2], fresh[:2], (fresh[2], fresh[3])):
            assert abs(a - b) <= 1e-12 * sc, (p, a, b)
        np.testing.assert_allclose(stored[2:], fresh[2:], rtol=1e-12)


def _write_table() -> None:
    from concurrent.futures import ProcessPoolExecutor

    pts = grid_points()
    with ProcessPoolExecutor() as pool:
        values = list(pool.map(_live_args, pts, chunksize=4))
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text(json.dumps({_key(*p): v for p, v in zip(pts, values)}, indent=0, sort_keys=True) + "\n")
    print(f"wrote {len(pts)} entries to {TABLE}")


def _live_args(p):
    return _live(*p)


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit("usage: python tests/test_activation_duals.py  (rewrites tests/data/dual_references.json)")
    _write_table()


@pytest.mark.parametrize("name", ["tanh", "gelu", "relu"])
def test_diagonal_duals_are_the_dual_maps_at_rho_one(name):
    """E[φ(u)²], E[φ'(u)²] for u ~ N(0, q), as the diagonal passes take them, equal the dual maps at
    k11 = k12 = k22 = q (on the series: its sum at ρ = 1, whose bound is 0), q over the table range."""
    act = _act(name)
    q = jnp.array([1e-3, 0.3, 1.0, 30.0, 900.0, 1e5])
    k, kd = act.diagonal_duals(q)
    k2, kd2 = act.dual_and_derivative(q, q, q)
    np.testing.assert_allclose(np.asarray(k), np.asarray(k2), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(kd), np.asarray(kd2), rtol=1e-14)
    if name == "tanh":  # against one-dimensional scipy quadrature
        f, g = SCALAR["tanh"]
        for qi, ki, kdi in zip(np.asarray(q)[1:5], np.asarray(k)[1:5], np.asarray(kd)[1:5]):
            s = math.sqrt(qi)
            for fn, got in ((f, ki), (g, kdi)):
                want = integrate.quad(lambda z: fn(s * z) ** 2 * math.exp(-z * z / 2), -40, 40, points=[0.0],
                                      epsabs=0, epsrel=1e-13, limit=400)[0] / math.sqrt(2 * math.pi)
                assert abs(got / want - 1) < 1e-10, (qi, got, want)


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_diagonal_duals_reject_bad_variances(name):
    act = _act(name)
    with pytest.raises(ValueError, match="q is a variance"):
        act.diagonal_duals(jnp.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="q contains NaN"):
        act.diagonal_duals(jnp.array([jnp.nan]))
    with pytest.raises(TypeError, match="q must be an array"):
        act.diagonal_duals("x")
