"""Experiments of the chapter "Gradient flow and the NTK".

Four experiments, each ``fn(config="ci", *, key=None)`` (the protocol of
:mod:`ntknotes.experiments.common`; ``key=None`` is ``PRNGKey(0)``) returning a result dataclass; every one trains real networks with :func:`ntknotes.training.gradient_descent`
and compares them with the closed forms of :mod:`ntknotes.dynamics`:

* :func:`toy_dynamics`: a one-hidden-layer ReLU network (width 15,000 in every preset) fit to
  six 1-D points with inputs augmented by a constant 1, by small-step gradient descent, against
  the gradient-flow solution built from its empirical NTK at initialization;
* :func:`width_sweep`: the relative parameter change ‖θ_T − θ_0‖/‖θ_0‖ after training, for
  several widths;
* :func:`label_trainability`: true against shuffled labels on two digit classes of
  scikit-learn's digits (Arora et al. 2019): spectrum, label projections and loss curves;
* :func:`step_sizes`: gradient descent with η below and above 2/λ_max, for the network and
  for its kernel (linearized) model.

Presets: ``ci`` (the default, about a minute on 2 CPU cores) and ``paper`` (larger digits
problem, more widths; meant for a GPU).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import dynamics
from .._checks import check_positive, check_positive_int
from ..data import augment_with_one, load_digits, toy_1d
from ..empirical import mlp_ntk
from ..linalg import eigh_psd
from ..networks import MLP
from ..stats import loglog_slope
from ..training import gradient_descent, linearize
from .common import Result, progress_bar, resolve_config, resolve_key

__all__ = [
    "GradientFlowConfig",
    "PRESETS",
    "get_config",
    "ToyResult",
    "toy_setup",
    "toy_dynamics",
    "WidthSweepResult",
    "width_sweep",
    "LabelResult",
    "label_trainability",
    "StepSizeResult",
    "step_sizes",
    "plot_toy",
    "plot_loss_bound",
    "plot_parameters",
    "plot_labels",
    "plot_step_sizes",
]


@dataclasses.dataclass(frozen=True)
class GradientFlowConfig:
    """Sizes of the chapter's experiments.

    Attributes:
      n_points: training points of the 1-D toy problem (evenly spaced on [−2.5, 2.5]).
      width: hidden width of the toy network.
      sigma_w: weight scale of the NTK-parameterized networks (√2: He scaling for ReLU).
      lr_fraction: the toy run's step as a multiple of 1/λ_max (η λ_max; small: close to the flow).
      horizon: the toy run lasts until λ_min t = horizon.
      n_record: recorded steps of the toy run.
      n_grid: points of the grid on which the toy network is drawn.
      widths: widths of the parameter-change sweep.
      sweep_lr_fraction: η λ_max in the sweep (trained until λ_min t = horizon).
      digits_classes: the two digits of the label experiment (±1 targets).
      digits_n: training points of the label experiment.
      digits_width: hidden width of the network trained on digits.
      digits_steps: gradient-descent steps on digits.
      digits_lr_fraction: η λ_max on digits (λ_max of the analytic NTK).
      top_k: the label energy fraction on the top ``top_k`` eigenvectors measures concentration.
      step_factors: step sizes as multiples of 2/λ_max for the step-size experiment.
      step_steps: gradient-descent steps in the step-size experiment.
    """

    n_points: int = 6
    width: int = 15_000
    sigma_w: float = math.sqrt(2.0)
    lr_fraction: float = 0.1
    horizon: float = 4.0
    n_record: int = 121
    n_grid: int = 161
    widths: tuple = (250, 1000, 4000, 16000)
    sweep_lr_fraction: float = 0.4
    digits_classes: tuple = (3, 8)
    digits_n: int = 200
    digits_width: int = 1024
    digits_steps: int = 300
    digits_lr_fraction: float = 1.0
    top_k: int = 10
    step_factors: tuple = (0.5, 0.95, 1.05, 1.5)
    step_steps: int = 400


PRESETS: dict[str, GradientFlowConfig] = {
    "ci": GradientFlowConfig(),
    "paper": GradientFlowConfig(
        n_record=401,
        widths=(250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000),
        digits_n=340,  # nearly all of the 357 threes and eights in the dataset
        digits_width=8192,
        digits_steps=2000,
        step_steps=2000,
    ),
}


def get_config(config: Union[str, GradientFlowConfig] = "ci") -> GradientFlowConfig:
    """A preset by name (``"ci"``, ``"paper"``; see :mod:`ntknotes.experiments.common`) or a config, checked."""
    return resolve_config(config, PRESETS, GradientFlowConfig)


def _flat(params: Any) -> jax.Array:
    return jnp.concatenate([leaf.ravel() for leaf in jax.tree_util.tree_leaves(params)])


def _toy_problem(config: GradientFlowConfig) -> tuple[jax.Array, jax.Array]:
    """Inputs augmented with a 1, shape (N, 2), and targets (N, 1)."""
    x, y = toy_1d(check_positive_int(config.n_points, "n_points"))
    return jnp.asarray(augment_with_one(x)), jnp.asarray(y)


def _toy_net(config: GradientFlowConfig, width: int) -> MLP:
    return MLP(in_dim=2, width=width, depth=1, activation="relu", sigma_w=config.sigma_w)


def toy_setup(config: Union[str, GradientFlowConfig] = "ci", *, key: Optional[jax.Array] = None) -> tuple:
    """The worked example before training.

    Returns:
      (net, params, x, y): the :class:`~ntknotes.networks.MLP` (one hidden ReLU layer of
      ``config.width`` units, no biases), its initial parameters drawn from ``key``, the inputs
      augmented with a 1, shape (N, 2), and the targets, shape (N, 1).
    """
    config = get_config(config)
    key = resolve_key(key, 0)
    xa, y = _toy_problem(config)
    net = _toy_net(config, check_positive_int(config.width, "width"))
    return net, net.init(key), xa, y


# ----------------------------------------------------------------------------
# the worked example
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class ToyResult(Result):
    """The width-15,000 network on the 1-D problem against the closed form from its NTK at init.

    Attributes:
      x: (N,) training inputs (before augmentation); y: (N,) targets.
      x_grid: (M,) inputs where the network is drawn.
      lr: step size η; steps: (R,) recorded step counts (0, then geometrically spaced); times: (R,) t = η·step.
      eigenvalues: (N,) eigenvalues of the empirical NTK at initialization, ascending.
      outputs, outputs_flow: (R, N) network outputs on the training points: trained / closed form.
      grid, grid_flow: (R, M) the same on ``x_grid``.
      loss, loss_flow, loss_bound: (R,) actual loss, closed-form loss, e^{−2λ_min t} L_0.
      tracked, tracked_flow: (R, P) a few parameters (``tracked_names``): trained / closed form.
      tracked_names: names of the tracked parameters.
      displacement, displacement_flow: (R,) ‖θ_t − θ_0‖: trained / closed form.
      param_norm: ‖θ_0‖; num_params: number of parameters.
      ntk_initial, ntk_final: (N, N) empirical NTK Θ̂_0 at initialization and Θ̂_T after the run.
    """

    x: np.ndarray
    y: np.ndarray
    x_grid: np.ndarray
    lr: float
    steps: np.ndarray
    times: np.ndarray
    eigenvalues: np.ndarray
    outputs: np.ndarray
    outputs_flow: np.ndarray
    grid: np.ndarray
    grid_flow: np.ndarray
    loss: np.ndarray
    loss_flow: np.ndarray
    loss_bound: np.ndarray
    tracked: np.ndarray
    tracked_flow: np.ndarray
    tracked_names: list
    displacement: np.ndarray
    displacement_flow: np.ndarray
    param_norm: float
    num_params: int
    ntk_initial: np.ndarray
    ntk_final: np.ndarray


def _tracked(params: Any) -> jax.Array:
    """Two input weights, two hidden biases (weights on the constant 1) and two output weights."""
    w1, w2 = params[0]["W"], params[1]["W"]
    return jnp.stack([w1[0, 0], w1[0, 1], w1[1, 0], w1[1, 1], w2[0, 0], w2[1, 0]])


_TRACKED_NAMES = ["layer-1 weight 1", "layer-1 weight 2", "layer-1 bias 1", "layer-1 bias 2",
                  "layer-2 weight 1", "layer-2 weight 2"]


def toy_dynamics(config: Union[str, GradientFlowConfig] = "ci", *, key: Optional[jax.Array] = None) -> ToyResult:
    """Train the seed's one-hidden-layer ReLU network by small-step GD and evaluate the closed forms.

    The step is η = ``lr_fraction``/λ_max and the run lasts until λ_min t = ``horizon``
    (λ of the empirical NTK at initialization, t = η·steps).
    """
    config = get_config(config)
    net, params, xa, y = toy_setup(config, key=key)
    x = np.asarray(xa[:, 0])
    ntk0 = mlp_ntk(net, params, xa)
    eig = eigh_psd(ntk0, "empirical NTK")
    lam_min, lam_max = float(eig.values[0]), float(eig.values[-1])
    lr = check_positive(config.lr_fraction, "lr_fraction") / lam_max
    n_steps = int(math.ceil(config.horizon / (lr * lam_min)))
    rec = np.unique(np.concatenate([[0], np.geomspace(1, n_steps, config.n_record - 1).round()]).astype(np.int64))
    x_grid = np.linspace(x.min() - 1.0, x.max() + 1.0, config.n_grid)
    grid_a = jnp.asarray(augment_with_one(x_grid[:, None]))
    theta0 = _flat(params)
    hist = gradient_descent(
        net.apply, params, xa, y, lr=lr, steps=n_steps, record_steps=rec, x_eval=grid_a,
        param_fn=lambda p: (_tracked(p), jnp.linalg.norm(_flat(p) - theta0)),
    )
    times = rec * lr
    f0, f0_grid = net.apply(params, xa), net.apply(params, grid_a)
    outputs_flow = dynamics.train_outputs(eig, f0, y, times)
    grid_flow = dynamics.test_outputs(eig, mlp_ntk(net, params, grid_a, xa), f0, f0_grid, y, times)
    loss_flow = dynamics.loss(eig, f0, y, times)
    bound = dynamics.loss_bound(eig, float(hist.loss[0]), times)
    disp = dynamics.parameter_displacement(net.apply, params, xa, eig, y, times)
    theta_flow = jax.vmap(lambda d: _tracked(jax.tree_util.tree_map(jnp.add, params, d)))(disp)
    disp_norm = jax.vmap(lambda d: jnp.linalg.norm(_flat(d)))(disp)
    tracked, disp_actual = hist.tracked
    return ToyResult(
        x=x, y=np.asarray(y[:, 0]), x_grid=x_grid, lr=lr, steps=rec, times=times,
        eigenvalues=np.asarray(eig.values),
        outputs=hist.outputs[..., 0], outputs_flow=np.asarray(outputs_flow[..., 0]),
        grid=hist.eval_outputs[..., 0], grid_flow=np.asarray(grid_flow[..., 0]),
        loss=hist.loss, loss_flow=np.asarray(loss_flow), loss_bound=np.asarray(bound),
        tracked=np.asarray(tracked), tracked_flow=np.asarray(theta_flow), tracked_names=list(_TRACKED_NAMES),
        displacement=np.asarray(disp_actual), displacement_flow=np.asarray(disp_norm),
        param_norm=float(jnp.linalg.norm(theta0)), num_params=int(net.num_params),
        ntk_initial=np.asarray(ntk0), ntk_final=np.asarray(mlp_ntk(net, hist.params, xa)),
    )


# ----------------------------------------------------------------------------
# parameter change against width
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class WidthSweepResult(Result):
    """Relative parameter change after training, against width.

    Attributes:
      widths: (W,) hidden widths; rel_change: (W,) ‖θ_T − θ_0‖/‖θ_0‖ at the end of training;
      abs_change: (W,) ‖θ_T − θ_0‖; final_loss_ratio: (W,) L_T/L_0; slope, intercept: log-log fit.
    """

    widths: np.ndarray
    rel_change: np.ndarray
    abs_change: np.ndarray
    final_loss_ratio: np.ndarray
    slope: float
    intercept: float


def width_sweep(config: Union[str, GradientFlowConfig] = "ci", *, key: Optional[jax.Array] = None,
                progress: bool = False) -> WidthSweepResult:
    """Train the toy network at each width until λ_min t = ``horizon`` and measure how far θ moved.

    ``progress``: a progress bar over the widths.
    """
    config = get_config(config)
    key = resolve_key(key, 0)
    xa, y = _toy_problem(config)
    keys = jax.random.split(key, len(config.widths))
    rel, absolute, ratio = [], [], []
    for width, k in progress_bar(list(zip(config.widths, keys)), progress, "widths"):
        net = _toy_net(config, check_positive_int(width, "width"))
        params = net.init(k)
        w = np.linalg.eigvalsh(np.asarray(mlp_ntk(net, params, xa)))
        lr = check_positive(config.sweep_lr_fraction, "sweep_lr_fraction") / w[-1]
        n_steps = int(math.ceil(config.horizon / (lr * w[0])))
        hist = gradient_descent(net.apply, params, xa, y, lr=lr, steps=n_steps, record_steps=[0, n_steps])
        change = float(jnp.linalg.norm(_flat(hist.params) - _flat(params)))
        absolute.append(change)
        rel.append(change / float(jnp.linalg.norm(_flat(params))))
        ratio.append(float(hist.loss[-1] / hist.loss[0]))
    fit = loglog_slope(np.asarray(config.widths, float), np.asarray(rel))
    return WidthSweepResult(
        widths=np.asarray(config.widths), rel_change=np.asarray(rel), abs_change=np.asarray(absolute),
        final_loss_ratio=np.asarray(ratio), slope=fit.slope, intercept=fit.intercept,
    )


# ----------------------------------------------------------------------------
# labels and trainability
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class LabelResult(Result):
    """True against shuffled labels on two digit classes.

    Attributes:
      eigenvalues: (N,) analytic NTK eigenvalues, descending.
      proj_true, proj_random: (N,) (v_iᵀy)² for the true and the shuffled labels.
      lr: step size; steps: (R,) recorded steps.
      loss_true, loss_random: (R,) losses of the trained networks (outputs centred at init).
      kernel_true, kernel_random: (R,) closed-form losses with the analytic NTK.
      top_k: number of top eigenvectors; energy_true, energy_random: their share of ‖y‖².
    """

    eigenvalues: np.ndarray
    proj_true: np.ndarray
    proj_random: np.ndarray
    lr: float
    steps: np.ndarray
    loss_true: np.ndarray
    loss_random: np.ndarray
    kernel_true: np.ndarray
    kernel_random: np.ndarray
    top_k: int
    energy_true: float
    energy_random: float


def label_trainability(config: Union[str, GradientFlowConfig] = "ci", *, key: Optional[jax.Array] = None) -> LabelResult:
    """Train a wide ReLU network on two digit classes with true and with shuffled ±1 labels.

    The network output is centred at initialization by training on targets y + f_0(X), which
    is the same as training f − f_0 on y, so u_0 = 0 and L_t = ½ Σ (1 − ηλ_i)^{2k}(v_iᵀy)² in
    the kernel regime.
    """
    config = get_config(config)
    key = resolve_key(key, 0)
    k_data, k_perm, k_net = jax.random.split(key, 3)
    n = check_positive_int(config.digits_n, "digits_n")
    data = load_digits(n, 1, key=k_data, classes=config.digits_classes, targets="pm1")
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    y_random = y[jax.random.permutation(k_perm, n)]
    net = MLP(in_dim=x.shape[1], width=config.digits_width, depth=1, activation="relu", sigma_w=config.sigma_w)
    eig = eigh_psd(net.kernels(x).ntk, "analytic NTK")
    proj_t, proj_r = dynamics.label_projections(eig, y), dynamics.label_projections(eig, y_random)
    lr = check_positive(config.digits_lr_fraction, "digits_lr_fraction") / float(eig.values[-1])
    steps = check_positive_int(config.digits_steps, "digits_steps")
    rec = np.unique(np.linspace(0, steps, 61).round().astype(np.int64))
    params = net.init(k_net)
    f0 = net.apply(params, x)
    losses = [gradient_descent(net.apply, params, x, t + f0, lr=lr, steps=steps, record_steps=rec).loss
              for t in (y, y_random)]
    kern = [dynamics.projected_loss(p.eigenvalues, p.projections, rec, lr=lr) for p in (proj_t, proj_r)]
    k = check_positive_int(config.top_k, "top_k")
    share = [float(jnp.sum(p.projections[:k]) / jnp.sum(p.projections)) for p in (proj_t, proj_r)]
    return LabelResult(
        eigenvalues=np.asarray(proj_t.eigenvalues), proj_true=np.asarray(proj_t.projections),
        proj_random=np.asarray(proj_r.projections), lr=lr, steps=rec,
        loss_true=np.asarray(losses[0]), loss_random=np.asarray(losses[1]),
        kernel_true=np.asarray(kern[0]), kernel_random=np.asarray(kern[1]),
        top_k=k, energy_true=share[0], energy_random=share[1],
    )


# ----------------------------------------------------------------------------
# step sizes
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class StepSizeResult(Result):
    """Gradient descent at step sizes η = factor · 2/λ_max on the toy problem.

    Attributes:
      factors: (F,) η λ_max / 2; lrs: (F,) the steps η; lam_min, lam_max: NTK eigenvalues at init.
      steps: (R,) recorded steps.
      loss_net: (F, R) loss of the network (NaN/inf where it diverged).
      loss_lin: (F, R) loss of its linearization trained by the same GD.
      loss_kernel: (F, R) closed form ½ Σ (1 − ηλ_i)^{2k} ‖v_iᵀ(u_0 − y)‖².
      lam_max_final: (F,) λ_max of the network's empirical NTK after training.
    """

    factors: np.ndarray
    lrs: np.ndarray
    lam_min: float
    lam_max: float
    steps: np.ndarray
    loss_net: np.ndarray
    loss_lin: np.ndarray
    loss_kernel: np.ndarray
    lam_max_final: np.ndarray


def step_sizes(config: Union[str, GradientFlowConfig] = "ci", *, key: Optional[jax.Array] = None) -> StepSizeResult:
    """Train the toy network and its linearization with η below and above 2/λ_max."""
    config = get_config(config)
    net, params, xa, y = toy_setup(config, key=key)
    ntk0 = mlp_ntk(net, params, xa)
    eig = eigh_psd(ntk0, "empirical NTK")
    lam_max = float(eig.values[-1])
    steps = check_positive_int(config.step_steps, "step_steps")
    rec = np.unique(np.geomspace(1, steps, 60).round().astype(np.int64))
    rec = np.concatenate([[0], rec])
    f0 = net.apply(params, xa)
    lin = linearize(net.apply, params)
    lrs, loss_net, loss_lin, loss_kernel, lam_final = [], [], [], [], []
    for factor in config.step_factors:
        lr = check_positive(factor, "step factor") * 2.0 / lam_max
        h = gradient_descent(net.apply, params, xa, y, lr=lr, steps=steps, record_steps=rec,
                             raise_on_divergence=False)
        h_lin = gradient_descent(lin, params, xa, y, lr=lr, steps=steps, record_steps=rec,
                                 raise_on_divergence=False)
        lrs.append(lr)
        loss_net.append(h.loss)
        loss_lin.append(h_lin.loss)
        loss_kernel.append(np.asarray(dynamics.loss(eig, f0, y, rec, lr=lr)))
        lam_final.append(float(jnp.max(jnp.linalg.eigvalsh(mlp_ntk(net, h.params, xa)))) if not h.diverged
                         else np.nan)
    return StepSizeResult(
        factors=np.asarray(config.step_factors, float), lrs=np.asarray(lrs), lam_min=float(eig.values[0]),
        lam_max=lam_max, steps=rec, loss_net=np.asarray(loss_net), loss_lin=np.asarray(loss_lin),
        loss_kernel=np.asarray(loss_kernel), lam_max_final=np.asarray(lam_final),
    )


# ----------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------
def _snapshot_rows(times: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` recorded times spread geometrically over the run (0 included)."""
    targets = np.concatenate([[0.0], np.geomspace(times[1], times[-1], n - 1)])
    return np.unique([int(np.argmin(np.abs(times - t))) for t in targets])


