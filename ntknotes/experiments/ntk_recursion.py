"""Experiments of the chapter "The NTK recursion".

* :func:`relu_ntk_reference`: the NNGP and NTK of a deep ReLU network from the arc-cosine
  formulas, written in NumPy independently of :mod:`ntknotes.kernels` (a reference to check it).
* :func:`monte_carlo_duals`: Monte Carlo estimates of the dual maps E[φ(u)φ(v)], E[φ'(u)φ'(v)].
* :func:`convergence_experiment`: empirical NTKs of random networks of growing width against
  the analytic NTK, for several depths and activations.
* :func:`heatmap_experiment`: the analytic NTK Θ(x*, x) of a one-hidden-layer ReLU network over a
  grid of x* in the plane for a few x, and the empirical NTK of one wide network along the
  line x*₂ = 1 (scalar inputs with a constant 1 appended).
* :func:`depth_experiment`: NNGP and NTK on the unit circle for depths 1..L, and the iterates
  of the correlation map.
* :func:`layer_contributions_experiment`: the per-layer split of the NTK, empirical
  (:func:`ntknotes.empirical.mlp_ntk_per_layer`) and analytic
  (:func:`ntknotes.kernels.layer_kernels`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_key, check_matrix, check_nonnegative, check_positive_int
from ..activations import get_activation
from ..empirical import mlp_ntk, mlp_ntk_per_layer
from ..kernels import layer_kernels
from ..networks import MLP
from ..stats import loglog_slope
from .common import Result, progress_bar, resolve_config, resolve_key
from .gaussian_processes import nested_kernel_errors

__all__ = [
    "relu_ntk_reference",
    "monte_carlo_duals",
    "correlation_map",
    "fixed_point",
    "ConvergenceConfig",
    "ConvergenceResult",
    "CONVERGENCE_PRESETS",
    "convergence_experiment",
    "HeatmapConfig",
    "HEATMAP_PRESETS",
    "HeatmapResult",
    "heatmap_experiment",
    "DepthConfig",
    "DEPTH_PRESETS",
    "DepthResult",
    "depth_experiment",
    "LayerConfig",
    "LAYER_PRESETS",
    "LayerResult",
    "layer_contributions_experiment",
]

Array = jax.Array


# ----------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------
def relu_ntk_reference(x1, x2=None, *, depth: int, sigma_w: float = 1.0, sigma_b: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK of a ReLU MLP (NTK parameterization) by the arc-cosine recursion, in NumPy.

    Σ¹ = σ_w² x·x'/d + σ_b², Θ¹ = Σ¹; for each hidden layer, with θ the angle of Σ^l:
    Σ^{l+1} = σ_w² √(Σ^l(x,x)Σ^l(x',x')) (sin θ + (π − θ) cos θ)/(2π) + σ_b²,
    Σ̇^{l+1} = σ_w² (π − θ)/(2π),  Θ^{l+1} = Θ^l Σ̇^{l+1} + Σ^{l+1}.

    Args:
      x1: (N1, d); x2: (N2, d) or ``None``; depth: hidden layers L >= 1.
    Returns:
      (K, Θ), each (N1, N2).
    """
    check_matrix(x1, "x1")
    depth = check_positive_int(depth, "depth")
    x1 = np.asarray(x1, np.float64)
    symmetric = x2 is None
    x2 = x1 if symmetric else np.asarray(check_matrix(x2, "x2", features=x1.shape[1]), np.float64)
    sw2, sb2 = check_nonnegative(sigma_w, "sigma_w") ** 2, check_nonnegative(sigma_b, "sigma_b") ** 2
    d = x1.shape[1]
    s12 = sw2 * x1 @ x2.T / d + sb2
    s11 = sw2 * np.sum(x1**2, 1) / d + sb2
    s22 = sw2 * np.sum(x2**2, 1) / d + sb2
    theta_k = s12.copy()
    for _ in range(depth):
        norm = np.sqrt(np.outer(s11, s22))
        t = np.arccos(np.clip(s12 / norm, -1.0, 1.0))
        if symmetric:  # a point with itself: angle exactly 0 (arccos(1 - eps) would give ~1e-8)
            np.fill_diagonal(t, 0.0)
        s12 = sw2 * norm * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi) + sb2
        sdot = sw2 * (np.pi - t) / (2 * np.pi)
        theta_k = theta_k * sdot + s12
        s11 = sw2 * s11 / 2 + sb2
        s22 = sw2 * s22 / 2 + sb2
    return s12, theta_k


