"""ntknotes.dynamics against independent references: scipy.linalg.expm, explicit matrix powers,
a Van Loan block exponential for ∫e^{−Θs}ds, Monte Carlo over initial functions, and a real
gradient-descent run of a linear model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import ntknotes  # noqa: F401  (float64)
from ntknotes import dynamics as dyn
from ntknotes.linalg import SingularKernelError, eigh_psd, solve_psd
from ntknotes.training import gradient_descent


def _psd(n, rank=None, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, rank or n + 2))
    return scale * a @ a.T / a.shape[1]


def _joint(n, m, seed=0):
    """A PSD kernel on n training + m test points, split into its blocks."""
    k = _psd(n + m, seed=seed)
    return k[:n, :n], k[n:, :n], k[n:, n:]


def _integral_expm(theta, t):
    """∫_0^t e^{−Θs} ds = Θ⁻¹(I − e^{−Θt}) by Van Loan's block exponential (valid for singular Θ)."""
    n = theta.shape[0]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n] = -theta
    block[:n, n:] = np.eye(n)
    return scipy.linalg.expm(block * t)[:n, n:]


TIMES = np.array([0.0, 0.3, 1.0, 4.0])


def test_residuals_match_expm():
    theta = _psd(5, seed=1)
    r0 = np.random.default_rng(2).normal(size=(5, 2))
    got = np.asarray(dyn.residuals(theta, r0, TIMES))
    ref = np.stack([scipy.linalg.expm(-theta * t) @ r0 for t in TIMES])
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_gd_residuals_match_matrix_power():
    theta = _psd(5, seed=3)
    lr = 1.5 / np.linalg.eigvalsh(theta).max()  # beyond 1/λ_max: (1 − ηλ) < 0 on the top direction
    r0 = np.random.default_rng(4).normal(size=(5,))
    steps = np.array([0, 1, 2, 7, 30])
    got = np.asarray(dyn.residuals(theta, r0, steps, lr=lr))[..., 0]
    ref = np.stack([np.linalg.matrix_power(np.eye(5) - lr * theta, k) @ r0 for k in steps])
    np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("rank", [None, 2])
def test_inverse_filter_matches_block_exponential(rank):
    """Θ⁻¹(I − e^{−Θt}) is finite and exact even for a singular Θ (rank 2 of 6)."""
    theta = _psd(6, rank=rank, seed=5)
    eig = eigh_psd(theta)
    filt = dyn.inverse_filter(eig.values, TIMES)
    for t, f in zip(TIMES, filt):
        got = np.asarray(eig.vectors @ jnp.diag(f) @ eig.vectors.T)
        np.testing.assert_allclose(got, _integral_expm(theta, t), atol=1e-10)


def test_gd_inverse_filter_is_a_geometric_sum():
    """Θ⁻¹(I − (I − ηΘ)^k) = η Σ_{j<k} (I − ηΘ)^j, also for singular Θ."""
    theta = _psd(5, rank=3, seed=6)
    lr = 0.4
    eig = eigh_psd(theta)
    for k in [0, 1, 5, 40]:
        f = dyn.inverse_filter(eig.values, [k], lr=lr)[0]
        got = np.asarray(eig.vectors @ jnp.diag(f) @ eig.vectors.T)
        ref = lr * sum((np.linalg.matrix_power(np.eye(5) - lr * theta, j) for j in range(k)), np.zeros((5, 5)))
        np.testing.assert_allclose(got, ref, atol=1e-11)


