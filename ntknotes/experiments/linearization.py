"""Experiments of the chapter "Linearization and the NTK-GP" (Lee et al. 2019; seed 001).

Five experiments, each ``fn(config="ci", *, key=None)`` (the protocol of
:mod:`ntknotes.experiments.common`; ``key=None`` is ``PRNGKey(0)``) returning a
:class:`~ntknotes.experiments.common.Result` dataclass:

* :func:`weight_change` (Lee et al. Fig. 1): relative Frobenius change of each weight layer and
  of the empirical NTK after training a 3-hidden-layer ReLU net on digits, against width;
* :func:`tracking` (Lee et al. Fig. 3): a network trained by gradient descent, its linearization
  (empirical NTK at initialization, trained with the same trainer) and the analytic-NTK dynamics
  started from the same f₀, at several widths;
* :func:`ensemble` (Lee et al. Fig. 2): an ensemble of independently initialized tanh nets,
  mean and variance along a path between two training points against the NTK-GP and the NNGP
  posterior (cached on disk, see ``cache``);
* :func:`toy_predictions` (seed 001, Figs. 4–5): a 1-hidden-layer ReLU net on a 1-D toy set;
  the parameters follow the linearized gradient-descent trajectory and the full network, the
  linear model and the infinite-width model are evaluated along it;
* :func:`critical_lr`: the step sizes η_crit = 2/(λ_min + λ_max) and 2/λ_max of the real
  network's empirical NTK, and training just below and above the stability limit.

All losses are the total loss ½‖f(X) − y‖² except in :func:`ensemble`, which uses the paper's
mean loss ½‖f(X) − y‖²/N (gradient descent on it with step η is the total-loss dynamics with
step η/N).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__, dynamics
from .._checks import check_choice, check_positive, check_positive_int
from ..data import augment_with_one, load_digits, toy_1d
from ..empirical import mlp_ntk
from ..networks import MLP
from ..stats import loglog_slope
from ..training import linearize, train, train_ensemble
from .common import Result, cached, progress_bar, resolve_config, resolve_key

__all__ = [
    "WeightChangeConfig", "WeightChangeResult", "weight_change",
    "TrackingConfig", "TrackingResult", "tracking",
    "EnsembleConfig", "EnsembleResult", "ensemble",
    "ToyConfig", "ToyResult", "toy_predictions",
    "CriticalConfig", "CriticalResult", "critical_lr",
    "PRESETS",
]


def _widths(widths: tuple, name: str = "widths") -> tuple:
    if not isinstance(widths, (tuple, list)) or len(widths) < 1:
        raise TypeError(f"{name} must be a non-empty tuple of positive integers, got {widths!r}")
    w = tuple(check_positive_int(v, f"{name}[i]") for v in widths)
    if list(w) != sorted(set(w)):
        raise ValueError(f"{name} must be strictly increasing, got {w}")
    return w


def _check_ints(cfg: object, names: tuple) -> None:
    for name in names:
        check_positive_int(getattr(cfg, name), name)


def _dtype(name: str):
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return jnp.float32 if name == "float32" else jnp.float64


def _lmax(kernel: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(np.asarray(kernel, dtype=np.float64))[-1])


# ============================================================================
# Lee et al. Fig. 1: how far weights and the NTK move, against width
# ============================================================================
@dataclasses.dataclass(frozen=True)
class WeightChangeConfig:
    """Sizes of :func:`weight_change`.

    Attributes:
      widths: hidden widths n, increasing.
      depth: hidden layers (3 in the paper).
      n_train: digits (10 classes, centred one-hot targets).
      seeds: independent networks per width (their changes are averaged).
      steps: gradient-descent steps on the total loss.
      lr_factor: η = lr_factor / λ_max of the analytic NTK on the training set.
      sigma_w, sigma_b: ReLU network scales.
      dtype: "float64" or "float32".
    """

    widths: tuple = (64, 128, 256, 512, 1024)
    depth: int = 3
    n_train: int = 32
    seeds: int = 1
    steps: int = 150
    lr_factor: float = 1.0
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.1
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _widths(self.widths))
        _check_ints(self, ("depth", "n_train", "seeds", "steps"))
        check_positive(self.lr_factor, "lr_factor")
        _dtype(self.dtype)


@dataclasses.dataclass
class WeightChangeResult(Result):
    """Output of :func:`weight_change`.

    Attributes:
      widths: (W,) hidden widths.
      weight_change: (W, L + 1) mean of ‖W_T − W_0‖_F / ‖W_0‖_F per weight layer (input first).
      ntk_change: (W,) mean of ‖Θ̂_T − Θ̂_0‖_F / ‖Θ̂_0‖_F on the training set.
      ntk_init_dev: (W,) mean of ‖Θ̂_0 − Θ‖_F / ‖Θ‖_F on the training set: how far the empirical
        NTK at initialization is from the analytic one.
      loss_ratio: (W,) mean final / initial training loss.
      slopes: dict with the log-log slopes "input", "hidden" (mean over hidden layers), "output",
        "ntk" (of ``ntk_change``) and "ntk_init" (of ``ntk_init_dev``).
      lr: the step size used.
    """

    widths: np.ndarray
    weight_change: np.ndarray
    ntk_change: np.ndarray
    ntk_init_dev: np.ndarray
    loss_ratio: np.ndarray
    slopes: dict
    lr: float


def weight_change(
    config: Union[str, WeightChangeConfig] = "ci", *, key: Optional[jax.Array] = None, progress: bool = False
) -> WeightChangeResult:
    """Train ReLU nets of several widths on the same digits and measure how much they moved.

    ``progress``: a progress bar over the widths (as in :func:`tracking`, :func:`toy_predictions`;
    over the step sizes in :func:`critical_lr`).
    """
    cfg = resolve_config(config, PRESETS["weight_change"], WeightChangeConfig)
    key = resolve_key(key, 0)
    k_data, k_nets = jax.random.split(key)
    data = load_digits(cfg.n_train, 10, key=k_data, targets="onehot_centered")
    dtype = _dtype(cfg.dtype)
    x, y = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, dtype)
    def make(width):  # one description of the networks; its kernels do not depend on the width
        return MLP(data.in_dim, width, cfg.depth, 10, "relu", cfg.sigma_w, cfg.sigma_b)

    theta = np.asarray(make(cfg.widths[0]).kernels(data.x_train).ntk, dtype=np.float64)
    lr = cfg.lr_factor / _lmax(theta)
    changes, ntk_changes, init_devs, ratios = [], [], [], []
    for width in progress_bar(cfg.widths, progress, "widths"):
        net = make(width)
        init = lambda k, net=net: net.init(k, dtype)  # noqa: E731
        keys = jax.random.split(jax.random.fold_in(k_nets, width), cfg.seeds)
        hist = train_ensemble(net.apply, init, keys, x, y, lr=lr, steps=cfg.steps, record_steps=[0, cfg.steps],
                              keep_params=True)
        per_seed, per_seed_ntk, per_seed_init = [], [], []
        for s in range(cfg.seeds):
            p0 = init(jax.random.split(keys[s])[0])
            pt = jax.tree_util.tree_map(lambda a, s=s: jnp.asarray(a[s]), hist.params)
            per_seed.append([float(jnp.linalg.norm(b["W"] - a["W"]) / jnp.linalg.norm(a["W"])) for a, b in zip(p0, pt)])
            t0, t1 = mlp_ntk(net, p0, x), mlp_ntk(net, pt, x)
            per_seed_ntk.append(float(jnp.linalg.norm(t1 - t0) / jnp.linalg.norm(t0)))
            per_seed_init.append(float(np.linalg.norm(np.asarray(t0) - theta) / np.linalg.norm(theta)))
        changes.append(np.mean(per_seed, axis=0))
        ntk_changes.append(np.mean(per_seed_ntk))
        init_devs.append(np.mean(per_seed_init))
        ratios.append(float(np.mean(hist.loss[:, -1] / hist.loss[:, 0])))
    changes, ntk_changes, init_devs = np.array(changes), np.array(ntk_changes), np.array(init_devs)
    w = np.array(cfg.widths, dtype=float)
    slopes = {
        "input": loglog_slope(w, changes[:, 0]).slope,
        "hidden": loglog_slope(w, changes[:, 1:-1].mean(axis=1)).slope,
        "output": loglog_slope(w, changes[:, -1]).slope,
        "ntk": loglog_slope(w, ntk_changes).slope,
        "ntk_init": loglog_slope(w, init_devs).slope,
    }
    return WeightChangeResult(np.array(cfg.widths), changes, ntk_changes, init_devs, np.array(ratios), slopes, lr)


# ============================================================================
# Lee et al. Fig. 3: network vs linearization vs analytic kernel
# ============================================================================
@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Sizes of :func:`tracking`.

    Attributes:
      widths: hidden widths, increasing (the last is shown in detail).
      depth: hidden layers.
      n_train, n_test: digits of two classes (``classes``) with ±1 targets.
      steps: gradient-descent steps; n_record: recorded steps (log-spaced, 0 included).
      lr_factor: η = lr_factor / λ_max of the analytic NTK.
      sigma_w, sigma_b: ReLU network scales (σ_w² = 2, σ_b² = 0.1 in the paper).
      dtype: "float64" or "float32".
    """

    widths: tuple = (64, 256, 1024)
    depth: int = 2
    n_train: int = 64
    n_test: int = 64
    classes: tuple = (3, 8)
    steps: int = 400
    n_record: int = 25
    lr_factor: float = 1.0
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = math.sqrt(0.1)
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _widths(self.widths))
        _check_ints(self, ("depth", "n_train", "n_test", "steps", "n_record"))
        check_positive(self.lr_factor, "lr_factor")
        _dtype(self.dtype)


