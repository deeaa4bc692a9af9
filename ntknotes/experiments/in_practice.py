"""Experiments of the chapter "Infinitely wide nets in practice".

* :func:`toy_experiment`: a 1-D regression problem; wide one-hidden-layer ReLU nets trained by
  gradient descent to convergence against NTK kernel regression, and the NTK-GP band over time.
* :func:`mlp_experiment`: digits; trained MLPs of growing width against NTK and NNGP regression,
  and the distance between each net and the infinite-width NTK dynamics at the same step.
* :func:`cnn_table`: CNN-V, CNTK-V, CNN-GAP, CNTK-GAP at several depths (the table of
  Arora et al. 2019, on digits at the ``ci`` preset, on CIFAR-10 at the ``paper`` preset).
* :func:`pooling_experiment`: MNIST-1D, where a pattern may sit anywhere in the signal: the
  fully-connected NTK, CNTK-V and CNTK-GAP at several depths.
* :func:`cost_experiment`: time of the kernel, of the solve and of training a net against N.

Each is ``fn(config="ci", *, key=None)`` (the protocol of :mod:`ntknotes.experiments.common`):
``config`` is a preset name (``"ci"``, ``"paper"``) or a :class:`Config`, e.g.
``dataclasses.replace(PRESETS["ci"], toy_widths=(64, 512))``; ``key=None`` is ``PRNGKey(0)``;
``progress=True`` shows a bar over the sweep (widths, depths or sizes) where there is one.

Networks whose output must start at zero (so that kernel regression, not kernel regression
plus a random function, is the infinite-width prediction) are trained in the antisymmetric
form f(x) = (g(θ₁, x) − g(θ₂, x))/√2 with θ₁ = θ₂ at initialization, whose tangent kernel is
that of g.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_key
from ..cnn import CNN
from ..conv import conv_kernels
from ..data import Dataset, augment_with_one, load_digits, toy_1d
from ..dynamics import ntkgp_moments, test_outputs
from ..kernels import nngp_ntk
from ..networks import MLP
from ..regression import accuracy, kernel_regression
from ..stats import relative_error
from ..training import gradient_descent, train
from .common import Result, progress_bar, resolve_config, resolve_key

__all__ = [
    "Config",
    "PRESETS",
    "antisymmetric",
    "ToyResult",
    "toy_experiment",
    "MLPResult",
    "mlp_experiment",
    "TableResult",
    "cnn_table",
    "CostResult",
    "cost_experiment",
    "PoolingResult",
    "pooling_experiment",
    "plot_pooling",
    "load_images",
    "plot_toy",
    "plot_mlp",
    "plot_table",
    "plot_cost",
]


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of every experiment of the chapter (a preset changes sizes, never code paths)."""

    # 1-D problem
    toy_points: int = 5
    toy_widths: tuple = (64, 512, 4096)
    toy_times: tuple = (0.02, 0.2, math.inf)
    toy_noise: float = 1e-3
    # MLPs on digits
    mlp_train: int = 300
    mlp_test: int = 300
    mlp_depth: int = 1
    mlp_widths: tuple = (64, 256, 1024, 2048)
    mlp_steps: int = 200
    # the CNN / CNTK table
    dataset: str = "digits"
    data_dir: Optional[str] = None
    cnn_train: int = 256
    cnn_test: int = 128
    cnn_depths: tuple = (2, 3, 4)
    cnn_channels: int = 32
    cnn_epochs: int = 300
    cnn_batch: int = 32
    cnn_lr_factor: float = 1.0
    # pooling on MNIST-1D (kernels at every depth; trained CNNs at the largest)
    m1d_train: int = 500
    m1d_test: int = 300
    m1d_depths: tuple = (2, 4, 8)
    m1d_seed: Optional[int] = None  # an int: that seed of make_mnist1d (42 is the reference set)
    # cost against N
    cost_sizes: tuple = (200, 400, 800, 1600)
    cost_width: int = 512
    cost_epochs: int = 100
    # matrix-free NTK regression on MNIST-1D (depth-3 ReLU MLP): training and test sizes, the
    # Nyström rank of CG's preconditioner and CG's relative-residual tolerance
    big_train: int = 20000
    big_test: int = 2000
    big_rank: int = 1000
    big_tol: float = 1e-2


