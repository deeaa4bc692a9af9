"""Analytic NNGP and NTK kernels of fully-connected networks of any depth.

The network (NTK parameterization, :cite:`jacot2018neural`, :cite:`lee2019wide`)::

    h^1     = (σ_w/√d) W^1 x + σ_b b^1
    h^{l+1} = (σ_w/√n_l) W^{l+1} φ(h^l) + σ_b b^{l+1},   l = 1..L,

with all W, b ~ N(0, 1), L hidden layers (``depth``) and the output
f(x) = h^{L+1}(x).  As the widths grow, f at initialization becomes a Gaussian
process with covariance Σ^{L+1} (the NNGP kernel) and gradient descent
evolves it with the tangent kernel Θ^{L+1} (the NTK), given by the recursion::

    C^0      = x·x'/d,                  Σ^1 = σ_w² C^0 + σ_b²
    C^l      = E[φ(u)φ(v)],  Ċ^l = E[φ'(u)φ'(v)],   (u, v) ~ N(0, Σ^l restricted to {x, x'})
    Σ^{l+1}  = σ_w² C^l + σ_b²,         Σ̇^{l+1} = σ_w² Ċ^l
    Θ^1      = a_0 C^0 + b_0,           Θ^{l+1} = Θ^l Σ̇^{l+1} + a_l C^l + b_l

where (a_l, b_l) = (σ_w², σ_b²) in the NTK parameterization.  In the standard
parameterization (W^{l+1} ~ N(0, σ_w²/n_l), b ~ N(0, σ_b²), trained directly)
the NNGP is the same but (a_l, b_l) = (n_l, 1[σ_b > 0]) with n_0 = d, so the NTK
grows linearly with the width.

Everything here works on explicit arrays: x1 of shape (N1, d), x2 of shape
(N2, d); results are (N1, N2) kernels of a scalar output (a network with k
outputs has kernel K ⊗ I_k).  Large problems are evaluated in tiles, and
train-train kernels compute only the upper-triangular tiles.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import precision
from ._checks import (
    check_choice,
    check_matrix,
    check_nonnegative,
    check_positive_int,
    check_same_features,
    check_widths,
)
from .activations import Activation, get_activation

__all__ = [
    "KernelPair",
    "LayerKernels",
    "nngp_ntk",
    "nngp",
    "ntk",
    "layer_kernels",
    "PARAMETERIZATIONS",
]

Array = jax.Array
PARAMETERIZATIONS = ("ntk", "standard")
_DEFAULT_TILE = 4096  # rows/cols of one tile; a float64 tile and its temporaries take ~1 GB


class KernelPair(NamedTuple):
    """The NNGP kernel K = Σ^{L+1} and the NTK Θ^{L+1}, each (N1, N2) (or (N,) when diagonal)."""

    nngp: Array
    ntk: Array


class LayerKernels(NamedTuple):
    """Per-layer kernels, stacked over l = 1..L+1 (leading axis of length L+1).

    Attributes:
      nngp: Σ^l, the covariance of the pre-activations h^l.
      nngp_dot: Σ̇^l = σ_w² E[φ'φ'] under Σ^{l-1} (Σ̇^1 is set to 1: no derivative enters layer 1).
      ntk: Θ^l, the tangent kernel of h^l with respect to the parameters of layers 1..l.
      contributions: the NTK's split by layer: entry l-1 is the part of Θ^{L+1} due to the
        weights and biases of layer l; the contributions sum to Θ^{L+1}.
    """

    nngp: Array
    nngp_dot: Array
    ntk: Array
    contributions: Array


# ----------------------------------------------------------------------------
# validation and coefficients
# ----------------------------------------------------------------------------
def _layer_coefficients(
    depth: int,
    in_dim: int,
    sigma_w: float,
    sigma_b: float,
    parameterization: str,
    width: Union[None, int, Sequence[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """(a_l, b_l) for l = 0..L: the weight and bias factors of each layer's NTK term."""
    if parameterization == "ntk":
        return np.full(depth + 1, sigma_w**2), np.full(depth + 1, sigma_b**2)
    if width is None:
        raise ValueError("the standard-parameterization NTK depends on the width: pass width=n (or one per layer)")
    widths = check_widths(width, depth)
    fan_in = np.array((in_dim,) + widths, dtype=np.float64)
    return fan_in, np.full(depth + 1, 1.0 if sigma_b > 0 else 0.0)