def plot_toy(result: ToyResult, n_snapshots: int = 5):
    """Three panels: the network at several times, outputs at the data points, and residuals,
    for the trained network (solid) and the closed form from the NTK at init (dashed)."""
    import matplotlib.pyplot as plt

    from ..plotting import COLORS, LABELS, LEGEND_SMALL, figure

    fig, ax = figure(3)
    rows = _snapshot_rows(result.times, n_snapshots)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, rows.size))
    for c, i in zip(shades, rows):
        ax[0].plot(result.x_grid, result.grid[i], color=c, label=f"t = {result.times[i]:.3g}")
        ax[0].plot(result.x_grid, result.grid_flow[i], "--", color="k", lw=0.8)
    ax[0].plot(result.x, result.y, "o", color=COLORS[1], ms=5, zorder=3, label="data")
    ax[0].set(xlabel="x", ylabel="f(x)", title="network function")
    ax[0].legend(fontsize=LEGEND_SMALL)
    for j in range(result.y.size):
        c = COLORS[j % len(COLORS)]
        ax[1].plot(result.times, result.outputs[:, j], color=c)
        ax[1].plot(result.times, result.outputs_flow[:, j], "--", color="k", lw=0.8)
        ax[1].axhline(result.y[j], color=c, ls=":", lw=1)
        ax[2].plot(result.times, result.outputs[:, j] - result.y[j], color=c)
        ax[2].plot(result.times, result.outputs_flow[:, j] - result.y[j], "--", color="k", lw=0.8)
    ax[1].set(xlabel=LABELS["time"], ylabel=r"$f(x_i)$", title="outputs at the data (dashed: closed form)")
    ax[2].set(xlabel=LABELS["time"], ylabel=r"$f(x_i) - y_i$", title="residuals")
    for a in ax[1:]:
        a.set_xscale("log")
        a.set_xlim(result.times[1], result.times[-1])
    return fig