PRESETS = {
    "ci": Config(),
    "paper": Config(
        toy_widths=(64, 512, 4096, 32768),
        mlp_train=1000, mlp_test=797, mlp_widths=(64, 256, 1024, 4096, 16384), mlp_steps=1000,
        dataset="cifar10", data_dir="data/cifar10", cnn_train=10000, cnn_test=2000,
        cnn_depths=(3, 4, 6, 11, 21), cnn_channels=256, cnn_epochs=100, cnn_batch=64,
        m1d_train=4000, m1d_test=1000, m1d_depths=(2, 4, 8, 16), m1d_seed=42,
        cost_sizes=(200, 400, 800, 1600), cost_width=2048,
        big_train=100000, big_test=5000, big_rank=2000, big_tol=1e-3,
    ),
}


def antisymmetric(apply):
    """f(params, x) = (g(p₁, x) − g(p₂, x))/√2 for params = (p₁, p₂): zero at init when p₁ = p₂."""

    def f(params, x):
        return (apply(params[0], x) - apply(params[1], x)) / math.sqrt(2.0)

    return f


# ----------------------------------------------------------------------------
# 1-D: trained nets against kernel regression, and the NTK-GP band
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class ToyResult(Result):
    """x_train (N,), y_train (N,), grid (G,); ntk_mean (G,) the NTK regression prediction;
    net_predictions (W, G) of trained nets of widths ``widths``; max_dev (W,) max |net − NTK| on the
    grid; final_loss (W,); times (T,); gp_mean, gp_std (T, G) NTK-GP moments; gp_std_train (T, N);
    regression_gap: max |NTK-GP mean at t = ∞ − kernel_regression|."""

    x_train: np.ndarray
    y_train: np.ndarray
    grid: np.ndarray
    ntk_mean: np.ndarray
    widths: np.ndarray
    net_predictions: np.ndarray
    max_dev: np.ndarray
    final_loss: np.ndarray
    times: np.ndarray
    gp_mean: np.ndarray
    gp_std: np.ndarray
    gp_std_train: np.ndarray
    regression_gap: float
    noise: float


def toy_experiment(config: "str | Config" = "ci", *, key: Optional[jax.Array] = None,
                   progress: bool = False) -> ToyResult:
    """1-D regression with a one-hidden-layer ReLU net (input augmented with a 1, σ_w² = 2)."""
    cfg = resolve_config(config, PRESETS, Config)
    key = resolve_key(key, 0)
    x, y = toy_1d(cfg.toy_points)
    grid = np.linspace(-4.0, 4.0, 161)[:, None]
    X, G = augment_with_one(x), augment_with_one(grid)
    XG = np.concatenate([X, G])
    kw = dict(depth=1, activation="relu", sigma_w=math.sqrt(2.0), sigma_b=0.0)
    kern = nngp_ntk(XG, **kw)
    n = X.shape[0]
    th, k = np.asarray(kern.ntk), np.asarray(kern.nngp)
    ntk_mean = np.asarray(kernel_regression(th[:n, :n], y, th[n:, :n]))[:, 0]
    # NTK-GP moments on grid and training points together
    mom = ntkgp_moments(th[:n, :n], th[:, :n], k[:n, :n], k[:, :n], k, y, np.asarray(cfg.toy_times))
    var = np.maximum(np.asarray(jnp.diagonal(mom.cov, axis1=1, axis2=2)), 0.0) + cfg.toy_noise
    gp_mean = np.asarray(mom.mean)[:, n:, 0]
    reg_gap = float(np.max(np.abs(gp_mean[-1] - ntk_mean))) if np.isinf(cfg.toy_times[-1]) else float("nan")
    # trained nets (full-batch GD on the total loss, to convergence)
    lam = np.linalg.eigvalsh(th[:n, :n])
    lr = 1.0 / lam[-1]
    steps = int(min(200_000, math.ceil(math.log(1e8) / (lr * lam[0]))))
    preds, devs, losses = [], [], []
    for i, w in enumerate(progress_bar(cfg.toy_widths, progress, "widths")):
        net = MLP(in_dim=2, width=int(w), depth=1, **{k_: v for k_, v in kw.items() if k_ != "depth"})
        p = net.init(jax.random.fold_in(key, i))
        f = antisymmetric(net.apply)
        hist = gradient_descent(f, (p, p), X, y, lr=lr, steps=steps, record_steps=[steps], x_eval=G)
        pred = hist.eval_outputs[-1, :, 0]
        preds.append(pred)
        devs.append(float(np.max(np.abs(pred - ntk_mean))))
        losses.append(float(hist.loss[-1]))
    return ToyResult(
        x_train=x[:, 0], y_train=y[:, 0], grid=grid[:, 0], ntk_mean=ntk_mean,
        widths=np.asarray(cfg.toy_widths), net_predictions=np.asarray(preds), max_dev=np.asarray(devs),
        final_loss=np.asarray(losses), times=np.asarray(cfg.toy_times), gp_mean=gp_mean,
        gp_std=np.sqrt(var[:, n:]), gp_std_train=np.sqrt(var[:, :n]), regression_gap=reg_gap, noise=cfg.toy_noise,
    )