@dataclasses.dataclass
class TrackingResult(Result):
    """Output of :func:`tracking`; model order in the second axis: network, linearized, analytic.

    Attributes:
      widths: (W,); steps: (R,) recorded steps; lr: step size.
      train_out, test_out: (W, 3, R, N) and (W, 3, R, M) outputs of the three models.
      y_train, y_test: (N,), (M,) targets.
      rmse_lin, rmse_ana: (W, R) RMSE over the test points between the network and the
        linearized / analytic model.
    """

    widths: np.ndarray
    steps: np.ndarray
    lr: float
    train_out: np.ndarray
    test_out: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    rmse_lin: np.ndarray
    rmse_ana: np.ndarray

    def losses(self, split: str = "train") -> np.ndarray:
        """(W, 3, R) mean squared error ½ mean (f − y)² of the three models on ``split``."""
        out, y = (self.train_out, self.y_train) if split == "train" else (self.test_out, self.y_test)
        return 0.5 * np.mean((out - y) ** 2, axis=-1)


def _log_steps(steps: int, n: int) -> np.ndarray:
    return np.unique(np.concatenate([[0], np.geomspace(1, steps, n - 1).round().astype(int)]))


def tracking(
    config: Union[str, TrackingConfig] = "ci", *, key: Optional[jax.Array] = None, progress: bool = False
) -> TrackingResult:
    """Train a ReLU net and its linearization at several widths and compare with the analytic NTK dynamics."""
    cfg = resolve_config(config, PRESETS["tracking"], TrackingConfig)
    key = resolve_key(key, 0)
    k_data, k_nets = jax.random.split(key)
    data = load_digits(cfg.n_train, cfg.n_test, key=k_data, classes=cfg.classes, targets="pm1")
    dtype = _dtype(cfg.dtype)
    x, xt = jnp.asarray(data.x_train, dtype), jnp.asarray(data.x_test, dtype)
    y = jnp.asarray(data.y_train, dtype)
    def make(width):  # one description of the networks; its kernels do not depend on the width
        return MLP(data.in_dim, width, cfg.depth, 1, "relu", cfg.sigma_w, cfg.sigma_b)

    theta = make(cfg.widths[0]).kernels(data.x_train).ntk
    theta_t = make(cfg.widths[0]).kernels(data.x_test, data.x_train).ntk
    lr = cfg.lr_factor / _lmax(theta)
    rec = _log_steps(cfg.steps, cfg.n_record)
    train_out, test_out = [], []
    for width in progress_bar(cfg.widths, progress, "widths"):
        net = make(width)
        p0 = net.init(jax.random.fold_in(k_nets, width), dtype)
        runs = [train(net.apply, p0, x, y, lr=lr, steps=cfg.steps, record_steps=rec, x_eval=xt, linearized=lin)
                for lin in (False, True)]
        f0, f0t = runs[0].outputs[0], runs[0].eval_outputs[0]
        ana_tr = dynamics.train_outputs(theta, f0, data.y_train, rec, lr=lr)
        ana_te = dynamics.test_outputs(theta, theta_t, f0, f0t, data.y_train, rec, lr=lr)
        train_out.append([r.outputs[..., 0] for r in runs] + [np.asarray(ana_tr)[..., 0]])
        test_out.append([r.eval_outputs[..., 0] for r in runs] + [np.asarray(ana_te)[..., 0]])
    train_out, test_out = np.array(train_out), np.array(test_out)
    rmse = lambda a, b: np.sqrt(np.mean((a - b) ** 2, axis=-1))  # noqa: E731
    return TrackingResult(
        np.array(cfg.widths), rec, lr, train_out, test_out, data.y_train[:, 0], data.y_test[:, 0],
        rmse(test_out[:, 0], test_out[:, 1]), rmse(test_out[:, 0], test_out[:, 2]),
    )


