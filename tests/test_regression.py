"""Kernel regression against closed forms and independent NumPy references."""
import jax
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64)
from ntknotes.linalg import SingularKernelError
from ntknotes.regression import accuracy, kernel_regression, predict_classes, solve_kernel


def _rbf(a, b, ell=0.7):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * d2 / ell**2)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    x, xs = rng.normal(size=(30, 3)), rng.normal(size=(12, 3))
    y = np.stack([np.sin(x[:, 0]), np.cos(x[:, 1])], axis=1)
    return _rbf(x, x), _rbf(xs, x), y


@pytest.mark.parametrize("method", ["eigh", "cholesky"])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_matches_numpy_solve(problem, method, ridge):
    k, kx, y = problem
    ref = kx @ np.linalg.solve(k + ridge * np.eye(len(k)), y)
    got = np.asarray(kernel_regression(k, y, kx, ridge=ridge, method=method))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_interpolates_and_ridge_shrinks(problem):
    k, _, y = problem
    fit = np.asarray(kernel_regression(k, y, k))
    np.testing.assert_allclose(fit, y, atol=1e-7)  # ridgeless: exact interpolation
    shrunk = np.asarray(kernel_regression(k, y, k, ridge=1e3))
    assert np.linalg.norm(shrunk) < 0.1 * np.linalg.norm(y)  # λ → ∞: predictions → 0


def test_linear_kernel_closed_form():
    # with k(x, x') = x·x' and a ridge, kernel ridge regression equals ridge regression in weight space
    rng = np.random.default_rng(1)
    x, xs, w = rng.normal(size=(20, 4)), rng.normal(size=(5, 4)), rng.normal(size=(4, 1))
    y = x @ w + 0.1 * rng.normal(size=(20, 1))
    lam = 0.3
    beta = np.linalg.solve(x.T @ x + lam * np.eye(4), x.T @ y)
    got = np.asarray(kernel_regression(x @ x.T, y, xs @ x.T, ridge=lam))
    np.testing.assert_allclose(got, xs @ beta, rtol=1e-10)


def test_one_hot_shares_one_solve(problem):
    k, kx, _ = problem
    labels = np.arange(30) % 3
    y = np.eye(3)[labels]
    both = np.asarray(kernel_regression(k, y, kx))
    for c in range(3):
        np.testing.assert_allclose(both[:, c], np.asarray(kernel_regression(k, y[:, c], kx)), atol=1e-10)
    assert accuracy(np.asarray(kernel_regression(k, y, k)), labels) == 1.0


def test_singular_systems_raise():
    x = np.ones((4, 2))
    k = x @ x.T  # rank one
    with pytest.raises(SingularKernelError):
        solve_kernel(k, np.arange(4.0))
    with pytest.raises(SingularKernelError):
        solve_kernel(k, np.arange(4.0), method="cholesky")
    sol = solve_kernel(k, np.arange(4.0), method="cholesky", max_jitter=1e-3)
    assert 0 < sol.jitter <= 1e-3
    assert np.all(np.isfinite(np.asarray(sol.weights)))
    assert solve_kernel(k, np.arange(4.0), ridge=1e-3).jitter == 0.0


def test_bad_inputs(problem):
    k, kx, y = problem
    with pytest.raises(ValueError, match="square"):
        kernel_regression(k[:, :5], y, kx)
    with pytest.raises(ValueError, match="columns"):
        kernel_regression(k, y, kx[:, :5])
    with pytest.raises(ValueError, match="y_train"):
        kernel_regression(k, y[:5], kx)
    with pytest.raises(ValueError, match="ridge"):
        kernel_regression(k, y, kx, ridge=-1.0)
    with pytest.raises(ValueError, match="method"):
        kernel_regression(k, y, kx, method="lu")
    with pytest.raises(ValueError, match="symmetric"):
        kernel_regression(k + np.triu(np.ones_like(k), 1), y, kx)
    bad = k.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        kernel_regression(bad, y, kx)
    with pytest.raises(ValueError):
        accuracy(np.zeros((3, 2)), np.zeros(4))


def test_predict_classes():
    assert list(predict_classes(np.array([[0.1, 0.9], [2.0, -1.0]]))) == [1, 0]
    assert list(predict_classes(np.array([-0.5, 0.2]))) == [0, 1]
