"""Activations: closed-form duals against quadrature, Hermite data, A, A', B, and input errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntknotes  # noqa: F401  (float64)
from ntknotes import activations as A

CLOSED_FORMS = {
    "relu": A.relu(),
    "erf": A.erf(),
    "sin": A.sin(),
    "sin(2.3z)": A.sin(2.3),
    "leaky_relu(0.1)": A.leaky_relu(0.1),
    "abrelu(-0.5,2)": A.abrelu(-0.5, 2.0),
    "identity": A.identity(),
}


def _covariances(n=40, seed=0):
    """Random variances in [0.2, 3] and correlations covering [-1, 1] (both ends included)."""
    rng = np.random.default_rng(seed)
    k11 = rng.uniform(0.2, 3.0, n)
    k22 = rng.uniform(0.2, 3.0, n)
    rho = np.concatenate([rng.uniform(-0.999, 0.999, n - 4), [-1.0, 1.0, 0.0, 0.9999]])
    return jnp.asarray(k11), jnp.asarray(rho * np.sqrt(k11 * k22)), jnp.asarray(k22)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_closed_form_duals_equal_quadrature(name):
    act = CLOSED_FORMS[name]
    k11, k12, k22 = _covariances()
    scale = np.sqrt(np.asarray(k11 * k22))
    for closed, quad in [(act.dual, act.dual_quadrature), (act.dual_derivative, act.dual_derivative_quadrature)]:
        err = np.max(np.abs(np.asarray(closed(k11, k12, k22) - quad(k11, k12, k22))) / np.maximum(scale, 1.0))
        print(f"{name}: max |closed - quadrature| = {err:.2e}")
        assert err < 1e-8


@pytest.mark.parametrize("name", ["relu", "leaky_relu(0.1)", "identity", "erf"])
def test_dual_and_derivative_matches_separate_duals(name):
    act = CLOSED_FORMS[name]
    k11, k12, k22 = _covariances(seed=1)
    c, cd = act.dual_and_derivative(k11, k12, k22)
    np.testing.assert_allclose(c, act.dual(k11, k12, k22), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(cd, act.dual_derivative(k11, k12, k22), rtol=1e-13, atol=1e-14)


def test_scaled_activation_duals():
    act, base = A.relu().scaled(2.0), A.relu()
    k11, k12, k22 = _covariances(seed=2)
    np.testing.assert_allclose(act.dual(k11, k12, k22), 4 * base.dual(k11, k12, k22), rtol=1e-14)
    np.testing.assert_allclose(act.homogeneous_dual(k12 / 3)[1], 4 * base.homogeneous_dual(k12 / 3)[1], rtol=1e-14)


def test_arccos_is_accurate_to_a_few_ulp():
    rho = np.concatenate([np.linspace(-1, 1, 200001), 1 - np.logspace(-16, 0, 500), -1 + np.logspace(-16, 0, 500)])
    err = np.max(np.abs(np.asarray(A.arccos(jnp.asarray(rho))) - np.arccos(rho)))
    print(f"max |arccos error| = {err:.1e}")
    assert err < 2e-15


def test_quadrature_rules_against_independent_expectations():
    # at rho = 1 the dual is a 1-D expectation; at rho = 0 it factorizes
    for act in (A.tanh(), A.abs_centered()):
        q = 1.7
        d1 = float(act.dual_quadrature(q, q, q))
        ref = A.gaussian_expectation(lambda z: np.asarray(act(jnp.asarray(np.sqrt(q) * z))) ** 2)
        assert abs(d1 - ref) < 1e-10, (act, d1, ref)
        d0 = float(act.dual_quadrature(0.8, 0.0, 2.0))
        m1 = A.gaussian_expectation(lambda z: np.asarray(act(jnp.asarray(np.sqrt(0.8) * z))))
        m2 = A.gaussian_expectation(lambda z: np.asarray(act(jnp.asarray(np.sqrt(2.0) * z))))
        assert abs(d0 - m1 * m2) < 1e-10, (act, d0, m1 * m2)


def test_normalized_relu_scalars():
    act = A.relu().normalized()
    print(f"normalized ReLU: A={act.A:.6f} A'={act.A_prime:.6f} B={act.B:.6f}")
    assert act.second_moment == pytest.approx(1.0, abs=1e-12)
    assert act.A == pytest.approx(1 / math.sqrt(math.pi), abs=1e-12)  # 0.564
    assert act.A_prime == pytest.approx(1 / math.sqrt(2), abs=1e-12)  # 0.707
    assert act.B == pytest.approx(1.0, abs=1e-12)


def test_normalized_erf_scalars():
    act = A.erf().normalized()
    m2 = (2 / math.pi) * math.asin(2 / 3)  # E[erf(Z)^2]
    a_prime = 2 / math.sqrt(3 * math.pi) / math.sqrt(m2)  # E[erf'(Z)] = 2/sqrt(3 pi)
    b = 4 / (math.pi * math.sqrt(5)) / m2  # E[erf'(Z)^2] = 4/(pi sqrt 5)
    print(f"normalized erf: A={act.A:.2e} A'={act.A_prime:.6f} B={act.B:.6f}")
    assert A.erf().second_moment == pytest.approx(m2, abs=1e-13)
    assert act.A == pytest.approx(0.0, abs=1e-13)
    assert act.A_prime == pytest.approx(a_prime, abs=1e-12) and round(act.A_prime, 3) == 0.956
    assert act.B == pytest.approx(b, abs=1e-12) and round(act.B, 3) == 1.226


def test_sigmoid_centered_scalars_match_design_table():
    act = A.sigmoid_centered().normalized()
    assert act.A == pytest.approx(0.0, abs=1e-13)
    assert round(act.A_prime, 3) == 0.992 and round(act.B, 3) == 1.034


@pytest.mark.parametrize("d", [2, 4, 8, 16])
def test_phi_opt(d):
    act = A.phi_opt(d)
    a = 2.0 ** (-d / 4)
    assert act.second_moment == pytest.approx(1.0, abs=1e-12)
    assert act.A == pytest.approx(0.0, abs=1e-12)
    assert act.A_prime == pytest.approx(a, abs=1e-12)
    assert act.B == pytest.approx(2.0, abs=1e-11)
    coeffs = act.hermite_coefficients(8)
    np.testing.assert_allclose(coeffs, [0, a, math.sqrt(1 - 2 ** (1 - d / 2)), a, 0, 0, 0, 0], atol=1e-12)
    # alpha = -4 ln A' / ln B = d
    assert -4 * math.log(act.A_prime) / math.log(act.B) == pytest.approx(d, rel=1e-10)


def test_hermite_polynomials_are_orthonormal():
    for k in range(6):
        np.testing.assert_allclose(A.hermite(k).hermite_coefficients(8), np.eye(8)[k], atol=1e-12)


def test_hermite_series_reproduces_unit_variance_dual():
    # Mehler: E[φ(u)φ(v)] at unit variances = Σ a_k² ρ^k, an independent check of the arc-cosine form
    act = A.relu()
    a = act.hermite_coefficients(80)
    assert a[0] == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-13)
    assert a[1] == pytest.approx(0.5, abs=1e-13)
    rho = np.linspace(-0.8, 0.8, 9)
    series = np.polynomial.polynomial.polyval(rho, a**2)
    np.testing.assert_allclose(series, act.dual(1.0, jnp.asarray(rho), 1.0), atol=1e-10)


def test_sine_dual_is_sinh_ratio():
    a = 2.676  # alpha = 2 for d = 2 in Radhakrishnan et al.
    act = A.sin(math.sqrt(a)).normalized()
    rho = jnp.linspace(-1, 1, 11)
    np.testing.assert_allclose(act.dual(1.0, rho, 1.0), np.sinh(a * rho) / np.sinh(a), atol=1e-12)


def test_derivative_matches_autodiff():
    z = jnp.linspace(-3, 3, 13) + 0.01
    for name in ["relu", "erf", "tanh", "gelu", "sigmoid_centered", "sin", "identity"]:
        act = A.get_activation(name)
        auto = jax.vmap(jax.grad(act.fn))(z)
        np.testing.assert_allclose(act.derivative(z), auto, atol=1e-12, err_msg=name)


def test_registry_and_errors():
    assert A.get_activation("ReLU") is A.relu()
    assert A.get_activation(A.erf()) is A.erf()
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        A.get_activation("swish")
    with pytest.raises(TypeError, match="activation must be"):
        A.get_activation(3)
    with pytest.raises(ValueError, match="frequency"):
        A.sin(-1.0)
    with pytest.raises(ValueError, match="d >= 2"):
        A.phi_opt(1)
    with pytest.raises(ValueError, match="k must be"):
        A.hermite(-1)
    with pytest.raises(TypeError, match="non-empty tuple"):
        A.hermite_series(())
    with pytest.raises(ValueError, match="elementwise"):
        A.from_callable(lambda z: jnp.sum(z))
    with pytest.raises(TypeError, match="callable"):
        A.from_callable(3)
    with pytest.raises(ValueError, match="n must be"):
        A.relu().hermite_coefficients(0)