# ----------------------------------------------------------------------------
# digits: MLPs of growing width against NTK and NNGP regression
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class MLPResult(Result):
    """widths (W,); net_acc (W,) test accuracy after ``steps`` GD steps; ntk_acc_t: accuracy of the
    infinite-width NTK dynamics at the same step; ntk_acc, nngp_acc: kernel regression (t = ∞);
    distance (W,): ‖f_net − f_NTK,t‖/‖f_NTK,t‖ on the test set; agreement (W,): fraction of test
    points where the net and the NTK dynamics predict the same class."""

    widths: np.ndarray
    net_acc: np.ndarray
    distance: np.ndarray
    agreement: np.ndarray
    ntk_acc_t: float
    ntk_acc: float
    nngp_acc: float
    steps: int
    n_train: int
    n_test: int


def mlp_experiment(config: "str | Config" = "ci", *, key: Optional[jax.Array] = None,
                   progress: bool = False) -> MLPResult:
    """ReLU MLPs (``mlp_depth`` hidden layers, σ_w² = 2) on digits, one-hot targets, total MSE loss."""
    cfg = resolve_config(config, PRESETS, Config)
    key = resolve_key(key, 0)
    k_data, k_net = jax.random.split(key)
    ds = load_digits(cfg.mlp_train, cfg.mlp_test, key=k_data)
    kw = dict(depth=cfg.mlp_depth, activation="relu", sigma_w=math.sqrt(2.0), sigma_b=0.0)
    xall = np.concatenate([ds.x_train, ds.x_test])
    kern = nngp_ntk(xall, **kw)
    n = ds.n_train
    th, k = np.asarray(kern.ntk), np.asarray(kern.nngp)
    ntk_pred = kernel_regression(th[:n, :n], ds.y_train, th[n:, :n])
    nngp_pred = kernel_regression(k[:n, :n], ds.y_train, k[n:, :n])
    lr = 1.0 / float(np.linalg.eigvalsh(th[:n, :n])[-1])
    zeros = np.zeros_like(ds.y_train)
    ntk_t = np.asarray(test_outputs(th[:n, :n], th[n:, :n], zeros, np.zeros_like(ds.y_test), ds.y_train,
                                    [cfg.mlp_steps], lr=lr))[0]
    x32, y32, xt32 = (jnp.asarray(a, jnp.float32) for a in (ds.x_train, ds.y_train, ds.x_test))
    accs, dists, agree = [], [], []
    for i, w in enumerate(progress_bar(cfg.mlp_widths, progress, "widths")):
        net = MLP(in_dim=ds.in_dim, width=int(w), out_dim=10, depth=cfg.mlp_depth,
                  **{k_: v for k_, v in kw.items() if k_ != "depth"})
        p = net.init(jax.random.fold_in(k_net, i), dtype=jnp.float32)
        hist = train(antisymmetric(net.apply), (p, p), x32, y32, lr=lr, steps=cfg.mlp_steps,
                     record_steps=[cfg.mlp_steps], x_eval=xt32)
        out = np.asarray(hist.eval_outputs[-1], dtype=np.float64)
        accs.append(accuracy(out, ds.labels_test))
        dists.append(relative_error(out, ntk_t))
        agree.append(float(np.mean(np.argmax(out, 1) == np.argmax(ntk_t, 1))))
    return MLPResult(
        widths=np.asarray(cfg.mlp_widths), net_acc=np.asarray(accs), distance=np.asarray(dists),
        agreement=np.asarray(agree), ntk_acc_t=accuracy(ntk_t, ds.labels_test),
        ntk_acc=accuracy(ntk_pred, ds.labels_test), nngp_acc=accuracy(nngp_pred, ds.labels_test),
        steps=cfg.mlp_steps, n_train=n, n_test=ds.n_test,
    )


