"""Empirical NTKs: layer-wise formula against generic Jacobian and NTK-vector-product methods."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64: switched on in conftest.py)
from ntknotes.empirical import empirical_nngp, empirical_ntk, mlp_ntk, mlp_ntk_per_layer, ntk_vector_product
from ntknotes.networks import MLP

CONFIGS = [
    dict(depth=1, activation="relu", sigma_b=0.0),
    dict(depth=2, activation="erf", sigma_b=0.3),
    dict(depth=3, activation="tanh", sigma_b=0.1, parameterization="standard"),
    dict(depth=2, activation="gelu", sigma_b=0.2, out_dim=3),
    dict(depth=4, activation="leaky_relu", sigma_b=0.0, out_dim=2, parameterization="standard"),
]


def _setup(cfg, seed=0):
    net = MLP(in_dim=4, width=(16,) * cfg["depth"], sigma_w=1.3, **cfg)
    params = net.init(jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    return net, params, jnp.asarray(rng.normal(size=(5, 4))), jnp.asarray(rng.normal(size=(3, 4)))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['activation']}-L{c['depth']}")
def test_layerwise_equals_generic(cfg):
    net, params, x, y = _setup(cfg)
    cases = [("trace", None, "jacobian"), ("trace", None, "ntvp"), ("full", y, "jacobian"), ("trace", y, "ntvp")]
    for output, b, method in cases:
        fast = mlp_ntk(net, params, x, b, output=output)
        ref = empirical_ntk(net.apply, params, x, b, method=method, output=output)
        err = float(jnp.max(jnp.abs(fast - ref)) / jnp.max(jnp.abs(ref)))
        print(f"{cfg} {output} {method} cross={b is not None}: rel. error {err:.1e}")
        assert err < 1e-10, (cfg, output, method, err)
    per_layer = mlp_ntk_per_layer(net, params, x, y, output="full")
    assert per_layer.shape == (cfg["depth"] + 1, 5, 3, net.out_dim, net.out_dim)
    np.testing.assert_allclose(per_layer.sum(0), mlp_ntk(net, params, x, y, output="full"), rtol=1e-12)


def test_jacobian_blocks_and_symmetry():
    net, params, x, _ = _setup(CONFIGS[1])
    a = empirical_ntk(net.apply, params, x, block_size=2)
    b = empirical_ntk(net.apply, params, x)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(a, a.T, rtol=1e-12)
    assert np.linalg.eigvalsh(np.asarray(a)).min() > -1e-10


def test_ntk_vector_product_and_nngp():
    net, params, x, y = _setup(CONFIGS[3])
    v = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3)))
    full = empirical_ntk(net.apply, params, x, y, output="full")  # (5, 3, k, k)
    np.testing.assert_allclose(ntk_vector_product(net.apply, params, x, y, v), jnp.einsum("nmab,mb->na", full, v), rtol=1e-11)
    f = net.apply(params, x)
    np.testing.assert_allclose(empirical_nngp(net.apply, params, x), f @ f.T / 3, rtol=1e-13)


def test_bad_input():
    net, params, x, y = _setup(CONFIGS[0])
    with pytest.raises(TypeError, match="needs an ntknotes.networks.MLP"):
        mlp_ntk(object(), params, x)
    with pytest.raises(ValueError, match="features"):
        mlp_ntk(net, params, x[:, :3])
    with pytest.raises(ValueError, match=r"params\[1\]\['W'\] must have shape \(16, 1\)"):
        mlp_ntk(net, [params[0], {"W": jnp.zeros((16, 2))}], x)
    with pytest.raises(ValueError, match="list of 2 layer dicts"):
        mlp_ntk(net, params[:1], x)
    with pytest.raises(ValueError, match="NaN"):
        empirical_ntk(net.apply, params, x.at[1, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="method must be one of"):
        empirical_ntk(net.apply, params, x, method="fd")
    with pytest.raises(ValueError, match="output must be one of"):
        mlp_ntk(net, params, x, output="diag")
    with pytest.raises(ValueError, match="v must have shape"):
        ntk_vector_product(net.apply, params, x, y, jnp.ones(4))
    with pytest.raises(TypeError, match="apply must be callable"):
        empirical_ntk(3, params, x)


def test_stax_layerwise_ntk_equals_jacobian_contraction():
    """The layer-wise empirical NTK of any stax network (no Jacobian) against the generic Jacobian
    contraction: a residual MLP with a standard-parameterization readout and a strided/circular CNN,
    symmetric, cross and in small tiles."""
    from ntknotes import stax
    from ntknotes.empirical import stax_ntk

    block = stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(24, 1.4, 0.1)), stax.Identity()),
                        stax.FanInSum())
    mlp = stax.serial(stax.Dense(24, 1.4, 0.1), block, stax.Tanh(), stax.Dense(3, 1.4, 0.0, "standard"))
    cnn = stax.serial(stax.Conv(8, 3, strides=2, padding="VALID", W_std=1.4, b_std=0.1), stax.Relu(),
                      # 40 channels on 2×2 pixels: this layer's term comes from pixel-pair Grams, the first's from
                      # per-example weight gradients
                      stax.Conv(40, 2, padding="CIRCULAR", W_std=1.3, b_std=0.0, parameterization="standard"), stax.Erf(),
                      stax.AvgPool(2, 1, "SAME"), stax.Flatten(), stax.Dense(2, 1.2, 0.3))
    from ntknotes.empirical import _pixel_gram

    assert _pixel_gram((4, 2 * 2 * 8), 40) and not _pixel_gram((4, 3 * 3 * 2), 8)
    rng = np.random.default_rng(3)
    for net, shape in ((mlp, (4,)), (cnn, (6, 5, 2))):
        x = jnp.asarray(rng.normal(size=(7,) + shape))
        y = jnp.asarray(rng.normal(size=(3,) + shape))
        _, params = net.init(jax.random.PRNGKey(0), x.shape)
        for args, kw in (((x,), {}), ((x, y), {}), ((x,), {"block_size": 3})):
            lw = stax_ntk(net, params, *args, **kw)
            ref = empirical_ntk(net.apply, params, *args)
            np.testing.assert_allclose(lw, ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
    with pytest.raises(ValueError, match="output='trace'"):
        stax_ntk(mlp, params, x, method="layerwise", output="full")
    with pytest.raises(TypeError, match="stax layer"):
        stax_ntk(lambda p, v: v, params, x)
