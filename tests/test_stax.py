"""ntknotes.stax against independent references.

* Monte Carlo: averages over finite networks drawn from the same description (their output Gram
  and their empirical NTK from full Jacobians) must agree with the analytic kernels within a
  z-bound of 5 standard errors per entry (the O(1/width) finite-width bias is far below one
  standard error at these sizes: checked by the printed relative errors).
* Kernels derived by hand in this file (numpy, closed-form duals) for a residual MLP, a two-branch
  concat net, each activation's one-layer kernel, pooling and the standard parameterization.
* The fast paths (fused MLP recursion, CNTK backends) equal the generic layer maps to 1e-10.
* The finite layers against lax.conv_general_dilated / lax.reduce_window.
* Bad descriptions raise ValueError/TypeError naming the layer's position.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes import activations, stax, tiling
from ntknotes.empirical import monte_carlo_kernels
from ntknotes.stax import _driver

Z_BOUND = 5.0


def _x(n, d=3, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, d)))


def _images(n, h=5, w=5, c=2, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, h, w, c)))


def _assert_monte_carlo(net, x, *, n_samples, seed=0):
    exact = net.kernel(x)
    est = monte_carlo_kernels(net, x, key=jax.random.PRNGKey(seed), n_samples=n_samples)
    for name in ("nngp", "ntk"):
        mean, se, ref = (np.asarray(getattr(est, a)) for a in (name, f"{name}_stderr", name))
        ref = np.asarray(getattr(exact, name))
        z = np.abs(mean - ref) / se
        rel = np.abs(mean - ref).max() / np.abs(ref).max()
        print(f"{name}: max |z| = {z.max():.2f}, max rel. error {rel:.3f} (rel. s.e. {se.max() / np.abs(ref).max():.3f})")
        assert z.max() < Z_BOUND, (name, z)


# ----------------------------------------------------------------------------
# hand-derived duals (numpy)
# ----------------------------------------------------------------------------
def _relu(k11, k12, k22):
    norm = np.sqrt(k11 * k22)
    rho = np.clip(k12 / norm, -1, 1)
    theta = np.arccos(rho)
    return norm * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi), (np.pi - theta) / (2 * np.pi)


def _erf(k11, k12, k22):
    den = (1 + 2 * k11) * (1 + 2 * k22)
    return 2 / np.pi * np.arcsin(2 * k12 / np.sqrt(den)), 4 / np.pi / np.sqrt(den - 4 * k12**2)


def _dense(k, t, sw, sb):
    """NTK-parameterization Dense: (σ_w² K + σ_b², σ_w² Θ + σ_w² K + σ_b²) on full matrices."""
    new = sw**2 * k + sb**2
    return new, sw**2 * t + new


def _act(dual, k, t):
    q = np.diag(k)
    c, cd = dual(q[:, None], k, q[None, :])
    c_diag, _ = dual(q, q, q)
    np.fill_diagonal(c, c_diag)  # the diagonal at correlation exactly 1
    cd_diag = dual(q, q, q)[1]
    np.fill_diagonal(cd, cd_diag)
    return c, t * cd


def _close(a, b, tol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    err = np.abs(a - b).max() / np.abs(b).max()
    assert err < tol, err
    return err


# ----------------------------------------------------------------------------
# Monte Carlo over finite networks
# ----------------------------------------------------------------------------
def test_monte_carlo_residual_mlp():
    """Dense, Relu, FanOut, parallel, Identity, FanInSum, serial."""
    n = 512
    block = stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(n, 1.4, 0.1)), stax.Identity()),
                        stax.FanInSum())
    net = stax.serial(stax.Dense(n, 1.4, 0.1), block, stax.Relu(), stax.Dense(1, 1.4, 0.1))
    _assert_monte_carlo(net, _x(4), n_samples=16)


def test_monte_carlo_cnn_strided_valid_avgpool_gap():
    """Conv (strided VALID, then SAME with a 2×2 filter), Relu, AvgPool (SAME, stride 1), GlobalAvgPool."""
    net = stax.serial(
        stax.Conv(64, 3, strides=2, padding="VALID", W_std=1.4, b_std=0.1), stax.Relu(),
        stax.Conv(64, 2, padding="SAME", W_std=1.4), stax.Relu(),
        stax.AvgPool(2, 1, "SAME"), stax.GlobalAvgPool(), stax.Dense(1, 1.4, 0.1),
    )
    _assert_monte_carlo(net, _images(3, 5, 5, 2), n_samples=16)


def test_monte_carlo_layernorm_erf_standard_parameterization():
    """LayerNorm, Erf, and a standard-parameterization readout with a zero-initialized trainable bias."""
    n = 512
    net = stax.serial(stax.Dense(n, 1.4, 0.1), stax.LayerNorm(), stax.Erf(),
                      stax.Dense(1, 1.4, 0.0, parameterization="standard"))
    _assert_monte_carlo(net, _x(4, seed=1), n_samples=16)


def test_monte_carlo_circular_conv_concat_flatten_tanh():
    """CIRCULAR Conv, FanInConcat of a ReLU and a tanh branch (quadrature dual), Flatten."""
    net = stax.serial(
        stax.Conv(64, 3, padding="CIRCULAR", W_std=1.3),
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Conv(64, 3, padding="CIRCULAR", W_std=1.3)),
                      stax.serial(stax.Tanh(), stax.Conv(32, 1, W_std=1.3, b_std=0.2))),
        stax.FanInConcat(), stax.Flatten(), stax.Dense(1, 1.3),
    )
    _assert_monte_carlo(net, _images(3, 4, 4, 2, seed=2), n_samples=16)


# ----------------------------------------------------------------------------
# hand-derived kernels
# ----------------------------------------------------------------------------
def test_residual_mlp_against_hand_derivation():
    sw, sb, n = 1.3, 0.2, 64
    x = _x(6, d=4, seed=3)
    net = stax.serial(
        stax.Dense(n, sw, sb), stax.FanOut(2),
        stax.parallel(stax.serial(stax.Relu(), stax.Dense(n, sw, sb)), stax.Identity()),
        stax.FanInSum(), stax.Relu(), stax.Dense(1, sw, sb),
    )
    xn = np.asarray(x)
    k1 = sw**2 * xn @ xn.T / 4 + sb**2
    t1 = k1.copy()
    c, ct = _act(_relu, k1, t1)
    ka, ta = _dense(c, ct, sw, sb)
    k2, t2 = ka + k1, ta + t1  # the skip branch is uncorrelated with the fresh Dense output
    c, ct = _act(_relu, k2, t2)
    k, t = _dense(c, ct, sw, sb)
    got = net.kernel(x)
    print("residual MLP rel. errors", _close(got.nngp, k), _close(got.ntk, t))


def test_concat_net_against_hand_derivation():
    sw, sb, n1, n2 = 1.2, 0.3, 30, 10
    x = _x(5, d=3, seed=4)
    net = stax.serial(
        stax.FanOut(2),
        stax.parallel(stax.serial(stax.Dense(n1, sw, sb), stax.Relu()), stax.serial(stax.Dense(n2, sw), stax.Erf())),
        stax.FanInConcat(), stax.Dense(1, sw, sb),
    )
    xn = np.asarray(x)
    c0 = xn @ xn.T / 3
    cr, tr = _act(_relu, *_dense_first(c0, sw, sb))
    ce, te = _act(_erf, *_dense_first(c0, sw, 0.0))
    k = (n1 * cr + n2 * ce) / (n1 + n2)
    t = (n1 * tr + n2 * te) / (n1 + n2)
    k_out, t_out = _dense(k, t, sw, sb)
    got = net.kernel(x)
    print("concat rel. errors", _close(got.nngp, k_out), _close(got.ntk, t_out))


def _dense_first(c0, sw, sb):
    k = sw**2 * c0 + sb**2
    return k, k.copy()


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "abrelu", "erf", "identity", "sin", "tanh", "gelu",
                                  "sigmoid_centered", "abs_centered", "hermite3", "phi_opt4"])
def test_every_activation_layer_one_hidden_layer(name):
    """Each activation layer's kernel against E[φ(u)φ(v)] by an independent 2-D Gauss–Hermite rule."""
    layer = {
        "relu": stax.Relu(), "leaky_relu": stax.LeakyRelu(0.2), "abrelu": stax.ABRelu(-0.5, 1.5), "erf": stax.Erf(),
        "identity": stax.Linear(), "sin": stax.Sin(1.5), "tanh": stax.Tanh(), "gelu": stax.Gelu(),
        "sigmoid_centered": stax.SigmoidCentered(), "abs_centered": stax.AbsCentered(), "hermite3": stax.Hermite(3),
        "phi_opt4": stax.PhiOpt(4),
    }[name]
    sw, sb = 1.1, 0.2
    x = _x(3, d=2, seed=5)
    net = stax.serial(stax.Dense(8, sw, sb), layer, stax.Dense(1, sw, sb))
    got = net.kernel(x)
    xn = np.asarray(x)
    k1 = sw**2 * xn @ xn.T / 2 + sb**2
    if name in _KINKED:  # closed forms derived from the ReLU's arc-cosine kernel
        c, cd = _act(_KINKED[name], k1, np.ones_like(k1))
    else:  # smooth φ: a 2-D Gauss–Hermite rule (120² nodes) on the whitened plane
        c, cd = _gauss_hermite_duals(layer.activation, k1)
    k, t = _dense(c, k1 * cd, sw, sb)
    tol = 1e-9 if layer.activation.has_closed_form else 1e-7  # the package's own quadrature: ~1e-8
    print(name, _close(got.nngp, k, tol), _close(got.ntk, t, tol))