def test_ill_conditioned_kernel_is_stable():
    """Eigenvalues down to 1e-30: the flow filter stays ≈ t on those directions, no inf/NaN."""
    w = np.array([1e-30, 1e-16, 1e-8, 1.0, 10.0])
    filt = np.asarray(dyn.inverse_filter(w, [2.0, 1e6]))
    np.testing.assert_allclose(filt[0, :2], [2.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(filt[1, 2], -np.expm1(-1e-2) / 1e-8, rtol=1e-10)
    np.testing.assert_allclose(filt[:, 4], -np.expm1(-10 * np.array([2.0, 1e6])) / 10, rtol=1e-12)
    inf = np.asarray(dyn.inverse_filter(w, [np.inf]))[0]
    np.testing.assert_allclose(inf, [0.0, 0.0, 1e8, 1.0, 0.1], rtol=1e-12)


def test_outputs_and_loss():
    ktt, kxt, _ = _joint(6, 3, seed=7)
    rng = np.random.default_rng(8)
    y, f0, f0x = rng.normal(size=(6, 1)), rng.normal(size=(6, 1)), rng.normal(size=(3, 1))
    out = np.asarray(dyn.train_outputs(ktt, f0, y, TIMES))
    ref = np.stack([y + scipy.linalg.expm(-ktt * t) @ (f0 - y) for t in TIMES])
    np.testing.assert_allclose(out, ref, atol=1e-12)
    test = np.asarray(dyn.test_outputs(ktt, kxt, f0, f0x, y, TIMES))
    ref_test = np.stack([f0x - kxt @ _integral_expm(ktt, t) @ (f0 - y) for t in TIMES])
    np.testing.assert_allclose(test, ref_test, atol=1e-12)
    # the training points as "new" points reproduce the training outputs
    np.testing.assert_allclose(np.asarray(dyn.test_outputs(ktt, ktt, f0, f0, y, TIMES)), out, atol=1e-12)
    # t = inf: kernel regression on the residual
    lim = np.asarray(dyn.test_outputs(ktt, kxt, f0, f0x, y, [np.inf]))[0]
    np.testing.assert_allclose(lim, f0x - kxt @ np.linalg.solve(ktt, f0 - y), atol=1e-10)
    loss = np.asarray(dyn.loss(ktt, f0, y, TIMES))
    np.testing.assert_allclose(loss, 0.5 * np.sum((ref - y) ** 2, axis=(1, 2)), atol=1e-12)
    bound = np.asarray(dyn.loss_bound(ktt, loss[0], TIMES))
    lam_min = np.linalg.eigvalsh(ktt).min()
    np.testing.assert_allclose(bound, loss[0] * np.exp(-2 * lam_min * TIMES), rtol=1e-12)
    assert np.all(loss <= bound * (1 + 1e-12))


def test_gd_loss_bound_holds():
    ktt = _psd(6, seed=9)
    y = np.random.default_rng(10).normal(size=(6, 2))
    lr = 1.9 / np.linalg.eigvalsh(ktt).max()
    steps = np.arange(0, 50)
    loss = np.asarray(dyn.loss(ktt, np.zeros_like(y), y, steps, lr=lr))
    bound = np.asarray(dyn.loss_bound(ktt, loss[0], steps, lr=lr))
    assert np.all(loss <= bound * (1 + 1e-12))


def test_label_projections():
    ktt = _psd(7, seed=11)
    y = np.random.default_rng(12).normal(size=(7, 3))
    lp = dyn.label_projections(ktt, y)
    assert np.all(np.diff(np.asarray(lp.eigenvalues)) <= 0)
    np.testing.assert_allclose(float(jnp.sum(lp.projections)), np.sum(y**2), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(dyn.projected_loss(lp.eigenvalues, lp.projections, TIMES)),
        np.asarray(dyn.loss(ktt, np.zeros_like(y), y, TIMES)),
        rtol=1e-12,
    )
    # the top eigenvector as the target puts all the energy in the first projection
    v = np.linalg.eigh(ktt)[1][:, -1]
    p = np.asarray(dyn.label_projections(ktt, v).projections)
    np.testing.assert_allclose(p, np.eye(7)[0], atol=1e-12)
    assert dyn.critical_lr(ktt) == pytest.approx(2 / np.linalg.eigvalsh(ktt).max())


def test_gd_of_linear_model_matches_closed_forms():
    """Gradient descent of f(x) = x·w + b is exactly the kernel dynamics with Θ = J Jᵀ."""
    from ntknotes.empirical import empirical_ntk

    rng = np.random.default_rng(13)
    x = rng.normal(size=(8, 5))
    y = rng.normal(size=(8, 2))
    params = {"w": jnp.asarray(rng.normal(size=(5, 2)) * 0.3), "b": jnp.zeros(2)}
    apply = lambda p, xx: xx @ p["w"] + p["b"]  # noqa: E731
    theta = empirical_ntk(apply, params, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(theta), x @ x.T + 1, atol=1e-12)
    lr, steps = 0.5 / float(np.linalg.eigvalsh(np.asarray(theta)).max()), 200
    rec = [0, 10, 50, 200]
    hist = gradient_descent(apply, params, jnp.asarray(x), jnp.asarray(y), lr=lr, steps=steps, record_steps=rec,
                            param_fn=lambda p: p)
    out = np.asarray(dyn.train_outputs(theta, np.asarray(apply(params, x)), y, rec, lr=lr))
    np.testing.assert_allclose(hist.outputs, out, atol=1e-10)
    np.testing.assert_allclose(hist.loss, np.asarray(dyn.loss(theta, apply(params, x), y, rec, lr=lr)), rtol=1e-9)
    disp = dyn.parameter_displacement(apply, params, jnp.asarray(x), theta, y, rec, lr=lr)
    for name in ("w", "b"):
        np.testing.assert_allclose(
            np.asarray(disp[name]), hist.tracked[name] - np.asarray(params[name])[None], atol=1e-10
        )


def _ntkgp_reference(ntk, kx, k_tr, k_xs, k_te, y, p_of_t, times):
    means, covs = [], []
    for t in times:
        p = kx @ p_of_t(t)
        means.append(p @ y)
        covs.append(k_te + p @ k_tr @ p.T - p @ k_xs.T - (p @ k_xs.T).T)
    return np.stack(means), np.stack(covs)


def test_ntkgp_moments_match_explicit_formula_flow_and_gd():
    n, m = 6, 3
    ntk, kx, _ = _joint(n, m, seed=14)
    k_tr, k_xs, k_te = _joint(n, m, seed=15)
    y = np.random.default_rng(16).normal(size=(n, 2))
    mom = dyn.ntkgp_moments(ntk, kx, k_tr, k_xs, k_te, y, TIMES)
    ref_m, ref_c = _ntkgp_reference(
        ntk, kx, k_tr, k_xs, k_te, y, lambda t: np.linalg.solve(ntk, np.eye(n) - scipy.linalg.expm(-ntk * t)), TIMES
    )
    assert mom.mean.shape == (4, m, 2) and mom.cov.shape == (4, m, m)
    np.testing.assert_allclose(np.asarray(mom.mean), ref_m, atol=1e-10)
    np.testing.assert_allclose(np.asarray(mom.cov), ref_c, atol=1e-10)
    # t = 0 is the prior; t = inf is NTK kernel regression
    np.testing.assert_allclose(np.asarray(mom.cov[0]), k_te, atol=1e-12)
    inf = dyn.ntkgp_moments(ntk, kx, k_tr, k_xs, k_te, y, [np.inf])
    np.testing.assert_allclose(np.asarray(inf.mean[0]), np.asarray(kx @ solve_psd(ntk, y)), atol=1e-10)
    # gradient descent with step lr: P_k = Θ(X*,X) Θ⁻¹(I − (I − lr Θ)^k)
    lr, steps = 0.7 / np.linalg.eigvalsh(ntk).max(), [0, 3, 25]
    mom_gd = dyn.ntkgp_moments(ntk, kx, k_tr, k_xs, k_te, y, steps, lr=lr)
    ref_m, ref_c = _ntkgp_reference(
        ntk, kx, k_tr, k_xs, k_te, y,
        lambda k: np.linalg.solve(ntk, np.eye(n) - np.linalg.matrix_power(np.eye(n) - lr * ntk, k)), steps,
    )
    np.testing.assert_allclose(np.asarray(mom_gd.mean), ref_m, atol=1e-10)
    np.testing.assert_allclose(np.asarray(mom_gd.cov), ref_c, atol=1e-10)


def test_ntkgp_moments_match_monte_carlo_of_linearized_dynamics():
    """Draw f_0 ~ GP(0, K) jointly on train and test, run the linearized dynamics, compare moments."""
    n, m, s = 5, 3, 100_000
    ntk, kx, _ = _joint(n, m, seed=17)
    k_tr, k_xs, k_te = _joint(n, m, seed=18)
    k_joint = np.block([[k_tr, k_xs.T], [k_xs, k_te]])
    y = np.random.default_rng(19).normal(size=(n,))
    chol = np.linalg.cholesky(k_joint + 1e-12 * np.eye(n + m))
    f0 = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (n + m, s))).T @ chol.T  # (S, n + m)
    f0 = f0.T
    times = np.array([0.5, 3.0])
    # k = s "outputs", one per sampled initial function, all with the same target y
    out = np.asarray(dyn.test_outputs(ntk, kx, f0[:n], f0[n:], np.repeat(y[:, None], s, 1), times))
    mom = dyn.ntkgp_moments(ntk, kx, k_tr, k_xs, k_te, y, times)
    for i in range(len(times)):
        mc_mean = out[i].mean(axis=1)
        mc_cov = np.cov(out[i])
        sd = np.sqrt(np.diag(np.asarray(mom.cov[i])))
        np.testing.assert_allclose(mc_mean, np.asarray(mom.mean[i, :, 0]), atol=5 * sd.max() / np.sqrt(s))
        np.testing.assert_allclose(mc_cov, np.asarray(mom.cov[i]), atol=0.02 * np.max(np.abs(mom.cov[i])))