# ============================================================================
# Lee et al. Fig. 2: an ensemble against the NTK-GP and the NNGP posterior
# ============================================================================
@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Sizes of :func:`ensemble` (the paper: 100 nets, 3 hidden layers of width 8192, tanh,
    σ_w² = 1.5, no bias, η = 0.5 on the mean loss, 128 points).

    Attributes:
      members: networks in the ensemble; chunk_size: networks trained at once.
      width, depth, sigma_w: tanh network (no biases).
      n_train: digits of ``classes`` with ±1 targets.
      lr: step size η on the mean loss; steps: gradient-descent steps.
      record: recorded step counts (the "several times"; must start with 0, whose outputs give
        each member's initial function, and end with ``steps``).
      n_alpha: points on the path x(α) = α x₁ + (1 − α) x₂.
      dtype: "float64" or "float32".
    """

    members: int = 64
    chunk_size: int = 16
    width: int = 256
    depth: int = 3
    sigma_w: float = math.sqrt(1.5)
    n_train: int = 16
    classes: tuple = (3, 8)
    lr: float = 0.5
    steps: int = 400
    record: tuple = (0, 10, 40, 400)
    n_alpha: int = 21
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _check_ints(self, ("members", "chunk_size", "width", "depth", "n_train", "steps", "n_alpha"))
        check_positive(self.lr, "lr")
        rec = tuple(int(r) for r in self.record)
        if not rec or rec[0] != 0 or rec[-1] != self.steps or any(r < 0 or r > self.steps for r in rec):
            raise ValueError(f"record must lie in [0, steps], start with 0 and end with steps={self.steps}, "
                             f"got {self.record}")
        if self.members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {self.members}")
        _dtype(self.dtype)


@dataclasses.dataclass
class EnsembleResult(Result):
    """Output of :func:`ensemble`.

    Attributes:
      alphas: (A,) path coordinates; steps: (R,) recorded steps; members: ensemble size.
      ens_mean, ens_var: (R, A) ensemble mean and (unbiased) variance of the output on the path.
      gp_mean, gp_var: (R, A) NTK-GP moments at the same steps.
      nngp_mean, nngp_var: (A,) NNGP posterior moments.
      adj_mean, adj_sd: (R, A) mean and sample standard deviation over the members of
        f_s(x) − c_s(x), where c_s(x) = f_0(x) − P_s f_0(X) is the part of the member's output that
        its own initial function f_0 predicts through the analytic NTK (P_s as in the NTK-GP).
        Since f_0 is centred, E[c_s] = 0 whatever the trained networks do, so adj_mean estimates
        the same mean as ens_mean, with the spread of f_0 removed (a control variate).
      final_loss: (E,) mean training loss of each member after the last step.
      width: network width.
    """

    alphas: np.ndarray
    steps: np.ndarray
    members: int
    ens_mean: np.ndarray
    ens_var: np.ndarray
    gp_mean: np.ndarray
    gp_var: np.ndarray
    nngp_mean: np.ndarray
    nngp_var: np.ndarray
    adj_mean: np.ndarray
    adj_sd: np.ndarray
    final_loss: np.ndarray
    width: int

    def _reference(self, against: str, floor: float) -> tuple:
        """Reference mean and variance (R, A), and where the reference variance is resolved."""
        check_choice(against, "against", ("ntkgp", "nngp"))
        if against == "ntkgp":
            mean, var = self.gp_mean, self.gp_var
        else:
            mean = np.broadcast_to(self.nngp_mean, self.gp_mean.shape)
            var = np.broadcast_to(self.nngp_var, self.gp_var.shape)
        return mean, var, var > floor * var.max()

    def mean_z(self, floor: float = 0.02, against: str = "ntkgp") -> np.ndarray:
        """(R, A) (ensemble mean − reference mean) / (reference s.d. / √E), about standard normal
        under agreement; the reference is the NTK-GP (``against="ntkgp"``) or the NNGP posterior
        (``"nngp"``, the same at every step). NaN where the reference variance is below ``floor``
        times its largest value (the training points at late times, pinned to the targets)."""
        mean, var, ok = self._reference(against, floor)
        z = (self.ens_mean - mean) / np.sqrt(np.maximum(var, 1e-300) / self.members)
        return np.where(ok, z, np.nan)

    def var_z(self, floor: float = 0.02, against: str = "ntkgp") -> np.ndarray:
        """(R, A) (ensemble var − reference var) / its Monte Carlo s.d. var·√(2/(E − 1)); NaN where
        the reference variance is below ``floor`` times its largest value (see :meth:`mean_z`)."""
        _, var, ok = self._reference(against, floor)
        sd = var * np.sqrt(2.0 / (self.members - 1))
        z = (self.ens_var - var) / np.maximum(sd, 1e-300)
        return np.where(ok, z, np.nan)

    def adjusted_z(self, floor: float = 0.02, against: str = "ntkgp") -> np.ndarray:
        """(R, A) (adj_mean − reference mean) / (adj_sd / √E): the mean test with the control variate
        (see ``adj_mean``), whose standard error is the members' spread about their analytic-kernel
        prediction instead of the spread of f_0; NaN where :meth:`mean_z` is."""
        mean, _, ok = self._reference(against, floor)
        z = (self.adj_mean - mean) / np.maximum(self.adj_sd / np.sqrt(self.members), 1e-300)
        return np.where(ok, z, np.nan)


def _config_hash(cfg: object, result_cls: type) -> str:
    """Hash of the configuration, the package version and the result's fields (a cache written by
    another version, or with other fields, is not reused)."""
    fields = [f.name for f in dataclasses.fields(result_cls)]
    payload = {"config": dataclasses.asdict(cfg), "version": __version__, "fields": fields}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def ensemble(
    config: Union[str, EnsembleConfig] = "ci",
    *,
    key: Optional[jax.Array] = None,
    cache: Union[None, str, Path] = None,
    progress: bool = False,
) -> EnsembleResult:
    """Train an ensemble of tanh nets and compare its output distribution with the NTK-GP and the NNGP.

    Args:
      config: a preset name or an :class:`EnsembleConfig`.
      key: PRNG key (data split and initializations).
      cache: a directory; the result is saved there under a name made of a hash of the
        configuration, the package version and the result's fields, and of the key, and loaded
        instead of retrained when that file exists.
      progress: show a tqdm bar over chunks of the ensemble.
    """
    cfg = resolve_config(config, PRESETS["ensemble"], EnsembleConfig)
    key = resolve_key(key, 0)
    path = None
    if cache is not None:
        tag = hashlib.sha1(np.asarray(jax.random.key_data(key)).tobytes()).hexdigest()[:6]
        path = Path(cache) / f"linearization_ensemble_{_config_hash(cfg, EnsembleResult)}_{tag}.npz"
    return cached(path, EnsembleResult, lambda: _ensemble(cfg, key, progress))


def _ensemble(cfg: EnsembleConfig, key: jax.Array, progress: bool) -> EnsembleResult:
    k_data, k_nets = jax.random.split(key)
    data = load_digits(cfg.n_train, 1, key=k_data, classes=cfg.classes, targets="pm1")
    dtype = _dtype(cfg.dtype)
    labels = data.labels_train
    x1, x2 = data.x_train[np.flatnonzero(labels == 1)[0]], data.x_train[np.flatnonzero(labels == 0)[0]]
    alphas = np.linspace(0.0, 1.0, cfg.n_alpha)
    path = alphas[:, None] * x1 + (1 - alphas[:, None]) * x2
    net = MLP(data.in_dim, cfg.width, cfg.depth, 1, "tanh", cfg.sigma_w, 0.0)
    hist = train_ensemble(
        net.apply, lambda k: net.init(k, dtype), jax.random.split(k_nets, cfg.members),
        jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, dtype), lr=cfg.lr, steps=cfg.steps,
        loss="mean_mse", record_steps=cfg.record, x_eval=jnp.asarray(path, dtype), chunk_size=cfg.chunk_size,
        progress=progress,
    )
    out = hist.eval_outputs[..., 0]  # (E, R, A)
    tr, cross, pp = (net.kernels(data.x_train), net.kernels(path, data.x_train), net.kernels(path))
    n = data.n_train
    # the mean loss with step η is the total loss with step η/N
    gp = dynamics.ntkgp_moments(tr.ntk, cross.ntk, tr.nngp, cross.nngp, pp.nngp, data.y_train, hist.steps,
                                lr=cfg.lr / n)
    nngp = dynamics.nngp_posterior(tr.nngp, cross.nngp, pp.nngp, data.y_train)
    # control variate: c_s = f_0(x) − P_s f_0(X) for every member (test_outputs with targets 0)
    f0_train, f0_path = hist.outputs[:, 0, :, 0].T, out[:, 0].T  # (N, E), (A, E)
    c = dynamics.test_outputs(tr.ntk, cross.ntk, f0_train, f0_path, np.zeros_like(f0_train), hist.steps,
                              lr=cfg.lr / n)
    adjusted = out - np.moveaxis(np.asarray(c), -1, 0)  # (E, R, A)
    return EnsembleResult(
        alphas=alphas, steps=hist.steps, members=cfg.members,
        ens_mean=out.mean(axis=0), ens_var=out.var(axis=0, ddof=1),
        gp_mean=np.asarray(gp.mean)[..., 0], gp_var=np.asarray(jnp.diagonal(gp.cov, axis1=1, axis2=2)),
        # the posterior variance vanishes at the training inputs, where rounding leaves ~±1e-16
        nngp_mean=np.asarray(nngp.mean)[:, 0], nngp_var=np.maximum(np.asarray(jnp.diagonal(nngp.cov)), 0.0),
        adj_mean=adjusted.mean(axis=0), adj_sd=adjusted.std(axis=0, ddof=1),
        final_loss=hist.loss[:, -1], width=cfg.width,
    )


# ============================================================================
# seed 001, Figs. 4-5: full vs linear vs infinite-width predictions on a 1-D toy
# ============================================================================
@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Sizes of :func:`toy_predictions`.

    Attributes:
      widths: hidden widths of the 1-hidden-layer ReLU net (inputs augmented with a 1).
      n_points: training points of :func:`ntknotes.data.toy_1d`; n_grid: plotting grid on [−4, 4].
      steps: gradient-descent steps of the linearized model; n_record: recorded steps (log-spaced).
      lr_factor: η = lr_factor / (largest λ_max over the widths' empirical NTKs and the analytic NTK).
    """

    widths: tuple = (10, 100, 1000, 10000)
    n_points: int = 5
    n_grid: int = 161
    steps: int = 5000
    n_record: int = 6
    lr_factor: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _widths(self.widths))
        _check_ints(self, ("n_points", "n_grid", "steps", "n_record"))
        check_positive(self.lr_factor, "lr_factor")