def _abrelu(a, b):
    def dual(k11, k12, k22):
        r, rd = _relu(k11, k12, k22)
        return (b - a) ** 2 * r + a * b * k12, a * b + (b - a) ** 2 * rd

    return dual


def _abs_centered(k11, k12, k22):
    """|z| − c with c = √(2/π): |z| = ABReLU(−1, 1), and E|u| = c √k11."""
    c2 = 2 / np.pi
    r, rd = _abrelu(-1.0, 1.0)(k11, k12, k22)
    return r - c2 * (np.sqrt(k11) + np.sqrt(k22)) + c2, rd


_KINKED = {"relu": _relu, "leaky_relu": _abrelu(0.2, 1.0), "abrelu": _abrelu(-0.5, 1.5), "abs_centered": _abs_centered}


def _gauss_hermite_duals(act, k1):
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    ww = w[:, None] * w[None, :]
    n = k1.shape[0]
    c, cd = np.empty_like(k1), np.empty_like(k1)
    for i in range(n):
        for j in range(n):
            a, b, r = k1[i, i], k1[j, j], k1[i, j]
            rho = np.clip(r / math.sqrt(a * b), -1, 1)
            u = jnp.asarray(math.sqrt(a) * z[:, None] + 0 * z[None, :])
            v = jnp.asarray(math.sqrt(b) * (rho * z[:, None] + math.sqrt(max(1 - rho**2, 0)) * z[None, :]))
            c[i, j] = np.sum(ww * np.asarray(act.fn(u)) * np.asarray(act.fn(v)))
            cd[i, j] = np.sum(ww * np.asarray(act.derivative(u)) * np.asarray(act.derivative(v)))
    return c, cd


