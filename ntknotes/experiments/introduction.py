"""The Introduction's teaser: a wide network trained by gradient descent against NTK regression.

On scikit-learn's digits (10 classes, centred one-hot targets) we compare

* a wide ReLU MLP in the NTK parameterization, trained by full-batch gradient descent on
  the total squared loss ½‖f(X) − Y‖²; to start from f₀ ≡ 0 (so that no initial-function
  term remains at the end) the model is the difference of two copies of the same random
  network, f = (g(θ_a, ·) − g(θ_b, ·))/√2 with θ_a = θ_b at initialization, whose tangent
  kernel is that of g;
* the infinite-width prediction of the same architecture, f_NTK(x) = Θ(x, X) Θ(X, X)⁻¹ Y,
  with Θ the analytic NTK (:func:`ntknotes.kernels.nngp_ntk`);
* the analytic finite-time prediction f_T(x) = Θ(x, X) Θ⁻¹ (I − (I − ηΘ)^T) Y, which
  separates the error of stopping after T steps from the error of finite width.

The network is trained at several widths (same data, same step size) so that the gap
between network and kernel can be followed as the width grows; the widest one is the
network shown in detail.

Usage::

    res = teaser("ci", key=jax.random.PRNGKey(0))
    res.acc_nn, res.acc_ntk, res.agreement, res.rel_rmse, res.rel_rmse_by_width
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, check_positive_int
from ..data import load_digits
from ..kernels import nngp_ntk
from ..linalg import eigh_psd, solve_psd
from ..networks import MLP
from ..stats import relative_error
from ..training import gradient_descent
from .common import Result, progress_bar, resolve_config, resolve_key

__all__ = ["TeaserConfig", "TeaserResult", "PRESETS", "teaser", "kernel_predictions", "zero_output_pair"]


@dataclasses.dataclass(frozen=True)
class TeaserConfig:
    """Sizes of the teaser experiment.

    Attributes:
      n_train, n_test: digits in the training and test split (together at most 1,797).
      widths: hidden widths n (of each of the two network copies) to train, increasing;
        the last is the network compared in detail.
      depth: number of hidden layers L.
      steps: gradient-descent steps T.
      lr_factor: the step size is η = lr_factor / λ_max(Θ(X, X)) (must be < 2 for stability).
      sigma_w, sigma_b: weight and bias scales of the ReLU network.
      dtype: float type of the networks, ``"float32"`` (default: the gap being measured is
        several percent, far above float32 rounding, and training runs twice as fast on a CPU)
        or ``"float64"``. The kernels use ntknotes' default precision (float64 unless
        ``NTKNOTES_X64=0``).
      n_record: number of steps at which the training loss is recorded.
    """

    n_train: int = 300
    n_test: int = 300
    widths: tuple = (512, 1024, 2048, 4096)
    depth: int = 1
    steps: int = 1000
    lr_factor: float = 1.5
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.1
    dtype: str = "float32"
    n_record: int = 41

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test", "depth", "steps", "n_record"):
            check_positive_int(getattr(self, name), name)
        if not isinstance(self.widths, (tuple, list)) or len(self.widths) == 0:
            raise TypeError(f"widths must be a non-empty tuple of positive integers, got {self.widths!r}")
        widths = tuple(check_positive_int(w, "widths[i]") for w in self.widths)
        if list(widths) != sorted(set(widths)):
            raise ValueError(f"widths must be strictly increasing, got {widths}")
        object.__setattr__(self, "widths", widths)
        if self.n_train + self.n_test > 1797:
            raise ValueError(f"n_train + n_test must be at most 1797 digits, got {self.n_train + self.n_test}")
        lr = check_positive(self.lr_factor, "lr_factor")
        if lr >= 2.0:
            raise ValueError(f"lr_factor must be below 2 (gradient descent diverges beyond), got {lr}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")


PRESETS = {
    # about 25 s on 2 CPU cores
    "ci": TeaserConfig(),
    # (almost) all of digits, two hidden layers and far wider networks: for a GPU
    "paper": TeaserConfig(n_train=1500, n_test=297, widths=(1024, 4096, 16384), depth=2,
                          steps=3000),
}


@dataclasses.dataclass
class TeaserResult(Result):
    """What :func:`teaser` measured (M test points, k = 10 classes, R recorded steps, W widths).

    Attributes:
      nn_test: (M, k) outputs of the trained widest network on the test inputs.
      ntk_test: (M, k) infinite-width NTK regression Θ(x, X)Θ⁻¹Y on the test inputs.
      ntk_test_at_T: (M, k) the analytic prediction after the same T steps of gradient descent.
      labels_test: (M,) true digit labels.
      steps: (R,) recorded step counts; loss_nn: (R,) the widest network's training loss there;
      loss_ntk: (R,) the training loss that the analytic NTK dynamics predicts at those steps.
      acc_nn, acc_ntk: test accuracies (argmax of the outputs) of the widest network and the kernel.
      agreement: fraction of test points on which both predict the same class.
      rel_rmse: ‖f_NN − f_NTK‖ / ‖f_NTK‖ over the test outputs (widest network).
      rel_rmse_time: ‖f_T − f_NTK‖ / ‖f_NTK‖, the part of the gap due to stopping at step T.
      widths: (W,) the trained widths; rel_rmse_by_width, agreement_by_width, acc_nn_by_width:
        (W,) the same measures for every width.
      lr: the step size used; num_params: trainable scalars of the widest two-copy model;
      n_train: copied from the configuration.
    """

    nn_test: np.ndarray
    ntk_test: np.ndarray
    ntk_test_at_T: np.ndarray
    labels_test: np.ndarray
    steps: np.ndarray
    loss_nn: np.ndarray
    loss_ntk: np.ndarray
    acc_nn: float
    acc_ntk: float
    agreement: float
    rel_rmse: float
    rel_rmse_time: float
    widths: np.ndarray
    rel_rmse_by_width: np.ndarray
    agreement_by_width: np.ndarray
    acc_nn_by_width: np.ndarray
    lr: float
    num_params: int
    n_train: int


def kernel_predictions(
    theta_train: np.ndarray, theta_test: np.ndarray, y: np.ndarray, lr: float, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions of linearized gradient descent started from f₀ = 0 with kernel Θ.

    Args:
      theta_train: (N, N) Θ(X, X), symmetric positive definite.
      theta_test: (M, N) Θ(x, X) for the test inputs.
      y: (N, k) training targets.
      lr: step size η.
      steps: (R,) step counts t at which to report the training loss; the last is T.
    Returns:
      (f_inf, f_T, loss): the test predictions Θ(x,X)Θ⁻¹Y (M, k) and after T steps (M, k),
      and the training loss ½‖u_t − Y‖² = ½ Σ_i (1 − ηλ_i)^{2t} ‖v_iᵀY‖² at each step (R,).
    Raises:
      ValueError if Θ(X, X) is not positive definite or the shapes disagree.
    """
    eig = eigh_psd(theta_train, "theta_train")
    lam, v = np.asarray(eig.values), np.asarray(eig.vectors)
    if lam[0] <= 0:
        raise ValueError(f"theta_train must be positive definite; smallest eigenvalue {lam[0]:.3g}")
    y = np.asarray(y)
    theta_test = np.asarray(theta_test)
    if y.ndim != 2 or y.shape[0] != lam.size or theta_test.shape[1:] != (lam.size,):
        raise ValueError(f"need y (N, k) and theta_test (M, N) with N = {lam.size}; got {y.shape}, {theta_test.shape}")
    coef = v.T @ y  # (N, k) targets in the eigenbasis
    steps = np.asarray(steps)
    decay = (1.0 - lr * lam)[None, :] ** (2 * steps[:, None])  # (R, N)
    loss = 0.5 * decay @ np.sum(coef**2, axis=1)
    keep_T = 1.0 - (1.0 - lr * lam) ** int(steps[-1])
    f_inf = theta_test @ np.asarray(solve_psd(theta_train, y, name="theta_train"))
    f_T = theta_test @ (v @ (coef * (keep_T / lam)[:, None]))
    return f_inf, f_T, loss