@dataclasses.dataclass
class ToyResult(Result):
    """Output of :func:`toy_predictions`.

    Attributes:
      widths: (W,); steps: (R,); lr: step size; x_train, y_train: (n,); grid: (G,).
      full, linear: (W, R, G) predictions of the network at the linearized-trajectory parameters and
        of the linear model; infinite: (R, G) the infinite-width mean prediction (f₀ = 0).
      full_train, linear_train: (W, R, n) the same on the training inputs; infinite_train: (R, n).
    """

    widths: np.ndarray
    steps: np.ndarray
    lr: float
    x_train: np.ndarray
    y_train: np.ndarray
    grid: np.ndarray
    full: np.ndarray
    linear: np.ndarray
    infinite: np.ndarray
    full_train: np.ndarray
    linear_train: np.ndarray
    infinite_train: np.ndarray

    def train_residual(self, model: str = "full") -> np.ndarray:
        """(W,) largest |f(x_i) − y_i| over the training points after the last step."""
        out = {"full": self.full_train, "linear": self.linear_train}[model]
        return np.max(np.abs(out[:, -1] - self.y_train), axis=-1)


def toy_predictions(
    config: Union[str, ToyConfig] = "ci", *, key: Optional[jax.Array] = None, progress: bool = False
) -> ToyResult:
    """Seed 001's picture: parameters follow gradient descent on the linearized model."""
    cfg = resolve_config(config, PRESETS["toy"], ToyConfig)
    key = resolve_key(key, 0)
    x, y = toy_1d(cfg.n_points)
    grid = np.linspace(-4.0, 4.0, cfg.n_grid)
    xa, ga = augment_with_one(x), augment_with_one(grid[:, None])
    both = np.concatenate([xa, ga])
    nets = [MLP(2, w, 1, 1, "relu", 1.0, 0.0) for w in cfg.widths]
    params0 = [net.init(jax.random.fold_in(key, w)) for net, w in zip(nets, cfg.widths)]
    theta = nets[0].kernels(xa).ntk  # the same for every width
    lmax = max([_lmax(theta)] + [_lmax(mlp_ntk(net, p, jnp.asarray(xa))) for net, p in zip(nets, params0)])
    lr = cfg.lr_factor / lmax
    rec = _log_steps(cfg.steps, cfg.n_record)
    full, linear = [], []
    for net, p0 in progress_bar(list(zip(nets, params0)), progress, "widths"):
        hist = train(linearize(net.apply, p0), p0, jnp.asarray(xa), jnp.asarray(y), lr=lr, steps=cfg.steps,
                     record_steps=rec, x_eval=jnp.asarray(both), param_fn=lambda p: p)
        linear.append(hist.eval_outputs[..., 0])
        full.append(np.asarray(jax.vmap(lambda p, net=net: net.apply(p, jnp.asarray(both)))(hist.tracked))[..., 0])
    full, linear = np.array(full), np.array(linear)
    cross = nets[0].kernels(both, xa).ntk
    zeros_tr, zeros_all = np.zeros((len(x), 1)), np.zeros((len(both), 1))
    inf = np.asarray(dynamics.test_outputs(theta, cross, zeros_tr, zeros_all, y, rec, lr=lr))[..., 0]
    n = len(x)
    return ToyResult(
        np.array(cfg.widths), rec, lr, x[:, 0], y[:, 0], grid,
        full[..., n:], linear[..., n:], inf[:, n:], full[..., :n], linear[..., :n], inf[:, :n],
    )


