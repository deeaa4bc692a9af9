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


# ----------------------------------------------------------------------------
# PRNG keys, dtypes, flags, dual-map arguments, empty arrays, experiment configurations
# ----------------------------------------------------------------------------
_KEY = jax.random.PRNGKey(0)
_BAD_KEYS = [
    pytest.param(3, TypeError, "got int 3", id="int"),
    pytest.param(None, TypeError, "got NoneType", id="None"),
    pytest.param(np.array([0, 1], np.uint32), TypeError, "got ndarray", id="numpy"),
    pytest.param(jnp.ones(2), ValueError, "dtype float64 and shape \\(2,\\)", id="float-array"),
    pytest.param(jax.random.split(_KEY, 3), ValueError, "batch of keys", id="legacy-batch"),
    pytest.param(jax.random.split(jax.random.key(0), 3), ValueError, "batch of keys", id="typed-batch"),
]


def _key_entry_points():
    from ntknotes import cnn, data, finite_width, solvers, stats, stax
    from ntknotes.experiments import gradient_flow, in_practice, linearization, ntk_recursion

    net = MLP(in_dim=3, width=4, depth=1)
    x = np.ones((4, 3))
    return {
        "MLP.init": lambda k: net.init(k),
        "ReLUNet.init": lambda k: finite_width.ReLUNet.equal(3, 4, 2).init(k),
        "sample_ntk": lambda k: finite_width.sample_ntk(finite_width.ReLUNet.equal(3, 4, 2), np.ones(3), key=k, num_networks=2),
        "CNN.init": lambda k: cnn.CNN(image_shape=(4, 4, 1), depth=1, channels=2).init(k),
        "stax.init": lambda k: stax.Dense(2).init(k, (-1, 3)),
        "bootstrap_ci": lambda k: stats.bootstrap_ci(np.ones(5), key=k),
        "Nystrom": lambda k: solvers.NystromPreconditioner.from_operator(None, 1, key=k),
        "train": lambda k: training.train(net.apply, net.init(_KEY), x, x[:, :1], lr=0.1, steps=1, batch_size=2, key=k),
        "toy_setup": lambda k: gradient_flow.toy_setup("ci", key=k),
        "weight_change": lambda k: linearization.weight_change("ci", key=k),
        "toy_experiment": lambda k: in_practice.toy_experiment("ci", key=k),
        "monte_carlo_duals": lambda k: ntk_recursion.monte_carlo_duals("relu", [1.0], [0.5], [1.0], key=k),
        "train_test_split": lambda k: data.train_test_split(10, 2, 2, k),
        "load_digits": lambda k: data.load_digits(10, 10, key=k),
        "load_sphere_mixture": lambda k: data.load_sphere_mixture(data.two_class_dirichlet(2), 2, 2, key=k),
        "toy_1d": lambda k: data.toy_1d(4, key=k),
        "make_mnist1d": lambda k: data.make_mnist1d(4, 4, key=k),
    }


@pytest.mark.parametrize("bad, err, what", _BAD_KEYS)
def test_bad_prng_keys_are_refused_everywhere(bad, err, what):
    for name, call in _key_entry_points().items():
        if name in ("train", "toy_setup", "weight_change", "toy_experiment", "toy_1d", "make_mnist1d") and bad is None:
            continue  # None is documented there: no minibatch key, the experiments' fixed key, evenly spaced points, a seed
        with pytest.raises(err, match=f"key must be a JAX PRNG key.*{what}"):
            call(bad)


def test_both_kinds_of_single_key_are_accepted():
    net = MLP(in_dim=3, width=4, depth=1)
    legacy = net.init(jax.random.PRNGKey(0))
    typed = net.init(jax.random.key(0))
    for a, b in zip(jax.tree_util.tree_leaves(legacy), jax.tree_util.tree_leaves(typed)):
        np.testing.assert_array_equal(a, b)


def test_ensemble_keys_must_be_a_batch():
    net = MLP(in_dim=3, width=4, depth=1)
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="keys must be a batch of JAX PRNG keys.*no batch"):
        training.train_ensemble(net.apply, net.init, _KEY, x, x[:, :1], lr=0.1, steps=1)
    with pytest.raises(TypeError, match="keys must be a batch"):
        training.train_ensemble(net.apply, net.init, [0, 1], x, x[:, :1], lr=0.1, steps=1)


