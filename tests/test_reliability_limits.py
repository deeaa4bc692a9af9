"""Reliability, class 2: the t → ∞ limits of the closed-form dynamics on singular kernels, and
kernels or targets that are not what the dynamics need (indefinite, zero, complex).

The references are independent of the spectral code: a rank-deficient kernel is built as
Θ = A Aᵀ from a tall random A, the null space is read off A by a QR decomposition, and the
limits come from solving the ODE du/dt = −Θ(u − y) in closed form on the range and null space
separately (or by integrating it numerically with scipy for a finite-time cross-check).
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from ntknotes import dynamics as dyn

jax.config.update("jax_enable_x64", True)


def _rank_deficient(n: int = 8, rank: int = 5, seed: int = 0):
    """Θ = A Aᵀ of rank ``rank`` and the orthogonal projector on its null space (from QR of A)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, rank))
    q, _ = np.linalg.qr(a, mode="complete")
    null = q[:, rank:] @ q[:, rank:].T
    return a @ a.T, null, rng


def test_residual_limit_keeps_the_null_space_part():
    theta, null, rng = _rank_deficient()
    r0 = rng.normal(size=(8, 2))
    lim = np.asarray(dyn.residuals(theta, r0, [np.inf]))[0]
    np.testing.assert_allclose(lim, null @ r0, atol=1e-10)
    # the null-space part is not small here, so dropping it (the old behaviour) fails this test
    assert np.linalg.norm(null @ r0) > 0.5


def test_limit_is_the_limit_of_finite_times():
    """t = ∞ agrees with a long finite time, where the ODE has converged on the range."""
    theta, null, rng = _rank_deficient(seed=1)
    r0 = rng.normal(size=(8,))
    lam_min_pos = np.sort(np.linalg.eigvalsh(theta))[3]  # smallest of the 5 positive eigenvalues
    t_long = 60.0 / lam_min_pos
    out = np.asarray(dyn.residuals(theta, r0, [t_long, np.inf]))[:, :, 0]
    np.testing.assert_allclose(out[0], out[1], atol=1e-12)
    # and a numerical ODE solve at a moderate time matches the closed form
    t1 = 0.7
    sol = solve_ivp(lambda t, r: -theta @ r, (0.0, t1), r0, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(dyn.residuals(theta, r0, [t1]))[0, :, 0], sol.y[:, -1], atol=1e-8)


def test_train_outputs_and_loss_limits_on_a_singular_kernel():
    theta, null, rng = _rank_deficient(seed=2)
    f0 = rng.normal(size=(8, 1))
    y = rng.normal(size=(8, 1))
    u_inf = np.asarray(dyn.train_outputs(theta, f0, y, [np.inf]))[0]
    np.testing.assert_allclose(u_inf, y + null @ (f0 - y), atol=1e-10)
    l_inf = float(dyn.loss(theta, f0, y, [np.inf])[0])
    expected = 0.5 * float(np.sum((null @ (f0 - y)) ** 2))
    assert l_inf == pytest.approx(expected, rel=1e-10)
    assert expected > 0.05  # a loss that cannot reach zero


def test_gradient_descent_limit_on_a_singular_kernel():
    theta, null, rng = _rank_deficient(seed=3)
    r0 = rng.normal(size=(8,))
    lr = 1.0 / np.linalg.eigvalsh(theta).max()
    lim = np.asarray(dyn.residuals(theta, r0, [np.inf], lr=lr))[0, :, 0]
    np.testing.assert_allclose(lim, null @ r0, atol=1e-10)


def test_full_rank_limit_is_zero():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 9))
    r0 = rng.normal(size=(6,))
    lim = np.asarray(dyn.residuals(a @ a.T, r0, [np.inf]))[0]
    np.testing.assert_allclose(lim, 0.0, atol=1e-12)


@pytest.mark.parametrize("fn", ["residuals", "critical_lr", "loss", "label_projections"])
def test_indefinite_kernel_is_refused(fn):
    k = np.diag([2.0, 1.0, -0.5])
    r = np.ones((3, 1))
    calls = {
        "residuals": lambda: dyn.residuals(k, r, [1.0]),
        "critical_lr": lambda: dyn.critical_lr(k),
        "loss": lambda: dyn.loss(k, r, 0 * r, [1.0]),
        "label_projections": lambda: dyn.label_projections(k, r),
    }
    with pytest.raises(ValueError, match="not positive semi-definite.*-0.5"):
        calls[fn]()


