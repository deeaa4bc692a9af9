"""The trainer against closed forms and hand-written loops; the linearization; ensembles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64)
from ntknotes.empirical import empirical_ntk
from ntknotes.networks import MLP
from ntknotes.training import gradient_descent, linearize, loss_function, train, train_ensemble


def _linear_problem(n=12, d=5, k=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, k))
    theta0 = rng.normal(size=(d, k))
    return x, y, theta0


def _linear_apply(theta, x):
    return x @ theta


def test_gd_on_linear_model_matches_closed_form():
    # f(θ, X) = Xθ, total MSE: the residual after s steps is (I − η X Xᵀ)^s (Xθ₀ − y)
    x, y, theta0 = _linear_problem()
    gram = x @ x.T
    lr = 1.0 / np.linalg.eigvalsh(gram).max()
    steps = [0, 1, 7, 50, 200]
    h = gradient_descent(_linear_apply, jnp.asarray(theta0), jnp.asarray(x), jnp.asarray(y),
                         lr=lr, steps=200, record_steps=steps)
    a = np.eye(len(x)) - lr * gram
    for i, s in enumerate(steps):
        expected = y + np.linalg.matrix_power(a, s) @ (x @ theta0 - y)
        np.testing.assert_allclose(h.outputs[i], expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(h.loss[i], 0.5 * np.sum((expected - y) ** 2), rtol=1e-10)
    np.testing.assert_array_equal(h.steps, steps)


def test_momentum_sgd_matches_hand_written_loop():
    x, y, theta0 = _linear_problem(n=10, d=4, k=1, seed=3)
    lr, mu, bs, n_steps = 0.02, 0.7, 4, 30
    key = jax.random.PRNGKey(5)
    h = train(_linear_apply, jnp.asarray(theta0), jnp.asarray(x), jnp.asarray(y), lr=lr, steps=n_steps,
              momentum=mu, batch_size=bs, key=key, record_steps=[n_steps])
    theta, vel = theta0.copy(), np.zeros_like(theta0)
    n = len(x)
    for step in range(1, n_steps + 1):
        idx = np.asarray(jax.random.permutation(jax.random.fold_in(key, step), n))[:bs]
        xb, yb = x[idx], y[idx]
        grad = (n / bs) * xb.T @ (xb @ theta - yb)  # total loss rescaled to the full set
        vel = mu * vel + grad
        theta = theta - lr * vel
    np.testing.assert_allclose(np.asarray(h.params), theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.outputs[-1], x @ theta, rtol=1e-10, atol=1e-12)


def test_full_batch_momentum_matches_hand_written_loop():
    x, y, theta0 = _linear_problem(n=8, d=3, k=2, seed=4)
    lr, mu = 0.01, 0.9
    h = train(_linear_apply, jnp.asarray(theta0), jnp.asarray(x), jnp.asarray(y), lr=lr, steps=25,
              momentum=mu, loss="mean_mse", record_steps=[25])
    theta, vel = theta0.copy(), np.zeros_like(theta0)
    for _ in range(25):
        vel = mu * vel + x.T @ (x @ theta - y) / len(x)
        theta = theta - lr * vel
    np.testing.assert_allclose(np.asarray(h.params), theta, rtol=1e-10)


def test_gradient_descent_is_train_without_extras():
    net = MLP(in_dim=3, width=16, depth=2, activation="tanh")
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    y = jnp.cos(x[:, :1])
    p0 = net.init(jax.random.PRNGKey(1))
    a = gradient_descent(net.apply, p0, x, y, lr=0.1, steps=20, x_eval=x[:2], param_fn=lambda p: p[0]["W"][0])
    b = train(net.apply, p0, x, y, lr=0.1, steps=20, x_eval=x[:2], param_fn=lambda p: p[0]["W"][0])
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.tracked, b.tracked)
    assert a.eval_outputs.shape == (len(a.steps), 2, 1)
    assert a.loss[-1] < a.loss[0]


def test_cross_entropy_decreases_and_matches_formula():
    f = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    logp = f - np.log(np.exp(np.asarray(f)).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss_function("xent")(f, y), -np.mean(np.sum(np.asarray(y) * logp, axis=1)))
    net = MLP(in_dim=4, width=32, depth=1, out_dim=3)
    x = jax.random.normal(jax.random.PRNGKey(2), (9, 4))
    labels = jnp.arange(9) % 3
    h = train(net.apply, net.init(jax.random.PRNGKey(3)), x, jax.nn.one_hot(labels, 3), lr=2.0, steps=200, loss="xent")
    assert h.loss[-1] < 0.5 * h.loss[0]


def test_linearization_agrees_to_first_order():
    net = MLP(in_dim=3, width=32, depth=2, activation="tanh", sigma_w=1.3, sigma_b=0.2)
    p0 = net.init(jax.random.PRNGKey(0))
    v = net.init(jax.random.PRNGKey(1))  # a random direction with the same structure
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 3))
    f_lin = linearize(net.apply, p0)
    np.testing.assert_allclose(f_lin(p0, x), net.apply(p0, x), rtol=1e-13)

    def gap(eps):
        p = jax.tree_util.tree_map(lambda a, b: a + eps * b, p0, v)
        return float(jnp.max(jnp.abs(f_lin(p, x) - net.apply(p, x))))

    g1, g2, g3 = gap(1e-2), gap(5e-3), gap(2.5e-3)
    # halving ε divides an O(ε²) remainder by 4
    assert 3.5 < g1 / g2 < 4.5 and 3.5 < g2 / g3 < 4.5, (g1, g2, g3)
    # and f_lin is exactly affine in θ
    pa = jax.tree_util.tree_map(lambda a, b: a + 0.3 * b, p0, v)
    pb = jax.tree_util.tree_map(lambda a, b: a + 0.9 * b, p0, v)
    np.testing.assert_allclose(f_lin(pb, x) - f_lin(p0, x), 3 * (f_lin(pa, x) - f_lin(p0, x)), rtol=1e-10)


def test_linearized_training_follows_empirical_kernel_dynamics():
    net = MLP(in_dim=4, width=24, depth=2, activation="relu", sigma_w=1.4, sigma_b=0.1)
    p0 = net.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 4))
    xt = jax.random.normal(jax.random.PRNGKey(2), (3, 4))
    y = jnp.sin(x[:, :1])
    theta = np.asarray(empirical_ntk(net.apply, p0, x))
    theta_t = np.asarray(empirical_ntk(net.apply, p0, xt, x))
    lr = 1.0 / np.linalg.eigvalsh(theta).max()
    steps = 40
    h = train(net.apply, p0, x, y, lr=lr, steps=steps, linearized=True, x_eval=xt, record_steps=[steps])
    f0, ft0 = np.asarray(net.apply(p0, x)), np.asarray(net.apply(p0, xt))
    a = np.eye(len(x)) - lr * theta
    expected = np.asarray(y) + np.linalg.matrix_power(a, steps) @ (f0 - np.asarray(y))
    np.testing.assert_allclose(h.outputs[-1], expected, rtol=1e-9, atol=1e-10)
    # the test points move by −η Σ_s Θ(x*, X) r_s
    r = f0 - np.asarray(y)
    move = np.zeros_like(ft0)
    for _ in range(steps):
        move -= lr * theta_t @ r
        r = a @ r
    np.testing.assert_allclose(h.eval_outputs[-1], ft0 + move, rtol=1e-9, atol=1e-10)
    # the public linearize gives the same run
    h2 = train(linearize(net.apply, p0), p0, x, y, lr=lr, steps=steps, x_eval=xt, record_steps=[steps])
    np.testing.assert_allclose(h2.eval_outputs, h.eval_outputs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("linearized,batch", [(False, None), (True, None), (False, 3)])
def test_ensemble_equals_independent_runs(linearized, batch):
    net = MLP(in_dim=2, width=16, depth=1, activation="erf")
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    y = x[:, :1] * x[:, 1:]
    keys = jax.random.split(jax.random.PRNGKey(9), 5)
    kw = dict(lr=0.2, steps=15, linearized=linearized, batch_size=batch, x_eval=x[:2], record_steps=[0, 5, 15])
    ens = train_ensemble(net.apply, net.init, keys, x, y, chunk_size=2, keep_params=True, **kw)
    assert ens.loss.shape == (5, 3) and ens.outputs.shape == (5, 3, 6, 1) and ens.eval_outputs.shape == (5, 3, 2, 1)
    for e in (0, 4):
        k_init, k_batch = jax.random.split(keys[e])
        one = train(net.apply, net.init(k_init), x, y, key=k_batch, **kw)
        np.testing.assert_allclose(ens.outputs[e], one.outputs, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ens.eval_outputs[e], one.eval_outputs, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ens.params[0]["W"][e], one.params[0]["W"], rtol=1e-12, atol=1e-13)
    # members really differ
    assert np.abs(ens.outputs[0, 0] - ens.outputs[1, 0]).max() > 1e-3


def test_divergence_is_reported():
    x, y, theta0 = _linear_problem()
    lr = 2.5 / np.linalg.eigvalsh(x @ x.T).max()
    with pytest.raises(FloatingPointError, match="diverged"):
        gradient_descent(_linear_apply, jnp.asarray(theta0), jnp.asarray(x), jnp.asarray(y), lr=lr, steps=3000)
    h = gradient_descent(_linear_apply, jnp.asarray(theta0), jnp.asarray(x), jnp.asarray(y), lr=lr, steps=3000,
                         raise_on_divergence=False)
    assert h.diverged


def test_bad_inputs():
    x, y, theta0 = _linear_problem(n=6, d=3, k=1)
    x, y, theta0 = jnp.asarray(x), jnp.asarray(y), jnp.asarray(theta0)
    with pytest.raises(ValueError, match="lr"):
        train(_linear_apply, theta0, x, y, lr=0.0, steps=3)
    with pytest.raises(TypeError, match="steps"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=2.5)
    with pytest.raises(ValueError, match="momentum"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, momentum=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, batch_size=7, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="PRNG key"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, batch_size=2)
    with pytest.raises(ValueError, match="loss"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, loss="hinge")
    with pytest.raises(ValueError, match="targets"):
        train(_linear_apply, theta0, x, jnp.zeros((6, 2)), lr=0.1, steps=3)
    with pytest.raises(ValueError, match="NaN"):
        train(_linear_apply, theta0, x.at[0, 0].set(jnp.nan), y, lr=0.1, steps=3)
    with pytest.raises(ValueError, match="record_steps"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, record_steps=[5])
    with pytest.raises(ValueError, match="x_eval"):
        train(_linear_apply, theta0, x, y, lr=0.1, steps=3, x_eval=jnp.zeros((2, 4)))
    with pytest.raises(TypeError, match="apply"):
        train("net", theta0, x, y, lr=0.1, steps=3)
    with pytest.raises(TypeError, match="apply"):
        linearize(None, theta0)
    with pytest.raises(ValueError, match="structure"):
        linearize(_linear_apply, theta0)(jnp.zeros((4, 1)), x)
    with pytest.raises(ValueError, match="keys"):
        train_ensemble(_linear_apply, lambda k: theta0, jax.random.PRNGKey(0), x, y, lr=0.1, steps=3)
    with pytest.raises(TypeError, match="init"):
        train_ensemble(_linear_apply, theta0, jax.random.split(jax.random.PRNGKey(0), 2), x, y, lr=0.1, steps=3)
    with pytest.raises(ValueError, match="chunk_size"):
        train_ensemble(_linear_apply, lambda k: theta0, jax.random.split(jax.random.PRNGKey(0), 2), x, y,
                       lr=0.1, steps=3, chunk_size=0)


# ----------------------------------------------------------------------------
# the chapter's experiments (ntknotes.experiments.linearization)
# ----------------------------------------------------------------------------
import dataclasses  # noqa: E402

from ntknotes.experiments import linearization as lin  # noqa: E402

_SMALL = {
    "weight_change": dict(widths=(16, 32), n_train=16, seeds=2, steps=5),
    "tracking": dict(widths=(16, 32), n_train=16, n_test=8, steps=8, n_record=4),
    "ensemble": dict(members=3, chunk_size=2, width=32, n_train=8, steps=8, record=(0, 4, 8), n_alpha=5),
    "toy": dict(widths=(10, 20), steps=50),
    "critical": dict(width=32, n_train=16, steps=10),
}
_RUN = {"weight_change": lin.weight_change, "tracking": lin.tracking, "ensemble": lin.ensemble,
        "toy": lin.toy_predictions, "critical": lin.critical_lr}


@pytest.mark.parametrize("name", sorted(_SMALL))
def test_paper_presets_run_at_reduced_size(name):
    # the paper's configuration (architecture, activation, dtype, step size) with only the sizes shrunk
    cfg = dataclasses.replace(lin.PRESETS[name]["paper"], **_SMALL[name])
    res = _RUN[name](cfg, key=jax.random.PRNGKey(0))
    arrays = [v for v in dataclasses.asdict(res).values() if isinstance(v, np.ndarray)]
    assert arrays and all(np.isfinite(a).any() for a in arrays)


@pytest.fixture(scope="module")
def small_ensemble():
    """One reduced ensemble run (key 1), shared by the tests below (each run compiles for ~5 s)."""
    cfg = dataclasses.replace(lin.PRESETS["ensemble"]["ci"], **_SMALL["ensemble"])
    return cfg, lin.ensemble(cfg, key=jax.random.PRNGKey(1))


def test_ensemble_result_is_cached_and_reloaded(tmp_path, small_ensemble, monkeypatch):
    cfg, ref = small_ensemble
    monkeypatch.setattr(lin, "_ensemble", lambda *a, **k: ref)  # the run, without training again
    lin.ensemble(cfg, key=jax.random.PRNGKey(1), cache=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    # from now on a computation would fail: the second call must read the file
    monkeypatch.setattr(lin, "_ensemble", lambda *a, **k: pytest.fail("recomputed a cached result"))
    again = lin.ensemble(cfg, key=jax.random.PRNGKey(1), cache=tmp_path)
    for f in dataclasses.fields(ref):
        np.testing.assert_array_equal(np.asarray(getattr(again, f.name)), np.asarray(getattr(ref, f.name)))
    # the ensemble moments are those of the members: variance is the unbiased sample variance
    assert again.ens_var.shape == again.gp_var.shape == (3, 5)


def test_ensemble_cache_name_depends_on_key_and_version(tmp_path, small_ensemble, monkeypatch):
    cfg, ref = small_ensemble
    runs = []
    monkeypatch.setattr(lin, "_ensemble", lambda *a, **k: runs.append(a) or ref)  # no training here
    lin.ensemble(cfg, key=jax.random.PRNGKey(1), cache=tmp_path)
    lin.ensemble(cfg, key=jax.random.PRNGKey(2), cache=tmp_path)  # another key, another file
    assert len(list(tmp_path.glob("*.npz"))) == 2
    monkeypatch.setattr(lin, "__version__", "0.0.0-other")
    lin.ensemble(cfg, key=jax.random.PRNGKey(1), cache=tmp_path)  # another version, another file
    assert len(list(tmp_path.glob("*.npz"))) == 3 and len(runs) == 3


def test_ensemble_z_scores_and_control_variate(small_ensemble):
    res = small_ensemble[1]
    # at step 0, P_0 = 0: the adjusted output f_0 − c_0 = P_0 f_0(X) is exactly zero for every member
    np.testing.assert_array_equal(res.adj_mean[0], 0.0)
    np.testing.assert_array_equal(res.adj_sd[0], 0.0)
    # z-scores against the NNGP posterior, written out
    ok = res.nngp_var > 0.02 * res.nngp_var.max()
    with np.errstate(divide="ignore", invalid="ignore"):  # the posterior variance is 0 at X
        z = (res.ens_mean[-1] - res.nngp_mean) / np.sqrt(res.nngp_var / res.members)
        zv = (res.ens_var[-1] - res.nngp_var) / (res.nngp_var * np.sqrt(2 / (res.members - 1)))
    np.testing.assert_allclose(res.mean_z(against="nngp")[-1][ok], z[ok], rtol=1e-12)
    assert np.all(np.isnan(res.mean_z(against="nngp")[-1][~ok]))
    np.testing.assert_allclose(res.var_z(against="nngp")[-1][ok], zv[ok], rtol=1e-12)
    za = (res.adj_mean[-1] - res.gp_mean[-1]) / (res.adj_sd[-1] / np.sqrt(res.members))
    okg = res.gp_var[-1] > 0.02 * res.gp_var.max()
    np.testing.assert_allclose(res.adjusted_z()[-1][okg], za[okg], rtol=1e-12)
    with pytest.raises(ValueError, match="against"):
        res.mean_z(against="posterior")


def test_critical_residual_weights_give_the_linearized_loss():
    cfg = dataclasses.replace(lin.PRESETS["critical"]["ci"], **_SMALL["critical"])
    res = lin.critical_lr(cfg, key=jax.random.PRNGKey(0))
    # ½ Σ_i (1 − ηλ_i)^{2s} w_i is the linear recursion's loss at every step
    for s in (0, 3, res.steps[-1]):
        pred = 0.5 * np.sum((1 - res.lr_crit * res.eigenvalues) ** (2 * s) * res.residual_weights)
        assert abs(pred / res.loss_lin[0, s] - 1) < 1e-8


@pytest.fixture(scope="module")
def small_weight_change():
    cfg = dataclasses.replace(lin.PRESETS["weight_change"]["ci"], **_SMALL["weight_change"])
    return lin.weight_change(cfg, key=jax.random.PRNGKey(0))


def test_weight_change_records_the_initial_kernel_distance(small_weight_change):
    res = small_weight_change
    assert res.ntk_init_dev.shape == (2,) and np.all((res.ntk_init_dev > 0) & (res.ntk_init_dev < 1))
    assert "ntk_init" in res.slopes


def test_result_save_load_round_trip(tmp_path, small_weight_change):
    res = small_weight_change
    back = lin.WeightChangeResult.load(res.save(tmp_path / "wc.npz"))
    np.testing.assert_array_equal(back.weight_change, res.weight_change)
    assert back.slopes == res.slopes and back.lr == res.lr


def test_progress_bar_only_when_asked(capsys):
    net = MLP(in_dim=2, width=8, depth=1)
    x = jnp.ones((3, 2)) * jnp.arange(3.0)[:, None]
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    train_ensemble(net.apply, net.init, keys, x, x[:, :1], lr=0.1, steps=2, chunk_size=2)
    assert capsys.readouterr().err == ""
    train_ensemble(net.apply, net.init, keys, x, x[:, :1], lr=0.1, steps=2, chunk_size=2, progress=True)
    assert "ensemble" in capsys.readouterr().err


def test_experiment_bad_inputs():
    with pytest.raises(TypeError, match="config"):
        lin.tracking(lin.ToyConfig(), key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="scale"):
        lin.toy_predictions("huge", key=jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="key"):
        lin.toy_predictions("ci", key=0)
    with pytest.raises(ValueError, match="increasing"):
        lin.TrackingConfig(widths=(256, 64))
    with pytest.raises(ValueError, match="record"):
        lin.EnsembleConfig(steps=10, record=(0, 5))
    with pytest.raises(ValueError, match="start with 0"):
        lin.EnsembleConfig(steps=10, record=(5, 10))
    with pytest.raises(ValueError, match="at least 2"):
        lin.EnsembleConfig(members=1)
    with pytest.raises(ValueError, match="dtype"):
        lin.CriticalConfig(dtype="float16")
    with pytest.raises(ValueError, match="factors"):
        lin.CriticalConfig(factors=(1.0, -2.0))