def monte_carlo_duals(activation, k11, k12, k22, *, key: Array, n_samples: int = 200_000) -> tuple[np.ndarray, ...]:
    """Monte Carlo E[φ(u)φ(v)] and E[φ'(u)φ'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Args:
      activation: name or Activation; k11, k12, k22: 1-D arrays of equal length P.
      key: PRNG key; n_samples: Gaussian pairs per covariance (the same draws for every entry).
    Returns:
      (dual, dual_derivative, dual_se, dual_derivative_se), each (P,): the estimates and their
      standard errors.
    """
    check_key(key)
    act = get_activation(activation)
    n = check_positive_int(n_samples, "n_samples")
    k11, k12, k22 = (np.asarray(a, np.float64).ravel() for a in (k11, k12, k22))
    if not (k11.shape == k12.shape == k22.shape):
        raise ValueError(f"k11, k12, k22 must have the same length, got {k11.shape}, {k12.shape}, {k22.shape}")
    if np.any(k11 <= 0) or np.any(k22 <= 0) or np.any(k12**2 > k11 * k22 * (1 + 1e-12)):
        raise ValueError("each [[k11, k12], [k12, k22]] must be a valid covariance with positive variances")
    z = jax.random.normal(key, (2, n))
    s1, s2 = jnp.sqrt(k11)[:, None], jnp.sqrt(k22)[:, None]
    rho = jnp.clip(k12 / np.sqrt(k11 * k22), -1, 1)[:, None]
    u = s1 * z[0]
    v = s2 * (rho * z[0] + jnp.sqrt(1 - rho**2) * z[1])
    a = act(u) * act(v)
    b = act.derivative(u) * act.derivative(v)
    se = lambda t: np.asarray(jnp.std(t, axis=1)) / math.sqrt(n)  # noqa: E731
    return np.asarray(jnp.mean(a, axis=1)), np.asarray(jnp.mean(b, axis=1)), se(a), se(b)


def correlation_map(activation, rho, *, sigma_w: float, sigma_b: float = 0.0, q: Optional[float] = None) -> np.ndarray:
    """One layer's map of correlations at the fixed variance q* of the variance map.

    c(ρ) = (σ_w² E[φ(u)φ(v)] + σ_b²)/q* with (u, v) of variances q* and correlation ρ, where
    q* solves q = σ_w² E[φ(u)²] + σ_b² (found by iteration unless ``q`` is given).

    Args:
      rho: array of correlations in [−1, 1]. Returns: c(ρ), same shape.
    """
    act = get_activation(activation)
    sw2, sb2 = check_nonnegative(sigma_w, "sigma_w") ** 2, check_nonnegative(sigma_b, "sigma_b") ** 2
    if q is None:
        q = 1.0
        for _ in range(500):
            q = float(sw2 * act.dual(q, q, q) + sb2)
    rho = jnp.asarray(rho, jnp.float64)
    return np.asarray((sw2 * act.dual(q, rho * q, q) + sb2) / q)


# ----------------------------------------------------------------------------
# empirical NTK -> analytic NTK
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ConvergenceConfig:
    """Sizes of :func:`convergence_experiment`."""

    depths: tuple = (1, 3)
    activations: tuple = ("relu", "erf")
    widths: tuple = (16, 32, 64, 128, 256, 512, 1024)
    n_seeds: int = 8
    n_points: int = 6
    in_dim: int = 4
    sigma_w: float = 1.5
    sigma_b: float = 0.1


CONVERGENCE_PRESETS = {
    "ci": ConvergenceConfig(),
    "paper": ConvergenceConfig(depths=(1, 3, 5), widths=tuple(2**i for i in range(5, 15)), n_seeds=32, n_points=32),
}


