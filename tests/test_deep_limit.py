"""Tests for ntknotes.deep_limit, ntknotes.data.sphere and the chapter's experiments."""
import math

import jax
import numpy as np
import pytest

from ntknotes import activations as A
from ntknotes import deep_limit as dl
from ntknotes.activations import gaussian_expectation
from ntknotes.data import DirichletMixture, load_sphere_mixture, two_class_dirichlet


def _np(f):
    return lambda z: np.asarray(f(np.asarray(z)))


# ----------------------------------------------------------------------------
# A, A', B and the cases
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("act", [A.relu(), A.erf(), A.tanh(), A.sigmoid_centered(), A.sin(), A.gelu(), A.hermite(2)])
def test_hermite_quantities_match_quadrature(act):
    c = dl.limit_case(act)
    m2 = gaussian_expectation(lambda z: np.asarray(act(z)) ** 2)
    s = 1.0 / math.sqrt(m2)
    f, fp = _np(act), _np(act.derivative)
    assert c.A == pytest.approx(s * gaussian_expectation(f), abs=1e-10)
    assert c.A_prime == pytest.approx(s * gaussian_expectation(fp), abs=1e-10)
    assert c.B == pytest.approx(s**2 * gaussian_expectation(lambda z: fp(z) ** 2), rel=1e-10)
    # the same from the normalized Hermite coefficients (smooth activations: fast decay)
    a = act.normalized().hermite_coefficients(64)
    assert c.A == pytest.approx(a[0], abs=1e-10)
    assert c.A_prime == pytest.approx(a[1], abs=1e-10)
    if act.smooth:
        assert c.B == pytest.approx(np.sum(np.arange(64) * a**2), rel=1e-8)


def test_closed_form_values():
    relu = dl.limit_case(A.relu())
    assert (relu.A, relu.A_prime, relu.B) == pytest.approx((1 / math.sqrt(math.pi), 1 / math.sqrt(2), 1.0), abs=1e-12)
    # erf: E[erf^2] = (2/π) arcsin(2/3), E[erf'] = (2/√π)/√3
    m2 = 2 / math.pi * math.asin(2 / 3)
    e = dl.limit_case(A.erf())
    assert e.A_prime == pytest.approx(2 / math.sqrt(math.pi) / math.sqrt(3) / math.sqrt(m2), rel=1e-12)
    assert e.B == pytest.approx(4 / math.pi / math.sqrt(5) / m2, rel=1e-12)  # E[erf'^2] = (4/π)/√5
    # sin(w z): A'^2 = a/sinh a, B = a coth a with a = w^2
    for a in (1.0, 2.676):
        c = dl.limit_case(A.sin(math.sqrt(a)))
        assert c.A_prime**2 == pytest.approx(a / math.sinh(a), rel=1e-10)
        assert c.B == pytest.approx(a / math.tanh(a), rel=1e-10)
    assert dl.limit_case(A.sin(math.sqrt(2.676))).alpha == pytest.approx(2.0, abs=2e-3)


@pytest.mark.parametrize("d", [2, 4, 8, 16, 32])
def test_phi_opt(d):
    act = A.phi_opt(d)
    assert act.second_moment == pytest.approx(1.0, abs=1e-12)
    c = dl.limit_case(act)
    assert c.A == pytest.approx(0.0, abs=1e-12)
    assert c.A_prime == pytest.approx(2.0 ** (-d / 4), rel=1e-12)
    assert c.B == pytest.approx(2.0, rel=1e-12)
    assert c.alpha == pytest.approx(d, rel=1e-12)
    assert c.case == "singular kernel"


def test_cases():
    expect = {
        A.relu(): "majority vote",
        A.gelu(): "majority vote",
        A.erf(): "singular kernel",
        A.tanh(): "singular kernel",
        A.sigmoid_centered(): "singular kernel",
        A.sin(): "singular kernel",
        A.abs_centered(): "1-NN",
        A.hermite(2): "1-NN",
        A.identity(): "not covered",
        A.hermite_series((0.6, 0.8)): "not covered",  # A ≠ 0, B = 0.64 < 1
    }
    for act, case in expect.items():
        assert dl.limit_case(act).case == case, act.name
    assert dl.limit_case(A.sigmoid_centered()).alpha == pytest.approx(0.966, abs=1e-3)
    assert dl.limit_case(A.erf()).alpha == pytest.approx(0.888, abs=1e-3)


# ----------------------------------------------------------------------------
# the deep recursion
# ----------------------------------------------------------------------------
def _plain(act, rho, depth):
    """The textbook recursion with the activation's own dual maps, in a Python loop."""
    n = act.normalized()
    s, k = np.asarray(rho, float), np.asarray(rho, float)
    out = []
    for _ in range(depth):
        s_new = np.asarray(n.dual(1.0, s, 1.0))
        k = s_new + k * np.asarray(n.dual_derivative(1.0, s, 1.0))
        s = s_new
        out.append((s.copy(), k.copy()))
    return out


