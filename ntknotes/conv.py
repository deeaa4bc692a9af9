"""Convolutional NNGP and NTK (the CNTK of Arora et al. 2019) for 3×3 SAME convolutions.

The network these kernels describe (NTK parameterization, all W, b ~ N(0, 1), images of
H × W pixels with C₀ channels, zero padding, ``depth`` = L convolution layers)::

    h¹[p]     = σ_w/√(9 C₀) Σ_{δ ∈ 3×3} W¹[δ]ᵀ x[p + δ] + σ_b b¹
    h^{l+1}[p] = σ_w/√(9 n)  Σ_δ W^{l+1}[δ]ᵀ φ(h^l[p + δ]) + σ_b b^{l+1}
    f(x)      = σ_w/√(HW n) Σ_p W^{out}[p]ᵀ φ(h^L[p]) + σ_b b        (flatten readout, "CNN-V")
    f(x)      = σ_w/√n W^{out}ᵀ (1/HW) Σ_p φ(h^L[p]) + σ_b b          (global average pooling, "GAP")

(:class:`ntknotes.cnn.CNN` is that network).  As the channel count n grows, the covariance of
pre-activations at pixel p of image x and pixel p' of image x' converges to Σ^l(x, x')[p, p'],
a 4-D array of pixel pairs, and the tangent kernel to Θ^l[p, p'].  With C^l = E[φ(u)φ(v)] and
Ċ^l = E[φ'(u)φ'(v)] under the bivariate Gaussian of variances Σ^l(x, x)[p, p],
Σ^l(x', x')[p', p'] and covariance Σ^l(x, x')[p, p'], and B the aligned 3×3 box sum
B[A][p, p'] = Σ_δ A[p + δ, p' + δ] (zero outside the image)::

    Σ¹      = σ_w²/9 B[x[p]·x'[p']/C₀] + σ_b²,                 Θ¹ = Σ¹
    Σ^{l+1} = σ_w²/9 B[C^l] + σ_b²,      Θ^{l+1} = σ_w²/9 B[Ċ^l ⊙ Θ^l] + Σ^{l+1}

and the output kernels read the last layer out as

    K = σ_w² R[C^L] + σ_b²,              Θ = K + σ_w² R[Ċ^L ⊙ Θ^L]

with R the mean over the diagonal pixel pairs p = p' (flatten, "CNTK-V") or over all pixel pairs
(GAP, "CNTK-GAP").  The aligned box sum never mixes pixel offsets, so the flatten kernels only
ever need the diagonal p = p' (an (H, W) array per image pair) while GAP needs the whole (H, W, H, W)
array: H·W times the work.

Implementation: two backends compute the same recursion, and every layer's readout is kept, so
one pass at the largest depth gives the kernels at every smaller depth as well.  The per-image
variances Σ^l(x, x)[p, p] come from a separate cheap pass over the images.

* ``"xla"`` (any device, any activation with closed-form duals): the kernel matrix is computed
  in tiles of image pairs; in a tile every pair's pixel-pair array is updated at once, stored
  pixel axes first and image pairs last so that the box sum (separable: three shifted adds along
  rows, three along columns) moves contiguous blocks; the ReLU family's duals use per-pixel √q
  and 1/√q, leaving one arccos per entry and layer; layers run in a ``lax.scan``.
* ``"numba"`` (CPU, ReLU family, the default there): :mod:`ntknotes.conv_cpu` runs the
  recursion offset by offset (each offset's arrays stay in cache through all layers) in one
  fused loop per layer, sixteen image pairs side by side in every SIMD loop; 3–6× faster than
  XLA on CPU.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import conv_cpu, precision
from ._checks import check_choice, check_finite, check_nonnegative, check_positive_int
from .activations import ACTIVATIONS, Activation, get_activation
from .kernels import KernelPair

__all__ = ["BACKENDS", "POOLINGS", "ConvKernels", "conv_kernels", "conv_nngp_ntk", "check_images"]

Array = jax.Array
POOLINGS = ("flatten", "gap")
BACKENDS = ("auto", "xla", "numba")
_PAIR_CHUNK = 2**14  # image pairs per call of the numba backend (bounds its output buffer)
_TILE_BUDGET = 2**18  # scalars in one pixel-pair array of a tile (2 MB in float64; measured fastest of 2¹⁴..2²⁰ on CPU)


class ConvKernels(NamedTuple):
    """Convolutional kernels at several depths, from one pass of the recursion.

    Attributes:
      depths: the depths L (numbers of convolution layers) in the order of the leading axis.
      flatten: KernelPair(nngp, ntk) of the flatten readout (CNN-V), arrays (D, N1, N2).
      gap: KernelPair(nngp, ntk) of the global-average-pooling readout, arrays (D, N1, N2), or
        ``None`` when it was not requested.
    """

    depths: tuple
    flatten: KernelPair
    gap: Optional[KernelPair]

    def get(self, pooling: str, depth: int) -> KernelPair:
        """The (N1, N2) NNGP and NTK for one readout (``"flatten"`` or ``"gap"``) and one depth."""
        check_choice(pooling, "pooling", POOLINGS)
        if depth not in self.depths:
            raise ValueError(f"depth {depth} was not computed; available depths: {list(self.depths)}")
        pair = self.flatten if pooling == "flatten" else self.gap
        if pair is None:
            raise ValueError("the GAP kernels were not computed (pass gap=True)")
        i = self.depths.index(depth)
        return KernelPair(pair.nngp[i], pair.ntk[i])


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def check_images(x, name: str = "x") -> None:
    """Raise unless ``x`` is a finite real array of images with shape (N, H, W, C)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array of images of shape (N, H, W, C), got {type(x).__name__}")
    if len(shape) != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C) (images in rows, channels last), got shape {tuple(shape)}")
    if min(shape) < 1:
        raise ValueError(f"{name} must have at least one image, pixel and channel, got shape {tuple(shape)}")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    check_finite(x, name)


