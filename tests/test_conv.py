"""Convolutional NNGP/NTK: against the fully-connected kernel on 1×1 images, against a direct
NumPy recursion, and against Monte Carlo over finite CNNs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401
from ntknotes import conv
from ntknotes.stax import _cntk
from ntknotes.activations import abrelu, get_activation
from ntknotes.cnn import CNN
from ntknotes.conv import conv_kernels, conv_nngp_ntk
from ntknotes.conv_cpu import LANES, fused_readouts, relu_family_coefficients
from ntknotes.empirical import empirical_nngp, empirical_ntk
from ntknotes.kernels import nngp_ntk


@pytest.mark.parametrize("backend", ["xla", "numba"])
@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_one_pixel_images_equal_fully_connected(depth, pooling, backend):
    # on 1×1 images only the centre tap of each 3×3 filter sees data: each convolution is a dense
    # layer with σ_w²/9 instead of σ_w²; with σ_b = 0 and ReLU that scales every NTK term by 9^-L
    x = np.random.default_rng(0).normal(size=(6, 1, 1, 4))
    k = conv_nngp_ntk(x, depth=depth, pooling=pooling, backend=backend)
    fc = nngp_ntk(x.reshape(6, 4), depth=depth, sigma_w=math.sqrt(2.0))
    np.testing.assert_allclose(k.nngp * 9.0**depth, fc.nngp, rtol=1e-10)
    np.testing.assert_allclose(k.ntk * 9.0**depth, fc.ntk, rtol=1e-7)


@pytest.mark.parametrize("activation", ["leaky_relu", "erf"])
def test_one_pixel_images_other_activations(activation):
    # σ_w = 3 makes each 1×1 convolution a dense layer with σ_w = 1; only the readout keeps σ_w² = 9,
    # so the kernels minus the readout bias are 9 times the fully-connected ones (ReLU-family
    # fast path for leaky ReLU, the general closed-form duals for erf)
    x = np.random.default_rng(1).normal(size=(5, 1, 1, 3))
    for depth in (1, 3):
        k = conv_nngp_ntk(x, depth=depth, pooling="gap", activation=activation, sigma_w=3.0, sigma_b=0.3)
        fc = nngp_ntk(x.reshape(5, 3), depth=depth, activation=activation, sigma_w=1.0, sigma_b=0.3)
        np.testing.assert_allclose(k.nngp - 0.09, 9.0 * (fc.nngp - 0.09), rtol=1e-9)
        np.testing.assert_allclose(k.ntk - 0.09, 9.0 * (fc.ntk - 0.09), rtol=1e-7)


def _reference(x1, x2, depth, sw2=2.0, sb2=0.1):
    """Direct NumPy recursion over explicit pixel pairs (no tiling, no fast arccos)."""
    n, h, w, c = x1.shape
    hw = h * w
    nb = [[(i + a) * w + (j + b) if 0 <= i + a < h and 0 <= j + b < w else -1
           for a in (-1, 0, 1) for b in (-1, 0, 1)] for i in range(h) for j in range(w)]

    def box(m):  # m: (hw, hw) -> aligned 3×3 box sum
        out = np.zeros_like(m)
        for p in range(hw):
            for q in range(hw):
                out[p, q] = sum(m[nb[p][t], nb[q][t]] for t in range(9) if nb[p][t] >= 0 and nb[q][t] >= 0)
        return out

    def relu_duals(k11, k12, k22):
        s = np.sqrt(k11 * k22)
        rho = np.clip(k12 / s, -1, 1)
        th = np.arccos(rho)
        return s * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi), (np.pi - th) / (2 * np.pi)

    out = np.zeros((4, len(x1), len(x2)))
    for a in range(len(x1)):
        for b in range(len(x2)):
            xa, xb = x1[a].reshape(hw, c), x2[b].reshape(hw, c)
            sab = sw2 / 9 * box(xa @ xb.T / c) + sb2
            saa = sw2 / 9 * box(xa @ xa.T / c) + sb2
            sbb = sw2 / 9 * box(xb @ xb.T / c) + sb2
            t = sab
            for l in range(depth):
                c_ab, cd = relu_duals(np.diag(saa)[:, None], sab, np.diag(sbb)[None, :])
                if l == depth - 1:
                    k_v = sw2 * np.mean(np.diag(c_ab)) + sb2
                    k_g = sw2 * np.mean(c_ab) + sb2
                    out[:, a, b] = [k_v, k_v + sw2 * np.mean(np.diag(cd * t)), k_g, k_g + sw2 * np.mean(cd * t)]
                    break
                caa = relu_duals(np.diag(saa)[:, None], saa, np.diag(saa)[None, :])[0]
                cbb = relu_duals(np.diag(sbb)[:, None], sbb, np.diag(sbb)[None, :])[0]
                t = sw2 / 9 * box(cd * t)
                sab, saa, sbb = (sw2 / 9 * box(m) + sb2 for m in (c_ab, caa, cbb))
                t = t + sab
    return out


@pytest.mark.parametrize("backend", ["xla", "numba"])
def test_against_direct_recursion_and_tiling(backend):
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(3, 4, 3, 2)), rng.normal(size=(2, 4, 3, 2))  # non-square: offsets differ by axis
    ref = _reference(x1, x2, depth=3)
    ks = conv_kernels(x1, x2, depths=(1, 3), sigma_b=math.sqrt(0.1), block_size=2, backend=backend)
    got = np.stack([ks.flatten.nngp[1], ks.flatten.ntk[1], ks.gap.nngp[1], ks.gap.ntk[1]])
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # the flatten-only path (aligned pixels only) gives the same flatten kernels
    flat = conv_kernels(x1, x2, depths=3, gap=False, sigma_b=math.sqrt(0.1), backend=backend)
    np.testing.assert_allclose(flat.flatten.ntk[0], ref[1], rtol=1e-9)
    # symmetric train-train kernels: tiled == untiled, symmetric
    a = conv_kernels(x1, depths=2, block_size=1, backend=backend)
    b = conv_kernels(x1, x1, depths=2, backend=backend)
    np.testing.assert_allclose(a.gap.ntk, b.gap.ntk, rtol=1e-9)
    np.testing.assert_allclose(a.gap.ntk[0], a.gap.ntk[0].T)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
def test_numba_backend_equals_xla(activation, monkeypatch):
    # the fused CPU loops against the XLA tiles: several depths, biases, both readouts, partly
    # filled tiles of 16 lanes, the cross kernel computed with its roles swapped (9 × 4 images:
    # the 9 fill the lanes better) and, with the chunk shrunk to 7 pairs, one tile per call
    monkeypatch.setattr(_cntk, "_PAIR_CHUNK", 7)
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(9, 5, 4, 3)), rng.normal(size=(4, 5, 4, 3))
    kw = dict(depths=(1, 2, 4), activation=activation, sigma_w=1.3, sigma_b=0.4)
    for y in (None, x2):
        fused = conv_kernels(x1, y, backend="numba", **kw)
        tiled = conv_kernels(x1, y, backend="xla", **kw)
        for pooling in ("flatten", "gap"):
            for d in kw["depths"]:
                a, b = fused.get(pooling, d), tiled.get(pooling, d)
                # arccos is ill-conditioned at ρ → 1 (θ ≈ √(2(1 - ρ))): the two summation orders
                # round ρ differently by ~1e-16, which moves diagonal entries by up to ~1e-9
                np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-8)
                np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-8)
    sym = conv_kernels(x1, backend="numba", **kw).gap.ntk
    np.testing.assert_array_equal(sym, np.swapaxes(sym, -1, -2))  # computed once per pair, mirrored


def test_relu_family_coefficients():
    # J = α J_ReLU + β ρ with α = (b - a)², β = ab for φ = ABReLU(a, b)
    assert relu_family_coefficients(get_activation("relu")) == pytest.approx((1.0, 0.0), abs=1e-14)
    assert relu_family_coefficients(get_activation("identity")) == pytest.approx((0.0, 1.0), abs=1e-14)
    assert relu_family_coefficients(abrelu(-0.5, 2.0)) == pytest.approx((6.25, -1.0), abs=1e-12)
    assert relu_family_coefficients(get_activation("erf")) is None
    assert relu_family_coefficients(get_activation("tanh")) is None
    with pytest.raises(TypeError, match="Activation"):
        relu_family_coefficients("relu")


def test_backend_choice():
    x = np.random.default_rng(3).normal(size=(3, 3, 3, 1))
    with pytest.raises(ValueError, match="backend"):
        conv_kernels(x, depths=1, backend="cuda")
    with pytest.raises(ValueError, match="ReLU family"):
        conv_kernels(x, depths=1, activation="erf", backend="numba")
    # auto: erf goes through XLA, ReLU through numba on the CPU; both agree with the explicit choice
    np.testing.assert_allclose(conv_kernels(x, depths=2, activation="erf").gap.ntk,
                               conv_kernels(x, depths=2, activation="erf", backend="xla").gap.ntk, rtol=1e-12)
    np.testing.assert_allclose(conv_kernels(x, depths=2).gap.ntk,
                               conv_kernels(x, depths=2, backend="numba").gap.ntk, rtol=1e-12)


@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_monte_carlo_of_finite_cnns(pooling):
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 5, 5, 2))
    net = CNN((5, 5, 2), channels=256, depth=2, pooling=pooling, sigma_b=0.3)
    analytic = net.kernels(x).get(pooling, 2)
    ntks, nngps = [], []
    for s in range(24):
        p = net.init(jax.random.PRNGKey(s + 10))
        ntks.append(np.asarray(empirical_ntk(net.apply, p, x)))
        nngps.append(np.asarray(empirical_nngp(net.apply, p, x)))
    ntk_err = np.linalg.norm(np.mean(ntks, 0) - analytic.ntk) / np.linalg.norm(analytic.ntk)
    assert ntk_err < 0.05, ntk_err  # finite width O(1/n) bias + Monte Carlo noise
    # the NNGP is a covariance of outputs: 24 draws give a noisy estimate, check it to ~3 standard errors
    est, se = np.mean(nngps, 0), np.std(nngps, 0) / math.sqrt(len(nngps))
    assert np.all(np.abs(est - analytic.nngp) < 4 * se + 0.02 * np.abs(analytic.nngp))


def test_cnn_is_importable_from_networks():
    from ntknotes import networks

    assert networks.CNN is CNN


def test_cnn_matches_lax_conv():
    net = CNN((6, 5, 3), channels=4, depth=2, pooling="flatten")
    p = net.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 5, 3))
    h = jax.lax.conv_general_dilated(x, p[0]["W"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jax.nn.relu(h * math.sqrt(2.0) / math.sqrt(27))
    h = jax.lax.conv_general_dilated(h, p[1]["W"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jax.nn.relu(h * math.sqrt(2.0) / math.sqrt(36))
    f = math.sqrt(2.0) / math.sqrt(h[0].size) * h.reshape(2, -1) @ p[2]["W"]
    np.testing.assert_allclose(net.apply(p, x), f, rtol=1e-10)
    np.testing.assert_allclose(net.apply(p, x.reshape(2, -1)), f, rtol=1e-10)  # flattened input
    assert net.num_params == sum(a.size for layer in p for a in layer.values())


def test_bad_inputs():
    x = np.zeros((3, 4, 4, 1)) + 1.0
    with pytest.raises(ValueError, match="N, H, W, C"):
        conv_kernels(x.reshape(3, 16), depths=2)
    with pytest.raises(ValueError, match="same image shape"):
        conv_kernels(x, np.ones((2, 5, 4, 1)), depths=2)
    with pytest.raises(ValueError):
        conv_kernels(x, depths=0)
    with pytest.raises(TypeError):
        conv_kernels(x, depths=2.5)
    with pytest.raises(ValueError, match="distinct"):
        conv_kernels(x, depths=(2, 2))
    with pytest.raises(ValueError, match="sigma_w"):
        conv_kernels(x, depths=2, sigma_w=-1.0)
    with pytest.raises(ValueError, match="pooling"):
        conv_nngp_ntk(x, depth=2, pooling="max")
    with pytest.raises(ValueError, match="closed forms"):
        conv_kernels(x, depths=1, activation="tanh")
    with pytest.raises(ValueError, match="unknown activation|activation"):
        conv_kernels(x, depths=1, activation="swishy")
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        conv_kernels(bad, depths=1)
    with pytest.raises(ValueError, match="not computed"):
        conv_kernels(x, depths=2).get("gap", 3)
    with pytest.raises(ValueError, match="image_shape"):
        CNN((4, 4), channels=3)
    with pytest.raises(ValueError, match="pooling"):
        CNN((4, 4, 1), channels=3, pooling="max")
    net = CNN((4, 4, 1), channels=3)
    with pytest.raises(ValueError, match="shape"):
        net.apply(net.init(jax.random.PRNGKey(0)), np.zeros((2, 5, 4, 1)))
    with pytest.raises(TypeError, match="key"):
        net.init(0)


def test_fused_readouts_checks_its_inputs():
    # the Numba loops index without bounds checks, so the wrapper must refuse what does not fit
    x = np.ones((3, 4, 4, 2))
    q = np.ones((2, 3, 4, 4))
    rows, blocks = np.array([0, 2]), np.array([0, 0])
    args = (2.0, 0.0, (1.0, 0.0), True)
    got = fused_readouts(x, x, q, q, rows, blocks, *args)
    assert got.shape == (2, 4, 2, LANES)
    assert np.all(got[..., :3] > 0) and np.all(got[:, :2, :, 3:] == 0)  # lanes past image 2: zero images
    assert fused_readouts(x, x, q, q, rows[:0], blocks[:0], *args).shape == (2, 4, 0, LANES)
    with pytest.raises(ValueError, match="blocks must take values 0..0"):
        fused_readouts(x, x, q, q, rows, np.array([0, 1]), *args)
    with pytest.raises(ValueError, match="rows must take values 0..2"):
        fused_readouts(x, x, q, q, np.array([-1, 0]), blocks, *args)
    with pytest.raises(ValueError, match="integer arrays of one length"):
        fused_readouts(x, x, q, q, rows, np.array([0.0, 0.0]), *args)
    with pytest.raises(ValueError, match="qb must have shape"):
        fused_readouts(x, x, q, q[:, :2], rows, blocks, *args)
    with pytest.raises(ValueError, match="one image shape"):
        fused_readouts(x, np.ones((3, 4, 5, 2)), q, q, rows, blocks, *args)
    with pytest.raises(ValueError, match="finite"):
        fused_readouts(x, x, q, q, rows, blocks, 2.0, 0.0, (np.nan, 0.0), True)
