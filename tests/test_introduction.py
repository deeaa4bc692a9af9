"""The Introduction's teaser experiment against independent references."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64)
from ntknotes.empirical import empirical_ntk
from ntknotes.experiments.introduction import (
    PRESETS,
    TeaserConfig,
    TeaserResult,
    kernel_predictions,
    teaser,
    zero_output_pair,
)
from ntknotes.networks import MLP

TINY = TeaserConfig(n_train=40, n_test=30, widths=(64, 256), steps=60, n_record=7, dtype="float64")


def _spd(n, rng):
    a = rng.normal(size=(n, n))
    return a @ a.T / n + 0.5 * np.eye(n)


def test_kernel_predictions_match_explicit_gradient_descent():
    # reference: linearized GD with the kernel by hand, u ← u − ηΘ(u − y), f ← f − ηΘ(x*, X)(u − y)
    rng = np.random.default_rng(0)
    n, m, k = 12, 5, 3
    theta = _spd(n, rng)
    theta_star = rng.normal(size=(m, n))
    y = rng.normal(size=(n, k))
    lr = 1.2 / np.linalg.eigvalsh(theta)[-1]
    steps = np.array([0, 1, 5, 40])
    u, f, losses = np.zeros((n, k)), np.zeros((m, k)), []
    for _ in range(steps[-1]):
        losses.append(0.5 * np.sum((u - y) ** 2))
        r = u - y
        u, f = u - lr * theta @ r, f - lr * theta_star @ r
    losses.append(0.5 * np.sum((u - y) ** 2))
    f_inf, f_T, loss = kernel_predictions(theta, theta_star, y, lr, steps)
    np.testing.assert_allclose(f_inf, theta_star @ np.linalg.solve(theta, y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss, np.asarray(losses)[steps], rtol=1e-10)
    np.testing.assert_allclose(f_T, f, rtol=1e-10, atol=1e-12)


def test_kernel_predictions_reject_bad_input():
    rng = np.random.default_rng(1)
    theta = _spd(4, rng)
    with pytest.raises(ValueError, match="positive definite|singular"):
        kernel_predictions(np.zeros((4, 4)) + np.eye(4) * [1, 1, 1, 0], np.ones((2, 4)), np.ones((4, 1)), 0.1, [0, 1])
    with pytest.raises(ValueError, match="theta_test"):
        kernel_predictions(theta, np.ones((2, 3)), np.ones((4, 1)), 0.1, [0, 1])
    with pytest.raises(ValueError, match="square"):
        kernel_predictions(np.ones((4, 3)), np.ones((2, 4)), np.ones((4, 1)), 0.1, [0, 1])


def test_zero_output_pair_starts_at_zero_with_the_kernel_of_one_copy():
    net = MLP(in_dim=5, width=32, depth=2, out_dim=2, activation="relu", sigma_w=1.4, sigma_b=0.1)
    init, apply = zero_output_pair(net)
    key = jax.random.PRNGKey(3)
    params = init(key)
    x = jax.random.normal(jax.random.PRNGKey(4), (7, 5))
    assert float(jnp.max(jnp.abs(apply(params, x)))) == 0.0
    pair = empirical_ntk(apply, params, x, output="full")
    single = empirical_ntk(net.apply, net.init(key), x, output="full")
    np.testing.assert_allclose(pair, single, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="MLP"):
        zero_output_pair(lambda p, x: x)


@pytest.fixture(scope="module")
def tiny_result() -> TeaserResult:
    return teaser(TINY, key=jax.random.PRNGKey(0))


def test_teaser_shapes_and_consistency(tiny_result):
    r = tiny_result
    k = 10
    assert r.nn_test.shape == r.ntk_test.shape == r.ntk_test_at_T.shape == (TINY.n_test, k)
    assert r.labels_test.shape == (TINY.n_test,)
    assert list(r.widths) == list(TINY.widths) and r.rel_rmse_by_width.shape == (2,)
    assert r.steps[0] == 0 and r.steps[-1] == TINY.steps and r.loss_nn.shape == r.loss_ntk.shape
    # the network starts from f = 0, so both losses start at ½‖y‖² = ½ · N · (1 − 1/k)
    np.testing.assert_allclose(r.loss_nn[0], 0.5 * TINY.n_train * (1 - 1 / k), rtol=1e-12)
    np.testing.assert_allclose(r.loss_ntk[0], r.loss_nn[0], rtol=1e-12)
    # summary numbers are what the arrays say
    assert r.acc_ntk == np.mean(r.ntk_test.argmax(1) == r.labels_test)
    assert r.agreement == np.mean(r.nn_test.argmax(1) == r.ntk_test.argmax(1))
    np.testing.assert_allclose(r.rel_rmse, np.linalg.norm(r.nn_test - r.ntk_test) / np.linalg.norm(r.ntk_test))
    assert r.rel_rmse == r.rel_rmse_by_width[-1] and r.acc_nn == r.acc_nn_by_width[-1]
    assert r.num_params == 2 * MLP(in_dim=64, width=256, out_dim=10, sigma_b=0.1).num_params
    assert 0 < r.lr and r.acc_ntk > 0.5


def test_teaser_is_reproducible_and_saves(tiny_result, tmp_path):
    again = teaser(dataclasses.replace(TINY, widths=(256,)), key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(again.nn_test, tiny_result.nn_test, rtol=1e-10, atol=1e-12)
    path = tiny_result.save(tmp_path / "teaser.npz")
    back = TeaserResult.load(path)
    np.testing.assert_array_equal(back.nn_test, tiny_result.nn_test)
    assert back.rel_rmse == tiny_result.rel_rmse and list(back.widths) == [64, 256]


def test_presets_and_bad_config():
    assert set(PRESETS) == {"ci", "paper"}
    assert PRESETS["paper"].n_train > PRESETS["ci"].n_train and PRESETS["paper"].widths[-1] > PRESETS["ci"].widths[-1]
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="increasing"):
        TeaserConfig(widths=(128, 64))
    with pytest.raises(TypeError, match="widths"):
        TeaserConfig(widths=128)
    with pytest.raises(TypeError, match="positive integer"):
        TeaserConfig(widths=(64.5,))
    with pytest.raises(ValueError, match="lr_factor"):
        TeaserConfig(lr_factor=2.5)
    with pytest.raises(ValueError, match="1797"):
        TeaserConfig(n_train=1500, n_test=500)
    with pytest.raises(ValueError, match="dtype"):
        TeaserConfig(dtype="float16")
    with pytest.raises(TypeError, match="key"):
        teaser(TINY, key=3)
    with pytest.raises(TypeError, match="config"):
        teaser(3, key=key)
    with pytest.raises(ValueError, match="scale"):
        teaser("huge", key=key)
