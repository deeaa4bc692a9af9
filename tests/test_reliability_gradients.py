"""Reliability, class 1: gradients of the analytic kernels are finite and correct.

Every kernel has correlation ρ = 1 on its diagonal, where the ReLU dual's derivative map
(π - arccos ρ)/2π has infinite slope; autodiff used to give ∞·0 = NaN there. The gradients of
NNGP and NTK with respect to the inputs and to σ_w, σ_b are compared here with central finite
differences in float64 (relative tolerance 1e-6, steps chosen so the difference's own error is
~1e-9), for ReLU (arc-cosine), erf, tanh (Hermite series) and GELU, and checked to be finite for
depths 1 and 5 (and at the finite-difference checks' depths, 1 to 3). The last test runs the
README's marginal-likelihood example.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes import kernels

jax.config.update("jax_enable_x64", True)

ACTIVATIONS = ("relu", "erf", "tanh", "gelu")
STEP = 1e-5  # central differences: truncation ~STEP² f''' ~ 1e-10, rounding ~1e-16/STEP ~ 1e-11
RTOL = 1e-6
README = Path(__file__).resolve().parent.parent / "README.md"


def _points(n: int = 4, d: int = 3, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(seed), (n, d), dtype=jnp.float64)


def _central_differences(f: Callable[[np.ndarray], float], x: np.ndarray, step: float = STEP) -> np.ndarray:
    """∂f/∂x_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h for every entry of x (float64)."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        out[i] = (float(f(up)) - float(f(down))) / (2.0 * step)
    return out


def _assert_gradient(f: Callable, x) -> None:
    """jax.grad(f)(x) is finite and equals central differences to RTOL (relative to the largest entry);
    the value computed alongside is f(x) evaluated without tracing (same path choices)."""
    value, grad = jax.value_and_grad(f)(jnp.asarray(x, jnp.float64))
    np.testing.assert_allclose(float(value), float(f(jnp.asarray(x, jnp.float64))), rtol=1e-13)
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad)), grad
    fd = _central_differences(lambda v: f(jnp.asarray(v)), np.asarray(x))
    np.testing.assert_allclose(grad, fd, rtol=RTOL, atol=RTOL * np.max(np.abs(fd)))


def _kernel(kind: str) -> Callable:
    return kernels.nngp if kind == "nngp" else kernels.ntk


HYPER = dict(sigma_w=1.3, sigma_b=0.2)


# tanh goes through its Hermite series, whose gradients take 30-90 s each to compile on two cores:
# it is checked once (the input gradient of the sum, diagonal included), the others everywhere.
_SUM_CASES = [(a, k, d) for a in ACTIVATIONS if a != "tanh" for k in ("nngp", "ntk") for d in (1, 3)]


@pytest.mark.parametrize("act,kind,depth", _SUM_CASES + [("tanh", "ntk", 1)])
def test_input_gradient_of_the_sum(act, kind, depth):
    """d/dx of Σ K(x, x) (x2=None: the diagonal, ρ = 1, is included) equals finite differences."""
    k = _kernel(kind)
    _assert_gradient(lambda x: k(x, depth=depth, activation=act, **HYPER).sum(), _points())


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a != "tanh"])
@pytest.mark.parametrize("entry", [(0, 0), (0, 1)])
def test_input_gradient_of_single_entries(act, entry):
    """Diagonal entries Θ(x_i, x_i) (ρ = 1 exactly) and an off-diagonal one, depth 2."""
    i, j = entry
    _assert_gradient(lambda x: kernels.ntk(x, depth=2, activation=act, **HYPER)[i, j], _points())
    _assert_gradient(lambda x: kernels.nngp(x, depth=2, activation=act, **HYPER)[i, j], _points())


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a != "tanh"])
def test_cross_kernel_gradients_at_depth_1(act):
    """A cross kernel K(x1, x2): with respect to x1 alone, and to x with x2 = x passed explicitly."""
    x2 = _points(3, seed=1)
    _assert_gradient(lambda x: kernels.ntk(x, x2, depth=1, activation=act, **HYPER)[1, 2], _points())
    _assert_gradient(lambda x: kernels.ntk(x, x2, depth=1, activation=act, **HYPER).sum(), _points())
    _assert_gradient(lambda x: kernels.ntk(x, x, depth=1, activation=act, **HYPER).sum(), _points())
    _assert_gradient(lambda x: kernels.nngp(x, x, depth=1, activation=act, **HYPER).sum(), _points())


_HYPER_CASES = [(a, k) for a in ACTIVATIONS if a != "tanh" for k in ("nngp", "ntk")]


# tanh's σ-gradients (checked once by hand: they pass at RTOL) compile for ~90 s: not here.
@pytest.mark.parametrize("act,kind", _HYPER_CASES)
def test_hyperparameter_gradients(act, kind):
    """d/dσ_w and d/dσ_b of the sum and of a diagonal entry equal finite differences."""
    k, x = _kernel(kind), _points()

    def total(s):
        return k(x, depth=3, activation=act, sigma_w=s[0], sigma_b=s[1]).sum()

    def diagonal_entry(s):
        return k(x, depth=2, activation=act, sigma_w=s[0], sigma_b=s[1])[1, 1]

    for f in (total, diagonal_entry):
        _assert_gradient(f, np.array([1.3, 0.2]))