def _check_depths(depths) -> tuple:
    if isinstance(depths, (int, np.integer)) and not isinstance(depths, bool):
        depths = (depths,)
    if not isinstance(depths, (list, tuple)) or len(depths) == 0:
        raise TypeError(f"depths must be a positive int or a non-empty sequence of them, got {depths!r}")
    out = tuple(check_positive_int(d, f"depths[{i}]") for i, d in enumerate(depths))
    if len(set(out)) != len(out):
        raise ValueError(f"depths must be distinct, got {list(out)}")
    return out


# ----------------------------------------------------------------------------
# the recursion
# ----------------------------------------------------------------------------
def _shift_sum(a: Array, axes: tuple) -> Array:
    """Σ_{s ∈ {-1, 0, 1}} a shifted by s along every axis in ``axes`` at once (zeros outside).

    Each shifted copy is a slice of ``a`` padded back to its shape, so XLA fuses the three
    terms into one pass over ``a`` (padding ``a`` once and slicing it would materialize the pad).
    """
    out = a
    for s in (-1, 1):
        idx = [slice(None)] * a.ndim
        pad = [(0, 0)] * a.ndim
        for ax in axes:
            idx[ax] = slice(max(s, 0), a.shape[ax] + min(s, 0))
            pad[ax] = (max(-s, 0), max(s, 0))
        out = out + jnp.pad(a[tuple(idx)], pad)
    return out


def _box(a: Array, full: bool) -> Array:
    """Aligned 3×3 box sum over the leading pixel(-pair) axes: (H, W, H, W, ...) if ``full``, else (H, W, ...)."""
    if full:
        return _shift_sum(_shift_sum(a, (0, 2)), (1, 3))
    return _shift_sum(_shift_sum(a, (0,)), (1,))