def plot_loss_bound(result: ToyResult):
    """Loss of the trained network, the closed form and the bound e^{−2λ_min t} L_0 (log scale)."""
    from ..plotting import LABELS, figure

    fig, ax = figure()
    ax.semilogy(result.times, result.loss, label="trained network")
    ax.semilogy(result.times, result.loss_flow, "--", color="k", lw=1, label="closed form, NTK at init")
    ax.semilogy(result.times, result.loss_bound, label=r"bound $e^{-2\lambda_{\min} t} L_0$")
    ax.set(xlabel=LABELS["time"], ylabel="loss ½‖f − y‖²")
    ax.legend()
    return fig


def plot_parameters(toy: ToyResult, sweep: WidthSweepResult):
    """Three panels: a few parameters over time, their changes θ_t − θ_0 (trained solid, closed form
    dashed), and the relative change of all parameters against width."""
    from ..plotting import COLORS, LABELS, LEGEND_SMALL, add_slope_guide, figure

    fig, ax = figure(3, height=3.1)  # room for the legend below
    for j, name in enumerate(toy.tracked_names):
        c = COLORS[j % len(COLORS)]
        ax[0].plot(toy.times, toy.tracked[:, j], color=c, label=name)
        ax[1].plot(toy.times, toy.tracked[:, j] - toy.tracked[0, j], color=c)
        ax[1].plot(toy.times, toy.tracked_flow[:, j] - toy.tracked[0, j], "--", color="k", lw=0.8)
    ax[0].set(xlabel=LABELS["time"], ylabel=r"$\theta_t$", title=f"6 of {toy.num_params:,} parameters")
    ax[1].set(xlabel=LABELS["time"], ylabel=r"$\theta_t - \theta_0$", title="their changes (dashed: closed form)")
    fig.legend(*ax[0].get_legend_handles_labels(), loc="outside lower center", ncol=6, fontsize=LEGEND_SMALL)
    ax[2].loglog(sweep.widths, sweep.rel_change, "o-", label="measured")
    add_slope_guide(ax[2], sweep.widths, -0.5, sweep.rel_change[0], label="slope −1/2")
    ax[2].set(xlabel=LABELS["width"], ylabel=r"$\|\theta_T-\theta_0\| / \|\theta_0\|$",
              title=f"relative change, fitted slope {sweep.slope:.3f}")
    ax[2].legend()
    return fig


