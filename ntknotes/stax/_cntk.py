"""Fast path: the convolutional NTK (Arora et al. 2019) of 3×3-SAME conv stacks, all depths in one pass.

For ``serial(Conv(n, 3, padding="SAME", W_std=σ_w, b_std=σ_b), φ, ... (L times), Flatten() or
GlobalAvgPool(), Dense(k, W_std=σ_w, b_std=σ_b))`` in the NTK parameterization, with φ having
closed-form duals, :func:`match` recognizes the description and :func:`readouts` computes the
kernels of every depth at once.  With B the aligned 3×3 box sum B[A][p, p'] = Σ_δ A[p+δ, p'+δ]
(zero outside the image) and C^l, Ċ^l the duals under Σ^l::

    Σ¹ = σ_w²/9 B[x[p]·x'[p']/C₀] + σ_b²,        Θ¹ = Σ¹
    Σ^{l+1} = σ_w²/9 B[C^l] + σ_b²,              Θ^{l+1} = σ_w²/9 B[Ċ^l ⊙ Θ^l] + Σ^{l+1}
    K = σ_w² R[C^L] + σ_b²,                       Θ = K + σ_w² R[Ċ^L ⊙ Θ^L]

with R the mean over the aligned pixel pairs (Flatten) or over all pixel pairs (GAP) — exactly the
layer maps of :mod:`ntknotes.stax` for that description.  Two backends:

* ``"xla"`` (any device, any closed-form dual): tiles of image pairs (:func:`ntknotes.tiling.pairwise`),
  pixel-pair axes first and image pairs last so that the box sum moves contiguous blocks, layers in
  a ``lax.scan``, the ReLU family on correlations with per-pixel √q and 1/√q.
* ``"numba"`` (CPU, ReLU family): :mod:`ntknotes.conv_cpu`, imported only when it runs; 3–6× faster
  than XLA on CPU.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from .. import tiling
from ..activations import Activation
from ._fc import flat_layers
from .layers import Conv, Dense, Elementwise, Flatten, GlobalAvgPool

Array = jax.Array

__all__ = ["CNTKSpec", "match", "readouts", "relu_family_coefficients", "BACKENDS"]

BACKENDS = ("auto", "xla", "numba")
_PAIR_CHUNK = 2**14  # image pairs per call of the numba backend (bounds its output buffer)
_TILE_BUDGET = 2**18  # scalars in one pixel-pair array of a tile (2 MB in float64; measured fastest of 2¹⁴..2²⁰ on CPU)


def relu_family_coefficients(act: Activation) -> Optional[tuple[float, float]]:
    """(α, β) with J = α J_ReLU + β ρ and J̇ = β + α J̇_ReLU for ``act``, or ``None``.

    ``None`` unless ``act`` has a homogeneous dual; the coefficients are read off J(0) = α/2π and
    J̇(0) = β + α/4 and then checked at four other correlations (to 1e-12), so an activation
    whose homogeneous dual is not of this form is refused rather than computed wrongly.
    Raises TypeError unless ``act`` is an :class:`~ntknotes.activations.Activation`.
    """
    if not isinstance(act, Activation):
        raise TypeError(f"act must be an ntknotes.activations.Activation (e.g. get_activation('relu')), "
                        f"got {type(act).__name__}")
    if act.homogeneous_dual is None:
        return None
    rho = np.array([0.0, -0.9, -0.3, 0.4, 1.0])
    j, jdot = (np.asarray(v, dtype=np.float64) for v in act.homogeneous_dual(rho))
    theta = np.arccos(rho)
    j_relu = (np.sqrt(1.0 - rho**2) + (np.pi - theta) * rho) / (2.0 * np.pi)
    jdot_relu = (np.pi - theta) / (2.0 * np.pi)
    alpha = 2.0 * np.pi * j[0]
    beta = jdot[0] - 0.25 * alpha
    scale = max(1.0, abs(alpha), abs(beta))
    if not (np.allclose(j, alpha * j_relu + beta * rho, rtol=0, atol=1e-12 * scale)
            and np.allclose(jdot, beta + alpha * jdot_relu, rtol=0, atol=1e-12 * scale)):
        return None
    return float(alpha), float(beta)



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
        rho = jnp.where(rho > 1.0 - 8 * jnp.finfo(rho.dtype).eps, 1.0, rho)  # rounding of ρ = 1, as in the layer maps
        j, jdot = act.homogeneous_dual(rho)
        return pa[1] * pb[1] * j, jdot
    return act.dual_and_derivative(pa[0], s, pb[0])


@functools.partial(jax.jit, static_argnames=("act", "depth"))
def _variances(act: Activation, x: Array, sw2: Array, sb2: Array, depth: int) -> Array:
    """Σ^l(x, x)[p, p] for l = 1..L: shape (L, N, H, W)."""
    q = sw2 / 9.0 * _box(jnp.moveaxis(jnp.mean(x * x, axis=-1), 0, -1), False) + sb2  # (H, W, N)

    def body(q, _):
        c = act.diagonal_duals(q)[0]
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



def _readouts_cpu(xa, xb, qa, qb, symmetric: bool, depths: tuple, gap: bool, sw2: float, sb2: float,
                  coefficients: tuple) -> np.ndarray:
    """:func:`readouts` through :func:`ntknotes.conv_cpu.fused_readouts`, in chunks of tiles.

    A tile pairs one image of ``xa`` with a block of ``LANES`` images of ``xb``; tiles are ordered
    block by block, so consecutive tiles reuse one block's data.  For the symmetric kernel only
    tiles reaching the diagonal or beyond are computed, and each entry with b >= a is mirrored.
    """
    from .. import conv_cpu  # Numba is imported only when this backend runs

    lanes = conv_cpu.LANES
    xa, xb, qa, qb = (np.asarray(v) for v in (xa, xb, qa, qb))
    n1, n2 = xa.shape[0], xb.shape[0]
    if not symmetric and (-n2 % lanes) * n1 > (-n1 % lanes) * n2:
        # fewer idle lanes with the first images in the lanes: compute K(xb, xa) and transpose
        swapped = _readouts_cpu(xb, xa, qb, qa, False, depths, gap, sw2, sb2, coefficients)
        return np.ascontiguousarray(np.swapaxes(swapped, -1, -2))
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
    return out



@functools.partial(jax.jit, static_argnames=("act", "depth", "full", "rows", "n_k", "same"))
def _tile_readouts(act, a, b, sw2, sb2, depth, full, rows, n_k, same):
    """The chosen layers' readouts of a tile, (b1, b2, len(rows), n_k), for :func:`ntknotes.tiling.pairwise`."""
    out = _tile(act, a[0], b[0], a[1], b[1], sw2, sb2, depth, full)[np.asarray(rows)][:, :n_k]
    return (jnp.moveaxis(out, (2, 3), (0, 1)),)