# ============================================================================
# critical step sizes on the real network
# ============================================================================
@dataclasses.dataclass(frozen=True)
class CriticalConfig:
    """Sizes of :func:`critical_lr`.

    Attributes:
      width, depth: ReLU network (σ_w² = 2, σ_b² = 0.1) trained on ``n_train`` two-class digits (±1).
      factors: step sizes as multiples of 2/λ_max of the network's empirical NTK at initialization
        (η_crit = 2/(λ_min + λ_max) is always run first).
      steps: gradient-descent steps.
    """

    width: int = 256
    depth: int = 2
    n_train: int = 64
    classes: tuple = (3, 8)
    factors: tuple = (1.2, 10.0)
    steps: int = 250
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = math.sqrt(0.1)
    dtype: str = "float64"

    def __post_init__(self) -> None:
        _check_ints(self, ("width", "depth", "n_train", "steps"))
        if not self.factors or any(not (float(f) > 0) for f in self.factors):
            raise ValueError(f"factors must be positive numbers, got {self.factors}")
        _dtype(self.dtype)


@dataclasses.dataclass
class CriticalResult(Result):
    """Output of :func:`critical_lr`.

    Attributes:
      eigenvalues: (N,) ascending eigenvalues of the empirical NTK Θ̂₀ on the training set.
      residual_weights: (N,) squared components (v_iᵀ(f_0(X) − y))² of the initial residual along
        the eigenvectors v_i (same order): by the linear recursion the linearized loss after s
        steps of size η is ½ Σ_i (1 − ηλ_i)^{2s} residual_weights[i].
      lr_crit, lr_max: 2/(λ_min + λ_max) and 2/λ_max.
      lrs: (S,) step sizes run (η_crit first, then ``factors`` × lr_max).
      steps: (R,) recorded steps.
      loss, loss_lin: (S, R) training loss of the network and of its linearization (inf/NaN after
        divergence).
      lam_final: (S,) largest eigenvalue of the network's empirical NTK after training (NaN if it diverged).
    """

    eigenvalues: np.ndarray
    residual_weights: np.ndarray
    lr_crit: float
    lr_max: float
    lrs: np.ndarray
    steps: np.ndarray
    loss: np.ndarray
    loss_lin: np.ndarray
    lam_final: np.ndarray


