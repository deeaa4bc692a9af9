"""Matrix-free kernel operators, Nyström-preconditioned CG, and regression.solve_operator.

References: the dense kernels of ntknotes.kernels / ntknotes.conv (operator products), NumPy's
LU solve (np.linalg.solve) of the formed system (CG solutions), and exact arithmetic facts
(bad inputs).
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from ntknotes.conv import conv_kernels  # noqa: E402
from ntknotes.data.mnist1d import make_mnist1d  # noqa: E402
from ntknotes.kernels import nngp_ntk  # noqa: E402
from ntknotes.operators import KernelOperator, conv_kernel, default_mesh, fc_kernel  # noqa: E402
from ntknotes.regression import kernel_regression_operator, solve_kernel, solve_operator  # noqa: E402
from ntknotes.solvers import (  # noqa: E402
    CGNotConvergedError,
    ConvergenceWarning,
    NotPositiveDefiniteError,
    NystromPreconditioner,
    conjugate_gradient,
    predicted_iterations,
)

FC = dict(depth=3, sigma_w=1.4, sigma_b=0.1)


@pytest.fixture(scope="module")
def mnist():
    ds = make_mnist1d(2000, 300, seed=0)
    return np.asarray(ds.x_train), np.asarray(ds.y_train, np.float64), np.asarray(ds.x_test)


@pytest.fixture(scope="module")
def op2000(mnist):
    x, _, _ = mnist
    return KernelOperator(fc_kernel("ntk", **FC), x, tile=512)


@pytest.fixture(scope="module")
def k2000(op2000):
    return np.asarray(op2000.dense())


def test_operator_products_equal_dense_kernels():
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(300, 7)), rng.normal(size=(45, 7))
    v = rng.normal(size=(300, 3))
    pair = nngp_ntk(x, **FC)
    op = KernelOperator(fc_kernel("ntk", **FC), x, tile=128)  # 300 = 2 tiles + a padded one
    k = np.asarray(pair.ntk)
    kt = np.asarray(nngp_ntk(xt, x, **FC).ntk)
    scale = np.abs(k @ v).max()
    np.testing.assert_allclose(op.matvec(v), k @ v, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(op.matvec(v[:, 0], ridge=0.5), k @ v[:, 0] + 0.5 * v[:, 0], rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(op.cross_matvec(xt, v), kt @ v, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(op.dense(), k, rtol=0, atol=1e-13 * np.abs(k).max())
    np.testing.assert_allclose(op.diagonal(), np.diag(k), rtol=1e-13)
    np.testing.assert_allclose(op.columns([0, 299, 150]), k[:, [0, 299, 150]], rtol=0, atol=1e-13 * np.abs(k).max())
    k = np.asarray(pair.nngp)
    op = KernelOperator(fc_kernel("nngp", **FC), x, tile=128)
    np.testing.assert_allclose(op.matvec(v), k @ v, rtol=0, atol=1e-13 * np.abs(k @ v).max())


def test_conv_adapter_matches_conv_kernels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 4, 4, 1))
    v = rng.normal(size=(10, 2))
    k = np.asarray(conv_kernels(x, depths=2).get("gap", 2).ntk)
    op = KernelOperator(conv_kernel("ntk", depth=2, pooling="gap"), x, tile=5)
    np.testing.assert_allclose(op.matvec(v), k @ v, rtol=0, atol=1e-12 * np.abs(k @ v).max())


def test_cg_equals_direct_solve_n2000(mnist, op2000, k2000):
    _, y, _ = mnist
    direct = np.linalg.solve(k2000, y)
    # with the Nyström preconditioner, matrix-free products
    pc = NystromPreconditioner.from_operator(op2000, 200, key=jax.random.PRNGKey(0))
    res = conjugate_gradient(op2000, y, tol=1e-11, preconditioner=pc, max_iter=500, check_residual=True)
    assert res.converged and res.residual <= 1e-11 and res.true_residual < 1e-10
    rel = np.abs(np.asarray(res.solution) - direct).max() / np.abs(direct).max()
    print(f"preconditioned CG: {res.iterations} iterations, relative error {rel:.2e}")
    assert rel < 1e-8
    # without: the stored kernel (equal to the operator, tested above) as the operator
    plain = conjugate_gradient(k2000, y, tol=1e-11, max_iter=2000)
    rel = np.abs(np.asarray(plain.solution) - direct).max() / np.abs(direct).max()
    print(f"plain CG: {plain.iterations} iterations, relative error {rel:.2e}")
    assert plain.converged and rel < 1e-8
    assert plain.iterations > res.iterations
    # ridge, through regression.solve_operator (uniform landmarks)
    ridge = 1e-3 * float(np.mean(np.diag(k2000)))
    sol = solve_operator(op2000, y, ridge=ridge, method="cg", tol=1e-11, rank=150, key=jax.random.PRNGKey(1),
                         preconditioner="uniform")
    direct = np.linalg.solve(k2000 + ridge * np.eye(len(y)), y)
    assert sol.method == "cg" and sol.converged and sol.rank > 0
    assert np.abs(np.asarray(sol.weights) - direct).max() / np.abs(direct).max() < 1e-8


def test_preconditioner_cuts_iterations_on_ill_conditioned_kernel(mnist):
    x, y, _ = mnist
    x8 = x[:1000, :8]  # eight features: a smooth NNGP kernel with a fast-decaying spectrum
    op = KernelOperator(fc_kernel("nngp", **FC), x8, tile=500)
    k = np.asarray(op.dense())
    w = np.linalg.eigvalsh(k)
    cond = w[-1] / w[0]
    assert cond >= 1e6, cond
    b = y[:1000]
    plain = conjugate_gradient(k, b, tol=1e-8, max_iter=5000)
    pc = NystromPreconditioner.from_operator(op, 200, key=jax.random.PRNGKey(0))
    pre = conjugate_gradient(k, b, tol=1e-8, preconditioner=pc, max_iter=5000)
    print(f"condition number {cond:.3g}: {plain.iterations} plain vs {pre.iterations} preconditioned iterations")
    assert plain.converged and pre.converged
    assert plain.iterations >= 5 * pre.iterations
    direct = np.linalg.solve(k, b)
    # both to the accuracy the conditioning allows (cond × tol)
    for r in (plain, pre):
        assert np.abs(np.asarray(r.solution) - direct).max() / np.abs(direct).max() < cond * 1e-8


def test_preconditioner_is_exact_at_full_rank():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(60, 60))
    k = a @ a.T + 1e-3 * np.eye(60)
    pc = NystromPreconditioner.from_columns(k, k, ridge=0.1)
    # K + λI preconditioned by the exact eigendecomposition: every eigenvalue maps to s_min + λ
    m = np.stack([np.asarray(pc(col)) for col in (k + 0.1 * np.eye(60)).T], axis=1)
    ev = np.linalg.eigvals(m).real
    np.testing.assert_allclose(ev, np.full(60, pc.s[-1] + 0.1), rtol=1e-6)


def test_stored_kernel_path_reuses_solve_kernel(op2000, k2000, mnist):
    _, y, xt = mnist
    small = KernelOperator(op2000.kernel_fn, op2000._x[:300], tile=128)
    sol = solve_operator(small, y[:300], ridge=1e-2)  # auto -> direct for N <= direct_max
    ref = solve_kernel(k2000[:300, :300], y[:300], ridge=1e-2)
    assert sol.method == "direct" and sol.iterations == 0 and sol.residual < 1e-10
    np.testing.assert_allclose(sol.weights, ref.weights, rtol=1e-10, atol=1e-12)
    pred = kernel_regression_operator(small, sol, xt[:20])
    kt = np.asarray(nngp_ntk(xt[:20], np.asarray(op2000._x[:300]), **FC).ntk)
    np.testing.assert_allclose(pred, kt @ np.asarray(ref.weights), rtol=1e-10, atol=1e-10)


def test_float32_tiles_give_a_symmetric_stored_kernel(mnist):
    """Tiles in float32 differ from their transposes by rounding; dense() is (K + Kᵀ)/2, so the
    stored-kernel path accepts it and its solve equals the float64 one to float32 accuracy."""
    x, y, _ = mnist
    op32 = KernelOperator(fc_kernel("ntk", dtype=jnp.float32, **FC), x[:600], tile=256)
    k32 = np.asarray(op32.dense())
    assert np.array_equal(k32, k32.T)
    k64 = np.asarray(nngp_ntk(x[:600], **FC).ntk)
    assert np.abs(k32 - k64).max() / np.abs(k64).max() < 1e-6
    ridge = 1e-2 * float(np.mean(np.diag(k64)))
    sol = solve_operator(op32, y[:600], ridge=ridge, method="direct")
    ref = np.linalg.solve(k64 + ridge * np.eye(600), y[:600])
    assert np.abs(np.asarray(sol.weights) - ref).max() / np.abs(ref).max() < 1e-4


def test_progress_and_estimate(op2000, mnist, capsys):
    _, y, _ = mnist
    sol = solve_operator(op2000, y, ridge=1.0, method="cg", tol=1e-4, rank=100, key=jax.random.PRNGKey(0),
                         progress=True, verbose=True)
    err = capsys.readouterr().err
    assert "one product" in err and "GiB" in err and "min" in err
    assert sol.estimate["matvec_seconds"] > 0 and sol.estimate["bytes"] > 2000 * 10 * 8
    assert sol.converged


def test_bad_tolerances_raise(k2000, op2000, mnist):
    _, y, _ = mnist
    for tol in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            conjugate_gradient(k2000, y, tol=tol)
        with pytest.raises((ValueError, TypeError), match="tol"):
            solve_operator(op2000, y, method="cg", tol=tol, rank=0)


def test_negative_curvature_detected():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    ev = np.linspace(1.0, 10.0, 50)
    ev[7] = -2.0  # one negative eigenvalue: symmetric but indefinite
    a = (q * ev) @ q.T
    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        conjugate_gradient(a, rng.normal(size=50), tol=1e-10)
    # a kernel_fn that is not PSD: -(Gaussian kernel)
    neg = KernelOperator(lambda x1, x2: -jnp.exp(-jnp.sum((x1[:, None] - x2[None]) ** 2, -1)), rng.normal(size=(40, 3)),
                         tile=16)
    with pytest.raises(NotPositiveDefiniteError):
        conjugate_gradient(neg, np.ones(40), tol=1e-8)


def test_no_convergence_warns_or_raises(k2000, mnist):
    _, y, _ = mnist
    with pytest.warns(ConvergenceWarning, match=r"relative residual [0-9.e+-]+ > tol"):
        res = conjugate_gradient(k2000, y, tol=1e-12, max_iter=3)
    assert not res.converged and res.iterations == 3 and res.residual > 1e-12
    with pytest.raises(CGNotConvergedError, match="max_iter=3") as info:
        conjugate_gradient(k2000, y, tol=1e-12, max_iter=3, on_failure="raise")
    assert info.value.result.residual == pytest.approx(res.residual)


def test_bad_arguments_name_themselves(mnist, op2000):
    x, y, xt = mnist
    with pytest.raises(ValueError, match="kernel_fn must return"):
        KernelOperator(lambda a, b: jnp.zeros((3, 3)), x[:20], tile=8).matvec(np.ones(20))
    with pytest.raises(TypeError, match="tile"):
        KernelOperator(fc_kernel("ntk", **FC), x, tile=1.5)
    with pytest.raises(ValueError, match="kind"):
        fc_kernel("nkt", depth=2)
    with pytest.raises(ValueError, match="v must have shape"):
        op2000.matvec(np.ones(5))
    with pytest.raises(ValueError, match="x_test"):
        op2000.cross_matvec(np.ones((4, 3)), np.ones(2000))
    with pytest.raises(ValueError, match="y_train"):
        solve_operator(op2000, y[:10])
    with pytest.raises(ValueError, match="key"):
        solve_operator(op2000, y, method="cg", rank=10)
    with pytest.raises(ValueError, match="rank"):
        NystromPreconditioner.from_operator(op2000, 5000, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="mesh"):
        KernelOperator(fc_kernel("ntk", **FC), x, mesh="cpu")
    assert default_mesh().devices.size == len(jax.devices())


def test_predicted_iterations_extrapolates_the_residual_decay():
    """Exact for geometric residuals; None until it can tell; on plain CG with condition numbers
    1e3 and 1e4 (residuals that oscillate), within 25% of the final count after a quarter of it."""
    assert predicted_iterations([0.5**k for k in range(4)], 0.5**20) == 20
    assert predicted_iterations([1.0, 0.1], 1e-6) is None  # one iteration: no rate yet
    assert predicted_iterations([1.0, 1.0, 1.2], 1e-6) is None  # not falling
    assert predicted_iterations([1.0, 0.1, 1e-7], 1e-6) == 2  # already converged
    for tol in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            predicted_iterations([1.0, 0.1, 0.01], tol)
    with pytest.raises(ValueError, match="one-dimensional"):
        predicted_iterations([[1.0, 0.1]], 1e-3)
    with pytest.raises(ValueError, match="finite"):
        predicted_iterations([1.0, float("nan"), 0.1], 1e-3)
    with pytest.raises(TypeError, match="history"):
        predicted_iterations(["a", "b"], 1e-3)
    rng = np.random.default_rng(0)
    n = 400
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    for lam in (np.geomspace(1, 1e-4, n), np.geomspace(1, 1e-3, n)):
        res = conjugate_gradient((q * lam) @ q.T, rng.normal(size=n), tol=1e-8, max_iter=5000)
        guess = predicted_iterations(res.history[: res.iterations // 4 + 1], 1e-8)
        assert guess is not None and abs(guess / res.iterations - 1) < 0.25, (guess, res.iterations)
