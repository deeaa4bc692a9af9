"""Fused CPU evaluation of the convolutional kernels for ReLU-family networks (Numba).

The XLA version in :mod:`ntknotes.conv` updates a whole tile of pixel-pair arrays per layer,
and XLA's CPU backend runs each layer as about a dozen separate loops over memory.  This module
computes the same recursion with one loop nest per layer and a working set that stays in a
core's cache, using two facts:

* **Pixel offsets never mix.**  The aligned box sum B[A][p, p'] = Σ_δ A[p + δ, p' + δ] keeps the
  offset d = p' − p fixed, and the duals act entry by entry, so for each offset d the recursion
  is an independent one on the (H, W) array A_d[p] = A[p, p + d] (zero where p + d leaves the
  image), its box sum an ordinary 3×3 box sum over p.  The flatten readout needs d = 0 only; GAP
  sums the readouts of all (2H − 1)(2W − 1) offsets.  Each offset's arrays are a few hundred kB
  at most (32×32 images), so all layers of one offset run in cache.
* **Every positively homogeneous activation is an ABReLU**, φ(z) = b·max(z, 0) + a·min(z, 0), so
  its unit-variance duals are J(ρ) = α J_ReLU(ρ) + β ρ and J̇(ρ) = β + α J̇_ReLU(ρ), with
  α = (b − a)² and β = ab (ReLU: α = 1, β = 0; identity: α = 0, β = 1).

Image pairs are processed in tiles of one image x against sixteen images x′ stored side by side
(image index last), so that every innermost loop is a contiguous SIMD loop over the sixteen
pairs with x's numbers as scalars, and nothing has to be gathered; tiles run in parallel.

:func:`fused_readouts` returns what the XLA tiles give (the flatten and GAP NNGP/NTK of every
layer) for tiles of image pairs.  ``ntknotes.stax._cntk`` imports this module (and so Numba)
only when the ``"numba"`` backend runs, the default on CPU for the ReLU family.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .activations import _ASIN_COEFFS
from .stax._cntk import relu_family_coefficients  # noqa: F401  (re-export: it decides whether this backend applies)

__all__ = ["relu_family_coefficients", "fused_readouts", "LANES"]

LANES = 16  # second images per tile, side by side in every SIMD loop (several vectors of float64)
_C_HIGH_FIRST = tuple(float(c) for c in reversed(_ASIN_COEFFS))
_HALF_PI = 0.5 * math.pi
_INV_TWO_PI = 0.5 / math.pi
_SNAP = 1.0 - 8 * 2.0**-52  # correlations within 8 ulp of 1 are rounding of ρ = 1 (as in ntknotes.stax)


@numba.njit(inline="always", fastmath=True)
def _acos(r):
    """arccos r for r in [-1, 1] (the polynomial of :func:`ntknotes.activations.arccos`)."""
    a = min(abs(r), 1.0)
    big = a > 0.5
    root = math.sqrt(0.5 * (1.0 - a))
    t = root if big else a
    z = t * t
    p = _C_HIGH_FIRST[0]
    for coeff in _C_HIGH_FIRST[1:]:  # Horner; a homogeneous tuple, unrolled by the compiler
        p = p * z + coeff
    asin_t = t + t * z * p
    acos_a = 2.0 * asin_t if big else _HALF_PI - asin_t
    return math.pi - acos_a if r < 0 else acos_a


@numba.njit(parallel=True, fastmath=True, cache=True)
def _pixel_pair_sums(xa, xb_lanes, fa, fb_lanes, rows, blocks, sw2, sb2, alpha, beta, gap, n_splits):  # pragma: no cover
    """Numba kernel behind :func:`fused_readouts`: sums of C^l and Ċ^l ⊙ Θ^l over pixel pairs.

    xa: (N1, H, W, C) the first images; fa: (L, N1, 2, H, W) their √q and 1/√q per layer and pixel.
    xb_lanes: (B, H, W, C, LANES) the second images in blocks of LANES, image index last;
    fb_lanes: (B, L, 2, H, W, LANES) their √q and 1/√q.  Tile t pairs image rows[t] with the
    LANES images of block blocks[t]: the first image's numbers are scalars in every loop and
    the block's are contiguous vectors, so nothing is gathered.
    Returns (n_splits, L, 4, T, LANES): per share of the offsets (offset k goes to share
    k mod n_splits, so that few tiles still occupy every core), the sums over offset 0 and over
    all offsets of C and of Ċ ⊙ Θ.  Each loop touches few arrays (state arrays pack Σ with Θ,
    factors pack √q with 1/√q) so that LLVM's vectorizer needs only a couple of run-time alias
    checks per loop.
    """
    n_layers, h, w = fa.shape[0], fa.shape[3], fa.shape[4]
    channels = xa.shape[3]
    n_tiles = rows.shape[0]
    out = np.zeros((n_splits, n_layers, 4, n_tiles, LANES), dtype=fa.dtype)
    n_offsets = (2 * h - 1) * (2 * w - 1) if gap else 1
    box = sw2 / 9.0
    for job in numba.prange(n_tiles * n_splits):
        tile = job // n_splits
        split = job % n_splits
        a = rows[tile]
        gx_b = xb_lanes[blocks[tile]]  # (H, W, C, LANES)
        g_b = fb_lanes[blocks[tile]]  # (L, 2, H, W, LANES)
        g_a = fa[:, a]  # (L, 2, H, W)
        # two state buffers (Σ, Θ) → in place (C, Ċ⊙Θ) → box sums into the other buffer;
        # a one-pixel zero border (and zeros outside the valid pixels) make the box sums plain
        state = np.zeros((2, h + 2, w + 2, 2, LANES), dtype=fa.dtype)
        acc = np.zeros((n_layers, 4, LANES), dtype=fa.dtype)
        sums = np.zeros((2, LANES), dtype=fa.dtype)
        for od in range(split, n_offsets, n_splits):
            di = od // (2 * w - 1) - (h - 1) if gap else 0
            dj = od % (2 * w - 1) - (w - 1) if gap else 0
            i0, i1 = max(0, -di), min(h, h - di)
            j0, j1 = max(0, -dj), min(w, w - dj)
            state[:, i0 : i1 + 2, j0 : j1 + 2] = 0.0  # the valid pixels and their border
            cur = 0
            # layer 1: Σ¹ = σ_w²/9 B[x·x'/C₀] + σ_b² = Θ¹ (the Gram goes into the other buffer)
            gram = state[1]
            for i in range(i0, i1):
                for j in range(j0, j1):
                    for ch in range(channels):
                        x_a = xa[a, i, j, ch]
                        for k in range(LANES):
                            gram[i + 1, j + 1, 0, k] += x_a * gx_b[i + di, j + dj, ch, k]
            st = state[0]
            for i in range(i0, i1):
                for j in range(j0, j1):
                    for k in range(LANES):
                        acc_s = 0.0
                        for u in range(3):
                            for v in range(3):
                                acc_s += gram[i + u, j + v, 0, k]
                        st[i + 1, j + 1, 0, k] = box * acc_s / channels + sb2
                        st[i + 1, j + 1, 1, k] = box * acc_s / channels + sb2
            for lay in range(n_layers):
                st = state[cur]
                # in place: (Σ, Θ) → (C, Ċ ⊙ Θ), entry by entry
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        root_a = g_a[lay, 0, i, j]
                        inv_a = g_a[lay, 1, i, j]
                        for k in range(LANES):
                            rho = st[i + 1, j + 1, 0, k] * inv_a * g_b[lay, 1, i + di, j + dj, k]
                            rho = 1.0 if rho > _SNAP else max(rho, -1.0)
                            angle = math.pi - _acos(rho)
                            sine = math.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
                            j_unit = alpha * (sine + angle * rho) * _INV_TWO_PI + beta * rho
                            jdot = beta + alpha * angle * _INV_TWO_PI
                            st[i + 1, j + 1, 0, k] = root_a * g_b[lay, 0, i + di, j + dj, k] * j_unit
                            st[i + 1, j + 1, 1, k] = jdot * st[i + 1, j + 1, 1, k]
                # readouts: sums of C and Ċ ⊙ Θ over this offset's pixels
                sums[:] = 0.0
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        for m in range(2):
                            for k in range(LANES):
                                sums[m, k] += st[i + 1, j + 1, m, k]
                for m in range(2):
                    for k in range(LANES):
                        acc[lay, 2 + m, k] += sums[m, k]
                        if di == 0 and dj == 0:
                            acc[lay, m, k] += sums[m, k]
                if lay == n_layers - 1:
                    break
                # next layer: Σ = σ_w²/9 B[C] + σ_b², Θ = σ_w²/9 B[Ċ ⊙ Θ] + Σ
                nxt = state[1 - cur]
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        for k in range(LANES):
                            acc_s = 0.0
                            acc_t = 0.0
                            for u in range(3):
                                for v in range(3):
                                    acc_s += st[i + u, j + v, 0, k]
                                    acc_t += st[i + u, j + v, 1, k]
                            s_new = box * acc_s + sb2
                            nxt[i + 1, j + 1, 0, k] = s_new
                            nxt[i + 1, j + 1, 1, k] = box * acc_t + s_new
                cur = 1 - cur
        for lay in range(n_layers):
            for r in range(4):
                for k in range(LANES):
                    out[split, lay, r, tile, k] = acc[lay, r, k]
    return out


def _pixel_factors(q: np.ndarray) -> np.ndarray:
    """(L, N, 2, H, W): √q and 1/√q (0 where q = 0) of pixel variances q of shape (L, N, H, W)."""
    root = np.sqrt(np.maximum(np.asarray(q, np.float64), 0.0))
    inv = np.divide(1.0, root, out=np.zeros_like(root), where=root > 0)
    return np.ascontiguousarray(np.stack([root, inv], axis=2))


def _in_lanes(a: np.ndarray, axis: int) -> np.ndarray:
    """Split ``axis`` (length N) into blocks of LANES (zero-padded) and move the lane axis last:
    (..., N, ...) → (ceil(N / LANES), ..., LANES), with the block axis first."""
    n = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (0, -n % LANES)
    a = np.moveaxis(np.pad(a, pad), axis, 0)
    a = a.reshape(-1, LANES, *a.shape[1:])
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def _check_inputs(xa, xb, qa, qb, rows, blocks, scalars) -> None:
    """Raise ValueError unless the arrays fit together (the Numba loops do not check bounds)."""
    if xa.ndim != 4 or xb.ndim != 4 or xa.shape[1:] != xb.shape[1:]:
        raise ValueError(f"xa and xb must be image arrays (N, H, W, C) of one image shape, got {xa.shape} and {xb.shape}")
    n_layers = qa.shape[0] if qa.ndim == 4 else -1
    for name, q, x in (("qa", qa, xa), ("qb", qb, xb)):
        if q.shape != (n_layers, x.shape[0], x.shape[1], x.shape[2]) or n_layers < 1:
            raise ValueError(f"{name} must have shape (L, N, H, W) = (L, {x.shape[0]}, {x.shape[1]}, {x.shape[2]}) "
                             f"with the same L >= 1 for both sides, got {q.shape}")
    if rows.ndim != 1 or rows.shape != blocks.shape or rows.dtype.kind not in "iu" or blocks.dtype.kind not in "iu":
        raise ValueError(f"rows and blocks must be integer arrays of one length, got {rows.shape} {rows.dtype} "
                         f"and {blocks.shape} {blocks.dtype}")
    n_blocks = -(-xb.shape[0] // LANES)
    for name, p, n in (("rows", rows, xa.shape[0]), ("blocks", blocks, n_blocks)):
        if p.size and (p.min() < 0 or p.max() >= n):
            raise ValueError(f"{name} must take values 0..{n - 1}, got values from {p.min()} to {p.max()}")
    if not np.all(np.isfinite(np.asarray(scalars, np.float64))):
        raise ValueError(f"sw2, sb2 and the coefficients must be finite, got {scalars}")


def fused_readouts(
    xa: np.ndarray,
    xb: np.ndarray,
    qa: np.ndarray,
    qb: np.ndarray,
    rows: np.ndarray,
    blocks: np.ndarray,
    sw2: float,
    sb2: float,
    coefficients: tuple[float, float],
    gap: bool,
) -> np.ndarray:
    """Readouts of every layer for tiles of image pairs (one first image × LANES second images), on the CPU.

    Args:
      xa: images (N1, H, W, C); xb: images (N2, H, W, C).
      qa: pixel variances Σ^l(x, x)[p, p] of the first images, (L, N1, H, W); qb: (L, N2, H, W).
      rows, blocks: integer arrays (T,): tile t pairs xa[rows[t]] with the images
        xb[LANES·blocks[t] + k], k = 0..LANES−1 (images past N2 count as zero images).
      sw2, sb2: σ_w² and σ_b².
      coefficients: (α, β) of the activation, from :func:`relu_family_coefficients`.
      gap: also compute the GAP readouts (all pixel offsets) or only the flatten ones (offset 0).
    Returns:
      float64 array (L, 4, T, LANES): flatten NNGP, flatten NTK, GAP NNGP, GAP NTK for every
      layer (GAP rows zero when ``gap`` is False), the readouts
      :func:`ntknotes.conv.conv_kernels` assembles.
    Raises:
      ValueError: for inconsistent shapes, indices out of range, non-finite σ² or coefficients.
    """
    dtype = np.float64  # computed in double precision whatever the inputs (float32 gains nothing here)
    xa, xb = np.ascontiguousarray(xa, dtype), np.ascontiguousarray(xb, dtype)
    qa, qb = np.asarray(qa, dtype), np.asarray(qb, dtype)
    rows, blocks = np.asarray(rows), np.asarray(blocks)
    _check_inputs(xa, xb, qa, qb, rows, blocks, (sw2, sb2, *coefficients))
    n_layers, n_tiles = qa.shape[0], len(rows)
    if n_tiles == 0:
        return np.zeros((n_layers, 4, 0, LANES), dtype)
    alpha, beta = coefficients
    h, w = xa.shape[1], xa.shape[2]
    n_offsets = (2 * h - 1) * (2 * w - 1) if gap else 1
    n_splits = min(n_offsets, -(-4 * numba.get_num_threads() // n_tiles))  # >= 4 jobs per thread
    sums = _pixel_pair_sums(
        xa, _in_lanes(xb, 0), _pixel_factors(qa), _in_lanes(_pixel_factors(qb), 1),
        rows.astype(np.int64), blocks.astype(np.int64),
        float(sw2), float(sb2), float(alpha), float(beta), bool(gap), n_splits,
    ).sum(axis=0)
    n_pix = h * w
    out = np.zeros_like(sums)
    out[:, 0] = sw2 * sums[:, 0] / n_pix + sb2
    out[:, 1] = out[:, 0] + sw2 * sums[:, 1] / n_pix
    if gap:
        out[:, 2] = sw2 * sums[:, 2] / n_pix**2 + sb2
        out[:, 3] = out[:, 2] + sw2 * sums[:, 3] / n_pix**2
    return out