def test_standard_parameterization_follows_neural_tangents_bias_convention():
    """b_std=None: no bias; b_std=0.0: a zero-initialized trainable bias adding 1 to the NTK per layer."""
    x = _x(5, d=4, seed=6)
    xn = np.asarray(x)
    sw, n = 1.5, 100

    def net(b_std):
        return stax.serial(stax.Dense(n, sw, b_std, "standard"), stax.Relu(), stax.Dense(1, sw, b_std, "standard"))

    c0 = xn @ xn.T / 4
    k1 = sw**2 * c0
    c, cd = _act(_relu, k1, np.ones_like(k1))
    for b_std, bias in ((None, 0.0), (0.0, 1.0)):
        t1 = 4 * c0 + bias  # fan_in · C + 1[bias]
        want_t = sw**2 * t1 * cd + n * c + bias
        got = net(b_std).kernel(x)
        _close(got.nngp, sw**2 * c)
        _close(got.ntk, want_t)
    # and the empirical NTK of finite standard nets with a zero-initialized bias agrees
    _assert_monte_carlo(net(0.0), x, n_samples=16)


def test_pooling_layers_against_hand_sums():
    """AvgPool (VALID, stride 2) then GAP of a linear conv net: explicit sums over pixel pairs."""
    imgs = _images(3, 4, 4, 1, seed=7)
    x = np.asarray(imgs)[..., 0]
    net = stax.serial(stax.Conv(4, 1, W_std=1.0), stax.AvgPool(2), stax.GlobalAvgPool(), stax.Dense(1, 1.0))
    # 1×1 conv: K[p, p'] = x[p] x'[p']; pooling averages both pixels; GAP averages all pairs.
    pooled = x.reshape(3, 2, 2, 2, 2).mean(axis=(2, 4))  # (N, 2, 2)
    feat = pooled.reshape(3, -1)
    k = (feat.mean(1)[:, None] * feat.mean(1)[None, :])
    got = net.kernel(imgs)
    _close(got.nngp, k)
    _close(got.ntk, 2 * k)  # two weight layers (conv, readout) with σ_w = 1: each adds K, a linear net passes Θ on