def _duals(act: Activation, s: Array, pa: tuple, pb: tuple) -> tuple[Array, Array]:
    """(C, Ċ) = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) of a tile's pixel-pair covariances ``s``.

    ``pa`` = (q, √q, 1/√q) of the first images' pixel variances and ``pb`` of the second's,
    already broadcast against ``s``.  Positively homogeneous activations (the ReLU family) use
    the per-pixel roots: ρ = s/(√q √q') and C = √q √q' J(ρ) cost no square root or division per
    entry, only the one arccos inside J; other activations use their closed-form duals.
    """
    if act.homogeneous_dual is not None:
        rho = jnp.clip(s * pa[2] * pb[2], -1.0, 1.0)
        j, jdot = act.homogeneous_dual(rho)
        return pa[1] * pb[1] * j, jdot
    return act.dual_and_derivative(pa[0], s, pb[0])


@functools.partial(jax.jit, static_argnames=("act", "depth"))
def _variances(act: Activation, x: Array, sw2: Array, sb2: Array, depth: int) -> Array:
    """Σ^l(x, x)[p, p] for l = 1..L: shape (L, N, H, W)."""
    q = sw2 / 9.0 * _box(jnp.moveaxis(jnp.mean(x * x, axis=-1), 0, -1), False) + sb2  # (H, W, N)

    def body(q, _):
        c = act.dual(q, q, q)
        return sw2 / 9.0 * _box(c, False) + sb2, q

    _, qs = jax.lax.scan(body, q, None, length=depth)
    return jnp.moveaxis(qs, -1, 1)


def _pixel_factors(q: Array) -> tuple[Array, Array, Array]:
    """(q, √q, 1/√q) of pixel variances q, with 1/√q := 0 where q = 0 (ρ is then 0)."""
    root = jnp.sqrt(jnp.maximum(q, 0.0))
    inv = jnp.where(root > 0, 1.0 / jnp.where(root > 0, root, 1.0), 0.0)
    return q, root, inv


@functools.partial(jax.jit, static_argnames=("act", "depth", "full"))
def _tile(act: Activation, xa: Array, xb: Array, qa: Array, qb: Array, sw2: Array, sb2: Array, depth: int, full: bool):
    """Readouts of every layer for a tile of image pairs.

    xa: (b1, H, W, C), xb: (b2, H, W, C); qa: (L, b1, H, W), qb: (L, b2, H, W).
    Returns an array (L, 4, b1, b2): [flatten NNGP, flatten NTK, GAP NNGP, GAP NTK] per layer
    (the GAP rows are zero when ``full`` is False).

    Layout: the pixel-pair axes come first and the image pairs last, (H, W, H, W, b1, b2) for
    GAP and (H, W, b1, b2) for the flatten readout, so the box sum's shifts move whole
    contiguous blocks of image pairs and every elementwise pass runs over long vectors.
    """
    c0 = xa.shape[-1]
    h, w = xa.shape[1], xa.shape[2]
    if full:
        gram = jnp.einsum("aijc,bklc->ijklab", xa, xb) / c0  # (H, W, H, W, b1, b2)
        expand_a = lambda v: jnp.moveaxis(v, 0, -1)[:, :, None, None, :, None]  # noqa: E731
        expand_b = lambda v: jnp.moveaxis(v, 0, -1)[None, None, :, :, None, :]  # noqa: E731
    else:
        gram = jnp.einsum("aijc,bijc->ijab", xa, xb) / c0  # (H, W, b1, b2): aligned pixels only
        expand_a = lambda v: jnp.moveaxis(v, 0, -1)[:, :, :, None]  # noqa: E731
        expand_b = lambda v: jnp.moveaxis(v, 0, -1)[:, :, None, :]  # noqa: E731
    s = sw2 / 9.0 * _box(gram, full) + sb2
    t = s
    fa, fb = _pixel_factors(qa), _pixel_factors(qb)  # each a triple of (L, b, H, W)

    def readout(c, cdt):
        if full:
            diagonal = lambda a: a.reshape((h * w) ** 2, *a.shape[4:])[:: h * w + 1]  # noqa: E731  (p = p')
            diag_c = jnp.mean(diagonal(c), axis=0)
            diag_t = jnp.mean(diagonal(cdt), axis=0)
            gap_c = jnp.mean(c, axis=(0, 1, 2, 3))
            gap_t = jnp.mean(cdt, axis=(0, 1, 2, 3))
        else:
            diag_c, diag_t = jnp.mean(c, axis=(0, 1)), jnp.mean(cdt, axis=(0, 1))
            gap_c = gap_t = jnp.zeros_like(diag_c)
        k_flat = sw2 * diag_c + sb2
        k_gap = sw2 * gap_c + sb2
        return jnp.stack([k_flat, k_flat + sw2 * diag_t, k_gap, k_gap + sw2 * gap_t])

    def duals(s, t, la, lb):
        c, cd = _duals(act, s, tuple(map(expand_a, la)), tuple(map(expand_b, lb)))
        return c, cd * t

    def layer(carry, factors):
        s, t = carry
        c, cdt = duals(s, t, *factors)
        s_new = sw2 / 9.0 * _box(c, full) + sb2
        t_new = sw2 / 9.0 * _box(cdt, full) + s_new
        return (s_new, t_new), readout(c, cdt)

    head = lambda f: tuple(v[:-1] for v in f)  # noqa: E731
    tail = lambda f: tuple(v[-1] for v in f)  # noqa: E731
    if depth > 1:
        (s, t), outs = jax.lax.scan(layer, (s, t), (head(fa), head(fb)))
    last = readout(*duals(s, t, tail(fa), tail(fb)))[None]
    return last if depth == 1 else jnp.concatenate([outs, last], axis=0)