def test_negative_kernel_is_refused():
    with pytest.raises(ValueError, match="not positive semi-definite"):
        dyn.critical_lr(-np.eye(4))


def test_rounding_negatives_are_accepted():
    """A PSD kernel whose computed spectrum dips below 0 by rounding is still a kernel."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 3))
    k = a @ a.T  # rank 3: 27 eigenvalues are rounding noise of either sign
    assert np.linalg.eigvalsh(k).min() < 0
    assert dyn.critical_lr(k) == pytest.approx(2 / np.linalg.eigvalsh(k).max())


def test_zero_kernel_has_no_critical_step():
    with pytest.raises(ValueError, match="zero"):
        dyn.critical_lr(np.zeros((3, 3)))


def test_zero_kernel_keeps_the_residual():
    r0 = np.arange(3.0)
    out = np.asarray(dyn.residuals(np.zeros((3, 3)), r0, [0.0, 5.0, np.inf]))[:, :, 0]
    np.testing.assert_allclose(out, np.tile(r0, (3, 1)))


@pytest.mark.parametrize("which", ["y", "f0", "kernel", "cross"])
def test_complex_inputs_are_refused(which):
    k = np.eye(3)
    y = np.ones((3, 1))
    if which == "y":
        call = lambda: dyn.train_outputs(k, y, y.astype(complex), [1.0])  # noqa: E731
    elif which == "f0":
        call = lambda: dyn.train_outputs(k, y.astype(complex), y, [1.0])  # noqa: E731
    elif which == "kernel":
        call = lambda: dyn.residuals(k.astype(complex), y, [1.0])  # noqa: E731
    else:
        call = lambda: dyn.test_outputs(k, np.ones((2, 3), complex), y, np.ones((2, 1)), y, [1.0])  # noqa: E731
    with pytest.raises(TypeError, match="real"):
        call()


def test_relu_layer_moments_huge_width_is_prompt_and_right():
    """E[R] = 1 and E[R²] = 1 + 5/n exactly; a width of 10⁹ returns at once (repeated squaring)."""
    import time

    from ntknotes.finite_width import relu_layer_moments

    start = time.perf_counter()
    m = relu_layer_moments(10**9, 4)
    assert time.perf_counter() - start < 1.0
    assert m[1] == pytest.approx(1.0, rel=1e-12)
    assert m[2] == pytest.approx(1 + 5e-9, rel=1e-12)
    # small widths against a direct enumeration of the sum's distribution by Monte Carlo-free algebra:
    # width 1: R = 2 ReLU(g)², E[R^k] = 2^k (2k-1)!!/2
    m1 = relu_layer_moments(1, 3)
    np.testing.assert_allclose(m1, [1.0, 1.0, 6.0, 60.0], rtol=1e-14)
    # width 3 by the binomial expansion over how many of the 3 units are active
    from math import comb

    def exact(n, k):
        # Σ_j C(n,j) 2^-n E[(2/n Σ_{i≤j} g_i²)^k] with Σ g² ~ χ²_j: E[(χ²_j)^k] = Π_{i<k} (j + 2i)
        total = 0.0
        for j in range(n + 1):
            chi = float(np.prod([j + 2 * i for i in range(k)])) if k else 1.0
            total += comb(n, j) * 0.5**n * (2.0 / n) ** k * chi
        return total

    np.testing.assert_allclose(relu_layer_moments(3, 4), [exact(3, k) for k in range(5)], rtol=1e-13)
    np.testing.assert_allclose(relu_layer_moments(37, 4), [exact(37, k) for k in range(5)], rtol=1e-12)


def test_deep_limit_refuses_to_compute_in_float32():
    """With JAX's 64-bit mode off, deep_limit says so instead of classifying in float32."""
    import os
    import subprocess
    import sys

    code = (
        "import jax; jax.config.update('jax_enable_x64', False)\n"
        "from ntknotes import deep_limit\n"
        "jax.config.update('jax_enable_x64', False)\n"
        "for call in (lambda: deep_limit.limit_case('relu'), lambda: deep_limit.deep_kernel_profile([0.5], 3, 'relu')):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as err:\n"
        "        assert 'jax_enable_x64' in str(err), err\n"
        "    else:\n"
        "        raise SystemExit('no error in float32 mode')\n"
        "print('ok')\n"
    )
    env = {**os.environ, "NTKNOTES_X64": "0", "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
