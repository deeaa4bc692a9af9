"""Fast path: the fused recursion for a stack of identical Dense + φ layers.

For ``serial(Dense(n_1), φ, Dense(n_2), φ, ..., Dense(k))`` with one σ_w, one bias setting, one
parameterization and one φ throughout, the layer maps of :mod:`ntknotes.stax` fold into::

    C^0 = x·x'/d,    Σ^1 = σ_w² C^0 + σ_b²,    Θ^1 = a_0 C^0 + b_0
    C^l, Ċ^l = E[φ(u)φ(v)], E[φ'(u)φ'(v)] under Σ^l
    Σ^{l+1} = σ_w² C^l + σ_b²,   Θ^{l+1} = Θ^l σ_w² Ċ^l + a_l C^l + b_l

with (a_l, b_l) = (σ_w², σ_b²) in the NTK parameterization and (fan_in_l, 1[bias]) in the
standard one, run as one ``lax.scan`` over layers (unrolled, XLA splits every layer into several
fusions that recompute the arccos: 6× slower on CPU), and for the ReLU family on correlations with
per-point √q and 1/√q precomputed.  :func:`ntknotes.stax.base.Layer.kernel` takes this path when the
description matches (:func:`match`); it equals the generic path to rounding.

Activations on the Hermite series (:mod:`ntknotes.hermite_duals`) get their per-point data once per
block of points and layer, next to the diagonal pass (:func:`point_inputs`): each point's series
coefficients and tails and 1/√q. A tile then only evaluates the two K-term polynomials in
ρ = Σ·(1/√q1)(1/√q2) per entry, instead of recomputing the coefficients (a table lookup and a
Chebyshev sum per point) for its rows and columns in every layer.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import hermite_duals
from ..activations import Activation
from .layers import Dense, Elementwise

Array = jax.Array

__all__ = ["FCSpec", "match", "flat_layers", "row_exponents", "needs_scaling", "diag_recursion", "cross_recursion",
           "point_inputs"]


@dataclasses.dataclass(frozen=True)
class FCSpec:
    """A matched stack: depth L (hidden layers), φ, σ_w², σ_b², and the NTK factors (a_l, b_l)."""

    depth: int
    act: Activation
    sw2: float
    sb2: float
    a: tuple
    b: tuple

    def constants(self, dtype) -> tuple:
        return (jnp.asarray(self.sw2, dtype), jnp.asarray(self.sb2, dtype),
                jnp.asarray(self.a, dtype), jnp.asarray(self.b, dtype))


def flat_layers(net) -> list:
    """The layers of nested ``serial`` combinators in order (other layers as they are)."""
    from .combinators import Serial

    if isinstance(net, Serial):
        return [leaf for layer in net.layers for leaf in flat_layers(layer)]
    return [net]


def match(net, in_shape: tuple) -> Optional[FCSpec]:
    """The :class:`FCSpec` of ``net`` on vectors of ``in_shape`` = (d,), or ``None`` if it is not a stack
    Dense, φ, Dense, φ, ..., Dense with identical hyperparameters and at least one φ."""
    if len(in_shape) != 1:
        return None
    layers = flat_layers(net)
    if len(layers) < 3 or len(layers) % 2 == 0:
        return None
    dense, acts = layers[0::2], layers[1::2]
    if not all(type(layer) is Dense for layer in dense) or not all(type(layer) is Elementwise for layer in acts):
        return None
    first = dense[0]
    if any((d.W_std, d.b_std, d.parameterization) != (first.W_std, first.b_std, first.parameterization) for d in dense):
        return None
    if any(a.activation is not acts[0].activation for a in acts):
        return None
    depth = len(acts)
    sw2, sb2 = first.W_std**2, (first.b_std or 0.0) ** 2
    if first.parameterization == "ntk":
        a, b = (sw2,) * (depth + 1), (sb2,) * (depth + 1)
    else:
        fan_in = (in_shape[0],) + tuple(d.out_dim for d in dense[:-1])
        a, b = tuple(float(f) for f in fan_in), (1.0 if first.b_std is not None else 0.0,) * (depth + 1)
    return FCSpec(depth, acts[0].activation, sw2, sb2, a, b)


_TILE_ROUNDS = 4  # refinement rounds per tile and layer: up to 4 × REFINE_BATCH pairs recomputed
TILE_CAPACITY = _TILE_ROUNDS * hermite_duals.REFINE_BATCH  # tiles with more flagged pairs are not refined
_SCALE_FROM = 2.0**100  # rows beyond this max |x| are rescaled (activations with a scaled_pair_fn)


def row_exponents(x: Array) -> Array:
    """Per-row integers e >= 0 with max |x_i 2^{-e_i}| in [1/2, 1) for rows whose max |x_i| exceeds
    2^100 (~1.3e30), and 0 for every other row.

    x·x'/d overflows float64 for |x| beyond ~1e154 (the sum before the division by d even when
    x·x'/d itself fits): the recursions form it from x̃ = x 2^{-e} and carry the powers of two
    separately. For φ with a ``scaled_pair_fn`` (erf) the first layer stays in scaled form, so its
    kernels are finite for any finite input; for the others C⁰ = 2^{e1+e2} x̃·x̃'/d, which overflows
    only where the true value does.
    """
    m = jnp.max(jnp.abs(x), axis=1)
    _, e = jnp.frexp(m)
    return jax.lax.stop_gradient(jnp.where(m > _SCALE_FROM, e, 0).astype(jnp.int32))


def _first_layer(act, c0, k11, k22, e1, e2, same, sw2, sb2, a, b):
    """Layer 1 → 2 for φ with a ``scaled_pair_fn``, in scaled form when some row exponent is positive.

    There C⁰ = 2^{e1+e2} c0 and Σ¹ = 2^{e1+e2} s̃ (k11, k22 = Σ¹ 4^{-e}); otherwise (``lax.cond``:
    ordinary inputs pay nothing) the plain maps. Returns (Σ², Θ², Σ̇² = σ_w² Ċ¹, Σ¹, Θ¹, term_2),
    Σ¹ and Θ¹ unscaled (inf where they overflow: only :func:`ntknotes.kernels.layer_kernels` shows them).
    """
    shape = jnp.broadcast_shapes(jnp.shape(c0), jnp.shape(k11), jnp.shape(k22), jnp.shape(same))

    def scaled(c0):
        total = e1 + e2
        s1 = sw2 * c0 + jnp.ldexp(sb2, -total)
        th1 = a[0] * c0 + jnp.ldexp(b[0], -total)
        c, dd = act.scaled_pair_fn(k11, jnp.where(same, k11, s1), k22, e1, e2)  # dd = 2^{e1+e2} Ċ¹
        out = (sw2 * c + sb2, th1 * (sw2 * dd) + a[1] * c + b[1], jnp.ldexp(sw2 * dd, -total),
               jnp.ldexp(s1, total), jnp.ldexp(th1, total), a[1] * c + b[1])
        return tuple(jnp.broadcast_to(v, shape) for v in out)

    def plain(c0):
        s1, th1 = sw2 * c0 + sb2, a[0] * c0 + b[0]
        c, cd = act.dual_and_derivative(k11, jnp.where(same, k11, s1), k22)
        out = (sw2 * c + sb2, th1 * (sw2 * cd) + a[1] * c + b[1], sw2 * cd, s1, th1, a[1] * c + b[1])
        return tuple(jnp.broadcast_to(v, shape) for v in out)

    return jax.lax.cond(jnp.any(e1 > 0) | jnp.any(e2 > 0), scaled, plain, c0)


def _unscale(c0, e1, e2):
    """C⁰ = 2^{e1+e2} c0 (overflowing only where the true value does); free when no exponent is positive."""
    return jax.lax.cond(jnp.any(e1 > 0) | jnp.any(e2 > 0), lambda c: jnp.ldexp(c, e1 + e2), lambda c: c, c0)


def diag_recursion(act: Activation, sq: Array, d: int, sw2: Array, sb2: Array, a: Array, b: Array, depth: int,
                   e: Optional[Array] = None):
    """Diagonal pass. Returns q (L+1, N): Σ^l(x, x) for l=1..L+1, and Θ^{L+1}(x, x) (N,).

    With row exponents ``e`` (:func:`row_exponents`; ``sq`` then holds |x 2^{-e}|²) and a φ with a
    ``scaled_pair_fn``, q[0] holds Σ¹ 4^{-e} (finite where Σ¹ itself overflows).
    """
    c0 = sq / d

    def body(carry, ab):
        q, th = carry
        al, bl = ab
        c, cd = act.diagonal_duals(q)
        return (sw2 * c + sb2, th * sw2 * cd + al * c + bl), q

    if e is None or act.scaled_pair_fn is None:
        if e is not None:
            c0 = _unscale(c0, e, e)
        q = sw2 * c0 + sb2
        th = a[0] * c0 + b[0]
        (q_last, th), qs = jax.lax.scan(body, (q, th), (a[1:], b[1:]), length=depth)
        return jnp.concatenate([qs, q_last[None]], axis=0), th
    q1 = jax.lax.cond(jnp.any(e > 0), lambda c: sw2 * c + jnp.ldexp(sb2, -2 * e), lambda c: sw2 * c + sb2, c0)
    q2, th2 = _first_layer(act, c0, q1, q1, e, e, True, sw2, sb2, a, b)[:2]
    (q_last, th), qs = jax.lax.scan(body, (q2, th2), (a[2:], b[2:]), length=depth - 1)
    return jnp.concatenate([q1[None], qs, q_last[None]], axis=0), th


def _roots(q: Array) -> tuple[Array, Array]:
    """√q and 1/√q (0 where q <= 0), per point."""
    r = jnp.sqrt(jnp.maximum(q, 0.0))
    return r, jnp.where(r > 0, 1.0 / jnp.where(r > 0, r, 1.0), 0.0)


def point_inputs(act: Activation, q: Array):
    """Per-point inputs of :func:`cross_recursion` for layers 1..L, from the diagonal pass.

    Args:
      q: Σ^l(x, x) for l = 1..L+1 of a block of points, shape (L+1, B) (or (L+1,) + S).
    Returns:
      For an activation on the Hermite series, ``(features, inv_root, tails)``: the
      :class:`ntknotes.hermite_duals.PointFeatures` of every point and layer (coefficients
      (L, K, B), tail roots (L, B)), 1/√q (L, B) and the normalized tails of the error bound
      (:meth:`ntknotes.hermite_duals.HermiteDual.normalized_tails`, four (L, B) arrays); ``None``
      for other activations (closed forms take the variances themselves; the homogeneous ones
      their roots, computed in the tile).
    """
    if not act.uses_series:
        return None
    ql = q[:-1]
    f = act.hermite.layer_features(ql)
    return f, _roots(ql)[1], jax.vmap(act.hermite.normalized_tails)(f)  # layer by layer


def cross_recursion(act, gram, q1, q2, same, d, sw2, sb2, a, b, collect: bool, e1=None, e2=None,
                    track: bool = False, p1=None, p2=None, refine: str = "auto"):
    """Off-diagonal pass over a block of pairs.

    Args:
      gram: x·x' of each pair, shape S (e.g. (B1, B2)); with row exponents, x̃·x̃' (x̃ = x 2^{-e}).
      q1, q2: Σ^l(x, x) and Σ^l(x', x') for l = 1..L+1, shapes (L+1, S'...) broadcasting to S
        (from :func:`diag_recursion`, so layer 1 is scaled by 4^{-e} when ``e1``, ``e2`` are given).
      same: bool array broadcasting to S, True for pairs of identical points (correlation pinned
        to 1, as in the generic path).
      e1, e2: row exponents (:func:`row_exponents`) broadcasting to S, or None; used only when φ
        has a ``scaled_pair_fn``.
      track: for φ on the Hermite series, also return the largest (over pairs) sum over layers of
        the duals' relative error bounds (:meth:`ntknotes.hermite_duals.HermiteDual.relative_bound`).
      p1, p2: for activations on the Hermite series, :func:`point_inputs` of the rows and of the
        columns, with their point axis placed to broadcast to S (e.g. coefficients (L, K, B1, 1)
        and (L, K, 1, B2)); ``None`` computes them here from q1 and q2.
      refine: for activations on the Hermite series, how pairs whose error bound exceeds
        :func:`ntknotes.hermite_duals.refine_tolerance` are handled: ``"always"`` recomputes them
        in every layer (:meth:`ntknotes.hermite_duals.HermiteDual.refine`), ``"never"`` leaves
        them (the fast path; the caller checks the returned bound and reruns with ``"always"``),
        ``"auto"`` runs the fast path and, under ``lax.cond``, the refining one where needed.
        ``collect`` always refines.
    Returns:
      (Σ^{L+1}, Θ^{L+1}) (plus, if ``track``, the largest bound and the number of pairs whose
      bound exceeds the refinement tolerance), or if ``collect`` the per-layer stacks
      (Σ^l, Σ̇^l, Θ^l, term_l).
    """
    if refine not in ("auto", "never", "always"):
        raise ValueError(f"refine must be 'auto', 'never' or 'always', got {refine!r}")
    c0 = gram / d
    hom = act.homogeneous_dual
    scaled = e1 is not None and act.scaled_pair_fn is not None
    if e1 is not None and not scaled:
        c0 = _unscale(c0, e1, e2)
    track = track and act.uses_series
    # correlations within 8 ulp of 1 are pinned to 1, as those of identical points: ρ = 1 is a fixed
    # point of the recursion that deep chaotic networks repel from, so a rounding error of a
    # duplicate pair would otherwise grow layer by layer
    snap = 1.0 - 8 * jnp.finfo(gram.dtype).eps
    shape = jnp.broadcast_shapes(gram.shape, q1.shape[1:], q2.shape[1:])  # of the pairs
    if hom is not None:
        r1, i1 = _roots(q1)
        r2, i2 = _roots(q2)
        xs = (r1[:-1], r2[:-1], i1[:-1], i2[:-1], a[1:], b[1:])

        def duals(s, x):
            r1l, r2l, i1l, i2l = x[:4]
            rho = jnp.clip(s * i1l * i2l, -1.0, 1.0)
            rho = jnp.where(same | (rho > snap), 1.0, rho)
            j, jdot = hom(rho)
            return (r1l * r2l) * j, jdot, 0.0

    elif act.uses_series and not scaled:
        p1 = point_inputs(act, q1) if p1 is None else p1
        p2 = point_inputs(act, q2) if p2 is None else p2
        xs = (p1, p2, q1[:-1], q2[:-1], a[1:], b[1:])
        hermite = act.hermite
        tol = hermite_duals.refine_tolerance(gram.dtype)

        def duals(s, x, refine=True):
            (f1, i1l, n1), (f2, i2l, n2), k11, k22 = x[:4]
            rho = jnp.clip(s * i1l * i2l, -1.0, 1.0)
            rho = jnp.where(same | (rho > snap), 1.0, rho)
            # the tail model is exact at |ρ| = 1 for equal variances (every pinned duplicate pair),
            # where equal 1/√q stands for equal q
            exact = (jnp.abs(rho) == 1.0) & (i1l == i2l)
            rel = jnp.where(exact, 0.0, hermite.pair_bound(n1, n2, rho, f1.a.shape[0]))
            c, cd = hermite.pair(f1, f2, rho)
            if not refine:
                return c, cd, rel
            # pairs the series leaves inaccurate (near |ρ| = 1 for steep φ): the two-dimensional rule
            c, cd, rel = (jnp.broadcast_to(t, shape) for t in (c, cd, rel))
            flag = rel > tol
            c, cd, left = hermite.refine(flag, k11, k22, rho, c, cd, rounds=_TILE_ROUNDS)
            # refined pairs carry no bound, unless some flagged pair was left (then all keep theirs)
            return c, cd, jnp.where(flag & ~left, 0.0, rel)

    else:
        first = 1 if scaled else 0
        xs = (q1[first:-1], q2[first:-1], a[1 + first:], b[1 + first:])

        def duals(s, x):
            k11, k22 = x[:2]
            k12 = jnp.where(same, k11, s)
            if track:
                return act.hermite.dual_and_derivative(k11, k12, k22, bound=True)
            return (*act.dual_and_derivative(k11, k12, k22), 0.0)

    def body(carry, x):
        s, th, err = carry
        al, bl = x[-2:]
        c, cd, rel = duals(s, x)
        sdot = sw2 * cd
        s_new = sw2 * c + sb2
        th_new = th * sdot + al * c + bl
        return (s_new, th_new, err + rel), ((s_new, sdot, th_new, al * c + bl) if collect else None)

    def scan_body(err0):
        if scaled:
            s, th, sdot2, s1, th1, term2 = _first_layer(act, c0, q1[0], q2[0], e1, e2, same, sw2, sb2, a, b)
            first_layers = [(s1, jnp.ones_like(c0), th1, th1), (s, sdot2, th, term2)]
        else:
            s, th = sw2 * c0 + sb2, a[0] * c0 + b[0]
            first_layers = [(s, jnp.ones_like(c0), th, th)]
        (s, th, err), ys = jax.lax.scan(body, (s, th, err0), xs)
        return s, th, err, first_layers, ys

    if not collect and act.uses_series and not scaled and refine != "always":
        # The carry is (C^l, Ċ^l, Θ^l) and each step first forms Σ^{l+1} and Θ^{l+1} from it, so the
        # step's outputs are the two duals themselves, one fusion each. Carrying (Σ, Θ) instead, XLA
        # fuses the duals into the fusions of both Σ^{l+1} and Θ^{l+1} and, as the series are only
        # multiplications and additions (which it duplicates freely), evaluates E[φφ] twice: 1.6×
        # the time. The first step starts from (C^0, 0, 0) with (a_0, b_0), so Θ^1 = a_0 C^0 + b_0.
        # The bound's running sum over layers rides along in the carry.
        def lagged(carry, x):
            c, cd, th, err = carry
            al, bl = x[-2:]
            s = sw2 * c + sb2
            th = th * (sw2 * cd) + al * c + bl
            c, cd, rel = duals(s, x, refine=False)
            return (c, cd, th, err + rel), None

        xs_lag = xs[:-2] + (a[:-1], b[:-1])
        zero = jnp.zeros_like(c0)
        err0 = jnp.zeros(shape, gram.dtype)
        (c, cd, th, err), _ = jax.lax.scan(lagged, (c0, zero, zero, err0), xs_lag)
        fast = (jnp.broadcast_to(sw2 * c + sb2, shape), jnp.broadcast_to(th * (sw2 * cd) + a[-1] * c + b[-1], shape),
                err)
        # A tile where some pair's bound exceeds the tolerance in some layer is recomputed layer by
        # layer with those pairs refined (the slow path); the others pay only this test.
        flagged = jnp.sum(err > tol)
        if refine == "never":
            s, th, err = fast
        else:
            # A tile with at most TILE_CAPACITY pairs whose bound exceeds the tolerance (in some
            # layer) is recomputed layer by layer with those pairs refined. More are left to the
            # series (each refined pair costs ~1e5 evaluations of φ; deep softplus networks, whose
            # correlations all approach 1, have bounds ~1e-8 on every pair): the caller warns with
            # their count. Under lax.cond this costs the fast path about 25% on CPU, so untraced
            # kernels take the fast path and decide in Python (_driver).
            redo = (flagged > 0) & (flagged <= TILE_CAPACITY)
            s, th, err = jax.lax.cond(redo, lambda _: scan_body(err0)[:3], lambda _: fast, None)
            flagged = jnp.sum(err > tol)
        return (s, th, jnp.max(err), flagged) if track else (s, th)

    # the bound's running sum: one entry per pair when tracked or refined, else a scalar zero (no
    # extra array)
    per_pair = track or (act.uses_series and not scaled)
    s, th, err, first_layers, ys = scan_body(jnp.zeros(shape if per_pair else (), gram.dtype))
    if not collect:
        if not track:
            return s, th
        tol = hermite_duals.refine_tolerance(gram.dtype)
        return s, th, jnp.max(err), jnp.sum(err > tol)
    heads = [jnp.stack([jnp.broadcast_to(f[i], shape) for f in first_layers]) for i in range(4)]
    return [jnp.concatenate([h, y], axis=0) for h, y in zip(heads, ys)]


@functools.partial(jax.jit, static_argnames=("act", "depth", "d", "huge"))
def diag_jit(act, x, sw2, sb2, a, b, depth, d, huge: bool = True):
    """:func:`diag_recursion` of the points x (N, d): (q (L+1, N), Θ^{L+1} (N,), row exponents (N,)).

    ``huge=False`` (static) promises max |x| <= 2^100 (:func:`needs_scaling`): the exponents are then
    zero and the scaled-form branches are not compiled at all."""
    if not huge:
        q, th = diag_recursion(act, jnp.sum(x * x, axis=1), d, sw2, sb2, a, b, depth)
        return q, th, jnp.zeros(x.shape[:1], jnp.int32)
    e = row_exponents(x)
    xs = jnp.ldexp(x, -e[:, None])
    q, th = diag_recursion(act, jnp.sum(xs * xs, axis=1), d, sw2, sb2, a, b, depth, e)
    return q, th, e


def needs_scaling(*xs) -> bool:
    """Whether the recursions must carry row exponents for these inputs: True for inputs traced
    under ``jax.jit`` (their values are unknown) and for any row with max |x| > 2^100; False lets
    :func:`diag_jit` and :func:`tile_jit` compile only the plain recursion (a third of erf's
    compile time)."""
    known = concrete(xs)  # under jax.grad / jvp (not jit) the primal values are known
    if known is None:
        return True
    return any(x is not None and np.size(x) and float(np.max(np.abs(np.asarray(x)))) > _SCALE_FROM
               for x in known)


def concrete(tree: Any) -> Any:
    """``tree`` with every tracer replaced by the value behind it (known under ``jax.grad``/``jvp``
    without ``jit``), or None when some value is unknown (under ``jax.jit``)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            leaf = None if _concrete_value is None else _concrete_value(leaf)
            if leaf is None:
                return None
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


try:  # the value behind a tracer when it is known (jax.grad without jit); private, hence the fallback
    from jax._src.core import to_concrete_value as _concrete_value
except ImportError:  # pragma: no cover
    _concrete_value = None


@functools.partial(jax.jit, static_argnames=("act",))
def point_jit(act, q):
    """:func:`point_inputs` of a block's diagonal pass q (L+1, B)."""
    return point_inputs(act, q)


def padded_width(n: int, itemsize: int) -> int:
    """The least m >= n such that a row of m numbers spans an odd number of 64-byte cache lines.

    A tile's series reads, for each entry, K coefficients of its column point, one from each row
    of a (K, B2) array. With B2 = 512 float64 numbers (4096 bytes) all K rows map to the same set
    of the level-1 cache, which holds only 8 of them: every read misses and the tile runs 9×
    slower than with B2 = 520 (measured on this machine's 2 cores), whose rows spread over all sets.
    """
    line = 64
    return n + (line // itemsize - n) % (2 * line // itemsize)


@functools.partial(jax.jit, static_argnames=("act", "d", "same", "collect", "track", "refine", "huge"))
def tile_jit(act, x1, x2, q1, q2, e1, e2, sw2, sb2, a, b, d, same: bool, collect: bool = False,
             track: bool = False, p1=None, p2=None, refine: str = "auto", huge: bool = True):
    """:func:`cross_recursion` of two blocks (B1, d), (B2, d) with their diagonal passes (L+1, B) and
    row exponents (B,) from :func:`diag_jit` and, for activations on the Hermite series, their
    :func:`point_jit` (computed here when ``None``).

    For series activations the columns are padded to :func:`padded_width` with copies of the last
    column, dropped from the result (copies rather than zeros: a zero variance has a zero tail,
    where the square root in the tail model has an infinite derivative and autodiff gives 0·∞).
    ``huge`` must be that of the diagonal passes (:func:`diag_jit`)."""
    n2 = x2.shape[0]
    series = act.uses_series and act.scaled_pair_fn is None
    if series:
        p1 = point_inputs(act, q1) if p1 is None else p1
        p2 = point_inputs(act, q2) if p2 is None else p2
        m = padded_width(n2, jnp.dtype(x2.dtype).itemsize)
        if m != n2:
            def pad(t):
                return jnp.pad(t, [(0, 0)] * (t.ndim - 1) + [(0, m - n2)], mode="edge")

            x2, q2, e2, p2 = pad(x2.T).T, pad(q2), pad(e2), jax.tree_util.tree_map(pad, p2)
    else:
        p1 = p2 = None
    mask = jnp.eye(x1.shape[0], x2.shape[0], dtype=bool) if same else jnp.zeros((), bool)
    if huge:
        x1, x2 = jnp.ldexp(x1, -e1[:, None]), jnp.ldexp(x2, -e2[:, None])
        e1, e2 = e1[:, None], e2[None, :]
    else:  # no row exponents (``huge=False`` as in :func:`diag_jit`): the plain recursion only
        e1 = e2 = None
    # rows on the second-to-last axis, columns on the last (as q1[:, :, None] and q2[:, None, :])
    p1 = jax.tree_util.tree_map(lambda t: t[..., :, None], p1)
    p2 = jax.tree_util.tree_map(lambda t: t[..., None, :], p2)
    out = cross_recursion(act, x1 @ x2.T, q1[:, :, None], q2[:, None, :], mask, d, sw2, sb2, a, b, collect,
                          e1, e2, track, p1, p2, refine)
    if track and not collect:  # the bound is the largest over pairs (padded columns copy real ones)
        return out[0][..., :n2], out[1][..., :n2], *out[2:]
    return type(out)(t[..., :n2] for t in out)