@dataclasses.dataclass
class ConvergenceResult(Result):
    """What :func:`convergence_experiment` measured.

    Attributes:
      depths (D,), activations (A,) names, widths (W,).
      errors: (D, A, W, S) relative Frobenius error ‖Θ̂ − Θ‖_F/‖Θ‖_F of S seeds on n_points inputs.
      slopes: (D, A) log-log slope of the mean error against width.
    """

    depths: np.ndarray
    activations: list
    widths: np.ndarray
    errors: np.ndarray
    slopes: np.ndarray


def convergence_experiment(config: Union[str, ConvergenceConfig] = "ci", *, key: Optional[Array] = None,
                           progress: bool = False) -> ConvergenceResult:
    """Empirical NTK (layer-wise, :func:`ntknotes.empirical.mlp_ntk`) against the analytic NTK.

    Each seed draws one network at the largest width; smaller widths are its sub-networks.
    ``config`` is a preset name (``"ci"``, ``"paper"``) or a :class:`ConvergenceConfig`;
    ``key=None`` is ``PRNGKey(3)``; ``progress``: a bar over the (depth, activation) pairs.
    """
    cfg = resolve_config(config, CONVERGENCE_PRESETS, ConvergenceConfig, "config")
    key = resolve_key(key, 3)
    k_x, k_nets = jax.random.split(key)
    x = jax.random.normal(k_x, (cfg.n_points, cfg.in_dim))
    widths = tuple(cfg.widths)
    keys = jax.random.split(k_nets, len(cfg.depths) * len(cfg.activations)).reshape(len(cfg.depths), len(cfg.activations), 2)
    errors = np.empty((len(cfg.depths), len(cfg.activations), len(widths), cfg.n_seeds))
    pairs = [(i, j) for i in range(len(cfg.depths)) for j in range(len(cfg.activations))]
    for i, j in progress_bar(pairs, progress, "(depth, activation)"):
        net = MLP(in_dim=cfg.in_dim, width=max(widths), depth=cfg.depths[i], activation=cfg.activations[j],
                  sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b)
        errors[i, j] = nested_kernel_errors(net, mlp_ntk, x, keys[i, j], widths, cfg.n_seeds, net.kernels(x).ntk)
    slopes = np.array([[loglog_slope(widths, errors[i, j].mean(1)).slope for j in range(len(cfg.activations))]
                       for i in range(len(cfg.depths))])
    return ConvergenceResult(np.array(cfg.depths), list(cfg.activations), np.array(widths), errors, slopes)


# ----------------------------------------------------------------------------
# heat maps over the plane (seed 001, Fig. 6)
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class HeatmapResult(Result):
    """Analytic NTK of a one-hidden-layer ReLU net (σ_w = 1, no bias) over a grid of x* in ℝ².

    Attributes:
      centers: (C, 2) the fixed points x; axis: (G,) grid coordinates, the grid is axis × axis.
      maps: (C, G, G) Θ(x*, x) with x* = (axis[j], axis[i]) at [c, i, j].
      line: (P,) scalar inputs t of the slice x* = (t, 1); slice_analytic, slice_empirical: (C, P)
        the analytic NTK and that of one random network of width ``width`` along the slice.
    """

    centers: np.ndarray
    axis: np.ndarray
    maps: np.ndarray
    line: np.ndarray
    slice_analytic: np.ndarray
    slice_empirical: np.ndarray
    width: int


@dataclasses.dataclass(frozen=True)
class HeatmapConfig:
    """Sizes of :func:`heatmap_experiment`: grid points per axis, half-width of the square
    [−extent, extent]², points on the slice x*₂ = 1, and the width of the random network."""

    n_grid: int = 161
    extent: float = 4.0
    n_line: int = 81
    width: int = 8192


HEATMAP_PRESETS = {"ci": HeatmapConfig()}


