"""Tests of ntknotes.experiments.gaussian_processes and ntknotes.experiments.ntk_recursion.

Numbers are checked against references computed another way: NumPy forward passes, least
squares, Monte Carlo, closed forms written out here.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes.empirical import mlp_ntk_per_layer
from ntknotes.experiments import gaussian_processes as gp
from ntknotes.experiments import ntk_recursion as rec
from ntknotes.kernels import nngp, nngp_ntk
from ntknotes.networks import MLP


@pytest.fixture(scope="module")
def x3():
    return jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)))


def _numpy_forward(params, x, sigma_w, sigma_b):
    """Plain NumPy forward pass of a ReLU MLP in the NTK parameterization."""
    h = np.asarray(x)
    for i, layer in enumerate(params):
        W = np.asarray(layer["W"])
        z = sigma_w / math.sqrt(W.shape[0]) * h @ W + sigma_b * np.asarray(layer["b"])
        h = z if i == len(params) - 1 else np.maximum(z, 0.0)
    return h


# ---------------------------------------------------------------- gaussian_processes
@pytest.mark.parametrize("depth", [1, 2])
def test_unit_terms_sum_to_output(x3, depth):
    net = MLP(in_dim=3, width=64, depth=depth, sigma_w=1.3, sigma_b=0.4)
    params = net.init(jax.random.PRNGKey(1))
    terms, bias = gp.unit_terms(net, params, x3)
    assert terms.shape == (5, 64)
    np.testing.assert_allclose(terms.sum(1) + bias, _numpy_forward(params, x3, 1.3, 0.4)[:, 0], rtol=1e-12, atol=1e-12)


def test_feature_kernel_is_readout_ntk(x3):
    net = MLP(in_dim=3, width=128, depth=2, sigma_w=1.5, sigma_b=0.2)
    params = net.init(jax.random.PRNGKey(2))
    khat = gp.feature_kernel(net, params, x3)
    per_layer = mlp_ntk_per_layer(net, params, x3)
    np.testing.assert_allclose(khat, per_layer[-1], rtol=1e-12, atol=1e-12)
    # and it is σ_w²/n φ·φ + σ_b² by hand
    h1 = np.maximum(_numpy_forward(params[:1], x3, 1.5, 0.2), 0)  # layer-1 output is linear: apply relu
    h2 = np.maximum(1.5 / math.sqrt(128) * h1 @ np.asarray(params[1]["W"]) + 0.2 * np.asarray(params[1]["b"]), 0)
    np.testing.assert_allclose(khat, 1.5**2 / 128 * h2 @ h2.T + 0.04, rtol=1e-12)


def test_subnetwork_is_sliced_network(x3):
    net = MLP(in_dim=3, width=32, depth=2, sigma_w=1.2, sigma_b=0.3)
    params = net.init(jax.random.PRNGKey(3))
    small, sp = gp.subnetwork(net, params, 8)
    assert small.width == (8, 8)
    sliced = [{"W": params[0]["W"][:, :8], "b": params[0]["b"][:8]},
              {"W": params[1]["W"][:8, :8], "b": params[1]["b"][:8]},
              {"W": params[2]["W"][:8, :], "b": params[2]["b"]}]
    np.testing.assert_allclose(small.apply(sp, x3), _numpy_forward(sliced, x3, 1.2, 0.3), rtol=1e-12)
    with pytest.raises(ValueError, match="at most"):
        gp.subnetwork(net, params, 64)


def test_subnetwork_standard_parameterization_rescales(x3):
    net = MLP(in_dim=3, width=16, depth=1, sigma_w=1.0, parameterization="standard")
    params = net.init(jax.random.PRNGKey(4))
    _, sp = gp.subnetwork(net, params, 4)
    np.testing.assert_allclose(sp[1]["W"], params[1]["W"][:4] * 2.0)  # sqrt(16/4)
    np.testing.assert_allclose(sp[0]["W"], params[0]["W"][:, :4])  # input fan-in unchanged


def test_sample_outputs_match_apply_of_each_width(x3):
    net = MLP(in_dim=3, width=16, depth=1, sigma_w=1.4, sigma_b=0.1)
    out = gp.sample_outputs(net, x3, jax.random.PRNGKey(5), (1, 4, 16), 3, chunk=2)
    assert out.shape == (3, 3, 5)
    params = net.init(jax.random.split(jax.random.PRNGKey(5), 3)[1])
    for i, w in enumerate((1, 4, 16)):
        small, sp = gp.subnetwork(net, params, w)
        np.testing.assert_allclose(out[1, i], small.apply(sp, x3)[:, 0], rtol=1e-10, atol=1e-12)
    net2 = MLP(in_dim=3, width=8, depth=2)
    out2 = gp.sample_outputs(net2, x3, jax.random.PRNGKey(5), (2, 8), 2)
    p2 = net2.init(jax.random.split(jax.random.PRNGKey(5), 2)[0])
    np.testing.assert_allclose(out2[0, 1], net2.apply(p2, x3)[:, 0], rtol=1e-10)


def test_shallow_relu_nngp_matches_recursion_and_monte_carlo():
    x = np.array([[1.0, 0.2], [-0.5, 0.9], [0.3, -1.1]])
    closed = gp.shallow_relu_nngp(x, sigma_w=1.5, sigma_b=0.2)
    np.testing.assert_allclose(closed, nngp(x, depth=1, activation="relu", sigma_w=1.5, sigma_b=0.2), rtol=1e-12)
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(2, 400_000)), rng.normal(size=400_000)
    feats = np.maximum(1.5 / math.sqrt(2) * x @ w + 0.2 * b, 0)
    mc = 1.5**2 * feats @ feats.T / w.shape[1] + 0.04
    np.testing.assert_allclose(mc, closed, rtol=0.01)


def test_shallow_kurtosis_closed_form():
    x = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(gp.shallow_kurtosis(x, 5, sigma_w=1.0, sigma_b=0.0), [3.0], rtol=1e-6)  # 15/5
    k = float(nngp(x, depth=1, sigma_w=1.5, sigma_b=0.3)[0, 0])
    np.testing.assert_allclose(gp.shallow_kurtosis(x, 10, sigma_w=1.5, sigma_b=0.3), [1.5 * (1 - 0.09 / k) ** 2], rtol=1e-6)
    # tanh against a direct NumPy integral of 3 σ_w⁴ Var[φ(h)²] / (n K²)
    z = np.linspace(-12, 12, 20001)
    wz = np.exp(-z**2 / 2)
    wz /= wz.sum()
    q = 2.0**2 * 1.0 / 2
    p2 = np.tanh(math.sqrt(q) * z) ** 2
    kk = 4.0 * (wz @ p2)
    ref = 3 * 16.0 * (wz @ p2**2 - (wz @ p2) ** 2) / (7 * kk**2)
    np.testing.assert_allclose(gp.shallow_kurtosis(x, 7, activation="tanh", sigma_w=2.0), [ref], rtol=1e-6)


def test_ks_and_kurtosis_statistics():
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (20_000,)))
    assert gp.ks_distance(z, 1.0) < 1.63 / math.sqrt(z.size)
    assert gp.ks_distance(z, 2.0) > 0.1
    assert abs(gp.excess_kurtosis(z)) < 0.15
    u = np.linspace(-1, 1, 100_001)
    np.testing.assert_allclose(gp.excess_kurtosis(u), -1.2, atol=1e-3)
    with pytest.raises(ValueError):
        gp.ks_distance(z, 0.0)
    with pytest.raises(ValueError):
        gp.ks_distance([1.0], 1.0)


def test_trained_readout_is_min_norm_interpolant():
    net = MLP(in_dim=1, width=64, depth=1, sigma_w=1.5, sigma_b=1.0)
    params = net.init(jax.random.PRNGKey(6))
    x = jnp.linspace(-2, 2, 4)[:, None]
    y = jnp.sin(x[:, 0])
    xe = jnp.linspace(-3, 3, 7)[:, None]
    out = gp.trained_readout(net, params, x, y, jnp.concatenate([x, xe]))
    np.testing.assert_allclose(out[:4], y, atol=1e-10)
    psi = np.asarray(gp.readout_features(net, params, x))
    r0 = np.asarray(gp.readout_weights(net, params))
    delta = np.linalg.lstsq(psi, np.asarray(y) - psi @ r0, rcond=None)[0]  # minimum-norm correction
    np.testing.assert_allclose(out[4:], np.asarray(gp.readout_features(net, params, xe)) @ (r0 + delta), rtol=1e-8)


def test_gp_helpers_reject_bad_input(x3):
    with pytest.raises(ValueError, match="out_dim"):
        gp.unit_terms(MLP(in_dim=3, width=4, out_dim=2), MLP(in_dim=3, width=4, out_dim=2).init(jax.random.PRNGKey(0)), x3)
    with pytest.raises(TypeError):
        gp.feature_kernel("net", None, x3)
    with pytest.raises(ValueError):
        gp.sample_outputs(MLP(in_dim=3, width=4), x3, jax.random.PRNGKey(0), (8,), 2)
    with pytest.raises(ValueError):
        gp.shallow_relu_nngp(np.ones(3))


# ---------------------------------------------------------------- ntk_recursion
def test_relu_reference_matches_library_and_depth_one_formula(x3):
    k, t = rec.relu_ntk_reference(x3, depth=4, sigma_w=1.4, sigma_b=0.3)
    lib = nngp_ntk(x3, depth=4, activation="relu", sigma_w=1.4, sigma_b=0.3)
    np.testing.assert_allclose(k, lib.nngp, rtol=1e-12)
    np.testing.assert_allclose(t, lib.ntk, rtol=1e-12)
    # depth 1, no bias, unit vectors: Θ = ρ (π − θ)/(2π) + (sin θ + (π − θ) ρ)/(2π) with σ_w = 1, d = 2
    th = np.array([0.0, 1.0, 2.5])
    xs = np.stack([np.cos(th), np.sin(th)], 1)
    _, t1 = rec.relu_ntk_reference(xs[:1], xs, depth=1)
    rho = np.cos(th) / 2  # Σ¹ = x·x'/d
    ang = np.arccos(np.cos(th))
    expect = rho * (np.pi - ang) / (2 * np.pi) + 0.5 * (np.sin(ang) + (np.pi - ang) * np.cos(ang)) / (2 * np.pi)
    np.testing.assert_allclose(t1[0], expect, rtol=1e-12)
    with pytest.raises(ValueError):
        rec.relu_ntk_reference(x3, depth=0)


def test_monte_carlo_duals_agree_with_closed_forms():
    k11, k12, k22 = np.array([1.0, 2.0]), np.array([0.3, -0.5]), np.array([0.5, 1.0])
    for name in ("relu", "erf"):
        from ntknotes.activations import get_activation

        act = get_activation(name)
        d, dd, se, sed = rec.monte_carlo_duals(name, k11, k12, k22, key=jax.random.PRNGKey(0), n_samples=400_000)
        assert np.all(np.abs(d - act.dual(k11, k12, k22)) < 5 * se)
        assert np.all(np.abs(dd - act.dual_derivative(k11, k12, k22)) < 5 * sed)
    with pytest.raises(ValueError):
        rec.monte_carlo_duals("relu", [1.0], [2.0], [1.0], key=jax.random.PRNGKey(0))


def test_correlation_map_and_fixed_point():
    rho = np.array([0.0, 0.5, 1.0])
    c = rec.correlation_map("relu", rho, sigma_w=math.sqrt(2))
    expect = (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho) / np.pi
    np.testing.assert_allclose(c, expect, rtol=1e-12)
    assert abs(c[0] - 1 / np.pi) < 1e-12
    star = rec.fixed_point("erf", 0.1, sigma_w=2.0, sigma_b=0.5)
    assert abs(float(rec.correlation_map("erf", star, sigma_w=2.0, sigma_b=0.5)) - star) < 1e-10
    assert 0.0 < star < 1.0


def test_small_recursion_experiments():
    heat = rec.heatmap_experiment(rec.HeatmapConfig(n_grid=11, width=4096))
    assert heat.maps.shape == (3, 11, 11)
    # grid entry [c, i, j] is x* = (axis[j], axis[i])
    direct = nngp_ntk(np.array([[heat.axis[2], heat.axis[7]]]), heat.centers, depth=1, activation="relu").ntk
    np.testing.assert_allclose(heat.maps[:, 7, 2], np.asarray(direct)[0], rtol=1e-12)
    rel = np.max(np.abs(heat.slice_empirical - heat.slice_analytic)) / np.max(np.abs(heat.slice_analytic))
    assert rel < 0.1
    deep = rec.depth_experiment(rec.DepthConfig(max_depth=3, n_angles=7))
    np.testing.assert_allclose(deep.ntk[0][:, 0], [2.0, 3.0, 4.0], rtol=1e-12)
    lay = rec.layer_contributions_experiment(rec.LayerConfig(depth=2, width=256, n_seeds=2))
    assert lay.empirical.shape == (2, 3, 4, 4) and lay.analytic.shape == (3, 4, 4)
    np.testing.assert_allclose(np.diagonal(lay.analytic, axis1=1, axis2=2), 1.0, rtol=1e-12)


def test_nested_kernel_errors_against_direct_computation(x3):
    net = MLP(in_dim=3, width=16, depth=2, sigma_w=1.3, sigma_b=0.2)
    key = jax.random.PRNGKey(7)
    p0 = net.init(jax.random.split(key, 2)[0])
    ref = gp.feature_kernel(net, p0, x3)
    errs = gp.nested_kernel_errors(net, gp.feature_kernel, x3, key, (4, 16), 2, ref)
    assert errs.shape == (2, 2)
    assert errs[1, 0] < 1e-14  # network 0 at full width is the reference itself
    small = gp.feature_kernel(*gp.subnetwork(net, p0, 4), x3)
    np.testing.assert_allclose(errs[0, 0], np.linalg.norm(small - ref) / np.linalg.norm(ref), rtol=1e-12)


def test_experiments_take_a_config_object():
    """The protocol fn(config, *, key): a config object changes the sizes, a wrong type is refused."""
    cov = gp.covariance_error_experiment(gp.CovarianceConfig(depths=(1,), widths=(4, 8), n_nets=2, n_points=3),
                                         key=jax.random.PRNGKey(0))
    assert cov.errors.shape == (1, 2, 2)
    conv = rec.convergence_experiment(rec.ConvergenceConfig(depths=(1,), activations=("relu",), widths=(4, 8),
                                                            n_seeds=2, n_points=3), key=jax.random.PRNGKey(0))
    assert conv.errors.shape == (1, 1, 2, 2)
    with pytest.raises(TypeError, match="NormalityConfig"):
        gp.normality_experiment(rec.ConvergenceConfig())
    with pytest.raises(TypeError, match="ConvergenceConfig"):
        rec.convergence_experiment(gp.CovarianceConfig())