def teaser(config: Union[str, TeaserConfig] = "ci", *, key: Optional[jax.Array] = None,
           progress: bool = False) -> TeaserResult:
    """Train a wide MLP on digits and compare it with infinite-width NTK regression.

    Args:
      config: a preset name (``"ci"``, ``"paper"``; see :mod:`ntknotes.experiments.common`) or a
        :class:`TeaserConfig`.
      key: JAX PRNG key (data split and network initialization); None: ``PRNGKey(0)``.
      progress: a progress bar over the widths.
    Returns:
      A :class:`TeaserResult`.
    Raises:
      TypeError for a key or a config of the wrong type; ValueError for an unknown preset.
    """
    cfg = resolve_config(config, PRESETS, TeaserConfig)
    key = resolve_key(key, 0)
    dtype = jnp.dtype(cfg.dtype)
    k_data, k_net = jax.random.split(key)
    ds = load_digits(cfg.n_train, cfg.n_test, key=k_data, targets="onehot_centered")
    x_train, y_train = jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train, dtype)
    x_test = jnp.asarray(ds.x_test, dtype)

    def make(width: int) -> MLP:
        return MLP(in_dim=ds.in_dim, width=width, depth=cfg.depth, out_dim=ds.y_train.shape[1],
                   activation="relu", sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b, parameterization="ntk")

    # infinite-width kernels of the architecture (they do not depend on the width)
    spec = dict(depth=cfg.depth, activation="relu", sigma_w=cfg.sigma_w, sigma_b=cfg.sigma_b, parameterization="ntk")
    theta = np.asarray(nngp_ntk(ds.x_train, **spec).ntk, dtype=np.float64)
    theta_test = np.asarray(nngp_ntk(ds.x_test, ds.x_train, **spec).ntk, dtype=np.float64)
    lr = cfg.lr_factor / float(np.linalg.eigvalsh(theta)[-1])
    rec = np.unique(np.linspace(0, cfg.steps, cfg.n_record).round().astype(np.int64))
    f_inf, f_T, loss_ntk = kernel_predictions(theta, theta_test, ds.y_train, lr, rec)
    labels = np.asarray(ds.labels_test)
    pred_ntk = f_inf.argmax(1)

    rel, agree, acc = [], [], []
    for width in progress_bar(cfg.widths, progress, "teaser widths"):
        net = make(width)
        hist = _train_pair(net, k_net, dtype, x_train, y_train, x_test, lr, cfg.steps, rec)
        nn_test = np.asarray(hist.eval_outputs[-1], dtype=np.float64)
        pred_nn = nn_test.argmax(1)
        rel.append(relative_error(nn_test, f_inf))
        agree.append(float(np.mean(pred_nn == pred_ntk)))
        acc.append(float(np.mean(pred_nn == labels)))

    return TeaserResult(
        nn_test=nn_test,
        ntk_test=f_inf,
        ntk_test_at_T=f_T,
        labels_test=labels,
        steps=np.asarray(hist.steps),
        loss_nn=np.asarray(hist.loss, dtype=np.float64),
        loss_ntk=loss_ntk,
        acc_nn=acc[-1],
        acc_ntk=float(np.mean(pred_ntk == labels)),
        agreement=agree[-1],
        rel_rmse=rel[-1],
        rel_rmse_time=relative_error(f_T, f_inf),
        widths=np.asarray(cfg.widths),
        rel_rmse_by_width=np.asarray(rel),
        agreement_by_width=np.asarray(agree),
        acc_nn_by_width=np.asarray(acc),
        lr=lr,
        num_params=2 * net.num_params,
        n_train=cfg.n_train,
    )


