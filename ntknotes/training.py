"""Real gradient-descent training of any ``apply(params, x)``, compiled as one ``lax.scan``.

Losses (``loss=``):

* ``"mse"``: the total squared loss ½‖f(X) − Y‖² (the convention of the NTK dynamics
  du/dt = −Θ(u − y) with Θ = J Jᵀ unnormalized);
* ``"mean_mse"``: ½‖f(X) − Y‖² / N (the NTK is then Θ/N);
* ``"xent"``: mean softmax cross-entropy against one-hot targets.

Recording happens at the requested steps (``record_steps``: sorted step counts between 0
and ``steps``; step s means after s updates) without leaving the compiled loop.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_choice, check_finite, check_positive, check_positive_int

__all__ = ["LOSSES", "loss_function", "TrainHistory", "gradient_descent"]

Array = jax.Array


def _mse(f: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((f - y) ** 2)


def _mean_mse(f: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((f - y) ** 2) / f.shape[0]


def _xent(f: Array, y: Array) -> Array:
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1))


LOSSES: dict[str, Callable[[Array, Array], Array]] = {"mse": _mse, "mean_mse": _mean_mse, "xent": _xent}


def loss_function(name: str) -> Callable[[Array, Array], Array]:
    """The loss (outputs (N, k), targets (N, k)) -> scalar registered under ``name``."""
    check_choice(name, "loss", tuple(LOSSES))
    return LOSSES[name]


@dataclasses.dataclass
class TrainHistory:
    """What a training run recorded.

    Attributes:
      steps: (R,) the recorded step counts.
      loss: (R,) training loss at those steps.
      outputs: (R, N, k) network outputs on the training inputs.
      eval_outputs: (R, M, k) outputs on ``x_eval``, or ``None``.
      tracked: pytree whose leaves have a leading axis R: ``param_fn(params)`` at each step, or ``None``.
      params: the parameters after the last step.
      diverged: whether the loss became NaN or infinite.
    """

    steps: np.ndarray
    loss: np.ndarray
    outputs: np.ndarray
    eval_outputs: Optional[np.ndarray]
    tracked: Any
    params: Any
    diverged: bool = False


def _as_2d(a: Array) -> Array:
    return a[:, None] if a.ndim == 1 else a


def _record_schedule(record_steps: Optional[Sequence[int]], steps: int) -> np.ndarray:
    if record_steps is None:
        return np.unique(np.linspace(0, steps, min(steps + 1, 101)).round().astype(np.int64))
    rec = np.unique(np.asarray(record_steps, dtype=np.int64))
    if rec.size == 0 or rec[0] < 0 or rec[-1] > steps:
        raise ValueError(f"record_steps must lie in [0, steps={steps}], got {list(record_steps)[:10]}")
    return rec


def gradient_descent(
    apply: Callable[[Any, Array], Array],
    params: Any,
    x: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    loss: str = "mse",
    record_steps: Optional[Sequence[int]] = None,
    x_eval: Optional[Array] = None,
    param_fn: Optional[Callable[[Any], Any]] = None,
    raise_on_divergence: bool = True,
) -> TrainHistory:
    """Full-batch gradient descent θ ← θ − lr ∇L(θ), compiled as one ``lax.scan``.

    Args:
      apply: ``apply(params, x)`` returning (N, k) or (N,).
      params: initial parameters (any pytree).
      x: training inputs (N, ...); y: targets (N, k) or (N,).
      lr: step size η > 0.
      steps: number of updates.
      loss: ``"mse"`` (½‖f − y‖², default), ``"mean_mse"`` or ``"xent"``.
      record_steps: step counts to record (default: about 100 evenly spaced, 0 and ``steps`` included).
      x_eval: optional inputs (M, ...) whose outputs are also recorded.
      param_fn: optional map params -> small pytree recorded at each recorded step
        (e.g. ``lambda p: p[0]["W"][:3, 0]``).
      raise_on_divergence: raise FloatingPointError if the loss becomes NaN/inf; with False
        the history is returned with ``diverged=True`` (to demonstrate unstable step sizes).
    Returns:
      A :class:`TrainHistory`.
    Raises:
      ValueError for mismatched shapes, non-finite data, lr <= 0 or steps < 1, and
      FloatingPointError when the loss becomes NaN or infinite (unless ``raise_on_divergence=False``).
    """
    lr = check_positive(lr, "lr")
    steps = check_positive_int(steps, "steps")
    loss_fn = loss_function(loss)
    check_finite(x, "x")
    check_finite(y, "y")
    y2 = _as_2d(jnp.asarray(y))
    out0 = jax.eval_shape(lambda p: _as_2d(apply(p, x)), params)
    if out0.shape != y2.shape:
        raise ValueError(f"targets y must match the network outputs {out0.shape}, got {tuple(y2.shape)}")
    rec = _record_schedule(record_steps, steps)
    f = lambda p, xx: _as_2d(apply(p, xx))  # noqa: E731
    track = param_fn if param_fn is not None else (lambda p: ())
    n_rec = rec.size

    def snapshot(p):
        out = f(p, x)
        ev = f(p, x_eval) if x_eval is not None else jnp.zeros((0,))
        return loss_fn(out, y2), out, ev, track(p)

    @jax.jit
    def run(p0):
        snap0 = snapshot(p0)
        bufs = jax.tree_util.tree_map(lambda a: jnp.zeros((n_rec,) + a.shape, a.dtype), snap0)
        rec_arr = jnp.asarray(rec)

        def write(bufs, i, p):
            snap = snapshot(p)
            return jax.tree_util.tree_map(lambda b, s: b.at[i].set(s), bufs, snap)

        ptr0 = jnp.asarray(0)
        bufs, ptr0 = jax.lax.cond(rec_arr[0] == 0, lambda b: (write(b, 0, p0), 1), lambda b: (b, 0), bufs)

        def body(carry, step):
            p, bufs, ptr = carry
            grads = jax.grad(lambda q: loss_fn(f(q, x), y2))(p)
            p = jax.tree_util.tree_map(lambda a, g: a - lr * g, p, grads)
            hit = (ptr < n_rec) & (rec_arr[jnp.minimum(ptr, n_rec - 1)] == step)
            bufs, ptr = jax.lax.cond(
                hit, lambda b: (write(b, jnp.minimum(ptr, n_rec - 1), p), ptr + 1), lambda b: (b, ptr), bufs
            )
            return (p, bufs, ptr), None

        (p, bufs, _), _ = jax.lax.scan(body, (p0, bufs, ptr0), jnp.arange(1, steps + 1))
        return p, bufs

    p_final, (losses, outs, evs, tracked) = run(params)
    losses = np.asarray(losses)
    diverged = not bool(np.all(np.isfinite(losses)))
    if diverged and raise_on_divergence:
        first = int(rec[np.argmax(~np.isfinite(losses))])
        raise FloatingPointError(f"training diverged: the loss is not finite by step {first} (lr={lr}); lower lr")
    return TrainHistory(
        steps=rec,
        loss=losses,
        outputs=np.asarray(outs),
        eval_outputs=np.asarray(evs) if x_eval is not None else None,
        tracked=jax.tree_util.tree_map(np.asarray, tracked) if param_fn is not None else None,
        params=p_final,
        diverged=diverged,
    )