@pytest.mark.parametrize("dtype", [jnp.int32, np.int64, bool, "complex128", "not-a-dtype"])
def test_non_floating_dtypes_are_refused(dtype):
    from ntknotes import cnn, conv, kernels, stax

    x = np.ones((2, 3))
    calls = [
        lambda: kernels.nngp(x, depth=1, dtype=dtype),
        lambda: kernels.layer_kernels(x, depth=1, dtype=dtype),
        lambda: MLP(in_dim=3, width=4, depth=1).init(_KEY, dtype=dtype),
        lambda: cnn.CNN(image_shape=(4, 4, 1), depth=1, channels=2).init(_KEY, dtype=dtype),
        lambda: stax.Dense(2).init(_KEY, (-1, 3), dtype=dtype),
        lambda: conv.conv_kernels(np.ones((1, 4, 4, 1)), depths=1, dtype=dtype),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="dtype must be a floating dtype"):
            call()


def test_flags_must_be_bool():
    from ntknotes import conv, empirical, finite_width, kernels, precision, stax

    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="diagonal must be True or False, got 'false'"):
        kernels.nngp(x, depth=1, diagonal="false")
    with pytest.raises(TypeError, match="enabled must be True or False, got 1"):
        precision.enable_x64(1)
    with pytest.raises(TypeError, match="gap must be True or False"):
        conv.conv_kernels(np.ones((1, 4, 4, 1)), depths=1, gap=1)
    with pytest.raises(TypeError, match="update must be True or False"):
        finite_width.sample_ntk(finite_width.ReLUNet.equal(3, 4, 2), np.ones(3), key=_KEY, num_networks=2, update="yes")
    with pytest.raises(TypeError, match="ntk must be True or False"):
        empirical.monte_carlo_kernels(stax.Dense(2), x, key=_KEY, n_samples=2, ntk=None)
    net = MLP(in_dim=3, width=4, depth=1)
    with pytest.raises(TypeError, match="linearized must be True or False"):
        training.train(net.apply, net.init(_KEY), x, x[:, :1], lr=0.1, steps=1, linearized="no")
    with pytest.raises(TypeError, match="raise_on_divergence must be True or False"):
        training.train(net.apply, net.init(_KEY), x, x[:, :1], lr=0.1, steps=1, raise_on_divergence=0)


@pytest.mark.parametrize("name", ["relu", "erf", "gelu", "tanh"])
def test_dual_maps_refuse_non_covariances(name):
    from ntknotes.activations import get_activation

    act = get_activation(name)
    for method in (act.dual, act.dual_derivative, act.dual_and_derivative):
        with pytest.raises(ValueError, match=r"\(k11, k12, k22\) is not a covariance.*k12 = 2"):
            method(1.0, 2.0, 1.0)  # correlation 2
        with pytest.raises(ValueError, match="k12 = -1.5"):
            method(jnp.ones(3), jnp.array([0.5, -1.5, 0.0]), 1.0)
        with pytest.raises(ValueError, match="k22 is a variance and must be >= 0"):
            method(1.0, 0.0, -1.0)
        with pytest.raises(ValueError, match="k11 contains NaN"):
            method(np.nan, 0.0, 1.0)
    with pytest.raises(ValueError, match="not a covariance"):
        act.dual_quadrature(1.0, -1.1, 1.0)
    if name != "tanh":  # (tanh's duals would build its Hermite tables: seconds)
        # rounding above |ρ| = 1 is accepted
        np.testing.assert_allclose(float(act.dual(1.0, 1.0 + 1e-12, 1.0)), float(act.dual(1.0, 1.0, 1.0)), rtol=1e-9)


def test_dual_map_checks_do_not_run_under_jit():
    """Traced arguments cannot be inspected: the documented behaviour is a clipped correlation."""
    from ntknotes.activations import relu

    assert float(jax.jit(relu().dual)(1.0, 2.0, 1.0)) == pytest.approx(0.5)
    assert float(relu().dual(1e200, 1e200, 1e200)) == pytest.approx(0.5e200)


