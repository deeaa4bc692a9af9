"""Monte Carlo of the on-diagonal NTK of deep ReLU nets over a grid of depth and width.

For each grid point (hidden width n, depth d) we draw M networks of
:class:`ntknotes.finite_width.ReLUNet` (equal hidden widths), evaluate the per-layer terms of
K_N(x, x) and the first-order SGD update ΔK/λ at one fixed input x, and summarize them with
bootstrap intervals: E[K], the bias part's mean, E[K²]/E[K]², every per-layer term's
second-moment ratio, E[ΔK]/(λ E[K]) and the fraction of networks with ΔK < 0.  A separate
"tail" run draws many networks at one large β = (d − 1)/n to show how a running estimate of
E[K²] behaves when K is heavy-tailed.

Usage::

    res = run_grid("ci", key=jax.random.PRNGKey(0))   # or "paper" on a GPU
    res.ratio[:, 0], res.beta                         # E[K²]/E[K]² against β

Because only the squared norm ‖x‖²/n_0 of a single input enters the distribution of every
quantity here (the first layer is rotation invariant), x is taken as √(x_sq/n_0)·(1, ..., 1).
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_key, check_positive, check_positive_int
from ..finite_width import ReLUNet, layer_ratio_product, mean_ntk, sample_ntk
from .common import Result, cached, progress_bar, resolve_config, resolve_key

__all__ = ["GridConfig", "GridResult", "PRESETS", "run_grid", "bootstrap_means", "percentile_ci"]


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """Sizes of the Monte Carlo.

    Attributes:
      in_dim: input dimension n_0.
      x_sq: ‖x‖² of the input.
      grid: (width n, depth d) pairs, d counting weight layers (d − 1 hidden layers of width n).
      num_networks: networks M drawn at each grid point.
      tail: (width, depth, number of networks) of the heavy-tail run at large β.
      chunk_size: networks per compiled call.
      n_boot: bootstrap resamples; level: coverage of the intervals.
      dtype: "float64" or "float32".
    """

    in_dim: int = 4
    x_sq: float = 4.0
    grid: tuple = ((8, 2), (8, 3), (8, 4), (8, 5), (16, 3), (16, 5), (16, 7), (16, 9), (32, 5), (32, 9), (64, 5), (64, 9))
    num_networks: int = 8192
    tail: tuple = (8, 17, 65536)
    chunk_size: int = 2048
    n_boot: int = 1000
    level: float = 0.99
    dtype: str = "float64"

    def __post_init__(self) -> None:
        check_positive_int(self.in_dim, "in_dim")
        check_positive(self.x_sq, "x_sq")
        for name in ("num_networks", "chunk_size", "n_boot"):
            check_positive_int(getattr(self, name), name)
        if not isinstance(self.grid, (tuple, list)) or not self.grid:
            raise TypeError(f"grid must be a non-empty tuple of (width, depth) pairs, got {self.grid!r}")
        for pair in self.grid:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"each grid entry must be a (width, depth) pair, got {pair!r}")
            check_positive_int(pair[0], "width")
            if check_positive_int(pair[1], "depth") < 2:
                raise ValueError(f"depth counts weight layers and must be >= 2, got {pair[1]}")
        if not isinstance(self.tail, (tuple, list)) or len(self.tail) != 3:
            raise ValueError(f"tail must be (width, depth, num_networks), got {self.tail!r}")
        for v, name in zip(self.tail, ("tail width", "tail depth", "tail num_networks")):
            check_positive_int(v, name)
        if not 0 < self.level < 1:
            raise ValueError(f"level must lie in (0, 1), got {self.level}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")


def _paper_grid() -> tuple:
    pairs = []
    for n in (16, 32, 64, 128):
        pairs += [(n, 1 + int(round(b * n))) for b in (0.0625, 0.125, 0.25, 0.375, 0.5)]
    pairs += [(256, 5), (256, 17)]
    return tuple(sorted(set(p for p in pairs if p[1] >= 2)))


PRESETS = {
    "ci": GridConfig(),
    "paper": GridConfig(grid=_paper_grid(), num_networks=2**17, tail=(16, 33, 2**20), chunk_size=8192, n_boot=2000),
}


@dataclasses.dataclass
class GridResult(Result):
    """Per-grid-point summaries (C points) and raw per-network draws.

    Intervals are arrays (..., 3) holding (estimate, low, high).

    Attributes:
      in_dim, x_sq, level: as in :class:`GridConfig`.
      widths, depths, beta: (C,) grid; β = (d − 1)/n.
      K: K_N(x, x) per network, (C, M); bias_part: its bias part, (C, M); update: ΔK/λ, (C, M).
      mean: E[K], (C, 3); bias_mean: E[bias part], (C, 3).
      ratio: E[K²]/E[K]², (C, 3).
      layer_weight_ratio, layer_bias_ratio: E[T²]/E[T]² of every per-layer term, (C, D, 3),
        NaN past a point's depth (D is the largest depth).
      update_ratio: E[ΔK]/(λ E[K]), (C, 3); negative_fraction: P(ΔK < 0), (C, 3).
      tail_width, tail_depth: the heavy-tail run's architecture; tail_K: its draws of K, (M_tail,);
        tail_forward: its output-layer weight term c_d² ‖x^{d-1}‖², (M_tail,), whose
        E[T²]/E[T]² is exactly Π (1 + 5/n).
      seconds: wall time of all sampling (compilation included); networks: how many were drawn.
    """

    in_dim: int
    x_sq: float
    level: float
    widths: np.ndarray
    depths: np.ndarray
    beta: np.ndarray
    K: np.ndarray
    bias_part: np.ndarray
    update: np.ndarray
    mean: np.ndarray
    bias_mean: np.ndarray
    ratio: np.ndarray
    layer_weight_ratio: np.ndarray
    layer_bias_ratio: np.ndarray
    update_ratio: np.ndarray
    negative_fraction: np.ndarray
    tail_width: int
    tail_depth: int
    tail_K: np.ndarray
    tail_forward: np.ndarray
    seconds: float
    networks: int

    @property
    def networks_per_second(self) -> float:
        """Networks drawn per second of wall time, compilation included."""
        return self.networks / self.seconds

    @property
    def theory_mean(self) -> np.ndarray:
        """d ‖x‖²/n_0 + (d + 1)/2 at every grid point, (C,)."""
        return np.array([mean_ntk(int(d), self.x_sq / self.in_dim) for d in self.depths])

    @property
    def layer_product(self) -> np.ndarray:
        """Π_{l=1}^{d-1} (1 + 5/n), (C,)."""
        return np.array([layer_ratio_product((int(n),) * (int(d) - 1)) for n, d in zip(self.widths, self.depths)])

    def select(self, *, width: Optional[int] = None, depth: Optional[int] = None) -> np.ndarray:
        """Indices of the grid points with this width and/or depth, sorted by β."""
        mask = np.ones(len(self.widths), bool)
        if width is not None:
            mask &= self.widths == width
        if depth is not None:
            mask &= self.depths == depth
        idx = np.flatnonzero(mask)
        return idx[np.argsort(self.beta[idx])]


def bootstrap_means(samples, key: jax.Array, n_boot: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Column means of ``samples`` (M, k) and of ``n_boot`` bootstrap resamples of its rows.

    All resamples at once: resample counts (n_boot, M) times the samples, so any statistic
    that is a function of column means (moment ratios, ratios of means) is bootstrapped
    without a Python loop.  Returns (means (k,), resampled means (n_boot, k)).
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"samples must have shape (M, k) with M >= 2, got {x.shape}")
    n_boot = check_positive_int(n_boot, "n_boot")
    check_key(key)
    m = x.shape[0]
    idx = np.asarray(jax.random.randint(key, (n_boot, m), 0, m))
    counts = np.bincount((idx + m * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * m).reshape(n_boot, m)
    return x.mean(0), counts @ x / m


def percentile_ci(estimate, boot, level: float = 0.95) -> np.ndarray:
    """Stack (estimate, low, high) from a point estimate (k,) and bootstrap values (n_boot, k)."""
    alpha = 0.5 * (1 - level)
    lo, hi = np.quantile(np.asarray(boot), [alpha, 1 - alpha], axis=0)
    return np.stack([np.broadcast_to(np.asarray(estimate, float), lo.shape), lo, hi], axis=-1)


def _summarize(s, key, cfg: GridConfig, dmax: int) -> dict:
    d = s.weight.shape[1]
    K, B, U = s.total, s.bias.sum(1), s.update
    cols = [K, B, U, (U < 0).astype(float), K**2, s.weight, s.weight**2, s.bias, s.bias**2]
    X = np.column_stack([c if c.ndim == 2 else c[:, None] for c in cols])
    mean, boot = bootstrap_means(X, key, cfg.n_boot)

    def stats(m):
        k, b, u, neg, k2 = m[..., 0], m[..., 1], m[..., 2], m[..., 3], m[..., 4]
        w1, w2 = m[..., 5 : 5 + d], m[..., 5 + d : 5 + 2 * d]
        b1, b2 = m[..., 5 + 2 * d : 5 + 3 * d], m[..., 5 + 3 * d : 5 + 4 * d]
        return np.concatenate(
            [np.stack([k, b, k2 / k**2, u / k, neg], -1), w2 / w1**2, b2 / b1**2], -1
        )

    ci = percentile_ci(stats(mean), stats(boot), cfg.level)
    pad = np.full((dmax - d, 3), np.nan)
    return {
        "mean": ci[0], "bias_mean": ci[1], "ratio": ci[2], "update_ratio": ci[3], "negative_fraction": ci[4],
        "layer_weight_ratio": np.concatenate([ci[5 : 5 + d], pad]),
        "layer_bias_ratio": np.concatenate([ci[5 + d : 5 + 2 * d], pad]),
    }


def run_grid(
    config: Union[str, GridConfig] = "ci",
    *,
    key: Optional[jax.Array] = None,
    progress: bool = False,
    path=None,
) -> GridResult:
    """Run the Monte Carlo over ``config``'s grid.

    Args:
      config: a preset name (``"ci"``, ``"paper"``; see :mod:`ntknotes.experiments.common`) or
        a :class:`GridConfig`.
      key: a JAX PRNG key; None: ``PRNGKey(0)``.
      progress: show a tqdm progress bar over grid points.
      path: if given, load the result from this ``.npz`` when it exists, else compute and save it.
    """
    cfg = resolve_config(config, PRESETS, GridConfig)
    key = resolve_key(key, 0)
    return cached(path, GridResult, lambda: _run(cfg, key, progress))


def _run(cfg: GridConfig, key: jax.Array, progress: bool) -> GridResult:
    x = jnp.full((cfg.in_dim,), math.sqrt(cfg.x_sq / cfg.in_dim))
    dmax = max(d for _, d in cfg.grid)
    points = progress_bar(cfg.grid, progress, "grid points")
    keys = jax.random.split(key, 2 * len(cfg.grid) + 1)
    rows, raw = [], []
    t0 = time.perf_counter()
    for i, (n, d) in enumerate(points):
        net = ReLUNet.equal(cfg.in_dim, n, d)
        s = sample_ntk(net, x, keys[2 * i], num_networks=cfg.num_networks, chunk_size=cfg.chunk_size,
                       update=True, dtype=cfg.dtype)
        rows.append(_summarize(s, keys[2 * i + 1], cfg, dmax))
        raw.append((s.total, s.bias.sum(1), s.update))
    tn, td, tm = cfg.tail
    tail = sample_ntk(ReLUNet.equal(cfg.in_dim, tn, td), x, keys[-1], num_networks=tm,
                      chunk_size=cfg.chunk_size, dtype=cfg.dtype)
    seconds = time.perf_counter() - t0
    widths = np.array([n for n, _ in cfg.grid])
    depths = np.array([d for _, d in cfg.grid])
    return GridResult(
        in_dim=cfg.in_dim, x_sq=float(cfg.x_sq), level=float(cfg.level),
        widths=widths, depths=depths, beta=(depths - 1) / widths,
        K=np.stack([r[0] for r in raw]), bias_part=np.stack([r[1] for r in raw]), update=np.stack([r[2] for r in raw]),
        **{k: np.stack([r[k] for r in rows]) for k in rows[0]},
        tail_width=int(tn), tail_depth=int(td), tail_K=tail.total, tail_forward=tail.weight[:, -1],
        seconds=float(seconds), networks=int(len(cfg.grid) * cfg.num_networks + tm),
    )
