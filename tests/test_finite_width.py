"""Tests of ntknotes.finite_width and its Monte Carlo driver against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes.empirical import empirical_ntk
from ntknotes.experiments import finite_width as fwx
from ntknotes.finite_width import (
    ReLUNet,
    _init_stacked,
    _terms_stacked,
    _unstack,
    _update_stacked,
    layer_ratio_product,
    mean_ntk,
    ntk_terms,
    ntk_update,
    relu_layer_moments,
    sample_ntk,
)
from ntknotes.stats import bootstrap_ci


def _random_biases(params, key):
    """Give the zero-initialized biases random values so that they matter in the checks."""
    keys = jax.random.split(key, len(params))
    return [{"W": p["W"], "b": 0.3 * jax.random.normal(k, p["b"].shape)} for p, k in zip(params, keys)]


def _grad_split(net, params, x):
    """Per-layer squared gradient norms by plain autodiff: the reference for the manual passes."""
    g = jax.grad(lambda p: net.apply(p, x[None])[0])(params)
    return np.array([float(jnp.sum(l["W"] ** 2)) for l in g]), np.array([float(jnp.sum(l["b"] ** 2)) for l in g])


@pytest.mark.parametrize("widths", [(5,), (4, 6, 3), (7, 7, 7, 7)])
def test_kernel_matches_generic_empirical_ntk(widths):
    net = ReLUNet(3, widths)
    params = _random_biases(net.init(jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    x = jnp.array([0.4, -1.2, 0.9])
    terms = ntk_terms(net, params, x)
    ref = float(empirical_ntk(net.apply, params, x[None])[0, 0])
    assert abs(float(terms.total) - ref) <= 1e-10 * ref
    w_ref, b_ref = _grad_split(net, params, x)
    np.testing.assert_allclose(terms.weight, w_ref, rtol=1e-10)
    np.testing.assert_allclose(terms.bias, b_ref, rtol=1e-10)
    assert float(terms.bias[-1]) == 1.0  # the output bias enters N with coefficient 1
    np.testing.assert_allclose(float(terms.output), float(net.apply(params, x[None])[0]), rtol=1e-12)


def test_stacked_path_equals_list_path():
    net = ReLUNet.equal(3, 6, 5)
    key = jax.random.PRNGKey(7)
    stacked = _init_stacked(net, key, jnp.float64)
    listed = net.init(key)
    for a, b in zip(_unstack(stacked), listed):
        np.testing.assert_array_equal(a["W"], b["W"])
    x = jnp.array([1.0, -0.5, 0.25])
    s, l_ = _terms_stacked(net, stacked, x), ntk_terms(net, listed, x)
    np.testing.assert_allclose(s.weight, l_.weight, rtol=1e-12)
    np.testing.assert_allclose(s.bias, l_.bias, rtol=1e-12)
    np.testing.assert_allclose(_update_stacked(net, stacked, x, 0.3), ntk_update(net, listed, x, lr=1.0, target=0.3), rtol=1e-10)
    # the sampler draws network i from split(key, M)[i]
    samples = sample_ntk(net, x, key, num_networks=5, chunk_size=2, update=True)
    k3 = jax.random.split(key, 5)[3]
    t3 = ntk_terms(net, net.init(k3), x)
    np.testing.assert_allclose(samples.weight[3], t3.weight, rtol=1e-12)
    np.testing.assert_allclose(samples.update[3], ntk_update(net, net.init(k3), x), rtol=1e-10)


@pytest.mark.parametrize("widths", [(6, 5), (8, 8, 8)])
def test_update_matches_an_explicit_sgd_step(widths):
    """ΔK from the Hessian-vector product against K after a real SGD step, as λ → 0."""
    net = ReLUNet(3, widths)
    params = _random_biases(net.init(jax.random.PRNGKey(3)), jax.random.PRNGKey(4))
    x = jnp.array([0.7, 0.2, -1.1])
    target = 0.4
    k0 = float(ntk_terms(net, params, x).total)

    def after_step(lr):
        loss = lambda p: 0.5 * (net.apply(p, x[None])[0] - target) ** 2
        g = jax.grad(loss)(params)
        new = jax.tree_util.tree_map(lambda p, gp: p - lr * gp, params, g)
        return float(ntk_terms(net, new, x).total)

    for lr in (1e-4, 1e-5):
        predicted = float(ntk_update(net, params, x, lr=lr, target=target))
        central = (after_step(lr) - after_step(-lr)) / 2  # removes the O(λ²) term
        assert abs(central - predicted) <= 1e-6 * abs(predicted)
        assert abs((after_step(lr) - k0) - predicted) <= 50 * lr * abs(predicted)


def test_exact_mean_by_monte_carlo():
    """E[K] = d‖x‖²/n_0 + (d + 1)/2 (output bias adds 1), within a bootstrap interval."""
    net = ReLUNet(5, (12, 9, 12))
    x = jnp.array([1.0, -2.0, 0.5, 0.0, 1.5])
    s = sample_ntk(net, x, jax.random.PRNGKey(11), num_networks=20000, chunk_size=5000)
    theory = mean_ntk(net.depth, float(x @ x) / 5)
    ci = bootstrap_ci(s.total, key=jax.random.PRNGKey(12), n_boot=400, level=0.99)
    assert ci.contains(theory), (ci, theory)
    paper = net.depth * (0.5 + float(x @ x) / 5)  # the printed d(1/2 + ‖x‖²/n_0) is half a unit low
    assert not ci.contains(paper)
    np.testing.assert_array_equal(s.bias[:, -1], 1.0)


def test_one_layer_second_moment_ratio():
    """E[R²]/E[R]² = 1 + 5/n for one ReLU layer: exact moments and Monte Carlo."""
    for n in (1, 3, 10, 50):
        m = relu_layer_moments(n)
        assert m[1] == pytest.approx(1.0, rel=1e-12)
        assert m[2] == pytest.approx(1 + 5 / n, rel=1e-12)
        assert layer_ratio_product((n, n)) == pytest.approx((1 + 5 / n) ** 2, rel=1e-12)
    # Monte Carlo of R itself against the closed-form fourth moment
    n = 6
    g = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (400000, n)))
    r = 2 / n * (np.maximum(g, 0) ** 2).sum(1)
    np.testing.assert_allclose([r.mean(), (r**2).mean(), (r**4).mean()], relu_layer_moments(n)[[1, 2, 4]], rtol=0.05)
    # in a network: the last hidden layer's bias term ‖δ^{d-1}‖² is one such factor (times ½)
    net = ReLUNet(4, (9, 7))
    s = sample_ntk(net, jnp.ones(4), jax.random.PRNGKey(6), num_networks=40000, chunk_size=10000)
    t = s.bias[:, 1]
    mean, boot = fwx.bootstrap_means(np.column_stack([t, t**2]), jax.random.PRNGKey(8), 500)
    ci = fwx.percentile_ci(mean[1] / mean[0] ** 2, (boot[:, 1] / boot[:, 0] ** 2)[:, None], 0.99)[0]
    assert ci[1] <= 1 + 5 / 7 <= ci[2], ci


def test_bootstrap_means_agrees_with_stats_bootstrap():
    x = np.asarray(jax.random.exponential(jax.random.PRNGKey(0), (3000,)))
    mean, boot = fwx.bootstrap_means(x[:, None], jax.random.PRNGKey(1), 2000)
    ci = fwx.percentile_ci(mean, boot, 0.95)[0]
    ref = bootstrap_ci(x, key=jax.random.PRNGKey(2), n_boot=2000, level=0.95)
    assert ci[0] == pytest.approx(ref.estimate)
    assert ci[1] == pytest.approx(ref.low, abs=0.01) and ci[2] == pytest.approx(ref.high, abs=0.01)


def test_grid_driver_small_config(tmp_path):
    cfg = fwx.GridConfig(in_dim=3, x_sq=3.0, grid=((6, 2), (6, 3)), num_networks=300, tail=(4, 5, 200),
                         chunk_size=128, n_boot=50)
    res = fwx.run_grid(cfg, key=jax.random.PRNGKey(0), path=tmp_path / "g.npz")
    assert res.K.shape == (2, 300) and res.ratio.shape == (2, 3) and res.layer_weight_ratio.shape == (2, 3, 3)
    assert np.isnan(res.layer_weight_ratio[0, 2]).all()
    np.testing.assert_allclose(res.theory_mean, [2 + 1.5, 3 + 2.0])
    again = fwx.GridResult.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(again.K, res.K)
    assert res.networks == 800 and res.networks_per_second > 0
    assert set(fwx.PRESETS) == {"ci", "paper"}


def test_bad_inputs():
    with pytest.raises(TypeError):
        ReLUNet(3, 5)
    with pytest.raises(ValueError):
        ReLUNet(3, ())
    with pytest.raises(ValueError):
        ReLUNet(0, (3,))
    with pytest.raises(ValueError):
        ReLUNet.equal(3, 4, 1)
    net = ReLUNet(3, (4,))
    params = net.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError):
        ntk_terms(net, params, jnp.ones(4))
    with pytest.raises(ValueError):
        ntk_terms(net, params, jnp.array([1.0, jnp.nan, 0.0]))
    with pytest.raises(TypeError):
        ntk_terms(net, params, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        ntk_terms(ReLUNet(3, (5,)), params, jnp.ones(3))
    with pytest.raises(ValueError):
        ntk_update(net, params, jnp.ones(3), lr=0.0)
    with pytest.raises(TypeError):
        ntk_update(net, params, jnp.ones(3), target="a")
    with pytest.raises(ValueError):
        sample_ntk(net, jnp.ones(3), jax.random.PRNGKey(0), num_networks=1)
    with pytest.raises(TypeError):
        sample_ntk(net, jnp.ones(3), 0, num_networks=4)
    with pytest.raises(TypeError):
        net.init(0)
    with pytest.raises(ValueError):
        fwx.GridConfig(grid=((4, 1),))
    with pytest.raises(ValueError):
        fwx.run_grid("huge", key=jax.random.PRNGKey(0))
    with pytest.raises(TypeError):
        fwx.run_grid("ci", key=0)
    with pytest.raises(ValueError):
        mean_ntk(0, 1.0)
    with pytest.raises(ValueError):
        fwx.bootstrap_means(np.ones(3), jax.random.PRNGKey(0))
