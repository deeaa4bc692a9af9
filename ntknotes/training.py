"""Real training of any ``apply(params, x)``: one trainer, compiled as one ``lax.scan``.

:func:`train` runs full-batch gradient descent, minibatch SGD (``batch_size``, PRNG ``key``)
and heavy-ball momentum, on the network itself or on its linearization around the initial
parameters (``linearized=True``, see :func:`linearize`).  :func:`gradient_descent` is the
full-batch special case; :func:`train_ensemble` trains many independently initialized
members together with ``jax.vmap``, a chunk of members at a time.

Losses (``loss=``):

* ``"mse"``: the total squared loss ½‖f(X) − Y‖² (the convention of the NTK dynamics
  du/dt = −Θ(u − y) with Θ = J Jᵀ unnormalized);
* ``"mean_mse"``: ½‖f(X) − Y‖² / N (the NTK is then Θ/N);
* ``"xent"``: mean softmax cross-entropy against one-hot targets.

With minibatches of B of the N points the batch loss of ``"mse"`` is multiplied by N/B, so
that its gradient is an unbiased estimate of the full-batch gradient for every loss.

Update (heavy ball, momentum μ): v ← μ v + ∇L(θ), θ ← θ − η v; μ = 0 is plain (S)GD.

Recording happens at the requested steps (``record_steps``: step counts between 0 and
``steps``; step s means after s updates) without leaving the compiled loop: the full-batch
training loss, the outputs on the training inputs and on ``x_eval``, and ``param_fn(params)``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_bool, check_choice, check_finite, check_key, check_nonnegative, check_positive, check_positive_int

__all__ = [
    "LOSSES",
    "loss_function",
    "TrainHistory",
    "linearize",
    "train",
    "gradient_descent",
    "train_ensemble",
]

Array = jax.Array
ApplyFn = Callable[[Any, Array], Array]


def _mse(f: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((f - y) ** 2)


def _mean_mse(f: Array, y: Array) -> Array:
    return 0.5 * jnp.sum((f - y) ** 2) / f.shape[0]


def _xent(f: Array, y: Array) -> Array:
    return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1))


LOSSES: dict[str, Callable[[Array, Array], Array]] = {"mse": _mse, "mean_mse": _mean_mse, "xent": _xent}
_SUM_LOSSES = ("mse",)  # losses that grow with the number of points (rescaled by N/B on minibatches)


def loss_function(name: str) -> Callable[[Array, Array], Array]:
    """The loss (outputs (N, k), targets (N, k)) -> scalar registered under ``name``."""
    check_choice(name, "loss", tuple(LOSSES))
    return LOSSES[name]


@dataclasses.dataclass
class TrainHistory:
    """What a training run recorded.

    For :func:`train_ensemble` every array carries a leading member axis E.

    Attributes:
      steps: (R,) the recorded step counts.
      loss: (R,) full-batch training loss at those steps ((E, R) for ensembles).
      outputs: (R, N, k) outputs on the training inputs.
      eval_outputs: (R, M, k) outputs on ``x_eval``, or ``None``.
      tracked: pytree whose leaves have a leading axis R: ``param_fn(params)`` at each step, or ``None``.
      params: the parameters after the last step (ensembles: stacked, or ``None`` unless ``keep_params``).
      diverged: whether the loss became NaN or infinite (for any member).
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