def test_nngp_posterior():
    k_tr, k_xs, k_te = _joint(6, 4, seed=20)
    y = np.random.default_rng(21).normal(size=(6, 2))
    for noise in (0.0, 0.3):
        post = dyn.nngp_posterior(k_tr, k_xs, k_te, y, noise=noise)
        a = k_tr + noise * np.eye(6)
        np.testing.assert_allclose(np.asarray(post.mean), k_xs @ np.linalg.solve(a, y), atol=1e-10)
        np.testing.assert_allclose(np.asarray(post.cov), k_te - k_xs @ np.linalg.solve(a, k_xs.T), atol=1e-10)
    singular = _psd(6, rank=2, seed=22)
    with pytest.raises(SingularKernelError):
        dyn.nngp_posterior(singular, k_xs, k_te, y)
    # the noiseless posterior on the training points interpolates with zero variance
    post = dyn.nngp_posterior(k_tr, k_tr, k_tr, y)
    np.testing.assert_allclose(np.asarray(post.mean), y, atol=1e-9)
    np.testing.assert_allclose(np.asarray(post.cov), 0, atol=1e-9)


def test_precomputed_eigh_is_accepted():
    ktt = _psd(5, seed=23)
    y = np.ones((5, 1))
    eig = eigh_psd(ktt)
    np.testing.assert_allclose(
        np.asarray(dyn.loss(eig, 0 * y, y, TIMES)), np.asarray(dyn.loss(ktt, 0 * y, y, TIMES)), rtol=1e-13
    )


