"""Convolutional NNGP/NTK: against the fully-connected kernel on 1×1 images, against a direct
NumPy recursion, and against Monte Carlo over finite CNNs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401
from ntknotes.cnn import CNN
from ntknotes.conv import conv_kernels, conv_nngp_ntk
from ntknotes.empirical import empirical_nngp, empirical_ntk
from ntknotes.kernels import nngp_ntk


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("pooling", ["flatten", "gap"])
def test_one_pixel_images_equal_fully_connected(depth, pooling):
    # on 1×1 images only the centre tap of each 3×3 filter sees data: each convolution is a dense
    # layer with σ_w²/9 instead of σ_w²; with σ_b = 0 and ReLU that scales every NTK term by 9^-L
    x = np.random.default_rng(0).normal(size=(6, 1, 1, 4))
    conv = conv_nngp_ntk(x, depth=depth, pooling=pooling)
    fc = nngp_ntk(x.reshape(6, 4), depth=depth, sigma_w=math.sqrt(2.0))
    np.testing.assert_allclose(conv.nngp * 9.0**depth, fc.nngp, rtol=1e-10)
    np.testing.assert_allclose(conv.ntk * 9.0**depth, fc.ntk, rtol=1e-7)


@pytest.mark.parametrize("activation", ["leaky_relu", "erf"])
def test_one_pixel_images_other_activations(activation):
    # σ_w = 3 makes each 1×1 convolution a dense layer with σ_w = 1; only the readout keeps σ_w² = 9,
    # so the kernels minus the readout bias are 9 times the fully-connected ones (ReLU-family
    # fast path for leaky ReLU, the general closed-form duals for erf)
    x = np.random.default_rng(1).normal(size=(5, 1, 1, 3))
    for depth in (1, 3):
        conv = conv_nngp_ntk(x, depth=depth, pooling="gap", activation=activation, sigma_w=3.0, sigma_b=0.3)
        fc = nngp_ntk(x.reshape(5, 3), depth=depth, activation=activation, sigma_w=1.0, sigma_b=0.3)
        np.testing.assert_allclose(conv.nngp - 0.09, 9.0 * (fc.nngp - 0.09), rtol=1e-9)
        np.testing.assert_allclose(conv.ntk - 0.09, 9.0 * (fc.ntk - 0.09), rtol=1e-7)


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


def test_against_direct_recursion_and_tiling():
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(3, 4, 3, 2)), rng.normal(size=(2, 4, 3, 2))
    ref = _reference(x1, x2, depth=3)
    ks = conv_kernels(x1, x2, depths=(1, 3), sigma_b=math.sqrt(0.1), block_size=2)
    got = np.stack([ks.flatten.nngp[1], ks.flatten.ntk[1], ks.gap.nngp[1], ks.gap.ntk[1]])
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # the flatten-only path (aligned pixels only) gives the same flatten kernels
    flat = conv_kernels(x1, x2, depths=3, gap=False, sigma_b=math.sqrt(0.1))
    np.testing.assert_allclose(flat.flatten.ntk[0], ref[1], rtol=1e-9)
    # symmetric train-train kernels: tiled == untiled, symmetric
    a = conv_kernels(x1, depths=2, block_size=1)
    b = conv_kernels(x1, x1, depths=2)
    np.testing.assert_allclose(a.gap.ntk, b.gap.ntk, rtol=1e-9)
    np.testing.assert_allclose(a.gap.ntk[0], a.gap.ntk[0].T)


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