@dataclasses.dataclass(frozen=True)
class CNTKSpec:
    """A matched conv stack: depth L, φ, σ_w², σ_b², readout ("flatten" or "gap")."""

    depth: int
    act: Activation
    sw2: float
    sb2: float
    pooling: str


def match(net, in_shape: tuple) -> Optional[CNTKSpec]:
    """The :class:`CNTKSpec` of ``net`` on images of ``in_shape`` = (H, W, C), or ``None`` unless it is
    L >= 1 blocks Conv(n, 3×3, stride 1, SAME) + φ, then Flatten or GlobalAvgPool, then Dense, all in
    the NTK parameterization with one σ_w and σ_b, one φ with closed-form duals."""
    if len(in_shape) != 3:
        return None
    layers = flat_layers(net)
    if len(layers) < 4 or len(layers) % 2 != 0:
        return None
    convs, acts = layers[0:-2:2], layers[1:-2:2]
    pool, readout = layers[-2], layers[-1]
    if not all(type(c) is Conv for c in convs) or not all(type(a) is Elementwise for a in acts):
        return None
    if type(pool) not in (Flatten, GlobalAvgPool) or type(readout) is not Dense:
        return None
    hyper = {(c.W_std, c.b_std or 0.0, c.parameterization) for c in convs}
    hyper.add((readout.W_std, readout.b_std or 0.0, readout.parameterization))
    if len(hyper) != 1 or next(iter(hyper))[2] != "ntk":
        return None
    if any(c.filter_shape != (3, 3) or c.strides != (1, 1) or c.padding != "SAME" for c in convs):
        return None
    act = acts[0].activation
    if any(a.activation is not act for a in acts) or not act.has_closed_form:
        return None
    sw, sb, _ = next(iter(hyper))
    return CNTKSpec(len(convs), act, sw**2, sb**2, "flatten" if type(pool) is Flatten else "gap")


def choose_backend(act: Activation, backend: str) -> str:
    """"numba" or "xla" for ``backend`` ("auto": numba on the CPU for the ReLU family), or raise."""
    coefficients = relu_family_coefficients(act)
    if backend == "numba" and coefficients is None:
        raise ValueError(
            f"backend='numba' covers the ReLU family (positively homogeneous activations: relu, "
            f"leaky_relu, abrelu, identity and their scalings), not {act.name!r}; use backend='xla'"
        )
    if backend == "auto":
        return "numba" if coefficients is not None and jax.default_backend() == "cpu" else "xla"
    return backend


