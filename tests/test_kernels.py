"""Analytic NNGP/NTK: hand-written formulas, layer split, tiling, symmetry/PSD, parameterizations, errors."""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64: switched on in conftest.py)
from ntknotes import kernels as K
from ntknotes.activations import AccuracyWarning
from ntknotes.kernels import layer_kernels, nngp_ntk


def _x(n, d=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)))


def _relu_one_layer(x, y, sw, sb):
    """Hand-written 1-hidden-layer ReLU NNGP and NTK (numpy), diagonal pinned to θ = 0."""
    d = x.shape[1]
    s = sw**2 * x @ y.T / d + sb**2
    qx = sw**2 * np.sum(x * x, 1) / d + sb**2
    qy = sw**2 * np.sum(y * y, 1) / d + sb**2
    norm = np.sqrt(np.outer(qx, qy))
    cos = np.clip(s / norm, -1, 1)
    theta = np.arccos(cos)
    same = np.all(x[:, None, :] == y[None, :, :], axis=-1)
    theta[same] = 0.0
    nngp = sw**2 * norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) + sb**2
    ntk = s * sw**2 * (np.pi - theta) / (2 * np.pi) + nngp
    return nngp, ntk


def _erf_one_layer(x, y, sw, sb):
    d = x.shape[1]
    s = sw**2 * x @ y.T / d + sb**2
    qx = sw**2 * np.sum(x * x, 1) / d + sb**2
    qy = sw**2 * np.sum(y * y, 1) / d + sb**2
    den = np.outer(1 + 2 * qx, 1 + 2 * qy)
    nngp = sw**2 * 2 / np.pi * np.arcsin(2 * s / np.sqrt(den)) + sb**2
    ntk = s * sw**2 * 4 / np.pi / np.sqrt(den - 4 * s**2) + nngp
    return nngp, ntk


@pytest.mark.parametrize("act,ref", [("relu", _relu_one_layer), ("erf", _erf_one_layer)])
def test_one_hidden_layer_matches_hand_formula(act, ref):
    x, y = np.asarray(_x(30, seed=1)), np.asarray(_x(20, seed=2))
    for sw, sb in [(1.0, 0.0), (1.5, 0.3)]:
        for a, b in [(x, None), (x, y)]:
            k, t = nngp_ntk(a, b, depth=1, activation=act, sigma_w=sw, sigma_b=sb)
            rk, rt = ref(a, a if b is None else b, sw, sb)
            err = max(np.max(np.abs(k - rk) / np.abs(rk).max()), np.max(np.abs(t - rt) / np.abs(rt).max()))
            print(f"{act} sw={sw} sb={sb} symmetric={b is None}: rel. error {err:.1e}")
            assert err < 1e-12


def test_two_layer_tanh_matches_independent_quadrature():
    """Depth 2 with a quadrature-only activation against an independent numpy recursion.

    The reference uses a 301-node Gauss–Legendre rule on [-10, 10] with the Gaussian density
    (Gauss–Hermite converges slowly here: tanh(√k z) has poles near the real axis).
    """
    z, w = np.polynomial.legendre.leggauss(301)
    z, w = 10 * z, 10 * w * np.exp(-0.5 * (10 * z) ** 2) / np.sqrt(2 * np.pi)
    x = np.asarray(_x(4, d=3, seed=3))
    sw, sb = 1.3, 0.2

    def duals(k11, k12, k22):
        rho = k12 / np.sqrt(k11 * k22)
        u = np.sqrt(k11) * z[:, None]
        v = np.sqrt(k22) * (rho * z[:, None] + np.sqrt(max(1 - rho**2, 0)) * z[None, :])
        ww = w[:, None] * w[None, :]
        return np.sum(ww * np.tanh(u) * np.tanh(v)), np.sum(ww / np.cosh(u) ** 2 / np.cosh(v) ** 2)

    n = len(x)
    s = sw**2 * x @ x.T / 3 + sb**2
    th = s.copy()
    for _ in range(2):
        c, cd = np.zeros((n, n)), np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                c[i, j], cd[i, j] = duals(s[i, i], s[i, j], s[j, j])
        s, th = sw**2 * c + sb**2, th * sw**2 * cd + sw**2 * c + sb**2
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)  # variances ~2: inside the series' accurate range
        k, t = nngp_ntk(x, depth=2, activation="tanh", sigma_w=sw, sigma_b=sb)
    print("tanh depth 2:", np.max(np.abs(k - s)), np.max(np.abs(t - th)))
    np.testing.assert_allclose(k, s, atol=1e-8)
    np.testing.assert_allclose(t, th, atol=1e-8)
    # inputs of norm 30 with a near-parallel pair (ρ ≈ 1 - 1e-12): the Hermite series of tanh is
    # certified only to ~1e-1 there (tests/test_reliability_accuracy.py); the tiles recompute those
    # pairs by the two-dimensional rule (accuracy: tests/test_activation_duals.py), so no warning
    big = np.array(x)
    big[1] = big[0] + 1e-6 * big[1]
    big *= 30 / np.linalg.norm(big, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AccuracyWarning)
        kb, tb = nngp_ntk(big, depth=2, activation="tanh", sigma_w=sw, sigma_b=sb)
    assert np.all(np.isfinite(kb)) and np.all(np.isfinite(tb))


def test_linear_network_closed_form_and_relu_diagonal():
    x = _x(7, seed=4)
    L, sw = 4, 1.3
    k, t = nngp_ntk(x, depth=L, activation="identity", sigma_w=sw)
    g = np.asarray(x @ x.T) / x.shape[1]
    np.testing.assert_allclose(k, sw ** (2 * (L + 1)) * g, rtol=1e-12)
    np.testing.assert_allclose(t, (L + 1) * sw ** (2 * (L + 1)) * g, rtol=1e-12)
    # ReLU with σ_w² = 2 preserves the diagonal: Θ(x, x) = (L + 1)·2‖x‖²/d
    diag = nngp_ntk(x, depth=L, activation="relu", sigma_w=math.sqrt(2), diagonal=True)
    np.testing.assert_allclose(diag.ntk, (L + 1) * 2 * np.diag(g), rtol=1e-13)