def _tile_edge(n_pixels: int, full: bool, block_size: Optional[int]) -> int:
    if block_size is not None:
        return check_positive_int(block_size, "block_size")
    per_pair = n_pixels * n_pixels if full else n_pixels
    return max(1, int(math.isqrt(max(1, _TILE_BUDGET // per_pair))))


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def conv_kernels(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depths: Union[int, Sequence[int]],
    gap: bool = True,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = math.sqrt(2.0),
    sigma_b: float = 0.0,
    block_size: Optional[int] = None,
    dtype=None,
    backend: str = "auto",
) -> ConvKernels:
    """NNGP and NTK of 3×3-SAME convolutional networks, flatten and GAP readouts, several depths.

    Args:
      x1: images (N1, H, W, C).
      x2: images (N2, H, W, C), or ``None`` for x2 = x1 (symmetric: only tiles on and above the
        diagonal are computed).
      depths: one depth L >= 1 (number of convolution layers) or several; one pass of the
        recursion to the largest depth serves them all.
      gap: also compute the global-average-pooling kernels (H·W times the cost of the flatten
        kernels, which only need aligned pixel pairs).
      activation: a name or :class:`~ntknotes.activations.Activation` with a closed-form dual
        (ReLU by default, with a fused evaluation).
      sigma_w, sigma_b: weight and bias scales (default √2 and 0: ReLU's variance-preserving choice).
      block_size: edge of a tile of image pairs for the ``"xla"`` backend (default: as many as
        fit in ~2¹⁸ scalars per pixel-pair array).
      dtype: float dtype (default float64 when x64 is on).
      backend: ``"xla"`` (tiles of image pairs through XLA: any device, any closed-form dual),
        ``"numba"`` (the fused CPU loops of :mod:`ntknotes.conv_cpu`, ReLU family only, 3–6×
        faster on CPU) or ``"auto"``: numba when JAX runs on the CPU and the activation is in the
        ReLU family, XLA otherwise.
    Returns:
      :class:`ConvKernels` with arrays of shape (len(depths), N1, N2) (NumPy, assembled on the host).
    Raises:
      ValueError / TypeError for non-image inputs, mismatched image shapes, non-positive depths,
      negative or non-finite σ, an unknown backend, or ``backend="numba"`` with an activation
      outside the ReLU family.
    """
    check_images(x1, "x1")
    if x2 is not None:
        check_images(x2, "x2")
        if tuple(x2.shape[1:]) != tuple(x1.shape[1:]):
            raise ValueError(f"x1 and x2 must have the same image shape, got {tuple(x1.shape[1:])} and {tuple(x2.shape[1:])}")
    depths = _check_depths(depths)
    if not isinstance(gap, bool):
        raise TypeError(f"gap must be True or False, got {gap!r}")
    act = get_activation(activation)
    if not act.has_closed_form:
        closed = [name for name in ACTIVATIONS if get_activation(name).has_closed_form]
        raise ValueError(
            f"convolutional kernels need an activation whose dual maps have closed forms (one of {closed}); "
            f"{act.name!r} would need a 2-D quadrature for every pixel pair of every image pair"
        )
    check_choice(backend, "backend", BACKENDS)
    coefficients = conv_cpu.relu_family_coefficients(act)
    if backend == "numba" and coefficients is None:
        raise ValueError(
            f"backend='numba' covers the ReLU family (positively homogeneous activations: relu, "
            f"leaky_relu, abrelu, identity and their scalings), not {act.name!r}; use backend='xla'"
        )
    if backend == "auto":
        backend = "numba" if coefficients is not None and jax.default_backend() == "cpu" else "xla"
    sw2 = check_nonnegative(sigma_w, "sigma_w") ** 2
    sb2 = check_nonnegative(sigma_b, "sigma_b") ** 2
    dtype = jnp.dtype(dtype) if dtype is not None else precision.default_dtype()
    L = max(depths)
    sw2_, sb2_ = jnp.asarray(sw2, dtype), jnp.asarray(sb2, dtype)
    xa_all = jnp.asarray(x1, dtype)
    symmetric = x2 is None
    xb_all = xa_all if symmetric else jnp.asarray(x2, dtype)
    qa_all = _variances(act, xa_all, sw2_, sb2_, L)
    qb_all = qa_all if symmetric else _variances(act, xb_all, sw2_, sb2_, L)
    n1, n2 = xa_all.shape[0], xb_all.shape[0]
    if backend == "numba":
        return _conv_kernels_cpu(xa_all, xb_all, qa_all, qb_all, symmetric, depths, gap, sw2, sb2, coefficients)
    h, w = int(x1.shape[1]), int(x1.shape[2])
    bs = _tile_edge(h * w, gap, block_size)
    bs1, bs2 = min(bs, n1), min(bs, n2)
    rows = np.array([d - 1 for d in depths])
    n_k = 4 if gap else 2
    out = np.empty((len(depths), n_k, n1, n2), dtype=np.dtype(dtype))

    def block(x, q, start, n, b):
        end = min(start + b, n)
        pad = b - (end - start)
        xb = jnp.pad(x[start:end], ((0, pad), (0, 0), (0, 0), (0, 0)))
        qb = jnp.pad(q[:, start:end], ((0, 0), (0, pad), (0, 0), (0, 0)), constant_values=1.0)
        return xb, qb, end

    for i in range(0, n1, bs1):
        xa, qa, ea = block(xa_all, qa_all, i, n1, bs1)
        for j in range(0, n2, bs2):
            if symmetric and j < i:
                continue
            xb, qb, eb = block(xb_all, qb_all, j, n2, bs2)
            res = np.asarray(_tile(act, xa, xb, qa, qb, sw2_, sb2_, L, gap))[rows][:, :n_k, : ea - i, : eb - j]
            if symmetric and i == j:  # symmetrize the rounding of diagonal tiles
                res = 0.5 * (res + np.swapaxes(res, -1, -2))
            out[:, :, i:ea, j:eb] = res
            if symmetric and j > i:
                out[:, :, j:eb, i:ea] = np.swapaxes(res, -1, -2)
    flat = KernelPair(out[:, 0], out[:, 1])
    pooled = KernelPair(out[:, 2], out[:, 3]) if gap else None
    return ConvKernels(depths, flat, pooled)


def _conv_kernels_cpu(xa, xb, qa, qb, symmetric: bool, depths: tuple, gap: bool, sw2: float, sb2: float,
                      coefficients: tuple) -> ConvKernels:
    """:func:`conv_kernels` through :func:`ntknotes.conv_cpu.fused_readouts`, in chunks of tiles.

    A tile pairs one image of ``xa`` with a block of ``LANES`` images of ``xb``; tiles are ordered
    block by block, so consecutive tiles reuse one block's data.  For the symmetric kernel only
    tiles reaching the diagonal or beyond are computed, and each entry with b >= a is mirrored.
    """
    lanes = conv_cpu.LANES
    xa, xb, qa, qb = (np.asarray(v) for v in (xa, xb, qa, qb))
    n1, n2 = xa.shape[0], xb.shape[0]
    if not symmetric and (-n2 % lanes) * n1 > (-n1 % lanes) * n2:
        # fewer idle lanes with the first images in the lanes: compute K(xb, xa) and transpose
        swapped = _conv_kernels_cpu(xb, xa, qb, qa, False, depths, gap, sw2, sb2, coefficients)
        flip = lambda p: None if p is None else KernelPair(*(np.ascontiguousarray(np.swapaxes(v, -1, -2)) for v in p))  # noqa: E731
        return ConvKernels(depths, flip(swapped.flatten), flip(swapped.gap))
    n_blocks = -(-n2 // lanes)
    if symmetric:
        tiles = [(a, blk) for blk in range(n_blocks) for a in range(min(n1, lanes * (blk + 1)))]
    else:
        tiles = [(a, blk) for blk in range(n_blocks) for a in range(n1)]
    tile_a, tile_b = np.array(tiles, dtype=np.int64).T
    rows = np.array([d - 1 for d in depths])
    n_k = 4 if gap else 2
    out = np.empty((len(depths), n_k, n1, n2), dtype=xa.dtype)
    step = max(1, _PAIR_CHUNK // lanes)
    for start in range(0, len(tile_a), step):
        ta, tb = tile_a[start : start + step], tile_b[start : start + step]
        res = conv_cpu.fused_readouts(xa, xb, qa, qb, ta, tb, sw2, sb2, coefficients, gap)[rows][:, :n_k]
        a = np.broadcast_to(ta[:, None], (len(ta), lanes))
        b = tb[:, None] * lanes + np.arange(lanes)
        keep = (b < n2) & (b >= a) if symmetric else b < n2
        out[:, :, a[keep], b[keep]] = res[:, :, keep]
        if symmetric:
            out[:, :, b[keep], a[keep]] = res[:, :, keep]
    flat = KernelPair(out[:, 0], out[:, 1])
    pooled = KernelPair(out[:, 2], out[:, 3]) if gap else None
    return ConvKernels(depths, flat, pooled)


def conv_nngp_ntk(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depth: int,
    pooling: str = "gap",
    activation: Union[str, Activation] = "relu",
    sigma_w: float = math.sqrt(2.0),
    sigma_b: float = 0.0,
    block_size: Optional[int] = None,
    dtype=None,
    backend: str = "auto",
) -> KernelPair:
    """NNGP and NTK of one convolutional architecture, each (N1, N2).

    Args:
      x1, x2: images (N, H, W, C); ``x2=None`` for the symmetric train-train kernel.
      depth: number of 3×3 convolution layers L >= 1.
      pooling: ``"gap"`` (global average pooling, CNTK-GAP) or ``"flatten"`` (CNTK-V).
      activation, sigma_w, sigma_b, block_size, dtype, backend: as in :func:`conv_kernels`.
    Returns:
      KernelPair(nngp, ntk) of shape (N1, N2).
    """
    check_choice(pooling, "pooling", POOLINGS)
    ks = conv_kernels(
        x1, x2, depths=depth, gap=pooling == "gap", activation=activation,
        sigma_w=sigma_w, sigma_b=sigma_b, block_size=block_size, dtype=dtype, backend=backend,
    )
    return ks.get(pooling, check_positive_int(depth, "depth"))