def critical_lr(
    config: Union[str, CriticalConfig] = "ci", *, key: Optional[jax.Array] = None, progress: bool = False
) -> CriticalResult:
    """Train one network and its linearization at η_crit and at multiples of 2/λ_max of its empirical NTK."""
    cfg = resolve_config(config, PRESETS["critical"], CriticalConfig)
    key = resolve_key(key, 0)
    k_data, k_net = jax.random.split(key)
    data = load_digits(cfg.n_train, 1, key=k_data, classes=cfg.classes, targets="pm1")
    dtype = _dtype(cfg.dtype)
    x, y = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, dtype)
    net = MLP(data.in_dim, cfg.width, cfg.depth, 1, "relu", cfg.sigma_w, cfg.sigma_b)
    p0 = net.init(k_net, dtype)
    lam, vec = np.linalg.eigh(np.asarray(mlp_ntk(net, p0, x), dtype=np.float64))
    residual = np.asarray(net.apply(p0, x) - y, dtype=np.float64)  # (N, 1)
    weights = np.sum((vec.T @ residual) ** 2, axis=1)
    lr_crit, lr_max = 2.0 / (lam[0] + lam[-1]), 2.0 / lam[-1]
    lrs = np.array([lr_crit] + [float(f) * lr_max for f in cfg.factors])
    rec = np.arange(cfg.steps + 1)
    losses, losses_lin, lam_final = [], [], []
    for lr in progress_bar(lrs, progress, "step sizes"):
        runs = [train(net.apply, p0, x, y, lr=float(lr), steps=cfg.steps, record_steps=rec, linearized=lin,
                      raise_on_divergence=False) for lin in (False, True)]
        losses.append(runs[0].loss)
        losses_lin.append(runs[1].loss)
        ok = np.isfinite(runs[0].loss[-1])
        lam_final.append(_lmax(mlp_ntk(net, runs[0].params, x)) if ok else np.nan)
    return CriticalResult(lam, weights, float(lr_crit), float(lr_max), lrs, rec, np.array(losses),
                          np.array(losses_lin), np.array(lam_final))


# ============================================================================
# presets
# ============================================================================
PRESETS = {
    "weight_change": {
        "ci": WeightChangeConfig(),
        "paper": WeightChangeConfig(widths=(64, 128, 256, 512, 1024, 2048, 4096, 8192), n_train=128, seeds=4,
                                    steps=2**17, dtype="float32"),
    },
    "tracking": {
        "ci": TrackingConfig(),
        "paper": TrackingConfig(widths=(128, 512, 2048), depth=5, n_train=256, n_test=256, steps=10000,
                                n_record=40, dtype="float32"),
    },
    "ensemble": {
        "ci": EnsembleConfig(),
        "paper": EnsembleConfig(members=100, chunk_size=4, width=8192, n_train=128, steps=4096,
                                record=(0, 16, 256, 4096), n_alpha=41, dtype="float32"),
    },
    "toy": {"ci": ToyConfig(), "paper": ToyConfig(widths=(10, 100, 1000, 10000, 100000), steps=50000)},
    "critical": {"ci": CriticalConfig(), "paper": CriticalConfig(width=8192, depth=3, n_train=128, steps=2000,
                                                               dtype="float32")},
}