@pytest.mark.parametrize("act", ["relu", "erf", "leaky_relu"])
def test_layer_contributions_sum_to_ntk(act):
    x, y = _x(9, seed=5), _x(6, seed=6)
    for b in (None, y):
        lk = layer_kernels(x, b, depth=3, activation=act, sigma_w=1.4, sigma_b=0.2)
        k, t = nngp_ntk(x, b, depth=3, activation=act, sigma_w=1.4, sigma_b=0.2)
        assert lk.nngp.shape == lk.contributions.shape == (4, 9, 9 if b is None else 6)
        np.testing.assert_allclose(lk.contributions.sum(0), t, rtol=1e-12)
        np.testing.assert_allclose(lk.ntk[-1], t, rtol=1e-12)
        np.testing.assert_allclose(lk.nngp[-1], k, rtol=1e-12)


def test_tiled_equals_untiled_and_diagonal_mode():
    x, y = _x(700, d=8, seed=7), _x(300, d=8, seed=8)
    kw = dict(depth=3, activation="relu", sigma_w=1.4, sigma_b=0.1)
    full = nngp_ntk(x, **kw)  # packed upper-triangular path (N >= 512)
    square = nngp_ntk(x, x + 0.0, **kw)  # full-square cross path
    tiled = nngp_ntk(x, block_size=256, **kw)
    for a in (square, tiled):
        np.testing.assert_allclose(a.ntk, full.ntk, rtol=1e-12)
        np.testing.assert_allclose(a.nngp, full.nngp, rtol=1e-12)
    cross = nngp_ntk(x, y, **kw)
    cross_t = nngp_ntk(x, y, block_size=128, **kw)
    np.testing.assert_allclose(cross_t.ntk, cross.ntk, rtol=1e-13)
    diag = nngp_ntk(x, diagonal=True, **kw)
    np.testing.assert_allclose(diag.ntk, np.diag(full.ntk), rtol=1e-13)
    np.testing.assert_allclose(diag.nngp, np.diag(full.nngp), rtol=1e-13)
    assert np.array_equal(full.ntk, np.asarray(full.ntk).T)


@pytest.mark.parametrize("seed", range(3))
def test_symmetric_and_psd_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    for act in ["relu", "erf", "leaky_relu", "sin"]:
        depth = int(rng.integers(1, 6))
        sw, sb = float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 1))
        x = jnp.asarray(rng.normal(size=(40, 6)) * rng.uniform(0.1, 3))
        for kern in nngp_ntk(x, depth=depth, activation=act, sigma_w=sw, sigma_b=sb):
            kern = np.asarray(kern)
            assert np.array_equal(kern, kern.T)
            ev = np.linalg.eigvalsh(kern)
            assert ev.min() >= -1e-10 * ev.max(), (act, depth, ev.min(), ev.max())


def test_standard_parameterization():
    x = _x(12, seed=9)
    kw = dict(depth=2, activation="relu", sigma_w=1.3, sigma_b=0.2)
    ntk_p = nngp_ntk(x, **kw)
    sps = [nngp_ntk(x, parameterization="standard", width=n, **kw) for n in (100, 200, 300)]
    for sp in sps:  # same NNGP
        np.testing.assert_allclose(sp.nngp, ntk_p.nngp, rtol=1e-14)
    t1, t2, t3 = (np.asarray(sp.ntk) for sp in sps)
    # the SP NTK is affine in the width with a positive slope: zero second difference
    np.testing.assert_allclose(t3 - 2 * t2 + t1, 0, atol=1e-10 * np.abs(t3).max())
    assert np.all(np.diag(t2 - t1) > 0)
    assert np.diag(t3).mean() / np.diag(t1).mean() == pytest.approx(3, rel=0.05)


def test_bad_input_raises_clear_errors():
    x = _x(4)
    with pytest.raises(ValueError, match="same feature shape"):
        nngp_ntk(x, _x(3, d=4), depth=2)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        nngp_ntk(x, depth=0)
    with pytest.raises(TypeError, match="depth"):
        nngp_ntk(x, depth=1.5)
    with pytest.raises(ValueError, match="sigma_w must be a finite number >= 0, got -1"):
        nngp_ntk(x, depth=1, sigma_w=-1.0)
    with pytest.raises(ValueError, match="sigma_b"):
        nngp_ntk(x, depth=1, sigma_b=float("nan"))
    with pytest.raises(ValueError, match="x1 contains 1 NaN"):
        nngp_ntk(x.at[0, 0].set(jnp.nan), depth=1)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nngp_ntk(x, depth=1, activation="swish")
    with pytest.raises(ValueError, match="parameterization must be one of"):
        nngp_ntk(x, depth=1, parameterization="mup")
    with pytest.raises(ValueError, match="pass width"):
        nngp_ntk(x, depth=1, parameterization="standard")
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        nngp_ntk(x[0], depth=1)
    with pytest.raises(ValueError, match="block_size"):
        nngp_ntk(x, depth=1, block_size=0)


def test_float32_option():
    k, t = nngp_ntk(_x(600, seed=10), depth=3, dtype=jnp.float32)
    assert t.dtype == jnp.float32
    t64 = nngp_ntk(_x(600, seed=10), depth=3).ntk
    assert np.max(np.abs(np.asarray(t) - t64)) / np.abs(t64).max() < 1e-5