def plot_labels(result: LabelResult):
    """Spectrum of the NTK, label projections (true vs shuffled), and loss curves."""
    from ..plotting import COLORS, LABELS, figure

    fig, ax = figure(3)
    idx = np.arange(1, result.eigenvalues.size + 1)
    ax[0].loglog(idx, result.eigenvalues, color=COLORS[0])
    ax[0].set(xlabel="index i", ylabel=r"$\lambda_i$", title="NTK eigenvalues")
    ax[1].semilogy(idx, result.proj_true, ".", color=COLORS[0], ms=3, label="true labels")
    ax[1].semilogy(idx, result.proj_random, ".", color=COLORS[1], ms=3, label="shuffled labels")
    ax[1].set(xlabel="index i", ylabel=r"$(v_i^\top y)^2$", title="label projections", ylim=(1e-6, None))
    ax[1].legend()
    ax[2].semilogy(result.steps, result.loss_true / result.loss_true[0], color=COLORS[0], label="true (network)")
    ax[2].semilogy(result.steps, result.loss_random / result.loss_random[0], color=COLORS[1],
                   label="shuffled (network)")
    ax[2].semilogy(result.steps, result.kernel_true / result.kernel_true[0], "--", color="k", lw=0.8,
                   label="closed form")
    ax[2].semilogy(result.steps, result.kernel_random / result.kernel_random[0], "--", color="k", lw=0.8)
    ax[2].set(xlabel=LABELS["step"], ylabel=r"$L_k / L_0$", title="training loss")
    ax[2].legend()
    return fig


