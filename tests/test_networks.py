"""Finite MLPs: shapes, parameterizations, errors, and Monte Carlo convergence to the analytic kernels."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64: switched on in conftest.py)
from ntknotes.empirical import mlp_ntk
from ntknotes.networks import MLP
from ntknotes.stats import loglog_slope, relative_error

X = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
WIDTHS = (64, 128, 256, 512, 1024)
SEEDS = 16


def test_shapes_and_parameterizations():
    net = MLP(in_dim=3, width=(8, 5), depth=2, out_dim=2, sigma_w=1.5, sigma_b=0.5)
    params = net.init(jax.random.PRNGKey(0))
    assert [p["W"].shape for p in params] == [(3, 8), (8, 5), (5, 2)]
    assert net.num_params == sum(int(np.prod(v.shape)) for p in params for v in p.values())
    assert net.apply(params, X).shape == (6, 2)
    sp = MLP(in_dim=3, width=8, depth=2, sigma_w=1.5, sigma_b=0.5, parameterization="standard")
    p_sp = sp.init(jax.random.PRNGKey(0))
    p_ntk = MLP(in_dim=3, width=8, depth=2, sigma_w=1.5, sigma_b=0.5).init(jax.random.PRNGKey(0))
    # same draws, rescaled: the two parameterizations compute the same function at init
    np.testing.assert_allclose(
        sp.apply(p_sp, X), MLP(in_dim=3, width=8, depth=2, sigma_w=1.5, sigma_b=0.5).apply(p_ntk, X), rtol=1e-12
    )
    k, t = net.kernels(X)
    assert k.shape == t.shape == (6, 6)


def _mc_errors(make_net, estimate, analytic, widths=WIDTHS):
    errs = []
    for n in widths:
        net = make_net(n)
        keys = jax.random.split(jax.random.PRNGKey(n), SEEDS)
        est = jax.vmap(lambda key: estimate(net, net.init(key)))(keys).mean(0)
        errs.append(relative_error(est, analytic(net)))
    return np.array(errs), loglog_slope(widths, errs).slope


def test_empirical_ntk_converges_at_rate_one_over_sqrt_width():
    def make(n):
        return MLP(in_dim=3, width=n, depth=2, activation="relu", sigma_w=1.4, sigma_b=0.1)

    errs, slope = _mc_errors(make, lambda net, p: mlp_ntk(net, p, X), lambda net: net.kernels(X).ntk, (32,) + WIDTHS[:-1])
    print(f"NTK relative errors {np.round(errs, 4)}, log-log slope {slope:.3f}")
    assert -0.7 <= slope <= -0.3
    assert errs[-1] < 0.06


def test_output_covariance_converges_to_nngp():
    # many nets: SEEDS networks × out_dim = width independent readouts each
    def make(n):
        return MLP(in_dim=3, width=n, depth=2, out_dim=n, activation="erf", sigma_w=1.6, sigma_b=0.2)

    def cov(net, p):
        f = net.apply(p, X)
        return f @ f.T / f.shape[1]

    errs, slope = _mc_errors(make, cov, lambda net: net.kernels(X).nngp)
    print(f"NNGP relative errors {np.round(errs, 4)}, log-log slope {slope:.3f}")
    assert -0.7 <= slope <= -0.3
    assert errs[-1] < 0.05


def test_standard_parameterization_ntk_matches_analytic():
    x = X[:4]
    errs = []
    for n in (128, 512):
        net = MLP(in_dim=3, width=n, depth=2, activation="relu", sigma_w=1.4, sigma_b=0.3, parameterization="standard")
        keys = jax.random.split(jax.random.PRNGKey(1), SEEDS)
        est = jax.vmap(lambda key: mlp_ntk(net, net.init(key), x))(keys).mean(0)
        errs.append(relative_error(est, net.kernels(x).ntk))
    print(f"SP NTK relative errors {errs}")
    assert errs[1] < 0.05 and errs[1] < errs[0]


def test_bad_input():
    net = MLP(in_dim=3, width=4, depth=1, sigma_b=0.1)
    params = net.init(jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        net.init(0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        net.init(jnp.zeros(3, jnp.uint32))
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        MLP(in_dim=3, width=4, depth=0)
    with pytest.raises(ValueError, match="sigma_w must be a finite number >= 0"):
        MLP(in_dim=3, width=4, sigma_w=-1.0)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(in_dim=3, width=4, activation="swish")
    with pytest.raises(ValueError, match="one width per hidden layer"):
        MLP(in_dim=3, width=(4, 4), depth=1)
    with pytest.raises(ValueError, match="has 2 features per point but 3 were expected"):
        net.apply(params, X[:, :2])
    with pytest.raises(ValueError, match=r"params\[0\]\['b'\] must have shape \(4,\)"):
        net.apply([{"W": params[0]["W"], "b": jnp.zeros(5)}, params[1]], X)
    with pytest.raises(ValueError, match=r"keys \['W', 'b'\]"):
        net.apply([{"W": params[0]["W"]}, params[1]], X)
    with pytest.raises(ValueError, match="NaN"):
        net.apply(params, X.at[0, 0].set(jnp.inf))