def heatmap_experiment(config: Union[str, HeatmapConfig] = "ci", *, key: Optional[Array] = None) -> HeatmapResult:
    """Θ(x*, x) over [−extent, extent]² for x = (0, 1), (1, 1), (3, 1), and the slice x*₂ = 1.

    ``config``: ``"ci"`` or a :class:`HeatmapConfig`; ``key=None`` is ``PRNGKey(4)``.
    """
    cfg = resolve_config(config, HEATMAP_PRESETS, HeatmapConfig, "config")
    n_grid, extent, width = cfg.n_grid, cfg.extent, cfg.width
    key = resolve_key(key, 4)
    centers = np.array([[0.0, 1.0], [1.0, 1.0], [3.0, 1.0]])
    axis = np.linspace(-extent, extent, n_grid)
    gx, gy = np.meshgrid(axis, axis)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    # one description gives the finite network and its analytic kernels
    net = MLP(in_dim=2, width=width, depth=1, activation="relu", sigma_w=1.0, sigma_b=0.0)
    maps = np.asarray(net.kernels(pts, centers).ntk).T.reshape(len(centers), n_grid, n_grid)
    line = np.linspace(-extent, extent, cfg.n_line)
    xl = np.stack([line, np.ones_like(line)], axis=1)
    params = net.init(key)
    emp = np.asarray(mlp_ntk(net, params, jnp.asarray(centers), jnp.asarray(xl)))
    ana = np.asarray(net.kernels(centers, xl).ntk)
    return HeatmapResult(centers, axis, maps, line, ana, emp, width)


# ----------------------------------------------------------------------------
# depth
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class DepthResult(Result):
    """Kernels between x = (1, 0) and points at angle γ on the unit circle, for depths 1..L.

    Attributes:
      angles: (G,); depths: (L,).
      nngp, ntk: (A, L, G) kernels for each activation in ``activations`` (σ_w, σ_b per activation).
      activations: names; sigma_w, sigma_b: (A,).
      corr_iterates: (A, L + 1) the correlation ρ_l = K^l(x,x')/K^l(x,x) of the pair at angle
        ``pair_angle`` through the layers, from Σ¹ to Σ^{L+1}.
      fixed_points: (A,) the fixed point ρ* of each correlation map that the iterates approach.
    """

    angles: np.ndarray
    depths: np.ndarray
    nngp: np.ndarray
    ntk: np.ndarray
    activations: list
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    corr_iterates: np.ndarray
    fixed_points: np.ndarray
    pair_angle: float


@functools.partial(jax.jit, static_argnames=("act", "steps"))
def _iterate_map(act, sw2, sb2, q, rho0, steps):
    body = lambda _, r: (sw2 * act.dual(q, r * q, q) + sb2) / q  # noqa: E731
    return jax.lax.fori_loop(0, steps, body, rho0)


def fixed_point(activation, rho0: float, *, sigma_w: float, sigma_b: float = 0.0, steps: int = 20_000) -> float:
    """The limit of ρ_{l+1} = c(ρ_l) (:func:`correlation_map`) started at ρ_0 = ``rho0``.

    Returns the fixed point that attracts ρ_0 (after ``steps`` iterations, at the fixed variance q*).
    """
    act = get_activation(activation)
    sw2, sb2 = check_nonnegative(sigma_w, "sigma_w") ** 2, check_nonnegative(sigma_b, "sigma_b") ** 2
    q = 1.0
    for _ in range(200):
        q = float(sw2 * act.dual(q, q, q) + sb2)
    return float(_iterate_map(act, sw2, sb2, q, jnp.asarray(float(rho0)), check_positive_int(steps, "steps")))


@dataclasses.dataclass(frozen=True)
class DepthConfig:
    """Sizes of :func:`depth_experiment`: depths 1..``max_depth``, ``n_angles`` angles in [0, π],
    the angle of the pair whose correlation is iterated, and the activations with their σ_w, σ_b."""

    max_depth: int = 20
    n_angles: int = 181
    pair_angle: float = 2.0
    activations: tuple = ("relu", "erf")
    sigma_w: tuple = (math.sqrt(2.0), 2.0)
    sigma_b: tuple = (0.0, 0.5)


DEPTH_PRESETS = {"ci": DepthConfig()}