def zero_output_pair(net: MLP) -> tuple[Callable[..., dict], Callable[[dict, jax.Array], jax.Array]]:
    """The model f = (g(θ_a, ·) − g(θ_b, ·))/√2 built from two copies of ``net`` (g).

    Initialized with θ_a = θ_b, it outputs exactly 0 everywhere, while its tangent kernel,
    (Θ̂_a + Θ̂_b)/2, equals that of one copy, so gradient descent follows the kernel
    dynamics of ``net`` without an initial-function offset.

    Returns:
      (init, apply): ``init(key, dtype=None) -> {"a": params, "b": params}`` and
      ``apply(params, x) -> (N, out_dim)`` for x of shape (N, in_dim).
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an ntknotes.networks.MLP, got {type(net).__name__}")

    def init(key: jax.Array, dtype=None) -> dict:
        p = net.init(key, dtype)
        return {"a": p, "b": jax.tree_util.tree_map(jnp.copy, p)}

    def apply(params: dict, x: jax.Array) -> jax.Array:
        return (net.apply(params["a"], x) - net.apply(params["b"], x)) / math.sqrt(2.0)

    return init, apply


def _train_pair(net: MLP, key: jax.Array, dtype, x, y, x_eval, lr: float, steps: int, rec: np.ndarray):
    """Gradient descent on :func:`zero_output_pair` of ``net``, recording the loss at ``rec``."""
    init, apply = zero_output_pair(net)
    return gradient_descent(apply, init(key, dtype), x, y, lr=lr, steps=steps, loss="mse", record_steps=rec,
                            x_eval=x_eval)