def _validate(x1, x2, depth, sigma_w, sigma_b, parameterization):
    depth = check_positive_int(depth, "depth")
    sigma_w = check_nonnegative(sigma_w, "sigma_w")
    sigma_b = check_nonnegative(sigma_b, "sigma_b")
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    check_matrix(x1, "x1")
    if x2 is not None:
        check_matrix(x2, "x2")
        check_same_features(x1, x2)
    return depth, sigma_w, sigma_b


# ----------------------------------------------------------------------------
# the recursion
# ----------------------------------------------------------------------------
def _diag_recursion(act: Activation, sq: Array, d: int, sw2: Array, sb2: Array, a: Array, b: Array, depth: int):
    """Diagonal pass. Returns q (L+1, N): Σ^l(x, x) for l=1..L+1, and Θ^{L+1}(x, x) (N,)."""
    c0 = sq / d
    q = sw2 * c0 + sb2
    th = a[0] * c0 + b[0]

    def body(carry, ab):
        q, th = carry
        al, bl = ab
        c, cd = act.dual_and_derivative(q, q, q)
        q_new = sw2 * c + sb2
        th_new = th * sw2 * cd + al * c + bl
        return (q_new, th_new), q

    (q_last, th), qs = jax.lax.scan(body, (q, th), (a[1:], b[1:]), length=depth)
    return jnp.concatenate([qs, q_last[None]], axis=0), th