def _tree_sub(a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(lambda u, v: u - v, a, b)


def linearize(apply: ApplyFn, params0: Any) -> ApplyFn:
    """The first-order Taylor model of a network around ``params0``.

    f_lin(θ, x) = f(θ₀, x) + J₀(x)(θ − θ₀), evaluated with one ``jax.jvp`` (a forward pass
    and its tangent), never a Jacobian.  It is linear in θ, so gradient descent on it with
    the MSE loss follows the kernel dynamics of the empirical NTK at θ₀ exactly.

    Args:
      apply: ``apply(params, x)`` of the network, x (N, ...) -> (N, k) or (N,).
      params0: the expansion point θ₀ (any pytree; usually the initial parameters).
    Returns:
      ``f_lin(params, x)`` with the shape of ``apply(params, x)``; ``params`` has the structure of ``params0``.
    """
    if not callable(apply):
        raise TypeError(f"apply must be callable as apply(params, x), got {type(apply).__name__}")
    leaves0, tree0 = jax.tree_util.tree_flatten(params0)
    if not leaves0:
        raise ValueError("params0 has no array leaves to linearize around")

    def f_lin(params: Any, x: Array) -> Array:
        leaves, tree = jax.tree_util.tree_flatten(params)
        if tree != tree0 or any(jnp.shape(a) != jnp.shape(b) for a, b in zip(leaves, leaves0)):
            raise ValueError("params must have the structure and leaf shapes of params0")
        out, tangent = jax.jvp(lambda p: apply(p, x), (params0,), (_tree_sub(params, params0),))
        return out + tangent

    return f_lin


@dataclasses.dataclass(frozen=True)
class _Config:
    lr: float
    steps: int
    loss: str
    momentum: float
    batch_size: Optional[int]
    linearized: bool
    rec: tuple


def _check_config(
    lr: float, steps: int, loss: str, momentum: float, batch_size: Optional[int], n: int, key: Any,
    record_steps: Optional[Sequence[int]], linearized: bool, raise_on_divergence: bool,
) -> _Config:
    if key is not None:
        check_key(key)
    check_bool(raise_on_divergence, "raise_on_divergence")
    lr = check_positive(lr, "lr")
    steps = check_positive_int(steps, "steps")
    check_choice(loss, "loss", tuple(LOSSES))
    momentum = check_nonnegative(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
        if batch_size > n:
            raise ValueError(f"batch_size must be at most the number of training points {n}, got {batch_size}")
        if batch_size < n and key is None:
            raise ValueError("minibatch SGD (batch_size < N) needs a PRNG key: pass key=jax.random.PRNGKey(...)")
        if batch_size == n:
            batch_size = None
    check_bool(linearized, "linearized")
    rec = _record_schedule(record_steps, steps)
    return _Config(lr, steps, loss, momentum, batch_size, linearized, tuple(int(r) for r in rec))


def _check_data(x: Any, y: Any, x_eval: Any) -> tuple[Array, Array, Optional[Array]]:
    for name, a in (("x", x), ("y", y)) + ((("x_eval", x_eval),) if x_eval is not None else ()):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(f"{name} must be an array, got {type(a).__name__}")
        check_finite(a, name)
    if x.ndim < 2 or y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (N, ...) and y (N, k) or (N,) with the same N; got {x.shape} and {y.shape}")
    if x_eval is not None and tuple(x_eval.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"x_eval must have the feature shape of x {tuple(x.shape[1:])}, got {tuple(x_eval.shape)}")
    return jnp.asarray(x), _as_2d(jnp.asarray(y)), (None if x_eval is None else jnp.asarray(x_eval))


def _no_track(params: Any) -> tuple:
    return ()


def _make_run(apply: ApplyFn, cfg: _Config, track: Callable) -> Callable:
    """The whole training run as a pure function ``run(params0, key, x, y, x_eval) -> (params, records)``."""
    loss_fn = LOSSES[cfg.loss]
    rec_arr = np.asarray(cfg.rec)
    n_rec = rec_arr.size
    f = lambda p, xx: _as_2d(apply(p, xx))  # noqa: E731

    def run(p0: Any, key: Array, x: Array, y: Array, x_eval: Optional[Array]) -> tuple[Any, Any]:
        n = x.shape[0]
        scale = (n / cfg.batch_size) if (cfg.batch_size is not None and cfg.loss in _SUM_LOSSES) else 1.0
        if cfg.linearized:
            # cache the forward pass at θ₀ on the training set: each step costs a tangent and its transpose
            out0, tangent = jax.linearize(lambda p: f(p, x), p0)
            train_out = lambda p: out0 + tangent(_tree_sub(p, p0))  # noqa: E731
            f_lin = linearize(f, p0)
            eval_out = (lambda p: f_lin(p, x_eval)) if x_eval is not None else None
        else:
            train_out = lambda p: f(p, x)  # noqa: E731
            eval_out = (lambda p: f(p, x_eval)) if x_eval is not None else None

        def snapshot(p):
            out = train_out(p)
            ev = eval_out(p) if eval_out is not None else jnp.zeros((0,), out.dtype)
            return loss_fn(out, y), out, ev, track(p)

        def batch_loss(p, step):
            if cfg.batch_size is None:
                return loss_fn(train_out(p), y)
            idx = jax.random.permutation(jax.random.fold_in(key, step), n)[: cfg.batch_size]
            out = train_out(p)[idx] if cfg.linearized else f(p, x[idx])
            return scale * loss_fn(out, y[idx])

        snap0 = snapshot(p0)
        bufs = jax.tree_util.tree_map(lambda a: jnp.zeros((n_rec,) + a.shape, a.dtype), snap0)
        if rec_arr[0] == 0:
            bufs = jax.tree_util.tree_map(lambda b, s: b.at[0].set(s), bufs, snap0)
        ptr0 = jnp.asarray(1 if rec_arr[0] == 0 else 0)
        rec_j = jnp.asarray(rec_arr)
        vel0 = jax.tree_util.tree_map(jnp.zeros_like, p0) if cfg.momentum > 0 else ()

        def body(carry, step):
            p, vel, bufs, ptr = carry
            g = jax.grad(batch_loss)(p, step)
            if cfg.momentum > 0:
                vel = jax.tree_util.tree_map(lambda v, gg: cfg.momentum * v + gg, vel, g)
                g = vel
            p = jax.tree_util.tree_map(lambda a, gg: a - cfg.lr * gg, p, g)
            slot = jnp.minimum(ptr, n_rec - 1)
            hit = (ptr < n_rec) & (rec_j[slot] == step)

            def write(b):
                snap = snapshot(p)
                return jax.tree_util.tree_map(lambda bb, s: bb.at[slot].set(s), b, snap), ptr + 1

            bufs, ptr = jax.lax.cond(hit, write, lambda b: (b, ptr), bufs)
            return (p, vel, bufs, ptr), None

        (p, _, bufs, _), _ = jax.lax.scan(body, (p0, vel0, bufs, ptr0), jnp.arange(1, cfg.steps + 1))
        return p, bufs

    return run


@functools.lru_cache(maxsize=16)
def _compiled_run(apply: ApplyFn, cfg: _Config, track: Callable) -> Callable:
    return jax.jit(_make_run(apply, cfg, track))


def _get_run(apply: ApplyFn, cfg: _Config, track: Callable) -> Callable:
    """The jitted run, reused across calls with the same (hashable) apply, configuration and param_fn."""
    try:
        return _compiled_run(apply, cfg, track)
    except TypeError:  # an unhashable apply or param_fn: compile for this call only
        return jax.jit(_make_run(apply, cfg, track))


_TRACER_ERRORS = (
    jax.errors.TracerArrayConversionError,
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
)


def _check_apply(apply: Any, params: Any, x: Array, y: Array) -> None:
    """Trace ``apply(params, x)`` once (no FLOPs) and explain what is wrong if it cannot be trained.

    Raises TypeError when apply is not callable or not JAX-traceable (NumPy or ``float()`` on a
    traced value), ValueError when it fails on these params and inputs or returns anything but
    (N,) or (N, k) outputs matching ``y``.
    """
    if not callable(apply):
        raise TypeError(f"apply must be callable as apply(params, x), got {type(apply).__name__}")
    try:
        raw = jax.eval_shape(apply, params, x)
    except _TRACER_ERRORS as err:
        raise TypeError(
            "apply must be JAX-traceable: it converted a traced value to NumPy or a Python number "
            "(np.asarray, float(), int() or an if on an array inside apply); use jax.numpy and jnp.where "
            f"instead. JAX said: {str(err).splitlines()[0]}"
        ) from err
    except Exception as err:  # the params do not fit the inputs (KeyError, shape errors, ...)
        shapes = jax.tree_util.tree_map(lambda a: tuple(getattr(a, "shape", ())), params)
        raise ValueError(
            f"apply(params, x) failed for x of shape {tuple(x.shape)} and params with leaf shapes {shapes}: "
            f"{type(err).__name__}: {err}"
        ) from err
    if not hasattr(raw, "shape") or raw.ndim not in (1, 2) or raw.shape[0] != x.shape[0]:
        got = getattr(raw, "shape", type(raw).__name__)
        raise ValueError(f"apply(params, x) must return outputs of shape (N,) or (N, k) with N = {x.shape[0]}, got {got}")
    out_shape = (raw.shape[0], 1) if raw.ndim == 1 else tuple(raw.shape)
    if out_shape != tuple(y.shape):
        raise ValueError(f"targets y must match the network outputs {out_shape}, got {tuple(y.shape)}")


def _divergence(losses: np.ndarray, rec: np.ndarray, lr: float, raise_on_divergence: bool) -> bool:
    bad = ~np.isfinite(losses)
    if bad.any() and raise_on_divergence:
        first = int(rec[np.argmax(bad.reshape(-1, rec.size).any(axis=0))])
        raise FloatingPointError(f"training diverged: the loss is not finite by step {first} (lr={lr}); lower lr")
    return bool(bad.any())


def train(
    apply: ApplyFn,
    params: Any,
    x: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    loss: str = "mse",
    momentum: float = 0.0,
    batch_size: Optional[int] = None,
    key: Optional[Array] = None,
    linearized: bool = False,
    record_steps: Optional[Sequence[int]] = None,
    x_eval: Optional[Array] = None,
    param_fn: Optional[Callable[[Any], Any]] = None,
    raise_on_divergence: bool = True,
) -> TrainHistory:
    """Train ``apply`` from ``params`` by (minibatch, momentum) gradient descent in one ``lax.scan``.

    Args:
      apply: ``apply(params, x)`` returning (N, k) or (N,).
      params: initial parameters θ₀ (any pytree).
      x: training inputs (N, ...); y: targets (N, k) or (N,).
      lr: step size η > 0.
      steps: number of updates.
      loss: ``"mse"`` (½‖f − y‖², default), ``"mean_mse"`` or ``"xent"``.
      momentum: heavy-ball coefficient μ in [0, 1) (v ← μv + g, θ ← θ − ηv).
      batch_size: points per step; ``None`` (or N) is full-batch. Each step draws a batch without
        replacement from ``jax.random.fold_in(key, step)``.
      key: PRNG key for the minibatches (required when ``batch_size < N``).
      linearized: train f_lin(θ) = f(θ₀) + J₀(θ − θ₀) instead of f (see :func:`linearize`);
        the recorded outputs are then those of f_lin.
      record_steps: step counts to record (default: about 100 evenly spaced, 0 and ``steps`` included).
      x_eval: optional inputs (M, ...) whose outputs are also recorded.
      param_fn: optional map params -> small pytree recorded at each recorded step
        (e.g. ``lambda p: p[0]["W"][:3, 0]``).
      raise_on_divergence: raise FloatingPointError if the loss becomes NaN/inf; with False
        the history is returned with ``diverged=True`` (to demonstrate unstable step sizes).
    Returns:
      A :class:`TrainHistory`.
    Raises:
      TypeError/ValueError for bad arguments (shapes, non-finite data, lr <= 0, steps < 1,
      momentum outside [0, 1), batch_size > N, a minibatch without key), and
      FloatingPointError when the loss becomes NaN or infinite (unless ``raise_on_divergence=False``).
    """
    x, y, x_eval = _check_data(x, y, x_eval)
    cfg = _check_config(lr, steps, loss, momentum, batch_size, x.shape[0], key, record_steps, linearized,
                        raise_on_divergence)
    _check_apply(apply, params, x, y)
    track = param_fn if param_fn is not None else _no_track
    run = _get_run(apply, cfg, track)
    key = jax.random.PRNGKey(0) if key is None else key
    p_final, (losses, outs, evs, tracked) = run(params, key, x, y, x_eval)
    rec = np.asarray(cfg.rec)
    losses = np.asarray(losses)
    diverged = _divergence(losses, rec, cfg.lr, raise_on_divergence)
    return TrainHistory(
        steps=rec,
        loss=losses,
        outputs=np.asarray(outs),
        eval_outputs=np.asarray(evs) if x_eval is not None else None,
        tracked=jax.tree_util.tree_map(np.asarray, tracked) if param_fn is not None else None,
        params=p_final,
        diverged=diverged,
    )


def gradient_descent(
    apply: ApplyFn,
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
    """Full-batch gradient descent θ ← θ − lr ∇L(θ): :func:`train` without minibatches or momentum.

    Args and return value as in :func:`train` (shapes: x (N, ...), y (N, k) or (N,),
    outputs recorded as (R, N, k)).
    """
    return train(
        apply, params, x, y, lr=lr, steps=steps, loss=loss, record_steps=record_steps,
        x_eval=x_eval, param_fn=param_fn, raise_on_divergence=raise_on_divergence,
    )


def train_ensemble(
    apply: ApplyFn,
    init: Callable[[Array], Any],
    keys: Array,
    x: Array,
    y: Array,
    *,
    lr: float,
    steps: int,
    loss: str = "mse",
    momentum: float = 0.0,
    batch_size: Optional[int] = None,
    linearized: bool = False,
    record_steps: Optional[Sequence[int]] = None,
    x_eval: Optional[Array] = None,
    param_fn: Optional[Callable[[Any], Any]] = None,
    chunk_size: Optional[int] = None,
    keep_params: bool = False,
    progress: bool = False,
    raise_on_divergence: bool = True,
) -> TrainHistory:
    """Train E independently initialized networks together: ``vmap`` over members, chunked.

    Member e is initialized with ``init(k_init)`` and draws its minibatches from ``k_batch``,
    where ``k_init, k_batch = jax.random.split(keys[e])``; it follows exactly the run that
    :func:`train` would give it.  Members are trained ``chunk_size`` at a time (one compiled
    program reused for every chunk), so memory holds one chunk of parameters at once.

    Args:
      apply: ``apply(params, x)`` returning (N, k) or (N,).
      init: ``init(key) -> params`` (e.g. ``lambda k: net.init(k)``).
      keys: (E, 2) PRNG keys, one per member (e.g. ``jax.random.split(key, E)``).
      x, y, lr, steps, loss, momentum, batch_size, linearized, record_steps, x_eval, param_fn, raise_on_divergence: as in :func:`train`.
      chunk_size: members per compiled batch (default: all of them).
      keep_params: also return the final parameters of every member, stacked on a leading axis.
      progress: show a tqdm progress bar over chunks (on stderr).
    Returns:
      A :class:`TrainHistory` whose arrays have a leading member axis: loss (E, R),
      outputs (E, R, N, k), eval_outputs (E, R, M, k), tracked leaves (E, R, ...).
    """
    if not callable(init):
        raise TypeError(f"init must be callable as init(key) -> params, got {type(init).__name__}")
    check_key(keys, "keys", batch=True)
    check_bool(keep_params, "keep_params")
    check_bool(progress, "progress")
    n_members = int(keys.shape[0])
    chunk = n_members if chunk_size is None else min(check_positive_int(chunk_size, "chunk_size"), n_members)
    x, y, x_eval = _check_data(x, y, x_eval)
    cfg = _check_config(lr, steps, loss, momentum, batch_size, x.shape[0], keys[0], record_steps, linearized,
                        raise_on_divergence)
    _check_apply(apply, jax.eval_shape(init, keys[0]), x, y)
    track = param_fn if param_fn is not None else _no_track
    run = _make_run(apply, cfg, track)

    def member(k: Array) -> tuple[Any, Any]:
        k_init, k_batch = jax.random.split(k)
        return run(init(k_init), k_batch, x, y, x_eval)

    run_chunk = jax.jit(jax.vmap(member))
    n_chunks = math.ceil(n_members / chunk)
    pieces = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_members, desc="ensemble", unit="net", file=sys.stderr)
    for c in range(n_chunks):
        kc = keys[c * chunk : (c + 1) * chunk]
        m = kc.shape[0]
        if m < chunk:  # pad the last chunk so that one compilation serves all chunks
            kc = jnp.concatenate([kc, jnp.broadcast_to(kc[-1:], (chunk - m, 2))])
        p_final, bufs = run_chunk(kc)
        take = lambda a: np.asarray(a)[:m]  # noqa: E731
        pieces.append((jax.tree_util.tree_map(take, p_final) if keep_params else None, jax.tree_util.tree_map(take, bufs)))
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    cat = lambda *a: np.concatenate(a, axis=0)  # noqa: E731
    losses, outs, evs, tracked = jax.tree_util.tree_map(cat, *[b for _, b in pieces])
    params = jax.tree_util.tree_map(cat, *[p for p, _ in pieces]) if keep_params else None
    rec = np.asarray(cfg.rec)
    diverged = _divergence(losses, rec, cfg.lr, raise_on_divergence)
    return TrainHistory(
        steps=rec,
        loss=losses,
        outputs=outs,
        eval_outputs=evs if x_eval is not None else None,
        tracked=tracked if param_fn is not None else None,
        params=params,
        diverged=diverged,
    )