def readouts(x1, x2, *, depths: tuple, gap: bool, act: Activation, sw2: float, sb2: float,
             block_size: Optional[int], dtype, backend: str) -> np.ndarray:
    """Flatten (and GAP) NNGP and NTK at each depth: an array (len(depths), 2 or 4, N1, N2).

    Rows: [flatten NNGP, flatten NTK, GAP NNGP, GAP NTK].  x1 (N1, H, W, C) and x2 (or ``None``
    for the symmetric kernel) are validated by the caller; ``backend`` is "xla" or "numba".

    Without biases (σ_b = 0) and with an activation of the ReLU family (positively homogeneous of
    degree 1), every layer's kernels are bilinear in the two images' scales: K(c x, c' x') =
    c c' K(x, x').  Each image is then divided by a power of two near its largest |pixel| (exact)
    and the kernels of the rescaled images are multiplied back in float64, so images scaled by
    1e150 or 1e-150 give c² times the kernels of the unscaled ones instead of overflowing or
    vanishing.  Otherwise the kernels are computed as they are.

    Raises:
      ValueError: when the inputs are out of range: a kernel entry would be NaN or infinite, or
        (rescaled path) falls outside ``dtype``'s range although the rescaled kernel did not.
    """
    if sb2 == 0 and relu_family_coefficients(act) is not None:
        ea = _image_exponents(x1)
        eb = ea if x2 is None else _image_exponents(x2)
        unit = _unscaled_readouts(
            _rescale(x1, ea), None if x2 is None else _rescale(x2, eb), depths=depths, gap=gap, act=act,
            sw2=sw2, sb2=sb2, block_size=block_size, dtype=dtype, backend=backend,
        )
        _check_in_range(unit, x1, x2, dtype)
        with np.errstate(over="ignore", under="ignore"):
            out = np.ldexp(unit.astype(np.float64), ea[:, None] + eb[None, :]).astype(dtype)
        lost = (unit != 0) & ((out == 0) | ~np.isfinite(out))
        if lost.any():
            raise ValueError(
                f"the kernels of these images leave the range of {np.dtype(dtype).name} ({int(lost.sum())} entries "
                f"overflow or underflow; largest |pixel| {_largest(x1, x2):.3g}): the inputs are out of range; "
                f"rescale them (the kernels scale as c² with the images when sigma_b = 0) or use float64"
            )
        return out
    out = _unscaled_readouts(x1, x2, depths=depths, gap=gap, act=act, sw2=sw2, sb2=sb2, block_size=block_size,
                             dtype=dtype, backend=backend)
    _check_in_range(out, x1, x2, dtype)
    return out


def _image_exponents(x) -> np.ndarray:
    """e_i with 2^(e_i - 1) <= max|x_i| < 2^e_i per image (0 for an all-zero image), int64 (N,)."""
    peak = np.max(np.abs(np.asarray(x, np.float64)).reshape(len(x), -1), axis=1)
    _, e = np.frexp(peak)
    return e.astype(np.int64)


def _rescale(x, e: np.ndarray) -> np.ndarray:
    """x_i / 2^e_i, exact (a power of two), in float64."""
    x = np.asarray(x, np.float64)
    return np.ldexp(x, -e.reshape((-1,) + (1,) * (x.ndim - 1)))


def _largest(x1, x2) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64)))) for x in (x1, x2) if x is not None)


def _check_in_range(out: np.ndarray, x1, x2, dtype) -> None:
    if not np.all(np.isfinite(out)):
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        raise ValueError(
            f"the images are out of range for these kernels in {np.dtype(dtype).name}: {bad} kernel entries are "
            f"NaN or infinite (largest |pixel| {_largest(x1, x2):.3g}); rescale the images"
        )


def _unscaled_readouts(x1, x2, *, depths: tuple, gap: bool, act: Activation, sw2: float, sb2: float,
                       block_size: Optional[int], dtype, backend: str) -> np.ndarray:
    """:func:`readouts` without the rescaling of homogeneous kernels."""
    L = max(depths)
    sw2_, sb2_ = jnp.asarray(sw2, dtype), jnp.asarray(sb2, dtype)
    xa = jnp.asarray(x1, dtype)
    symmetric = x2 is None
    if backend == "numba":
        xb = xa if symmetric else jnp.asarray(x2, dtype)
        qa = _variances(act, xa, sw2_, sb2_, L)
        qb = qa if symmetric else _variances(act, xb, sw2_, sb2_, L)
        return _readouts_cpu(xa, xb, qa, qb, symmetric, depths, gap, sw2, sb2, relu_family_coefficients(act))
    h, w = int(xa.shape[1]), int(xa.shape[2])
    if block_size is None:
        block_size = tiling.tile_edge((h * w) ** 2 if gap else h * w, _TILE_BUDGET)
    rows = tuple(d - 1 for d in depths)
    n_k = 4 if gap else 2
    (out,) = tiling.pairwise(
        lambda a, b, same: _tile_readouts(act, a, b, sw2_, sb2_, L, gap, rows, n_k, same),
        xa, None if symmetric else jnp.asarray(x2, dtype),
        block=block_size,
        prepare=lambda xb: (xb, _variances(act, xb, sw2_, sb2_, L)),
    )
    return np.moveaxis(np.asarray(out), (0, 1), (2, 3))