def test_hyperparameter_gradients_standard_parameterization():
    """In the standard parameterization only Σ depends on σ; a traced σ_b means a network with biases."""
    x = _points()

    def f(s):
        return kernels.ntk(x, depth=2, sigma_w=s[0], sigma_b=s[1], parameterization="standard", width=64).sum()

    _assert_gradient(f, np.array([1.3, 0.2]))
    value = kernels.ntk(x, depth=2, sigma_w=1.3, sigma_b=0.2, parameterization="standard", width=64).sum()
    np.testing.assert_allclose(f(jnp.array([1.3, 0.2])), value, rtol=1e-14)


@functools.lru_cache(maxsize=None)
def _all_gradients(act: str, depth: int, jit: bool = True) -> Callable:
    """Gradients of Σ NNGP, Σ NTK (x2=None) and Σ diagonal NTK w.r.t. x and (σ_w, σ_b), one jitted
    function (``jit=False``: evaluated eagerly, where the inputs' values are known)."""

    def sums(x, s):
        k, theta = kernels.nngp_ntk(x, depth=depth, activation=act, sigma_w=s[0], sigma_b=s[1])
        diag = kernels.nngp_ntk(x, depth=depth, activation=act, sigma_w=s[0], sigma_b=s[1], diagonal=True).ntk
        return jnp.stack([k.sum(), theta.sum(), diag.sum()])

    grads = jax.jacrev(sums, argnums=(0, 1))
    return jax.jit(grads) if jit else grads


# Not tanh: its Hermite-series Jacobians take minutes to compile per depth on two cores, and
# compiling them in the same process as the others crashed XLA twice (2026-12-05, under load).
# tanh's gradients are checked against finite differences above (the sum, diagonal included).
# Depth 2 is left out: depth 1 has the one-layer maps, depth 5 their composition.
_FINITE_CASES = [(a, d) for a in ACTIVATIONS if a != "tanh" for d in (1, 5)]


@pytest.mark.parametrize("act,depth", _FINITE_CASES)
def test_gradients_are_finite_at_every_depth(act, depth):
    """Depths 1 and 5, x2=None, points with a repeated row and an exactly parallel one, σ_b = 0 and > 0.

    Depth 1 under ``jax.jit`` (abstract inputs: the scaled-form branches for inputs beyond 2^100 are
    compiled and differentiated as well), depth 5 eagerly (the plain recursion only)."""
    x = _points(5)
    x = x.at[3].set(x[0]).at[4].set(2.0 * x[1])  # ρ = 1 off the diagonal too (ReLU: parallel points)
    grads = _all_gradients(act, depth, jit=depth == 1)
    for sigma_b in (0.0, 0.3):
        gx, gs = grads(x, jnp.array([1.4, sigma_b]))
        assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gs)), (act, depth, sigma_b, gx, gs)
    # concrete σ_b = 0 is a network without biases (another description): eagerly, the NTK only
    gx = jax.grad(lambda v: kernels.ntk(v, depth=depth, activation=act, sigma_w=1.4).sum())(x)
    assert np.all(np.isfinite(gx))


def test_gradient_at_a_kink_is_the_central_difference():
    """Θ(x1, x2) with x1 = x2 differentiated in x1 alone: (π - arccos ρ) has a |t|-kink there; the
    gradient is its symmetric part, which central differences give."""
    x1, x2 = _points(2), _points(2)
    f = lambda x: kernels.ntk(x, x2, depth=2, activation="relu", **HYPER)[0, 0]  # noqa: E731
    grad = np.asarray(jax.grad(f)(x1))
    assert np.all(np.isfinite(grad))
    fd = _central_differences(lambda v: f(jnp.asarray(v)), np.asarray(x1), step=1e-7)
    # the kink's next term t|t| is odd, so central differences carry an O(step) error here
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-5 * np.max(np.abs(fd)))


def test_readme_marginal_likelihood_example():
    """The README's example runs: the marginal likelihood increases and its gradient is finite."""
    text = README.read_text()
    block = re.search(r"```python\n(# marginal-likelihood example.*?)```", text, re.S)
    assert block is not None, "README lost its marginal-likelihood example"
    code = block.group(1).replace("print(", "(")  # keep the test quiet
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 (our own README)
    history = namespace["history"]
    assert history[-1] > history[0] + 1e-3, history
    value, grad = namespace["value_and_grad"](namespace["log_sigmas"])
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    # the gradient at the end agrees with central differences of the same function
    f = namespace["log_marginal_likelihood"]
    fd = _central_differences(lambda v: f(jnp.asarray(v)), np.asarray(namespace["log_sigmas"]), step=1e-5)
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-5, atol=1e-8)