# ----------------------------------------------------------------------------
# the CNN / CNTK table
# ----------------------------------------------------------------------------
def load_images(cfg: Config, key: jax.Array) -> Dataset:
    """The image set of the table: digits (8×8, offline) or CIFAR-10 from ``cfg.data_dir``."""
    cfg = resolve_config(cfg, PRESETS, Config, "cfg")
    check_key(key)
    if cfg.dataset == "digits":
        return load_digits(cfg.cnn_train, cfg.cnn_test, key=key)
    if cfg.dataset == "cifar10":
        from ..data.files import load_cifar10

        if cfg.data_dir is None:
            raise ValueError("dataset='cifar10' needs data_dir (a directory with the CIFAR-10 python batches)")
        return load_cifar10(cfg.data_dir, cfg.cnn_train, cfg.cnn_test, key=key, normalize="standardize")
    raise ValueError(f"dataset must be 'digits' or 'cifar10', got {cfg.dataset!r}")


@dataclasses.dataclass
class TableResult(Result):
    """Test accuracies (D,) per depth: cnn_v, cntk_v, cnn_gap, cntk_gap; the NNGP counterparts
    cnngp_v, cnngp_gap; seconds spent on the kernels and on training; sizes and the data name."""

    depths: np.ndarray
    cnn_v: np.ndarray
    cntk_v: np.ndarray
    cnn_gap: np.ndarray
    cntk_gap: np.ndarray
    cnngp_v: np.ndarray
    cnngp_gap: np.ndarray
    kernel_seconds: float
    train_seconds: float
    channels: int
    n_train: int
    n_test: int
    dataset: str