def _cross_recursion(act, gram, q1, q2, same, d, sw2, sb2, a, b, collect: bool):
    """Off-diagonal pass over a block of pairs.

    Args:
      gram: x·x' of each pair, shape S (e.g. (B1, B2), or (P, B, B) for packed blocks).
      q1, q2: Σ^l(x, x) and Σ^l(x', x') for l = 1..L+1, shapes (L+1, *S') broadcasting to S.
      same: bool array broadcasting to S, True for pairs of identical points: their correlation
        is pinned to 1, because arccos(1 - ε) ≈ √(2ε) would turn rounding at 1e-16 into
        errors of 1e-8. (The homogeneous path also snaps ρ > 1 - 8 ulp to 1, so duplicated
        points in a cross kernel are exact too; the change is below the rounding it removes.)
    Returns:
      (Σ^{L+1}, Θ^{L+1}), or if ``collect`` the per-layer stacks (Σ^l, Σ̇^l, Θ^l, term_l).

    Positively homogeneous activations (ReLU family) run on correlations ρ = Σ/√(q q'), with
    √q and 1/√q precomputed per point, so that one layer costs one arccos, one sqrt and a few
    multiply-adds per entry.
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
        # correlations within a few ulp of 1 are rounding of ρ = 1 (equal or parallel points)
        snap = 1.0 - 8 * jnp.finfo(gram.dtype).eps

        def body(carry, x):
            s, th = carry
            r1l, r2l, i1l, i2l, al, bl = x
            rho = jnp.clip(s * i1l * i2l, -1.0, 1.0)
            rho = jnp.where(same | (rho > snap), 1.0, rho)
            j, jdot = hom(rho)
            c = (r1l * r2l) * j
            sdot = sw2 * jdot
            s_new = sw2 * c + sb2
            th_new = th * sdot + al * c + bl
            return (s_new, th_new), ((s_new, sdot, th_new, al * c + bl) if collect else None)

    else:
        xs = (q1[:-1], q2[:-1], a[1:], b[1:])

        def body(carry, x):
            s, th = carry
            k11, k22, al, bl = x
            s = jnp.where(same, k11, s)
            c, cd = act.dual_and_derivative(k11, s, k22)
            sdot = sw2 * cd
            s_new = sw2 * c + sb2
            th_new = th * sdot + al * c + bl
            return (s_new, th_new), ((s_new, sdot, th_new, al * c + bl) if collect else None)

    # one lax.scan over layers: unrolling it in Python makes XLA split every layer into
    # several fusions that recompute the arccos (measured 6x slower on CPU)
    (s, th), ys = jax.lax.scan(body, (s, th), xs)
    if not collect:
        return s, th
    first = (sw2 * c0 + sb2, jnp.ones_like(c0), a[0] * c0 + b[0], a[0] * c0 + b[0])
    return [jnp.concatenate([f[None], y], axis=0) for f, y in zip(first, ys)]


@functools.partial(jax.jit, static_argnames=("act", "depth", "d"))
def _diag_jit(act, x, sw2, sb2, a, b, depth, d):
    sq = jnp.sum(x * x, axis=1)
    return _diag_recursion(act, sq, d, sw2, sb2, a, b, depth)


@functools.partial(jax.jit, static_argnames=("act", "d"))
def _tile_jit(act, x1, x2, q1, q2, same, sw2, sb2, a, b, d):
    gram = x1 @ x2.T
    return _cross_recursion(act, gram, q1[:, :, None], q2[:, None, :], same, d, sw2, sb2, a, b, collect=False)


@functools.partial(jax.jit, static_argnames=("act", "d", "nb"))
def _symmetric_jit(act, x, q, sw2, sb2, a, b, d, nb):
    """A symmetric kernel from its upper-triangular blocks only.

    x (nb·B, dim) and q (L+1, nb·B) are split into nb blocks of B points. A ``lax.map`` runs
    the whole layer recursion on one (B, B) block pair (i <= j) at a time, so the work is
    (nb+1)/(2 nb) of the full square and each block's intermediates stay in cache (measured
    2x faster than the full square on CPU); the lower blocks are filled by transposition.
    """
    n = x.shape[0]
    bs = n // nb
    rows, cols = np.triu_indices(nb)
    xb = x.reshape(nb, bs, -1)
    qb = q.reshape(q.shape[0], nb, bs)
    eye = jnp.eye(bs, dtype=bool)

    def one(ij):
        i, j = ij
        gram = xb[i] @ xb[j].T
        same = (i == j) & eye
        return _cross_recursion(act, gram, qb[:, i, :, None], qb[:, j, None, :], same, d, sw2, sb2, a, b, False)

    k, t = jax.lax.map(one, (jnp.asarray(rows), jnp.asarray(cols)))  # (P, B, B) each
    index = np.zeros((nb, nb), dtype=np.int32)
    index[rows, cols] = np.arange(rows.size)

    def assemble(m):
        def blk(i, j):
            if i < j:
                return m[index[i, j]]
            if i > j:
                return m[index[j, i]].T
            return 0.5 * (m[index[i, i]] + m[index[i, i]].T)  # exact symmetry on the diagonal

        return jnp.concatenate([jnp.concatenate([blk(i, j) for j in range(nb)], axis=1) for i in range(nb)], axis=0)

    return assemble(k), assemble(t)


@functools.partial(jax.jit, static_argnames=("act", "d"))
def _layers_jit(act, x1, x2, q1, q2, same, sw2, sb2, a, b, d):
    gram = x1 @ x2.T
    return _cross_recursion(act, gram, q1[:, :, None], q2[:, None, :], same, d, sw2, sb2, a, b, collect=True)


def _prepare(x1, x2, depth, activation, sigma_w, sigma_b, parameterization, width, dtype):
    depth, sigma_w, sigma_b = _validate(x1, x2, depth, sigma_w, sigma_b, parameterization)
    act = get_activation(activation)
    dtype = jnp.dtype(dtype) if dtype is not None else precision.default_dtype()
    d = int(x1.shape[1])
    a, b = _layer_coefficients(depth, d, sigma_w, sigma_b, parameterization, width)
    consts = (
        jnp.asarray(sigma_w**2, dtype),
        jnp.asarray(sigma_b**2, dtype),
        jnp.asarray(a, dtype),
        jnp.asarray(b, dtype),
    )
    return depth, act, dtype, d, consts


def nngp_ntk(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depth: int,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    parameterization: str = "ntk",
    width: Union[None, int, Sequence[int]] = None,
    diagonal: bool = False,
    block_size: Optional[int] = None,
    dtype=None,
) -> KernelPair:
    """NNGP and NTK of a fully-connected network from one pass of the layer recursion.

    Args:
      x1: inputs, shape (N1, d).
      x2: second inputs, shape (N2, d); ``None`` means x2 = x1 (a symmetric train-train
        kernel; only its upper-triangular tiles are computed).
      depth: number of hidden layers L >= 1 (the network has L + 1 weight layers).
      activation: a name (see :func:`ntknotes.activations.get_activation`) or an Activation.
      sigma_w, sigma_b: weight and bias scales (σ_b = 0 means no biases).
      parameterization: ``"ntk"`` (default) or ``"standard"``; the latter needs ``width``.
      width: hidden width n (int) or one per hidden layer; only the standard NTK uses it.
      diagonal: return only K(x, x) and Θ(x, x) for the rows of x1, shape (N1,).
      block_size: tile edge for large kernels (default 4096); tiles bound the device memory
        to O(block_size²) and the result is assembled on the host as NumPy arrays.
      dtype: float dtype (default: float64 when JAX's x64 mode is on, see :mod:`ntknotes.precision`).

    Returns:
      KernelPair(nngp, ntk), each of shape (N1, N2), or (N1,) if ``diagonal``.

    Raises:
      ValueError / TypeError on wrong shapes, mismatched features, depth < 1, negative or
      non-finite σ, NaN inputs or an unknown activation.
    """
    depth, act, dtype, d, (sw2, sb2, a, b) = _prepare(
        x1, x2, depth, activation, sigma_w, sigma_b, parameterization, width, dtype
    )
    x1 = jnp.asarray(x1, dtype)
    q1, th1 = _diag_jit(act, x1, sw2, sb2, a, b, depth, d)
    if diagonal:
        return KernelPair(q1[-1], th1)
    symmetric = x2 is None
    x2 = x1 if symmetric else jnp.asarray(x2, dtype)
    q2 = q1 if symmetric else _diag_jit(act, x2, sw2, sb2, a, b, depth, d)[0]
    n1, n2 = x1.shape[0], x2.shape[0]
    bs = _DEFAULT_TILE if block_size is None else check_positive_int(block_size, "block_size")
    consts = (sw2, sb2, a, b)
    if n1 <= bs and n2 <= bs:
        if symmetric:
            return KernelPair(*_symmetric_tile(act, x1, q1, consts, d))
        return KernelPair(*_tile_jit(act, x1, x2, q1, q2, jnp.zeros((), bool), *consts, d))
    return KernelPair(*_tiled(act, x1, x2, q1, q2, symmetric, consts, d, bs, np.dtype(dtype)))


_PACK_MIN = 512  # below this many points a symmetric kernel is computed as a full square
_PACK_BLOCK = 250  # target edge of the packed triangular blocks


def _symmetric_tile(act: Activation, x: Array, q: Array, consts: tuple, d: int) -> tuple[Array, Array]:
    """K(x, x) and Θ(x, x) for one tile, (N, N) each, computing only the upper-triangular blocks."""
    n = x.shape[0]
    if n < _PACK_MIN:
        k, t = _tile_jit(act, x, x, q, q, jnp.eye(n, dtype=bool), *consts, d)
        return 0.5 * (k + k.T), 0.5 * (t + t.T)
    nb = -(-n // _PACK_BLOCK)
    bsz = -(-n // nb)
    pad = nb * bsz - n
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    qp = jnp.pad(q, ((0, 0), (0, pad)), constant_values=1.0)
    k, t = _symmetric_jit(act, xp, qp, *consts, d, nb)
    if pad:
        k, t = k[:n, :n], t[:n, :n]
    return k, t


def _tiled(act, x1, x2, q1, q2, symmetric: bool, consts: tuple, d: int, bs: int, dtype) -> tuple:
    """Kernels too large for one tile, assembled on the host from (bs, bs) tiles.

    Symmetric kernels compute the tiles on and above the diagonal only (diagonal tiles by
    :func:`_symmetric_tile`). Every tile is padded to the same shape: one compilation serves all.
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    out_k = np.empty((n1, n2), dtype=dtype)
    out_t = np.empty((n1, n2), dtype=dtype)

    def block(x, q, s, n):
        e = min(s + bs, n)
        pad = bs - (e - s)
        xb = jnp.pad(x[s:e], ((0, pad), (0, 0)))
        qb = jnp.pad(q[:, s:e], ((0, 0), (0, pad)), constant_values=1.0)
        return xb, qb, e

    no_pairs = jnp.zeros((), bool)
    for i in range(0, n1, bs):
        xa, qa, ea = block(x1, q1, i, n1)
        for j in range(0, n2, bs):
            if symmetric and j < i:
                continue
            xb, qb, eb = block(x2, q2, j, n2)
            if symmetric and i == j:
                k, t = _symmetric_tile(act, xa, qa, consts, d)
            else:
                k, t = _tile_jit(act, xa, xb, qa, qb, no_pairs, *consts, d)
            k = np.asarray(k)[: ea - i, : eb - j]
            t = np.asarray(t)[: ea - i, : eb - j]
            out_k[i:ea, j:eb] = k
            out_t[i:ea, j:eb] = t
            if symmetric and j > i:
                out_k[j:eb, i:ea] = k.T
                out_t[j:eb, i:ea] = t.T
    return out_k, out_t


def nngp(x1: Array, x2: Optional[Array] = None, **kwargs) -> Array:
    """The NNGP kernel K(x1, x2), shape (N1, N2); keyword arguments as in :func:`nngp_ntk`."""
    return nngp_ntk(x1, x2, **kwargs).nngp


def ntk(x1: Array, x2: Optional[Array] = None, **kwargs) -> Array:
    """The NTK Θ(x1, x2), shape (N1, N2); keyword arguments as in :func:`nngp_ntk`."""
    return nngp_ntk(x1, x2, **kwargs).ntk


def layer_kernels(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depth: int,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    parameterization: str = "ntk",
    width: Union[None, int, Sequence[int]] = None,
    dtype=None,
) -> LayerKernels:
    """Σ^l, Σ̇^l, Θ^l for every layer l = 1..L+1 and the per-layer split of the NTK.

    Same arguments as :func:`nngp_ntk` (no tiling: meant for a few thousand points).
    Returns:
      LayerKernels whose arrays have shape (L+1, N1, N2).
    """
    depth, act, dtype, d, (sw2, sb2, a, b) = _prepare(
        x1, x2, depth, activation, sigma_w, sigma_b, parameterization, width, dtype
    )
    x1 = jnp.asarray(x1, dtype)
    symmetric = x2 is None
    x2 = x1 if symmetric else jnp.asarray(x2, dtype)
    q1 = _diag_jit(act, x1, sw2, sb2, a, b, depth, d)[0]
    q2 = _diag_jit(act, x2, sw2, sb2, a, b, depth, d)[0]
    n1, n2 = x1.shape[0], x2.shape[0]
    same = jnp.eye(n1, dtype=bool) if symmetric else jnp.zeros((), bool)
    sig, sdot, th, terms = _layers_jit(act, x1, x2, q1, q2, same, sw2, sb2, a, b, d)
    # the term of layer l is multiplied by the Σ̇ of every later layer
    later = jnp.cumprod(jnp.concatenate([sdot[1:], jnp.ones_like(sdot[:1])], axis=0)[::-1], axis=0)[::-1]
    return LayerKernels(sig, sdot, th, terms * later)