def test_empty_arrays_in_regression_and_accuracy():
    from ntknotes import regression

    with pytest.raises(ValueError, match="predictions is empty"):
        regression.accuracy(np.zeros((0, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="labels is empty"):
        regression.accuracy(np.zeros((2, 2)), [])
    with pytest.raises(ValueError, match="k_train is empty"):
        regression.kernel_regression(np.zeros((0, 0)), np.zeros((0, 1)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match="k_test_train is empty"):
        regression.kernel_regression(np.eye(2), np.ones(2), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="y_train is empty"):
        regression.solve_kernel(np.eye(2), np.zeros((2, 0)))


def _experiments():
    from ntknotes.experiments import (deep_limit, finite_width, gaussian_processes, gradient_flow, in_practice,
                                      introduction, linearization, ntk_recursion)

    return [
        (lambda c: gradient_flow.toy_setup(c, key=_KEY), gradient_flow.GradientFlowConfig, "config"),
        (lambda c: linearization.weight_change(c, key=_KEY), linearization.WeightChangeConfig, "config"),
        (lambda c: linearization.toy_predictions(c, key=_KEY), linearization.ToyConfig, "config"),
        (lambda c: introduction.teaser(c, key=_KEY), introduction.TeaserConfig, "config"),
        (lambda c: in_practice.toy_experiment(c, key=_KEY), in_practice.Config, "config"),
        (lambda c: deep_limit.classification(c, key=_KEY), deep_limit.ClassificationConfig, "config"),
        (lambda c: finite_width.run_grid(c, key=_KEY), finite_width.GridConfig, "config"),
        (lambda c: gaussian_processes.covariance_error_experiment(c), gaussian_processes.CovarianceConfig, "config"),
        (lambda c: ntk_recursion.convergence_experiment(c), ntk_recursion.ConvergenceConfig, "config"),
    ]


def test_unknown_or_wrong_experiment_configurations():
    for run, cls, name in _experiments():
        with pytest.raises(ValueError, match=f"unknown scale preset 'huge' for {name}; valid names: .*'ci'.*'paper'"):
            run("huge")
        with pytest.raises(TypeError, match=f"{name} must be a preset name .* or a {cls.__name__}, got int"):
            run(3)
        with pytest.raises(TypeError, match=f"{name} must be a preset name"):
            run(object())


def test_empty_or_negative_experiment_fields():
    from ntknotes.experiments import deep_limit, gradient_flow, in_practice
    from ntknotes.experiments.common import check_config

    with pytest.raises(ValueError, match="config.widths is empty"):
        gradient_flow.toy_setup(gradient_flow.GradientFlowConfig(widths=()), key=_KEY)
    with pytest.raises(ValueError, match="config.n_points must be an integer >= 1, got -2"):
        gradient_flow.toy_setup(gradient_flow.GradientFlowConfig(n_points=-2), key=_KEY)
    with pytest.raises(ValueError, match="config.n_train must be an integer >= 1, got 0"):
        deep_limit.classification(deep_limit.ClassificationConfig(n_train=0), key=_KEY)
    with pytest.raises(ValueError, match=r"config.depths\[1\] must be an integer >= 0, got -3"):
        deep_limit.classification(deep_limit.ClassificationConfig(depths=(1, -3)), key=_KEY)
    with pytest.raises(ValueError, match="config.toy_noise must be a number >= 0, got nan"):
        in_practice.toy_experiment(in_practice.Config(toy_noise=float("nan")), key=_KEY)
    with pytest.raises(ValueError, match="config.dataset is an empty string"):
        in_practice.toy_experiment(in_practice.Config(dataset=""), key=_KEY)
    with pytest.raises(TypeError, match="configuration dataclass"):
        check_config({"n": 1})


def test_every_preset_passes_the_configuration_checks():
    import dataclasses

    from ntknotes.experiments import (deep_limit, finite_width, gaussian_processes, gradient_flow, in_practice,
                                      introduction, linearization, ntk_recursion)
    from ntknotes.experiments.common import check_config

    tables = [deep_limit.PRESETS, finite_width.PRESETS, gradient_flow.PRESETS, in_practice.PRESETS,
              introduction.PRESETS, *linearization.PRESETS.values(), gaussian_processes.NORMALITY_PRESETS,
              gaussian_processes.COVARIANCE_PRESETS, gaussian_processes.POSTERIOR_PRESETS,
              ntk_recursion.CONVERGENCE_PRESETS, ntk_recursion.HEATMAP_PRESETS, ntk_recursion.DEPTH_PRESETS,
              ntk_recursion.LAYER_PRESETS, deep_limit.RATIO_PRESETS, deep_limit.EXPONENT_PRESETS,
              deep_limit.SLOW_ROAD_PRESETS]
    n = 0
    for table in tables:
        for cfg in table.values():
            assert dataclasses.is_dataclass(cfg)
            check_config(cfg)
            n += 1
    assert n >= 30


def test_relu_layer_moments_huge_order_is_refused_and_high_orders_are_exact():
    """Width 1: R = 2 ReLU(g)², E[R^k] = 2^k (2k-1)!!/2; orders above 17 used to overflow int64 silently."""
    import math

    from ntknotes.finite_width import relu_layer_moments

    with pytest.raises(ValueError, match="order must be at most 100, got 10000"):
        relu_layer_moments(10**9, 10**4)
    m = relu_layer_moments(1, 40)
    exact = [2.0**k * math.prod(range(1, 2 * k, 2)) / 2 if k else 1.0 for k in range(41)]
    np.testing.assert_allclose(m, exact, rtol=1e-12)