def plot_step_sizes(result: StepSizeResult, products=(0.1, 0.5, 1.0, 1.5, 1.9, 2.05)):
    """Left: the absolute GD factor (1 − ηλ)^k against e^{−ηλk} for several ηλ. Right: loss curves at each step size."""
    from ..plotting import COLORS, LABELS, LEGEND_SMALL, figure

    fig, ax = figure(2, width=4.0, height=3.1)  # wider: a two-column legend
    k = np.arange(0, 41)
    gd = np.abs(np.asarray(dynamics.decay_factors(np.asarray(products, float), k, lr=1.0)))  # |1 − a|^k
    flow = np.asarray(dynamics.decay_factors(np.asarray(products, float), k))  # e^{−ak}
    for j, a in enumerate(products):
        c = COLORS[j % len(COLORS)]
        ax[0].semilogy(k, np.maximum(gd[:, j], 1e-300), "o-", ms=2.5, lw=1, color=c, label=rf"$\eta\lambda = {a:g}$")
        ax[0].semilogy(k, flow[:, j], "--", color=c, lw=0.8)
    ax[0].set(xlabel=LABELS["step"], ylabel=r"$|1-\eta\lambda|^k$  (dashed: $e^{-\eta\lambda k}$)", ylim=(1e-8, 1e2))
    ax[0].legend(fontsize=LEGEND_SMALL, ncol=2)
    for j, f in enumerate(result.factors):
        c = COLORS[j % len(COLORS)]
        ax[1].loglog(result.steps[1:], result.loss_net[j, 1:], color=c, label=rf"$\eta = {f:g}\cdot 2/\lambda_{{\max}}$")
        ax[1].loglog(result.steps[1:], result.loss_lin[j, 1:], "--", color=c, lw=1)
    ax[1].set(xlabel=LABELS["step"], ylabel="loss", ylim=(1e-7, 1e8), title="solid: network, dashed: linearized")
    ax[1].legend(fontsize=LEGEND_SMALL)
    return fig
