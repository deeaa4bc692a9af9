"""Reliability, class 4 (validation of user-supplied functions): an ``apply`` that cannot be
traced, does not fit its params, or returns the wrong shape gets a TypeError/ValueError that says
what is wrong, before any compilation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes import training
from ntknotes.networks import MLP

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def setup():
    net = MLP(in_dim=3, width=8, depth=1, sigma_b=0.1)
    params = net.init(jax.random.PRNGKey(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    return net, params, x, jnp.ones((4, 1))


def test_numpy_inside_apply(setup):
    net, params, x, y = setup
    with pytest.raises(TypeError, match="JAX-traceable.*NumPy"):
        training.train(lambda p, x: jnp.asarray(np.tanh(np.asarray(net.apply(p, x)))), params, x, y, lr=0.1, steps=2)


def test_float_of_a_traced_parameter(setup):
    net, params, x, y = setup
    with pytest.raises(TypeError, match="JAX-traceable"):
        training.train(lambda p, x: net.apply(p, x) * float(p[0]["b"][0]), params, x, y, lr=0.1, steps=2)


def test_params_that_do_not_fit_the_inputs(setup):
    net, params, x, y = setup
    with pytest.raises(ValueError, match=r"apply\(params, x\) failed for x of shape \(4, 5\)"):
        training.train(net.apply, params, jnp.ones((4, 5)), y, lr=0.1, steps=2)
    other = MLP(in_dim=3, width=5, depth=2).init(jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match="failed"):
        training.train(net.apply, other[:1], x, y, lr=0.1, steps=2)


def test_outputs_of_three_axes(setup):
    net, params, x, y = setup
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, k\).*got \(4, 1, 1\)"):
        training.train(lambda p, x: net.apply(p, x)[..., None], params, x, y, lr=0.1, steps=2)


def test_a_valid_apply_still_trains(setup):
    net, params, x, y = setup
    hist = training.train(net.apply, params, x, y, lr=0.1, steps=5)
    assert float(hist.loss[-1]) < float(hist.loss[0])