def test_bad_inputs_raise():
    ktt = _psd(4, seed=24)
    y = np.ones((4, 1))
    with pytest.raises(ValueError, match="times"):
        dyn.residuals(ktt, y, [-1.0])
    with pytest.raises(ValueError, match="steps"):
        dyn.residuals(ktt, y, [1.5], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        dyn.residuals(ktt, y, [1], lr=-0.1)
    with pytest.raises(ValueError, match="does not converge"):
        dyn.residuals(ktt, y, [np.inf], lr=3.0 / np.linalg.eigvalsh(ktt).max())
    with pytest.raises(ValueError, match="y_train"):
        dyn.train_outputs(ktt, y, np.ones((3, 1)), TIMES)
    with pytest.raises(ValueError, match="square"):
        dyn.residuals(np.ones((4, 3)), y, TIMES)
    with pytest.raises(ValueError, match="symmetric"):
        dyn.residuals(ktt + np.triu(np.ones((4, 4)), 1), y, TIMES)
    with pytest.raises(TypeError):
        dyn.residuals([[1.0]], y, TIMES)
    with pytest.raises(ValueError, match="ntk_test_train"):
        dyn.test_outputs(ktt, np.ones((2, 3)), y, np.ones((2, 1)), y, TIMES)
    with pytest.raises(ValueError, match="NaN"):
        dyn.residuals(ktt, np.full((4, 1), np.nan), TIMES)
    with pytest.raises(ValueError, match="nngp_test_test"):
        dyn.ntkgp_moments(ktt, np.ones((2, 4)), ktt, np.ones((2, 4)), np.eye(3), y, TIMES)
    with pytest.raises(TypeError):
        dyn.parameter_displacement("not callable", {}, np.ones((4, 1)), ktt, y, TIMES)