def _fit_cnn(cfg: Config, ds: Dataset, depth: int, pooling: str, ntk_train: np.ndarray, key: jax.Array) -> tuple[float, float]:
    """Train the CNN matching a CNTK by plain minibatch SGD on the mean squared loss (float32).

    The trained function is the centred network f(θ, x) − f(θ₀, x), which starts at zero: at
    infinite width its limit is kernel regression itself, whereas the plain network adds the
    random initial function (and its GP residual) on top.  f(θ₀, ·) is evaluated once on the
    training and test images, so centring costs nothing per step: g = f(θ, ·) is trained on the
    targets y + f(θ₀, X).  The step is ``cnn_lr_factor`` · N / λ_max(Θ_train) of the matching
    CNTK (the stable step of full-batch GD on the mean loss is 2N/λ_max); ``cnn_epochs`` passes
    of batch ``cnn_batch``.  Returns (test accuracy, seconds of training).
    """
    n = ds.n_train
    lr = cfg.cnn_lr_factor * n / float(np.linalg.eigvalsh(ntk_train)[-1])
    net = CNN(ds.image_shape, channels=cfg.cnn_channels, depth=depth, out_dim=ds.y_train.shape[1], pooling=pooling)
    k_init, k_batches = jax.random.split(key)
    params = net.init(k_init, dtype=jnp.float32)
    x32, y32, xt32 = (jnp.asarray(a, jnp.float32) for a in (ds.images("train"), ds.y_train, ds.images("test")))
    f0_train, f0_test = net.apply(params, x32), net.apply(params, xt32)
    steps = cfg.cnn_epochs * max(1, n // cfg.cnn_batch)
    t0 = time.perf_counter()
    hist = train(net.apply, params, x32, y32 + f0_train, lr=lr, steps=steps, loss="mean_mse", batch_size=cfg.cnn_batch,
                 key=k_batches, record_steps=[steps], x_eval=xt32)
    return accuracy(hist.eval_outputs[-1] - f0_test, ds.labels_test), time.perf_counter() - t0


def cnn_table(config: "str | Config" = "ci", *, key: Optional[jax.Array] = None,
              progress: bool = False) -> TableResult:
    """CNNs (plain minibatch SGD, mean MSE on one-hot targets) and their kernels, every depth and readout.

    The kernels of all depths and both readouts come from one pass of the CNTK recursion.
    The SGD step is ``cnn_lr_factor`` · N / λ_max(Θ_train) of the matching CNTK (the stable
    step of full-batch GD on the mean loss is 2N/λ_max).
    """
    cfg = resolve_config(config, PRESETS, Config)
    key = resolve_key(key, 0)
    k_data, k_net = jax.random.split(key)
    ds = load_images(cfg, k_data)
    xtr, xte = ds.images("train"), ds.images("test")
    n = ds.n_train
    depths = tuple(int(d) for d in cfg.cnn_depths)
    t0 = time.perf_counter()
    ktr = conv_kernels(xtr, depths=depths, gap=True)
    kte = conv_kernels(xte, xtr, depths=depths, gap=True)
    t_kernel = time.perf_counter() - t0
    res = {name: [] for name in ("cnn_v", "cntk_v", "cnn_gap", "cntk_gap", "cnngp_v", "cnngp_gap")}
    t_train = 0.0
    for i, depth in enumerate(progress_bar(depths, progress, "depths")):
        for pool, tag in (("flatten", "v"), ("gap", "gap")):
            pair_tr, pair_te = ktr.get(pool, depth), kte.get(pool, depth)
            pred = kernel_regression(pair_tr.ntk, ds.y_train, pair_te.ntk)
            res[f"cntk_{tag}"].append(accuracy(pred, ds.labels_test))
            pred = kernel_regression(pair_tr.nngp, ds.y_train, pair_te.nngp)
            res[f"cnngp_{tag}"].append(accuracy(pred, ds.labels_test))
            acc, seconds = _fit_cnn(cfg, ds, depth, pool, pair_tr.ntk, jax.random.fold_in(k_net, 2 * i + (pool == "gap")))
            t_train += seconds
            res[f"cnn_{tag}"].append(acc)
    return TableResult(
        depths=np.asarray(depths), **{k_: np.asarray(v) for k_, v in res.items()},
        kernel_seconds=t_kernel, train_seconds=t_train, channels=cfg.cnn_channels,
        n_train=n, n_test=ds.n_test, dataset=ds.name,
    )


# ----------------------------------------------------------------------------
# pooling on MNIST-1D
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class PoolingResult(Result):
    """Test accuracies on MNIST-1D of NTK regression, (D,) per depth of ``depths``: fc_ntk
    (fully-connected), cntk_v (flatten readout), cntk_gap (global average pooling); examples
    (10, 40), one training signal per class; seconds spent on the convolutional kernels; sizes."""

    depths: np.ndarray
    fc_ntk: np.ndarray
    cntk_v: np.ndarray
    cntk_gap: np.ndarray
    examples: np.ndarray
    kernel_seconds: float
    n_train: int
    n_test: int


def pooling_experiment(config: "str | Config" = "ci", *, key: Optional[jax.Array] = None) -> PoolingResult:
    """MNIST-1D as (40, 1, 1) images: fully-connected NTK, CNTK-V and CNTK-GAP regression at every
    depth of ``m1d_depths`` (one pass of the CNTK recursion serves all depths).

    On a one-pixel-wide image only the middle column of each 3×3 filter meets data, so the
    convolutions act as 3-tap 1-D convolutions; σ_w = √6 (σ_w²/9 per tap, 3 taps) keeps the
    pre-activation variance constant through the ReLU layers, as σ_w = √2 does for 2-D images.
    """
    cfg = resolve_config(config, PRESETS, Config)
    key = resolve_key(key, 0)
    from ..data import make_mnist1d

    src = dict(seed=cfg.m1d_seed) if cfg.m1d_seed is not None else dict(key=key)
    ds = make_mnist1d(cfg.m1d_train, cfg.m1d_test, **src)
    depths = tuple(int(d) for d in cfg.m1d_depths)
    t0 = time.perf_counter()
    sigma_w = math.sqrt(6.0)
    ktr = conv_kernels(ds.images("train"), depths=depths, gap=True, sigma_w=sigma_w)
    kte = conv_kernels(ds.images("test"), ds.images("train"), depths=depths, gap=True, sigma_w=sigma_w)
    t_kernel = time.perf_counter() - t0
    fc, v, g = [], [], []
    for d in depths:
        fc_tr, fc_te = nngp_ntk(ds.x_train, depth=d), nngp_ntk(ds.x_test, ds.x_train, depth=d)
        fc.append(accuracy(kernel_regression(fc_tr.ntk, ds.y_train, fc_te.ntk), ds.labels_test))
        for pool, out in (("flatten", v), ("gap", g)):
            pred = kernel_regression(ktr.get(pool, d).ntk, ds.y_train, kte.get(pool, d).ntk)
            out.append(accuracy(pred, ds.labels_test))
    first = [int(np.flatnonzero(ds.labels_train == c)[0]) for c in range(10)]
    return PoolingResult(
        depths=np.asarray(depths), fc_ntk=np.asarray(fc), cntk_v=np.asarray(v), cntk_gap=np.asarray(g),
        examples=ds.x_train[first], kernel_seconds=t_kernel, n_train=ds.n_train, n_test=ds.n_test,
    )


# ----------------------------------------------------------------------------
# cost against N
# ----------------------------------------------------------------------------
@dataclasses.dataclass
class CostResult(Result):
    """sizes (S,); kernel_seconds, train_seconds (S,) wall-clock seconds (best of 3, which filters out
    interference from other processes better than CPU time of multithreaded code); solve_seconds (S,)
    CPU seconds of a single-threaded Cholesky solve (best of 3); cg_seconds (S,) wall-clock seconds
    (one run after a compiling one) of the matrix-free solve (:func:`ntknotes.regression.solve_operator`, preconditioned
    CG on a :class:`~ntknotes.operators.KernelOperator`, ridge ``cg_ridge`` × the mean diagonal, relative
    residual ``cg_tol``), which forms no N×N matrix; cg_iterations (S,); cg_bytes (S,) its estimated
    peak memory (:meth:`~ntknotes.operators.KernelOperator.estimate`); kernel_bytes (S,) memory of the
    N×N float64 kernel; param_bytes: memory of the net's parameters."""

    sizes: np.ndarray
    kernel_seconds: np.ndarray
    solve_seconds: np.ndarray
    train_seconds: np.ndarray
    kernel_bytes: np.ndarray
    param_bytes: int
    epochs: int
    width: int
    cg_seconds: np.ndarray
    cg_iterations: np.ndarray
    cg_bytes: np.ndarray
    cg_ridge: float
    cg_tol: float


def _best_time(fn, repeats: int = 3) -> float:
    fn()  # compile / warm up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _solve_cpu_seconds(k: np.ndarray, y: np.ndarray, repeats: int = 3, min_seconds: float = 0.05) -> float:
    """CPU seconds per call of a single-threaded Cholesky solve (K + 10⁻⁸·tr(K)/N I) a = y.

    One LAPACK thread and CPU time make the N³ growth measurable on a shared machine: wall time
    of multithreaded LAPACK depends on what else runs. Each measurement repeats the solve until
    ``min_seconds`` of CPU time have passed and divides by the count, so that small systems are not
    lost in timer resolution; the best of ``repeats`` such measurements is returned.
    """
    import scipy.linalg
    from threadpoolctl import threadpool_limits

    reg = k + 1e-8 * np.trace(k) / k.shape[0] * np.eye(k.shape[0])
    best = math.inf
    with threadpool_limits(limits=1):
        for _ in range(repeats):
            calls, t0 = 0, time.process_time()
            while True:
                scipy.linalg.cho_solve(scipy.linalg.cho_factor(reg), y)
                calls += 1
                elapsed = time.process_time() - t0
                if elapsed >= min_seconds:
                    break
            best = min(best, elapsed / calls)
    return best


def _sgd_epochs(net: MLP, p0, x: np.ndarray, y: np.ndarray, epochs: int, key: jax.Array, batch: int = 50):
    """A compiled run of ``epochs`` epochs of plain minibatch SGD (mean MSE), for timing only."""
    nb = x.shape[0] // batch
    xb = jnp.asarray(x[: nb * batch], jnp.float32).reshape(nb, batch, -1)
    yb = jnp.asarray(y[: nb * batch], jnp.float32).reshape(nb, batch, -1)

    def loss(p, xx, yy):
        return 0.5 * jnp.sum((net.apply(p, xx) - yy) ** 2) / xx.shape[0]

    @jax.jit
    def run(p):
        def step(p, batch_xy):
            g = jax.grad(loss)(p, *batch_xy)
            return jax.tree_util.tree_map(lambda a, b: a - 0.5 * b, p, g), None

        def epoch(p, _):
            return jax.lax.scan(step, p, (xb, yb))[0], None

        return jax.lax.scan(epoch, p, None, length=epochs)[0]

    return lambda: jax.block_until_ready(run(p0))


def cost_experiment(config: "str | Config" = "ci", *, key: Optional[jax.Array] = None,
                    progress: bool = False) -> CostResult:
    """Time of the NTK matrix (N²), of the Cholesky solve (N³, one thread), of the matrix-free CG solve
    (N² per product) and of training an MLP for a fixed number of epochs of minibatch SGD (N), on digits."""
    from ..operators import KernelOperator, default_mesh, fc_kernel
    from ..regression import solve_operator

    cfg = resolve_config(config, PRESETS, Config)
    key = resolve_key(key, 0)
    sizes = np.asarray(cfg.cost_sizes)
    ds = load_digits(int(sizes.max()), 1797 - int(sizes.max()), key=key)
    kw = dict(depth=1, activation="relu", sigma_w=math.sqrt(2.0))
    net = MLP(in_dim=64, width=cfg.cost_width, out_dim=10, depth=1, sigma_w=math.sqrt(2.0))
    p0 = net.init(key, dtype=jnp.float32)
    cg_ridge, cg_tol = 1e-3, 1e-6
    tk, ts, tt, kb, tc, ic, bc = [], [], [], [], [], [], []
    for n in progress_bar(sizes, progress, "sizes N"):
        x, y = ds.x_train[:n], ds.y_train[:n]
        tk.append(_best_time(lambda: jax.block_until_ready(nngp_ntk(x, **kw).ntk)))
        th = np.asarray(nngp_ntk(x, **kw).ntk)
        ts.append(_solve_cpu_seconds(th, y))
        kb.append(th.nbytes)
        op = KernelOperator(fc_kernel("ntk", **kw), x, tile=512, mesh=default_mesh(jax.devices()[:1]))
        ridge = cg_ridge * float(np.mean(np.diag(th)))
        rank = max(100, int(math.ceil(4 * math.sqrt(n))))

        def cg(op=op, y=y, ridge=ridge, rank=rank):
            return solve_operator(op, y, ridge=ridge, method="cg", tol=cg_tol, rank=rank, key=key,
                                  on_failure="raise")

        cg()  # compile
        sol = cg()
        tc.append(sol.seconds)
        ic.append(sol.iterations)
        bc.append(op.estimate(y.shape[1], rank=rank)["bytes"])
        tt.append(_best_time(_sgd_epochs(net, p0, x, y, cfg.cost_epochs, key), repeats=2))
    pbytes = sum(int(a.nbytes) for a in jax.tree_util.tree_leaves(p0))
    return CostResult(sizes=sizes, kernel_seconds=np.asarray(tk), solve_seconds=np.asarray(ts),
                      train_seconds=np.asarray(tt), kernel_bytes=np.asarray(kb), param_bytes=pbytes,
                      epochs=cfg.cost_epochs, width=cfg.cost_width, cg_seconds=np.asarray(tc),
                      cg_iterations=np.asarray(ic), cg_bytes=np.asarray(bc), cg_ridge=cg_ridge, cg_tol=cg_tol)


# ----------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------
def plot_toy(r: ToyResult):
    """Left: trained nets of growing width against NTK regression; right: the NTK-GP band over time."""
    from ..plotting import COLORS, figure

    fig, axes = figure(1 + len(r.times), width=3.0, height=2.8, sharey=True)  # small multiples
    ax = axes[0]
    for i, w in enumerate(r.widths):
        ax.plot(r.grid, r.net_predictions[i], color=COLORS[i + 1], lw=1.3, label=f"net, width {w}")
    ax.plot(r.grid, r.ntk_mean, "k--", lw=1.2, label="NTK regression")
    ax.plot(r.x_train, r.y_train, "o", color="k", ms=4)
    ax.set(title="trained to convergence", xlabel="x", ylabel="f(x)")
    ax.legend(loc="lower right")
    for j, t in enumerate(r.times):
        ax = axes[1 + j]
        m, s = r.gp_mean[j], r.gp_std[j]
        ax.fill_between(r.grid, m - 2 * s, m + 2 * s, color="0.8", label="±2 s.d.")
        ax.plot(r.grid, m, color=COLORS[0], label="NTK-GP mean")
        ax.plot(r.x_train, r.y_train, "o", color="k", ms=4)
        ax.set(title=f"t = {'∞' if np.isinf(t) else f'{t:g}'}", xlabel="x")
        if j == 0:
            ax.legend(loc="lower right")
    return fig


def plot_mlp(r: MLPResult):
    """Left: test accuracy against width with the kernel predictors; right: distance to the NTK dynamics."""
    from ..plotting import COLORS, LABELS, add_slope_guide, figure

    fig, (a, b) = figure(2)
    a.semilogx(r.widths, 100 * r.net_acc, "o-", color=COLORS[0], label="trained MLP")
    a.axhline(100 * r.ntk_acc_t, color=COLORS[1], ls=":", label=f"NTK, same step ({r.steps})")
    a.axhline(100 * r.ntk_acc, color=COLORS[1], ls="--", label="NTK regression (t = ∞)")
    a.axhline(100 * r.nngp_acc, color=COLORS[2], ls="-.", label="NNGP regression")
    a.set(xlabel=LABELS["width"], ylabel=LABELS["accuracy"], title="digits")
    a.legend(loc="lower right")
    b.loglog(r.widths, r.distance, "o-", color=COLORS[0], label="‖f_net − f_NTK‖ / ‖f_NTK‖")
    add_slope_guide(b, r.widths, -0.5, r.distance[0])
    b.set(xlabel=LABELS["width"], ylabel="relative distance (test set)", title="net vs infinite-width dynamics")
    b.legend(loc="lower left")
    return fig


def plot_table(r: TableResult):
    """Test accuracy of CNN-V, CNTK-V, CNN-GAP, CNTK-GAP against depth."""
    from ..plotting import COLORS, LABELS, figure

    fig, ax = figure(1, width=5.6, height=3.4)  # room for the legend below
    for name, col, style in (("cnn_v", COLORS[0], "o-"), ("cntk_v", COLORS[0], "s--"),
                             ("cnn_gap", COLORS[1], "o-"), ("cntk_gap", COLORS[1], "s--")):
        ax.plot(r.depths, 100 * getattr(r, name), style, color=col, label=name.upper().replace("_", "-"))
    ax.set(xlabel="depth (convolution layers)", ylabel=LABELS["accuracy"], xticks=r.depths,
           title=f"{r.dataset}: {r.n_train} training images, {r.channels} channels")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    return fig


def plot_pooling(r: PoolingResult):
    """Left: one MNIST-1D signal per class; right: test accuracy of the kernels against depth."""
    from ..plotting import COLORS, LABELS, figure

    fig, (a, b) = figure(2, width=3.6, height=3.2)  # room for the legend below
    for c, x in enumerate(r.examples):
        a.plot(np.arange(x.size), x - 4.0 * c, color=COLORS[c % len(COLORS)], lw=1.1)
    a.set(yticks=-4.0 * np.arange(10), yticklabels=[str(c) for c in range(10)], xlabel="position",
          ylabel="class", title="MNIST-1D, one example per class")
    b.plot(r.depths, 100 * r.cntk_gap, "s--", color=COLORS[1], label="CNTK-GAP")
    b.plot(r.depths, 100 * r.cntk_v, "s--", color=COLORS[0], label="CNTK-V")
    b.plot(r.depths, 100 * r.fc_ntk, "d:", color=COLORS[2], label="fully-connected NTK")
    b.axhline(10, color="0.6", lw=0.8, ls="-", label="chance")
    b.set(xlabel="depth (layers)", ylabel=LABELS["accuracy"], xticks=r.depths, ylim=(0, 100),
          title=f"NTK regression, {r.n_train} training signals")
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return fig


def plot_cost(r: CostResult):
    """CPU time of the kernel, the solve and SGD training against N, log-log."""
    from ..plotting import COLORS, LABELS, add_slope_guide, figure

    fig, (a, b) = figure(2, width=3.6, height=3.4)  # room for the legend below
    a.loglog(r.sizes, r.kernel_seconds, "o-", color=COLORS[0], label="NTK matrix")
    a.loglog(r.sizes, r.solve_seconds, "s-", color=COLORS[1], label="solve (Cholesky, 1 thread)")
    a.loglog(r.sizes, r.train_seconds, "^-", color=COLORS[2], label=f"SGD, {r.epochs} epochs")
    a.loglog(r.sizes, r.cg_seconds, "D-", color=COLORS[3], label="CG, matrix-free")
    add_slope_guide(a, r.sizes, 3.0, r.solve_seconds[0], label="slope 3")
    add_slope_guide(a, r.sizes, 1.0, r.train_seconds[0], label="slope 1", color="0.7")
    a.set(xlabel=LABELS["n_train"], ylabel="seconds")  # what each line times: CostResult
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    b.loglog(r.sizes, r.kernel_bytes / 2**20, "o-", color=COLORS[0], label="N×N kernel (float64)")
    b.loglog(r.sizes, r.cg_bytes / 2**20, "D-", color=COLORS[3], label="CG, matrix-free (estimate)")
    b.axhline(r.param_bytes / 2**20, color=COLORS[2], ls="--", label=f"MLP parameters (width {r.width})")
    b.set(xlabel=LABELS["n_train"], ylabel="memory (MiB)")
    for ax in (a, b):
        ax.set_xticks(r.sizes, [str(int(n)) for n in r.sizes])
        ax.minorticks_off()
    b.legend(loc="upper left")
    return fig