@pytest.mark.parametrize("act", [A.relu(), A.erf(), A.phi_opt(4), A.hermite(2), A.tanh(), A.sin()])
def test_stable_recursion_matches_plain(act):
    rho = np.array([0.05, 0.3, 0.7, 0.95, 0.999, 1.0])
    ref = _plain(act, rho, 25)
    depths = [0, 1, 5, 12, 25]
    out = dl.deep_kernel_profile(rho, depths, act)
    np.testing.assert_allclose(np.exp(out.log_nngp[0]), rho, rtol=1e-14)
    for i, L in enumerate(depths[1:], start=1):
        s, k = ref[L - 1]
        np.testing.assert_allclose(np.exp(np.asarray(out.log_nngp[i])), s, rtol=1e-9, atol=1e-14)  # quadrature duals: ~1e-15 absolute
        np.testing.assert_allclose(np.exp(np.asarray(out.log_ntk[i])), k, rtol=1e-9, atol=1e-14)


def test_relu_diagonal_and_growth():
    out = dl.deep_kernel_profile(np.array([1.0, 0.5]), [1, 1000, 100000], A.relu())
    np.testing.assert_allclose(np.exp(out.log_ntk[:, 0]), [2.0, 1001.0, 100001.0], rtol=1e-12)
    np.testing.assert_allclose(out.log_nngp[:, 0], 0.0, atol=0)
    ratio = np.exp(np.asarray(out.log_ntk[:, 1])) / np.array([2.0, 1001.0, 100001.0])
    assert abs(ratio[-1] - 0.25) < 1e-3 and abs(ratio[-1] - 0.25) < abs(ratio[-2] - 0.25)


def test_deep_singular_kernel_does_not_overflow():
    c = dl.limit_case(A.erf())
    L = np.array([10000, 100000, 200000])
    out = dl.deep_kernel_profile(np.array([1.0, 0.9, 0.2]), L, A.erf())
    s, k = np.asarray(out.log_nngp), np.asarray(out.log_ntk)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(k))
    # diagonal: K_L = (B^{L+1} - 1)/(B - 1), in logs
    np.testing.assert_allclose(k[:, 0], (L + 1) * math.log(c.B) - math.log(c.B - 1.0), rtol=1e-10)
    # off-diagonal: Σ_L / A'^{2L} and K_L / ((L+1) A'^{2L}) converge to the same c(ρ)
    lap = 2 * math.log(c.A_prime)
    cs = s[:, 1:] - L[:, None] * lap
    ck = k[:, 1:] - L[:, None] * lap - np.log(L + 1.0)[:, None]
    np.testing.assert_allclose(cs[1], cs[2], rtol=1e-6)
    np.testing.assert_allclose(np.exp(ck[2] - cs[2]), 1.0, atol=1e-3)


def test_deep_kernels_matrices():
    mix = two_class_dirichlet(2)
    x, _ = mix.sample(30, jax.random.PRNGKey(0))
    xt, _ = mix.sample(7, jax.random.PRNGKey(1))
    out = dl.deep_kernels(x, depths=[3, 300], activation=A.erf())
    assert out.log_ntk.shape == (2, 30, 30)
    k = np.asarray(out.log_ntk)
    np.testing.assert_allclose(k, np.swapaxes(k, 1, 2), rtol=1e-13)
    np.testing.assert_allclose(np.diagonal(k, axis1=1, axis2=2), k[:, :1, :1].reshape(2, 1) * np.ones((2, 30)))
    cross = dl.deep_kernels(xt, x, depths=[3, 300], activation=A.erf(), kind="nngp")
    assert cross.log_nngp.shape == (2, 7, 30) and cross.log_ntk is None
    ref = dl.deep_kernel_profile(np.clip(xt @ x.T, 0, 1), [3, 300], A.erf(), kind="nngp")
    np.testing.assert_allclose(cross.log_nngp, ref.log_nngp, rtol=1e-12)


@pytest.mark.parametrize("act", [A.relu(), A.erf(), A.phi_opt(2), A.hermite(2)])
def test_table_matches_direct(act):
    rng = np.random.default_rng(0)
    rho = np.concatenate([rng.uniform(0.01, 1, 200), 1 - 10 ** rng.uniform(-11, -1, 200), [1.0]])
    depths = [1, 10, 100] if act is A.hermite(2) else [1, 10, 1000]
    tab = dl.kernel_table(act, depths, n_grid=1024)
    ref = dl.deep_kernel_profile(rho, depths, act)
    for kind, r in (("ntk", ref.log_ntk), ("nngp", ref.log_nngp)):
        r = np.asarray(r)
        err = np.abs(tab(rho, kind) - r) / np.maximum(1.0, np.abs(r))
        assert np.max(err) < 1e-5, (kind, np.max(err, axis=1))