# ----------------------------------------------------------------------------
# fast paths equal the generic path
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("act,param,b_std", [("relu", "ntk", 0.1), ("erf", "ntk", None), ("tanh", "standard", 0.0),
                                            ("leaky_relu", "standard", None)])
def test_fused_mlp_equals_generic(act, param, b_std):
    a = stax.Elementwise(act)
    net = stax.serial(stax.Dense(50, 1.3, b_std, param), a, stax.Dense(70, 1.3, b_std, param), a, stax.Dense(1, 1.3, b_std, param))
    assert _driver._fc.match(net, (4,)) is not None
    x, y = _x(9, 4, seed=8), _x(5, 4, seed=9)
    # the fused path in tiles of 4 (partial and mirrored tiles) against the generic path in one
    # block: each block shape compiles a program of its own, up to 10 s for tanh's on two cores,
    # whose tiling test_activation_duals checks against per-entry duals instead
    cases = [((x,), {"block_size": 4}, {}), ((x, y), {}, {}), ((x,), {"diagonal": True}, {"diagonal": True})]
    for args, kw, slow_kw in cases[1:] if act == "tanh" else cases:
        fast = net.kernel(*args, **kw)
        slow = _driver.kernel(net, *args, fast=False, **slow_kw)
        for f, s in zip(fast, slow):
            np.testing.assert_allclose(np.asarray(f), np.asarray(s), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pool,act", [("gap", "relu"), ("flatten", "erf"), ("flatten", "leaky_relu")])
def test_cntk_fast_path_equals_generic(pool, act):
    from ntknotes.conv import conv_kernels
    from ntknotes.stax.presets import conv_net

    imgs, other = _images(5, 4, 3, 2, seed=10), _images(3, 4, 3, 2, seed=11)
    ks = conv_kernels(imgs, other, depths=(1, 2), gap=pool == "gap", activation=act, sigma_w=1.4, sigma_b=0.1)
    for depth in (1, 2):
        net = conv_net(depth, pooling=pool, activation=act, sigma_w=1.4, sigma_b=0.1, channels=8)
        assert _driver._cntk.match(net, (4, 3, 2)) is not None
        slow = _driver.kernel(net, imgs, other, fast=False)
        pair = ks.get(pool, depth)
        np.testing.assert_allclose(pair.nngp, np.asarray(slow.nngp), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(pair.ntk, np.asarray(slow.ntk), rtol=1e-10, atol=1e-12)
    fast = net.kernel(imgs)  # the symmetric kernel through the default backend
    slow = _driver.kernel(net, imgs, fast=False)
    np.testing.assert_allclose(np.asarray(fast.ntk), np.asarray(slow.ntk), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------
# tiles, diagonal, dtype, get
# ----------------------------------------------------------------------------
def test_generic_tiles_diagonal_and_get():
    net = stax.serial(stax.Conv(8, 3, W_std=1.3), stax.Relu(), stax.AvgPool(2, 1), stax.Flatten(), stax.Dense(1, 1.3))
    imgs = _images(7, 4, 4, 2, seed=12)
    whole = net.kernel(imgs)
    tiled = net.kernel(imgs, block_size=3)
    cross = net.kernel(imgs, imgs[:4], block_size=2)
    diag = net.kernel(imgs, diagonal=True)
    for w, t in zip(whole, tiled):
        np.testing.assert_allclose(t, w, rtol=1e-13)
    np.testing.assert_allclose(cross.ntk, np.asarray(whole.ntk)[:, :4], rtol=1e-12)
    np.testing.assert_allclose(diag.ntk, np.diag(np.asarray(whole.ntk)), rtol=1e-12)
    assert np.array_equal(np.asarray(tiled.ntk), np.asarray(tiled.ntk).T)
    np.testing.assert_allclose(net.kernel(imgs, get="ntk"), whole.ntk, rtol=1e-13)
    assert net.kernel(imgs, get=("nngp",)).ntk is None
    k32 = net.kernel(imgs, dtype=jnp.float32)
    assert k32.ntk.dtype == jnp.float32
    np.testing.assert_allclose(k32.ntk, whole.ntk, rtol=1e-4)


def test_kernel_of_image_output_has_pixel_axes():
    net = stax.serial(stax.Conv(4, 3, W_std=1.2), stax.Relu(), stax.Conv(4, 3, strides=2, W_std=1.2))
    imgs = _images(3, 4, 4, 1, seed=13)
    k = net.kernel(imgs)
    assert k.nngp.shape == (3, 3, 2, 2, 2, 2)
    tiled = net.kernel(imgs, block_size=2)
    np.testing.assert_allclose(tiled.ntk, k.ntk, rtol=1e-13)


def test_tiling_pairwise_counts_upper_tiles_only():
    calls = []

    def fn(a, b, same):
        calls.append(same)
        return (a @ b.T,)

    x = np.random.default_rng(0).normal(size=(10, 3))
    (g,) = tiling.pairwise(fn, jnp.asarray(x), block=4)
    np.testing.assert_allclose(g, x @ x.T, rtol=1e-13)
    assert len(calls) == 6 and sum(calls) == 3  # 3 row blocks: 3 diagonal + 3 upper tiles


# ----------------------------------------------------------------------------
# the finite layers
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("padding,strides,fshape", [("SAME", 1, (3, 3)), ("VALID", 2, (3, 2)), ("SAME", 2, (2, 3))])
def test_conv_apply_matches_lax(padding, strides, fshape):
    layer = stax.Conv(5, fshape, strides, padding, W_std=1.3, b_std=0.4)
    x = _images(2, 7, 6, 3, seed=14)
    out_shape, p = layer.init(jax.random.PRNGKey(0), x.shape)
    y = layer.apply(p, x)
    ref = jax.lax.conv_general_dilated(x, p["W"], (strides, strides), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ref = 1.3 / math.sqrt(fshape[0] * fshape[1] * 3) * ref + 0.4 * p["b"]
    assert y.shape == out_shape[:1] + ref.shape[1:] and out_shape[1:] == ref.shape[1:]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_circular_conv_pool_and_layernorm_apply():
    x = _images(2, 5, 5, 2, seed=15)
    layer = stax.Conv(3, 3, padding="CIRCULAR")
    _, p = layer.init(jax.random.PRNGKey(1), x.shape)
    wrapped = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    ref = jax.lax.conv_general_dilated(wrapped, p["W"], (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(layer.apply(p, x), ref / math.sqrt(18), rtol=1e-12, atol=1e-12)
    pool = stax.AvgPool((2, 3), (1, 2), "VALID")
    ref = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 3, 1), (1, 1, 2, 1), "VALID") / 6
    np.testing.assert_allclose(pool.apply((), x), ref, rtol=1e-12)
    y = stax.LayerNorm().apply((), _images(2, 3, 3, 8, seed=16))
    np.testing.assert_allclose(jnp.mean(y, -1), 0, atol=1e-12)
    np.testing.assert_allclose(jnp.mean(y**2, -1), 1, rtol=1e-9)


def test_init_shapes_and_params_of_a_residual_net():
    block = stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(6)), stax.Identity()), stax.FanInSum())
    net = stax.serial(stax.Dense(6, b_std=0.0), block, activations.erf(), stax.Dense(2))
    out, params = net.init(jax.random.PRNGKey(0), (-1, 3))
    assert out == (-1, 2)
    assert set(params[0]) == {"W", "b"} and params[0]["W"].shape == (3, 6)
    assert "b" not in params[-1]
    assert net.apply(params, _x(4)).shape == (4, 2)


# ----------------------------------------------------------------------------
# errors naming the layer
# ----------------------------------------------------------------------------
def test_bad_descriptions_name_the_layer():
    imgs, vecs = _images(2, 4, 4, 2), _x(2)
    cases = [
        (stax.serial(stax.Conv(4, 3), stax.Relu(), stax.Dense(1)), imgs, r"layer 2 \(Dense.*expects vectors.*Flatten"),
        (stax.serial(stax.Dense(4), stax.Conv(4, 3)), vecs, r"layer 1 \(Conv.*expects images"),
        (stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(3), stax.Dense(4)), stax.FanInSum()), vecs,
         r"layer 2 \(FanInSum.*same shape"),
        (stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Dense(4)), stax.FanInSum()), vecs,
         r"layer 3 \(FanInSum.*branches \[0\] are not Gaussian"),
        (stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Identity(), stax.Identity()), stax.FanInSum()), vecs,
         r"layer 3 \(FanInSum.*correlated"),
        (stax.serial(stax.Relu(), stax.Dense(1)), vecs, r"layer 0 \(Elementwise\(relu\)\) needs Gaussian"),
        (stax.serial(stax.Conv(4, 5, padding="VALID"), stax.Flatten(), stax.Dense(1)), imgs,
         r"layer 0 \(Conv.*window \(5 along height\) is larger than the input \(4\)"),
        (stax.serial(stax.Dense(1), stax.LayerNorm()), vecs, r"layer 1 \(LayerNorm.*size 1"),
        (stax.serial(stax.Dense(4), stax.parallel(stax.Dense(1), stax.Dense(1))), vecs, r"layer 1 \(parallel.*has 2 branches.*FanOut\(2\)"),
        (stax.serial(stax.Dense(4), stax.FanOut(2), stax.parallel(stax.Dense(3), stax.serial(stax.Dense(3), stax.Conv(2, 1)))),
         vecs, r"layer 2 > branch 1 > layer 1 \(Conv"),
        (stax.serial(stax.Dense(4), stax.FanOut(2)), vecs, "ends in 2 branches"),
    ]
    for net, x, message in cases:
        with pytest.raises(ValueError, match=message):
            net.kernel(x)
    with pytest.raises(ValueError, match=r"layer 2 \(Dense"):  # the finite network fails the same way
        stax.serial(stax.Conv(4, 3), stax.Relu(), stax.Dense(1)).init(jax.random.PRNGKey(0), imgs.shape)
    with pytest.raises(ValueError, match=r"layer 2 \(Dense"):
        stax.serial(stax.Conv(4, 3), stax.Relu(), stax.Dense(1)).apply(((), (), ()), imgs)