def depth_experiment(config: Union[str, DepthConfig] = "ci", *, key: Optional[Array] = None) -> DepthResult:
    """NNGP and NTK on the unit circle in ℝ² for depths 1..max_depth, and correlation iterates.

    ``config``: ``"ci"`` or a :class:`DepthConfig`. The computation is deterministic: ``key``
    is accepted (the protocol of :mod:`ntknotes.experiments.common`) and not used.
    """
    cfg = resolve_config(config, DEPTH_PRESETS, DepthConfig, "config")
    if key is not None:
        check_key(key)
    activations, sigma_w, sigma_b, pair_angle = cfg.activations, cfg.sigma_w, cfg.sigma_b, cfg.pair_angle
    if not len(activations) == len(sigma_w) == len(sigma_b):
        raise ValueError(f"config.activations, sigma_w and sigma_b must have the same length, got "
                         f"{len(activations)}, {len(sigma_w)}, {len(sigma_b)}")
    max_depth = cfg.max_depth
    angles = np.linspace(0.0, np.pi, cfg.n_angles)
    pts = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x0 = pts[:1]
    depths = np.arange(1, max_depth + 1)
    nngps, ntks, iters, fps = [], [], [], []
    for act, sw, sb in zip(activations, sigma_w, sigma_b):
        lk = layer_kernels(x0, pts, depth=max_depth, activation=act, sigma_w=sw, sigma_b=sb)
        # layer_kernels stacks l = 1..L+1; depth L uses entry L (Σ^{L+1}, Θ^{L+1})
        nngps.append(np.asarray(lk.nngp)[1:, 0, :])
        ntks.append(np.asarray(lk.ntk)[1:, 0, :])
        g = int(np.argmin(np.abs(angles - pair_angle)))
        sig = np.asarray(lk.nngp)[:, 0, :]
        iters.append(sig[:, g] / sig[:, 0])
        fps.append(fixed_point(act, float(iters[-1][-1]), sigma_w=sw, sigma_b=sb))
    return DepthResult(angles, depths, np.array(nngps), np.array(ntks), list(activations), np.array(sigma_w, float),
                       np.array(sigma_b, float), np.array(iters), np.array(fps), float(angles[int(np.argmin(np.abs(angles - pair_angle)))]))


# ----------------------------------------------------------------------------
# per-layer contributions
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class LayerResult(Result):
    """Per-layer split of the NTK on a few inputs: empirical (S seeds) and analytic.

    Attributes:
      x: (N, d); empirical: (S, L+1, N, N); analytic: (L+1, N, N).
    """

    x: np.ndarray
    empirical: np.ndarray
    analytic: np.ndarray
    width: int


@dataclasses.dataclass(frozen=True)
class LayerConfig:
    """Sizes of :func:`layer_contributions_experiment`: hidden layers, width and number of the
    random networks, and their activation and scales."""

    depth: int = 4
    width: int = 2048
    n_seeds: int = 8
    activation: str = "relu"
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.0


LAYER_PRESETS = {"ci": LayerConfig()}


def layer_contributions_experiment(config: Union[str, LayerConfig] = "ci", *, key: Optional[Array] = None) -> LayerResult:
    """mlp_ntk_per_layer of ``n_seeds`` random networks against layer_kernels(...).contributions.

    ``config``: ``"ci"`` or a :class:`LayerConfig`; ``key=None`` is ``PRNGKey(5)``.
    """
    cfg = resolve_config(config, LAYER_PRESETS, LayerConfig, "config")
    depth, width, n_seeds = cfg.depth, cfg.width, cfg.n_seeds
    activation, sigma_w, sigma_b = cfg.activation, cfg.sigma_w, cfg.sigma_b
    key = resolve_key(key, 5)
    angles = np.array([0.0, 0.5, 1.0, 2.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    net = MLP(in_dim=2, width=width, depth=depth, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b)
    per = jax.jit(jax.vmap(lambda k: mlp_ntk_per_layer(net, net.init(k), jnp.asarray(x))))
    emp = np.asarray(per(jax.random.split(key, n_seeds)))
    ana = np.asarray(layer_kernels(x, depth=depth, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b).contributions)
    return LayerResult(x, emp, ana, width)
