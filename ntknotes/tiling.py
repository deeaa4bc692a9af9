"""One tiling utility for every pairwise kernel of ntknotes.

A pairwise kernel K(x1, x2) of N1 × N2 inputs is evaluated in tiles of at most ``block`` × ``block``
input pairs, so that the device memory a tile needs is bounded by a budget, not by N1·N2.  The
analytic kernels of :mod:`ntknotes.stax` (generic path and fused fully-connected path), the
convolutional kernels (XLA backend) and the empirical NTKs of :mod:`ntknotes.empirical` all go
through :func:`pairwise`:

* the last tile of each axis is padded (by repeating the last input) to the tile shape, so one
  compiled tile function serves every tile;
* a symmetric kernel (``x2=None``) computes the tiles on and above the diagonal only and fills
  the others by transposition; diagonal tiles are symmetrized exactly;
* a per-block preparation (``prepare``, e.g. per-example Jacobians) runs once per block of
  inputs and is reused along the row or column it belongs to.

Example::

    f = jax.jit(lambda a, b, same: (a @ b.T,))
    (gram,) = pairwise(f, x, block=256)      # x (N, d) -> gram (N, N), upper tiles only
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["DEFAULT_BUDGET", "tile_edge", "pairwise", "rowwise", "swap_pair_axes"]

DEFAULT_BUDGET = 2**22
"""Default number of scalars in one tile's kernel array (32 MB in float64); a tile function keeps a
few such arrays alive at once, so a tile needs about 5–10 times this much device memory."""


def tile_edge(per_pair: int, budget: Optional[int] = None, *, cap: int = 4096) -> int:
    """The largest tile edge b with b² · ``per_pair`` <= ``budget`` scalars (at least 1, at most ``cap``).

    Args:
      per_pair: scalars one input pair needs in the tile's largest array (1 for a plain kernel,
        H·W for pixel-aligned convolutional kernels, (H·W)² for all pixel pairs).
      budget: scalars per tile array (default :data:`DEFAULT_BUDGET`).
    """
    budget = DEFAULT_BUDGET if budget is None else int(budget)
    return max(1, min(int(cap), math.isqrt(max(1, budget // max(1, int(per_pair))))))


def swap_pair_axes(a: np.ndarray) -> np.ndarray:
    """The transpose of a tile (b1, b2, ...) -> (b2, b1, ...): the default mirror of :func:`pairwise`."""
    return np.swapaxes(a, 0, 1)


def _blocks(n: int, block: int) -> list[tuple[int, int]]:
    return [(s, min(s + block, n)) for s in range(0, n, block)]


def _padded(x: Any, start: int, end: int, block: int) -> Any:
    """Rows start:end of x (or of every leaf of a pytree of arrays), padded to ``block`` rows by
    repeating the last row (padded rows are valid inputs, so no NaN or zero variance appears)."""

    def one(a):
        a = a[start:end]
        pad = block - (end - start)
        if pad == 0:
            return a
        return jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)], axis=0)

    return jax.tree_util.tree_map(one, x)


def pairwise(
    fn: Callable[..., Sequence[Any]],
    x1: Any,
    x2: Any = None,
    *,
    block: int,
    prepare: Optional[Callable[[Any], Any]] = None,
    transpose: Callable[[np.ndarray], np.ndarray] = swap_pair_axes,
    symmetrize: bool = True,
    keep: bool = True,
) -> tuple:
    """Evaluate a pairwise kernel tile by tile.

    Args:
      fn: ``fn(a, b, same) -> tuple of arrays`` of shape (b1, b2, ...) for two prepared blocks
        ``a`` and ``b``; ``same`` is a Python bool, True for the diagonal tiles of a symmetric
        kernel (then ``a`` and ``b`` are the same inputs, and ``fn`` may pin their self-pairs).
        Usually a jitted function with ``same`` static.
      x1: inputs with N1 rows (an array (N1, ...) or a pytree of such arrays).
      x2: inputs with N2 rows, or ``None`` for the symmetric kernel of x1 with itself.
      block: tile edge (inputs per block), e.g. from :func:`tile_edge`.
      prepare: maps a padded block of inputs to what ``fn`` takes (default: the block itself);
        called once per block.
      transpose: maps a tile (b1, b2, ...) to its mirror (b2, b1, ...) for symmetric kernels
        (default: swap the first two axes; pass another map when later axes pair up as well).
      symmetrize: replace each diagonal tile T by (T + transpose(T))/2 (exact symmetry).
      keep: keep the prepared column blocks for the next rows (default); ``False`` prepares them
        again for every tile (when all prepared blocks together would not fit in memory).

    Returns:
      A tuple of arrays (N1, N2, ...), one per output of ``fn``: the tile's own (device) arrays
      when everything fits in one tile, else NumPy arrays assembled on the host.
    """
    symmetric = x2 is None
    prep = (lambda v: v) if prepare is None else prepare
    n1 = int(jax.tree_util.tree_leaves(x1)[0].shape[0])
    n2 = n1 if symmetric else int(jax.tree_util.tree_leaves(x2)[0].shape[0])
    block = max(1, int(block))
    if n1 <= block and n2 <= block:  # one tile: no padding, no host copy
        a = prep(x1)
        out = tuple(fn(a, a, True)) if symmetric else tuple(fn(a, prep(x2), False))
        if symmetric and symmetrize:
            out = tuple(0.5 * (t + transpose(t)) for t in out)
        return out
    rows, cols = _blocks(n1, block), _blocks(n2, block)
    cache: dict = {}

    def prepared(side: int, i: int):
        key = (0 if symmetric else side, i)
        if key in cache:
            return cache[key]
        s, e = (rows if key[0] == 0 else cols)[i]
        value = prep(_padded(x1 if key[0] == 0 else x2, s, e, block))
        if keep or side == 0:
            cache[key] = value
        return value

    outs: Optional[list] = None
    for i, (si, ei) in enumerate(rows):
        a = prepared(0, i)
        pending = []
        for j, (sj, ej) in enumerate(cols):
            if symmetric and j < i:
                continue
            same = symmetric and i == j
            pending.append((j, sj, ej, fn(a, a if same else prepared(1, j), same)))
        for j, sj, ej, res in pending:  # tiles were dispatched asynchronously; collect them now
            res = [np.asarray(t)[: ei - si, : ej - sj] for t in res]
            if outs is None:
                outs = [np.empty((n1, n2) + t.shape[2:], dtype=t.dtype) for t in res]
            for out, t in zip(outs, res):
                if symmetric and i == j and symmetrize:
                    t = 0.5 * (t + transpose(t))
                out[si:ei, sj:ej] = t
                if symmetric and j > i:
                    out[sj:ej, si:ei] = transpose(t)
        cache.pop((0, i), None)  # later rows use column blocks j > i only
    return tuple(outs)


def rowwise(fn: Callable[[Any], Sequence[Any]], x: Any, *, block: int) -> tuple:
    """Evaluate a per-point function block by block: ``fn(block) -> tuple of arrays (b, ...)``.

    The same padding as :func:`pairwise` (one compiled shape); returns arrays (N, ...): the block's
    own arrays when N <= ``block``, else NumPy arrays concatenated on the host.
    """
    n = int(jax.tree_util.tree_leaves(x)[0].shape[0])
    block = max(1, int(block))
    if n <= block:
        return tuple(fn(x))
    parts = [[np.asarray(t)[: e - s] for t in fn(_padded(x, s, e, block))] for s, e in _blocks(n, block)]
    return tuple(np.concatenate(col, axis=0) for col in zip(*parts))