def test_bad_hyperparameters_fail_at_construction():
    with pytest.raises(ValueError, match="Dense: out_dim must be a positive integer"):
        stax.Dense(0)
    with pytest.raises(ValueError, match="Conv: out_channels"):
        stax.Conv(-3, 3)
    with pytest.raises(ValueError, match=r"Conv: filter_shape\[1\]"):
        stax.Conv(3, (3, 0))
    with pytest.raises(ValueError, match="AvgPool: window_shape"):
        stax.AvgPool(0)
    with pytest.raises(ValueError, match="Conv: padding must be one of"):
        stax.Conv(3, 3, padding="REFLECT")
    with pytest.raises(ValueError, match="AvgPool: padding"):
        stax.AvgPool(2, padding="CIRCULAR")
    with pytest.raises(ValueError, match="Dense: W_std"):
        stax.Dense(3, W_std=-1.0)
    with pytest.raises(ValueError, match="Dense: b_std"):
        stax.Dense(3, b_std=float("nan"))
    with pytest.raises(ValueError, match="parameterization"):
        stax.Dense(3, parameterization="mup")
    with pytest.raises(ValueError, match="FanOut: num"):
        stax.FanOut(0)
    with pytest.raises(TypeError, match=r"serial: layer 1 must be a stax layer"):
        stax.serial(stax.Dense(3), "relu")
    with pytest.raises(ValueError, match="unknown activation"):
        stax.Elementwise("swish")
    net = stax.serial(stax.Dense(3), stax.Relu(), stax.Dense(1))
    with pytest.raises(ValueError, match="same per-example shape"):
        net.kernel(_x(3, 3), _x(3, 4))
    with pytest.raises(ValueError, match="x1 contains 1 NaN"):
        net.kernel(_x(3).at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="get must be"):
        net.kernel(_x(3), get="cov")
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        net.init(0, (-1, 3))
    with pytest.raises(ValueError, match="batch axis"):
        net.init(jax.random.PRNGKey(0), (3,))


def test_import_changes_no_global_setting_and_loads_no_numba():
    """Importing ntknotes leaves JAX in float32; networks imports neither kernels nor cnn; Numba loads
    only when the CPU convolutional backend runs."""
    import subprocess
    import sys

    code = (
        "import sys, jax\n"
        "import ntknotes, ntknotes.networks, ntknotes.stax, ntknotes.empirical\n"
        "assert not jax.config.read('jax_enable_x64')\n"
        "assert 'ntknotes.kernels' not in sys.modules and 'ntknotes.cnn' not in sys.modules\n"
        "import ntknotes.conv, ntknotes.kernels\n"
        "assert 'numba' not in sys.modules, 'numba imported early'\n"
        "from ntknotes import stax\n"
        "k = stax.serial(stax.Dense(3), stax.Relu(), stax.Dense(1)).kernel(jax.numpy.ones((2, 2)))\n"
        "assert k.ntk.dtype == jax.numpy.float32, k.ntk.dtype\n"
        "ntknotes.enable_x64()\n"
        "assert ntknotes.default_dtype() == jax.numpy.float64\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