def test_kernel_predict_matches_direct_solve():
    mix = two_class_dirichlet(2)
    x, y = mix.sample(40, jax.random.PRNGKey(2))
    xt, _ = mix.sample(50, jax.random.PRNGKey(3))
    ktr = dl.deep_kernels(x, depths=[20], activation=A.erf())
    kte = dl.deep_kernels(xt, x, depths=[20], activation=A.erf())
    pred = dl.kernel_predict(ktr.log_ntk[0], kte.log_ntk[0], y)
    score = np.exp(np.asarray(kte.log_ntk[0])) @ np.linalg.solve(np.exp(np.asarray(ktr.log_ntk[0])), y)
    np.testing.assert_array_equal(pred, np.where(score >= 0, 1.0, -1.0))


def test_limit_rules_brute_force():
    rng = np.random.default_rng(1)
    x = np.abs(rng.normal(size=(25, 3)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xt = np.abs(rng.normal(size=(9, 3)))
    xt /= np.linalg.norm(xt, axis=1, keepdims=True)
    xt[0] = x[4]
    y = np.where(rng.uniform(size=25) > 0.4, 1.0, -1.0)
    dist = np.linalg.norm(xt[:, None, :] - x[None, :, :], axis=-1)
    np.testing.assert_array_equal(dl.nearest_neighbor(x, y, xt), y[np.argmin(dist, axis=1)])
    h = dl.hilbert_rule(x, y, xt, 2.0)
    with np.errstate(divide="ignore"):
        ref = np.sign(np.sum(y * dist[1:] ** -2.0, axis=1))
    np.testing.assert_array_equal(h[1:], ref)
    assert h[0] == y[4]
    np.testing.assert_array_equal(dl.majority_vote(y, 3), np.full(3, np.sign(y.sum())))
    case = dl.limit_case(A.phi_opt(2))
    np.testing.assert_array_equal(dl.limit_rule(case, x, y, xt), h)


# ----------------------------------------------------------------------------
# Dirichlet mixtures on the sphere
# ----------------------------------------------------------------------------
def test_sphere_density_integrates_to_one():
    mix = two_class_dirichlet(2)
    n = 600
    th = (np.arange(n) + 0.5) * (np.pi / 2) / n  # midpoint rule in polar / azimuthal angles
    T, P = np.meshgrid(th, th, indexing="ij")
    x = np.stack([np.sin(T) * np.cos(P), np.sin(T) * np.sin(P), np.cos(T)], -1).reshape(-1, 3)
    w = np.sin(T).ravel() * (np.pi / 2 / n) ** 2
    f = np.exp(mix.class_log_densities(x))
    np.testing.assert_allclose(w @ f, [1.0, 1.0], atol=2e-4)
    # d = 1, uniform Dirichlet: f(x) = (x1 + x2)^{-2} on the quarter circle, which integrates to 1
    m1 = DirichletMixture(np.ones((2, 2)))
    t = (np.arange(4000) + 0.5) * (np.pi / 2) / 4000
    xs = np.stack([np.cos(t), np.sin(t)], 1)
    np.testing.assert_allclose(np.exp(m1.class_log_densities(xs))[:, 0], (np.cos(t) + np.sin(t)) ** -2, rtol=1e-12)


def test_sphere_samples_and_bayes():
    mix = two_class_dirichlet(4)
    data = load_sphere_mixture(mix, 500, 4000, key=jax.random.PRNGKey(0))
    assert data.x_train.shape == (500, 5) and data.y_test.shape == (4000, 1)
    np.testing.assert_allclose(np.linalg.norm(data.x_test, axis=1), 1.0, rtol=1e-12)
    assert np.all(data.x_test >= 0)
    y = data.y_test[:, 0]
    bayes = np.mean(mix.bayes(data.x_test) == y)
    mc = mix.bayes_accuracy(200000, jax.random.PRNGKey(5))
    assert abs(bayes - mc) < 3 * math.sqrt(mc * (1 - mc) / 4000)
    assert np.mean(y > 0) == pytest.approx(0.6, abs=0.03)
    nn = np.mean(dl.nearest_neighbor(data.x_train, data.y_train[:, 0], data.x_test) == y)
    assert bayes > nn


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
def test_bad_inputs():
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        dl.deep_kernel_profile(np.array([-0.2, 0.5]), [3], A.erf())
    with pytest.raises(ValueError, match="increasing"):
        dl.deep_kernel_profile(np.array([0.5]), [5, 3], A.erf())
    with pytest.raises(TypeError, match="depths"):
        dl.deep_kernel_profile(np.array([0.5]), [1.5], A.erf())
    with pytest.raises(ValueError, match="kind"):
        dl.deep_kernel_profile(np.array([0.5]), [3], A.erf(), kind="gp")
    with pytest.raises(ValueError, match="unit-norm"):
        dl.deep_kernels(np.ones((3, 2)), depths=[2], activation=A.erf())
    with pytest.raises(ValueError, match="non-negative"):
        dl.deep_kernels(np.array([[1.0, 0.0], [-1.0, 0.0]]), depths=[2], activation=A.erf())
    with pytest.raises(ValueError, match="Hermite coefficients miss"):
        dl.unit_dual(A.abs_centered())
    with pytest.raises(ValueError, match="unknown activation"):
        dl.limit_case("swish")
    with pytest.raises(ValueError, match="labels"):
        dl.majority_vote(np.array([1.0, 0.0]), 2)
    with pytest.raises(ValueError, match="no limiting rule"):
        dl.limit_rule(dl.limit_case(A.identity()), np.eye(2), np.ones(2), np.eye(2))
    with pytest.raises(ValueError, match="shape"):
        dl.kernel_predict(np.zeros((3, 2)), np.zeros((1, 3)), np.ones(3))
    with pytest.raises(ValueError, match="concentrations"):
        DirichletMixture(np.array([[1.0, -1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="prior"):
        DirichletMixture(np.ones((2, 3)), prior_plus=1.0)
    with pytest.raises(TypeError):
        load_sphere_mixture("mix", 3, 3, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="singular kernel"):
        from ntknotes.experiments.deep_limit import ExponentConfig, singular_exponent

        singular_exponent(ExponentConfig(activation=A.relu()))


# ----------------------------------------------------------------------------
# the consistency experiment
# ----------------------------------------------------------------------------
def test_limit_log_kernels_match_the_table_spline():
    from ntknotes.experiments.deep_limit import _limit_log_kernels

    tabs = [dl.kernel_table(a, [200], n_grid=256) for a in (A.erf(), A.phi_opt(2))]
    rho = np.concatenate([np.linspace(0.0, 0.999, 400), 1.0 - np.logspace(-3, -11, 50)])
    for tab, lk in zip(tabs, _limit_log_kernels(tabs, rho)):
        ref = tab(rho, "nngp")[-1]
        assert np.max(np.abs(lk - ref) / np.maximum(1.0, np.abs(ref))) < 1e-4


def test_consistency_small_run_against_direct_rules():
    from ntknotes.experiments.deep_limit import ConsistencyConfig, consistency

    cfg = ConsistencyConfig(dim=2, sizes=(30, 120), n_test=200, repeats=1, depth=300, n_grid=256)
    key = jax.random.PRNGKey(3)
    res = consistency(cfg, key=key)
    assert res.excess.shape == (3, 2) and np.all(res.excess >= 0) and np.all(res.excess_sd == 0)
    assert res.rules == ["phi_opt(d)", "erf", "1-NN"] and abs(res.alphas[0] - 2) < 1e-10
    # recompute the 1-NN excess error and Cover-Hart's limit directly, as the docstring defines them
    mix = two_class_dirichlet(2)
    xt, _ = mix.sample(200, jax.random.fold_in(key, 0))
    x, y = mix.sample(120, jax.random.fold_in(key, 1))
    eta = mix.posterior_plus(xt)
    dist = np.linalg.norm(xt[:, None, :] - x[None, :, :], axis=-1)
    for s, n in enumerate((30, 120)):
        nn = y[:n][np.argmin(dist[:, :n], axis=1)]
        p_wrong = np.where(nn > 0, 1.0 - eta, eta)  # error of 1-NN at each test point
        ref = np.mean(p_wrong) - np.mean(np.minimum(eta, 1.0 - eta))
        assert abs(res.excess[2, s] - ref) < 1e-12
    assert abs(res.cover_hart - np.mean(2 * eta * (1 - eta) - np.minimum(eta, 1 - eta))) < 1e-12
    assert abs(res.bayes_accuracy - np.mean(np.maximum(eta, 1 - eta))) < 1e-12


def test_consistency_bad_input():
    from ntknotes.experiments.deep_limit import ConsistencyConfig, consistency

    with pytest.raises(ValueError, match="increasing"):
        ConsistencyConfig(sizes=(400, 100))
    with pytest.raises(ValueError, match="unknown scale"):
        consistency("huge", key=jax.random.PRNGKey(0))
