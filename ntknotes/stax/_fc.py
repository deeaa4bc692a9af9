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
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..activations import Activation
from .layers import Dense, Elementwise

Array = jax.Array

__all__ = ["FCSpec", "match", "flat_layers", "diag_recursion", "cross_recursion"]


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


def diag_recursion(act: Activation, sq: Array, d: int, sw2: Array, sb2: Array, a: Array, b: Array, depth: int):
    """Diagonal pass. Returns q (L+1, N): Σ^l(x, x) for l=1..L+1, and Θ^{L+1}(x, x) (N,)."""
    c0 = sq / d
    q = sw2 * c0 + sb2
    th = a[0] * c0 + b[0]

    def body(carry, ab):
        q, th = carry
        al, bl = ab
        c, cd = act.dual_and_derivative(q, q, q)
        return (sw2 * c + sb2, th * sw2 * cd + al * c + bl), q

    (q_last, th), qs = jax.lax.scan(body, (q, th), (a[1:], b[1:]), length=depth)
    return jnp.concatenate([qs, q_last[None]], axis=0), th


def cross_recursion(act, gram, q1, q2, same, d, sw2, sb2, a, b, collect: bool):
    """Off-diagonal pass over a block of pairs.

    Args:
      gram: x·x' of each pair, shape S (e.g. (B1, B2)).
      q1, q2: Σ^l(x, x) and Σ^l(x', x') for l = 1..L+1, shapes (L+1, S'...) broadcasting to S.
      same: bool array broadcasting to S, True for pairs of identical points (correlation pinned
        to 1, as in the generic path).
    Returns:
      (Σ^{L+1}, Θ^{L+1}), or if ``collect`` the per-layer stacks (Σ^l, Σ̇^l, Θ^l, term_l).
    """
    c0 = gram / d
    s = sw2 * c0 + sb2
    th = a[0] * c0 + b[0]
    hom = act.homogeneous_dual
    if hom is not None:
        r1, r2 = jnp.sqrt(jnp.maximum(q1, 0.0)), jnp.sqrt(jnp.maximum(q2, 0.0))
        i1 = jnp.where(r1 > 0, 1.0 / jnp.where(r1 > 0, r1, 1.0), 0.0)
        i2 = jnp.where(r2 > 0, 1.0 / jnp.where(r2 > 0, r2, 1.0), 0.0)
        xs = (r1[:-1], r2[:-1], i1[:-1], i2[:-1], a[1:], b[1:])
        snap = 1.0 - 8 * jnp.finfo(gram.dtype).eps

        def duals(s, x):
            r1l, r2l, i1l, i2l = x[:4]
            rho = jnp.clip(s * i1l * i2l, -1.0, 1.0)
            rho = jnp.where(same | (rho > snap), 1.0, rho)
            j, jdot = hom(rho)
            return (r1l * r2l) * j, jdot

    else:
        xs = (q1[:-1], q2[:-1], a[1:], b[1:])

        def duals(s, x):
            k11, k22 = x[:2]
            return act.dual_and_derivative(k11, jnp.where(same, k11, s), k22)

    def body(carry, x):
        s, th = carry
        al, bl = x[-2:]
        c, cd = duals(s, x)
        sdot = sw2 * cd
        s_new = sw2 * c + sb2
        th_new = th * sdot + al * c + bl
        return (s_new, th_new), ((s_new, sdot, th_new, al * c + bl) if collect else None)

    (s, th), ys = jax.lax.scan(body, (s, th), xs)
    if not collect:
        return s, th
    first = (sw2 * c0 + sb2, jnp.ones_like(c0), a[0] * c0 + b[0], a[0] * c0 + b[0])
    return [jnp.concatenate([f[None], y], axis=0) for f, y in zip(first, ys)]


@functools.partial(jax.jit, static_argnames=("act", "depth", "d"))
def diag_jit(act, x, sw2, sb2, a, b, depth, d):
    """:func:`diag_recursion` of the points x (N, d)."""
    return diag_recursion(act, jnp.sum(x * x, axis=1), d, sw2, sb2, a, b, depth)


@functools.partial(jax.jit, static_argnames=("act", "d", "same", "collect"))
def tile_jit(act, x1, x2, q1, q2, sw2, sb2, a, b, d, same: bool, collect: bool = False):
    """:func:`cross_recursion` of two blocks (B1, d), (B2, d) with their diagonal passes (L+1, B)."""
    mask = jnp.eye(x1.shape[0], dtype=bool) if same else jnp.zeros((), bool)
    return cross_recursion(act, x1 @ x2.T, q1[:, :, None], q2[:, None, :], mask, d, sw2, sb2, a, b, collect)
