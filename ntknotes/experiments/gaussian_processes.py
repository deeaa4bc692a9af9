"""Experiments of the chapter "Wide networks are Gaussian processes".

Three experiments, each ``fn(config="ci", *, key=None)`` (the protocol of
:mod:`ntknotes.experiments.common`) returning a result dataclass, where ``config`` is a preset
name (``"ci"``, ``"paper"``) or that experiment's config object (:class:`NormalityConfig`,
:class:`CovarianceConfig`, :class:`PosteriorConfig`) to change a size; ``key=None`` is the
fixed key ``PRNGKey(0)``, ``PRNGKey(1)``, ``PRNGKey(2)`` respectively:

* :func:`normality_experiment`: the outputs f(x), f(x') of many random one-hidden-layer
  networks of every width 1..n_max, their distance from N(0, K) (Kolmogorov–Smirnov),
  excess kurtosis against its exact value, and their covariance against the NNGP kernel.
* :func:`covariance_error_experiment`: the random kernel K̂_n of one network (the covariance
  of its output given the last hidden layer) against the NNGP kernel K, over widths and depths.
* :func:`posterior_experiment`: the NNGP posterior on a 1-D problem against an ensemble of
  wide networks whose readout alone is trained to convergence ("sample-then-optimize"),
  with one real gradient-descent run checking the closed form of that training.

Helpers shared with the chapter: :func:`unit_terms` (the output as a sum over hidden units),
:func:`readout_features` and :func:`feature_kernel` (K̂_n), :func:`subnetwork` (the first n
units of a wider network, a draw of a width-n network), :func:`ks_distance`,
:func:`excess_kurtosis`, :func:`shallow_kurtosis` and :func:`shallow_relu_nngp` (the
arc-cosine closed form of a one-hidden-layer ReLU network, written independently of
:mod:`ntknotes.kernels`).

Networks are in the NTK parameterization of :class:`ntknotes.networks.MLP` with one output.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .._checks import check_key, check_matrix, check_nonnegative, check_positive_int
from ..activations import get_activation
from ..data import toy_1d
from ..dynamics import nngp_posterior
from ..kernels import nngp
from ..networks import MLP, Params
from ..stats import loglog_slope
from ..training import gradient_descent
from .common import Result, resolve_config, resolve_key

__all__ = [
    "NormalityConfig",
    "CovarianceConfig",
    "PosteriorConfig",
    "NormalityResult",
    "CovarianceErrorResult",
    "PosteriorResult",
    "NORMALITY_PRESETS",
    "COVARIANCE_PRESETS",
    "POSTERIOR_PRESETS",
    "unit_terms",
    "readout_features",
    "readout_weights",
    "feature_kernel",
    "trained_readout",
    "subnetwork",
    "nested_kernel_errors",
    "sample_outputs",
    "ks_distance",
    "excess_kurtosis",
    "shallow_kurtosis",
    "shallow_relu_nngp",
    "normality_experiment",
    "covariance_error_experiment",
    "posterior_experiment",
]

Array = jax.Array


# ----------------------------------------------------------------------------
# a network's output, term by term
# ----------------------------------------------------------------------------
def _check_single_output(net: MLP) -> None:
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an ntknotes.networks.MLP, got {type(net).__name__}")
    if net.out_dim != 1:
        raise ValueError(f"these helpers describe a scalar output; net.out_dim is {net.out_dim}, expected 1")


def unit_terms(net: MLP, params: Params, x: Array) -> tuple[Array, Array]:
    """The output of a one-output MLP split over the units of its last hidden layer.

    f(x) = Σ_j t_j(x) + c_b b with t_j(x) = c_w v_j φ(h_j(x)), where v is the readout weight
    vector and (c_w, c_b) = (σ_w/√n, σ_b) in the NTK parameterization.

    Args:
      net: an :class:`~ntknotes.networks.MLP` with ``out_dim == 1``.
      params: its parameters; x: inputs (N, d).
    Returns:
      (terms, bias): terms of shape (N, n_L) and the readout-bias term, a scalar array
      (0 for a network without biases).
    """
    _check_single_output(net)
    fwd = net.forward(params, x)
    cw, cb = net.layer_scales()[-1]
    terms = cw * fwd.inputs[-1] * params[-1]["W"][:, 0]
    bias = cb * params[-1]["b"][0] if net.has_bias else jnp.zeros((), terms.dtype)
    return terms, bias


def readout_features(net: MLP, params: Params, x: Array) -> Array:
    """ψ(x) = [c_w φ(h^L(x)), c_b], shape (N, n_L + 1) (no last column without biases).

    The output is linear in the readout parameters r = [v, b]: f(x) = ψ(x)·r.  Hence ψ is the
    Jacobian of f with respect to the readout, and ψ ψᵀ is the readout's tangent kernel.
    """
    _check_single_output(net)
    fwd = net.forward(params, x)
    cw, cb = net.layer_scales()[-1]
    feats = cw * fwd.inputs[-1]
    if net.has_bias:
        feats = jnp.concatenate([feats, jnp.full((x.shape[0], 1), cb, feats.dtype)], axis=1)
    return feats


def readout_weights(net: MLP, params: Params) -> Array:
    """r = [v, b], the readout parameters matching :func:`readout_features`, shape (n_L (+1),)."""
    _check_single_output(net)
    last = params[-1]
    return jnp.concatenate([last["W"][:, 0], last["b"]]) if net.has_bias else last["W"][:, 0]


def feature_kernel(net: MLP, params: Params, x1: Array, x2: Optional[Array] = None) -> Array:
    """K̂_n(x1, x2) = ψ(x1) ψ(x2)ᵀ = σ_w²/n φ(h^L(x1))·φ(h^L(x2)) + σ_b², shape (N1, N2).

    The covariance of the output over the readout weights with the hidden layers held fixed;
    its average over networks is the NNGP kernel, and it converges to it as the width grows.
    """
    a = readout_features(net, params, x1)
    b = a if x2 is None else readout_features(net, params, x2)
    return a @ b.T


def subnetwork(net: MLP, params: Params, width: int) -> tuple[MLP, Params]:
    """The network made of the first ``width`` units of every hidden layer of ``net``.

    Its weights are i.i.d. draws like those of a fresh network of that width, so it *is* a
    random width-``width`` network (in the standard parameterization the weights are rescaled
    to the new fan-in).  Sub-networks of one wide draw give coupled samples at many widths.

    Returns:
      (smaller MLP, its parameters).
    """
    width = check_positive_int(width, "width")
    if width > min(net.width):
        raise ValueError(f"width must be at most the network's width {min(net.width)}, got {width}")
    small = dataclasses.replace(net, width=width)
    old, new = net.widths, small.widths
    out = []
    for i, layer in enumerate(params):
        W = layer["W"][: new[i], : new[i + 1]]
        if net.parameterization == "standard":
            W = W * math.sqrt(old[i] / new[i])
        sub = {"W": W}
        if "b" in layer:
            sub["b"] = layer["b"][: new[i + 1]]
        out.append(sub)
    return small, out


@functools.partial(jax.jit, static_argnames=("net", "widths", "n_nets", "chunk"))
def _sample_outputs(net, x, key, widths, n_nets, chunk):
    def one(k):
        params = net.init(k)
        if net.depth == 1:  # nested sums over units: every width from one forward pass
            terms, bias = unit_terms(net, params, x)
            csum = jnp.cumsum(terms / net.layer_scales()[-1][0], axis=1)[:, jnp.asarray(widths) - 1]
            scale = jnp.asarray([net.sigma_w / math.sqrt(w) for w in widths], csum.dtype)
            return (csum * scale + bias).T
        subs = [subnetwork(net, params, w) for w in widths]
        return jnp.stack([small.apply(p, x)[:, 0] for small, p in subs])

    return jax.lax.map(one, jax.random.split(key, n_nets), batch_size=chunk)


def sample_outputs(
    net: MLP, x: Array, key: Array, widths: Sequence[int], n_nets: int, *, chunk: int = 500
) -> Array:
    """Outputs of ``n_nets`` random networks, each seen at several widths through its sub-networks.

    Args:
      net: the widest network (``out_dim == 1``); widths: increasing widths, each <= net.width.
      x: inputs (N, d); key: PRNG key; n_nets: number of networks; chunk: networks per vmapped batch.
    Returns:
      (n_nets, len(widths), N): sample s, width w: f(x) of the width-w sub-network of draw s.
    """
    _check_single_output(net)
    check_matrix(x, "x", features=net.in_dim)
    widths = tuple(check_positive_int(w, "widths[i]") for w in widths)
    if any(w > min(net.width) for w in widths):
        raise ValueError(f"every width must be <= the network's width {min(net.width)}, got {widths}")
    n_nets, chunk = check_positive_int(n_nets, "n_nets"), check_positive_int(chunk, "chunk")
    check_key(key)
    return _sample_outputs(net, jnp.asarray(x), key, widths, n_nets, min(chunk, n_nets))


# ----------------------------------------------------------------------------
# statistics and closed forms
# ----------------------------------------------------------------------------
def ks_distance(samples, std: float) -> float:
    """Kolmogorov–Smirnov distance sup_t |F̂(t) − Φ(t/std)| of 1-D samples from N(0, std²)."""
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    if s.size < 2:
        raise ValueError(f"need at least 2 samples, got {s.size}")
    std = check_nonnegative(std, "std")
    if std == 0:
        raise ValueError("std must be > 0")
    cdf = np.asarray(ndtr(jnp.asarray(s / std)))
    m = s.size
    return float(max(np.max(np.arange(1, m + 1) / m - cdf), np.max(cdf - np.arange(m) / m)))


def excess_kurtosis(samples, axis: int = 0) -> np.ndarray:
    """E[z⁴]/E[z²]² − 3 of samples with known mean 0 (moments about 0, not the sample mean)."""
    s = np.asarray(samples, dtype=np.float64)
    m2 = np.mean(s**2, axis=axis)
    return np.mean(s**4, axis=axis) / m2**2 - 3.0


def shallow_kurtosis(x: Array, width: int, *, activation="relu", sigma_w: float = 1.0, sigma_b: float = 0.0) -> np.ndarray:
    """Exact excess kurtosis of f(x) for a random one-hidden-layer network of the given width.

    f(x) is σ_b b plus a sum of n i.i.d. terms c_w v_j φ(h_j) with h_j ~ N(0, q),
    q = σ_w²|x|²/d + σ_b²; cumulants add, so the excess kurtosis is
    3 σ_w⁴ Var[φ(h)²] / (n K(x, x)²) with K(x, x) = σ_w² E[φ(h)²] + σ_b² (15 (1 − σ_b²/K)²/n for ReLU).

    Args:
      x: inputs (N, d); width: n. Returns: (N,) excess kurtoses.
    """
    check_matrix(x, "x")
    n = check_positive_int(width, "width")
    act = get_activation(activation)
    sw2, sb2 = check_nonnegative(sigma_w, "sigma_w") ** 2, check_nonnegative(sigma_b, "sigma_b") ** 2
    q = sw2 * np.sum(np.asarray(x, np.float64) ** 2, axis=1) / x.shape[1] + sb2
    zs = np.linspace(-12, 12, 4001)
    w = np.exp(-0.5 * zs**2)
    w /= w.sum()
    out = []
    for qi in q:
        phi2 = np.asarray(act(jnp.asarray(math.sqrt(qi) * zs))) ** 2
        m2, m4 = float(w @ phi2), float(w @ phi2**2)
        k = sw2 * m2 + sb2
        out.append(3.0 * sw2**2 * (m4 - m2**2) / (n * k**2))
    return np.array(out)


def shallow_relu_nngp(x1, x2=None, *, sigma_w: float = 1.0, sigma_b: float = 0.0) -> np.ndarray:
    """The arc-cosine closed form of a one-hidden-layer ReLU network's NNGP kernel (NumPy).

    With Σ¹(x, x') = σ_w² x·x'/d + σ_b² and θ the angle with cos θ = Σ¹(x,x')/√(Σ¹(x,x)Σ¹(x',x')):
    K(x, x') = σ_w² √(Σ¹(x,x) Σ¹(x',x')) (sin θ + (π − θ) cos θ) / (2π) + σ_b².

    Args:
      x1: (N1, d); x2: (N2, d) or ``None`` for x1. Returns: (N1, N2).
    """
    check_matrix(x1, "x1")
    x1 = np.asarray(x1, np.float64)
    x2 = x1 if x2 is None else np.asarray(check_matrix(x2, "x2", features=x1.shape[1]), np.float64)
    sw2, sb2 = check_nonnegative(sigma_w, "sigma_w") ** 2, check_nonnegative(sigma_b, "sigma_b") ** 2
    d = x1.shape[1]
    s12 = sw2 * (x1 @ x2.T) / d + sb2
    s11 = sw2 * np.sum(x1**2, 1) / d + sb2
    s22 = sw2 * np.sum(x2**2, 1) / d + sb2
    norm = np.sqrt(np.outer(s11, s22))
    theta = np.arccos(np.clip(s12 / norm, -1.0, 1.0))
    return sw2 * norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi) + sb2


# ----------------------------------------------------------------------------
# 1. normality of the output over random networks
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NormalityConfig:
    """Sizes of :func:`normality_experiment`: widths 1, 2, 4, ..., ``max_width``; ``n_nets`` draws."""

    max_width: int
    n_nets: int
    chunk: int = 500
    activation: str = "relu"
    sigma_w: float = 1.5
    sigma_b: float = 0.2


NORMALITY_PRESETS = {
    "ci": NormalityConfig(max_width=1024, n_nets=10_000),
    "paper": NormalityConfig(max_width=8192, n_nets=100_000, chunk=1000),
}


@dataclasses.dataclass
class NormalityResult(Result):
    """What :func:`normality_experiment` measured.

    Attributes:
      x: the two inputs (2, d); kernel: their NNGP kernel K (2, 2).
      widths: (W,); samples: (S, W, 2) outputs f(x), f(x') of S networks at every width.
      ks: (W,) KS distance of f(x)/√K(x,x) from N(0, 1); ks_critical: the 1% critical value 1.63/√S.
      kurtosis, kurtosis_se, kurtosis_theory: (W,) measured excess kurtosis of f(x), its bootstrap
        standard error, and the exact value of :func:`shallow_kurtosis`.
      covariance: (W, 2, 2) Monte Carlo E[f fᵀ]; covariance_se: (W, 2, 2) its standard errors.
    """

    x: np.ndarray
    kernel: np.ndarray
    widths: np.ndarray
    samples: np.ndarray
    ks: np.ndarray
    ks_critical: float
    kurtosis: np.ndarray
    kurtosis_se: np.ndarray
    kurtosis_theory: np.ndarray
    covariance: np.ndarray
    covariance_se: np.ndarray


def normality_experiment(config: Union[str, NormalityConfig] = "ci", *, key: Optional[Array] = None) -> NormalityResult:
    """Outputs at two inputs of many random one-hidden-layer networks, widths 1..max_width.

    Every network is drawn at the largest width and seen at each smaller width through its
    sub-network of the first n units (:func:`subnetwork`), which is exactly a random width-n net.
    """
    cfg = resolve_config(config, NORMALITY_PRESETS, NormalityConfig, "config")
    key = resolve_key(key, 0)  # None: PRNGKey(0)
    k_nets, k_boot = jax.random.split(key)
    x = np.array([[1.0, 0.5], [-0.4, 1.2]])
    widths = tuple(2**i for i in range(int(math.log2(cfg.max_width)) + 1))
    net = MLP(in_dim=2, width=cfg.max_width, depth=1, activation=cfg.activation, sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)
    samples = np.asarray(sample_outputs(net, x, k_nets, widths, cfg.n_nets, chunk=cfg.chunk))
    kernel = np.asarray(net.kernels(x).nngp)
    f0 = samples[:, :, 0] / math.sqrt(kernel[0, 0])
    ks = np.array([ks_distance(f0[:, i], 1.0) for i in range(len(widths))])
    kurt = excess_kurtosis(f0)
    idx = np.asarray(jax.random.randint(k_boot, (200, cfg.n_nets), 0, cfg.n_nets))
    kurt_se = np.array([np.std(excess_kurtosis(f0[idx, i], axis=1)) for i in range(len(widths))])
    theory = np.array([shallow_kurtosis(x[:1], w, activation=cfg.activation, sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)[0] for w in widths])
    prods = samples[:, :, :, None] * samples[:, :, None, :]  # (S, W, 2, 2)
    return NormalityResult(
        x=x,
        kernel=kernel,
        widths=np.array(widths),
        samples=samples,
        ks=ks,
        ks_critical=1.63 / math.sqrt(cfg.n_nets),
        kurtosis=kurt,
        kurtosis_se=kurt_se,
        kurtosis_theory=theory,
        covariance=prods.mean(0),
        covariance_se=prods.std(0) / math.sqrt(cfg.n_nets),
    )


# ----------------------------------------------------------------------------
# 2. the random kernel K̂_n of one network against K
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CovarianceConfig:
    """Sizes of :func:`covariance_error_experiment`."""

    depths: tuple = (1, 2)
    widths: tuple = (16, 32, 64, 128, 256, 512, 1024)
    n_nets: int = 32
    n_points: int = 8
    in_dim: int = 3
    activation: str = "relu"
    sigma_w: float = 1.5
    sigma_b: float = 0.2


COVARIANCE_PRESETS = {
    "ci": CovarianceConfig(),
    "paper": CovarianceConfig(depths=(1, 2, 4), widths=tuple(2**i for i in range(4, 15)), n_nets=128, n_points=32),
}


@dataclasses.dataclass
class CovarianceErrorResult(Result):
    """What :func:`covariance_error_experiment` measured.

    Attributes:
      depths: (D,); widths: (W,).
      errors: (D, W, S) relative Frobenius error ‖K̂_n − K‖_F/‖K‖_F of S networks on n_points inputs.
      slopes: (D,) log-log slope of the mean error against width.
    """

    depths: np.ndarray
    widths: np.ndarray
    errors: np.ndarray
    slopes: np.ndarray


@functools.partial(jax.jit, static_argnames=("net", "kernel_fn", "widths", "n_nets"))
def _nested_kernels(net, kernel_fn, x, key, widths, n_nets):
    def one(k):
        params = net.init(k)
        return jnp.stack([kernel_fn(*subnetwork(net, params, w), x) for w in widths])

    return jax.lax.map(one, jax.random.split(key, n_nets), batch_size=min(8, n_nets))


def nested_kernel_errors(net: MLP, kernel_fn, x: Array, key: Array, widths: Sequence[int], n_nets: int,
                         reference) -> np.ndarray:
    """Relative Frobenius errors ‖k̂ − reference‖_F/‖reference‖_F of random networks at several widths.

    Each of ``n_nets`` networks is drawn at ``net``'s width and evaluated at every width in
    ``widths`` through its sub-networks (:func:`subnetwork`).

    Args:
      net: the widest network; kernel_fn: ``kernel_fn(net, params, x) -> (N, N)`` (e.g.
        :func:`feature_kernel` or :func:`ntknotes.empirical.mlp_ntk`); x: inputs (N, d);
      key: PRNG key; widths: increasing widths <= net.width; n_nets: networks;
      reference: (N, N) the kernel they should approach.
    Returns:
      (len(widths), n_nets) relative errors.
    """
    check_key(key)
    check_matrix(x, "x", features=net.in_dim)
    widths = tuple(check_positive_int(w, "widths[i]") for w in widths)
    reference = np.asarray(reference)
    khat = np.asarray(_nested_kernels(net, kernel_fn, jnp.asarray(x), key, widths, check_positive_int(n_nets, "n_nets")))
    return (np.linalg.norm(khat - reference, axis=(2, 3)) / np.linalg.norm(reference)).T


def covariance_error_experiment(config: Union[str, CovarianceConfig] = "ci", *, key: Optional[Array] = None) -> CovarianceErrorResult:
    """Relative error of one network's kernel K̂_n against the NNGP kernel, over widths and depths."""
    cfg = resolve_config(config, COVARIANCE_PRESETS, CovarianceConfig, "config")
    key = resolve_key(key, 1)  # None: PRNGKey(1)
    k_x, k_nets = jax.random.split(key)
    x = jax.random.normal(k_x, (cfg.n_points, cfg.in_dim))
    widths = tuple(cfg.widths)
    errors = []
    for depth, kd in zip(cfg.depths, jax.random.split(k_nets, len(cfg.depths))):
        net = MLP(in_dim=cfg.in_dim, width=max(widths), depth=depth, activation=cfg.activation,
                  sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)
        errors.append(nested_kernel_errors(net, feature_kernel, x, kd, widths, cfg.n_nets, net.kernels(x).nngp))
    errors = np.array(errors)
    slopes = np.array([loglog_slope(widths, e.mean(1)).slope for e in errors])
    return CovarianceErrorResult(np.array(cfg.depths), np.array(widths), errors, slopes)


# ----------------------------------------------------------------------------
# 3. NNGP posterior and sample-then-optimize
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PosteriorConfig:
    """Sizes of :func:`posterior_experiment`."""

    width: int = 4096
    n_nets: int = 1000
    n_train: int = 5
    n_grid: int = 60
    chunk: int = 100
    activation: str = "relu"
    sigma_w: float = 1.5
    sigma_b: float = 1.0
    gd_tolerance: float = 1e-10


POSTERIOR_PRESETS = {
    "ci": PosteriorConfig(),
    "paper": PosteriorConfig(width=16384, n_nets=10_000, n_grid=200),
}


@dataclasses.dataclass
class PosteriorResult(Result):
    """What :func:`posterior_experiment` computed.

    Attributes:
      x_train, y_train: (N, 1); x_grid: (G, 1).
      mean, var: (G,) NNGP posterior mean K*K⁻¹y and variance diag(K** − K*K⁻¹K*ᵀ).
      ensemble: (S, G) the trained-readout networks on the grid.
      train_residual: max over networks and training inputs of |f∞(x_i) − y_i| (interpolation check).
      gd_outputs: (G,) network 0 after real gradient descent on its readout; gd_steps, gd_lr,
        gd_loss: the run's length, step size and final loss.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_grid: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    ensemble: np.ndarray
    train_residual: float
    gd_outputs: np.ndarray
    gd_steps: int
    gd_lr: float
    gd_loss: float


def trained_readout(net: MLP, params: Params, x_train: Array, y_train: Array, x_eval: Array) -> Array:
    """f∞ on x_eval after training only the readout of ``net`` to zero loss from ``params``.

    Gradient descent from r₀ on a model linear in r converges to the interpolant nearest r₀:
    r∞ = r₀ + Ψᵀ(ΨΨᵀ)⁻¹(y − Ψr₀) with Ψ = ψ(x_train) (:func:`readout_features`).

    Args:
      x_train: (N, d); y_train: (N,); x_eval: (M, d). Returns: (M,).
    """
    r0 = readout_weights(net, params)
    psi = readout_features(net, params, x_train)
    gram = psi @ psi.T
    r = r0 + psi.T @ jnp.linalg.solve(gram, y_train - psi @ r0)
    return readout_features(net, params, x_eval) @ r


@functools.partial(jax.jit, static_argnames=("net", "n_nets", "chunk"))
def _ensemble(net, key, x_train, y_train, x_eval, n_nets, chunk):
    return jax.lax.map(lambda k: trained_readout(net, net.init(k), x_train, y_train, x_eval),
                       jax.random.split(key, n_nets), batch_size=chunk)


def posterior_experiment(config: Union[str, PosteriorConfig] = "ci", *, key: Optional[Array] = None) -> PosteriorResult:
    """NNGP posterior on a 1-D problem and an ensemble of readout-trained wide networks."""
    cfg = resolve_config(config, POSTERIOR_PRESETS, PosteriorConfig, "config")
    key = resolve_key(key, 2)  # None: PRNGKey(2)
    x_train, y_train = toy_1d(cfg.n_train, low=-3.0, high=3.0)
    x_grid = np.linspace(-4.0, 4.0, cfg.n_grid)[:, None]
    net = MLP(in_dim=1, width=cfg.width, depth=1, activation=cfg.activation, sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)
    kw = dict(depth=1, activation=cfg.activation, sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)
    post = nngp_posterior(nngp(x_train, **kw), nngp(x_grid, x_train, **kw), nngp(x_grid, **kw), y_train)
    mean, var = np.asarray(post.mean)[:, 0], np.clip(np.diag(np.asarray(post.cov)), 0.0, None)
    xt, yt, xg = jnp.asarray(x_train), jnp.asarray(y_train[:, 0]), jnp.asarray(x_grid)
    both = jnp.concatenate([xg, xt])
    out = np.asarray(_ensemble(net, key, xt, yt, both, cfg.n_nets, min(cfg.chunk, cfg.n_nets)))
    ens, at_train = out[:, : cfg.n_grid], out[:, cfg.n_grid :]
    # real gradient descent on the readout of network 0 (the first key of the ensemble)
    params = net.init(jax.random.split(key, cfg.n_nets)[0])
    psi = readout_features(net, params, xt)
    ev = np.linalg.eigvalsh(np.asarray(psi @ psi.T))
    lr = 1.0 / ev[-1]
    steps = int(math.ceil(math.log(cfg.gd_tolerance) / math.log1p(-ev[0] / ev[-1])))
    frozen = params[:-1]
    hist = gradient_descent(lambda last, x: net.apply(frozen + [last], x), params[-1], xt, yt,
                            lr=lr, steps=steps, record_steps=[0, steps], x_eval=xg)
    return PosteriorResult(
        x_train=x_train, y_train=y_train, x_grid=x_grid, mean=mean, var=var, ensemble=ens,
        train_residual=float(np.max(np.abs(at_train - y_train[:, 0]))),
        gd_outputs=np.asarray(hist.eval_outputs[-1, :, 0]), gd_steps=steps, gd_lr=float(lr),
        gd_loss=float(hist.loss[-1]),
    )
