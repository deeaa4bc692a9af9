"""Evaluation of a stax network's infinite-width kernels: input checks, fast paths, tiles."""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .. import tiling
from ..activations import SERIES_TOLERANCE, AccuracyWarning, warn_if_inaccurate
from ..hermite_duals import refine_tolerance
from .._checks import check_bool, check_finite, check_float_dtype, check_positive_int
from . import _cntk, _fc
from .base import _output_shape, is_multi
from .state import KernelPair, input_state

Array = jax.Array
GETS = ("nngp", "ntk")

__all__ = ["kernel", "check_inputs", "spatial_mode"]


def check_inputs(x1: Any, x2: Any) -> tuple:
    """Raise unless x1 (and x2) are finite real arrays (N, d) or (N, H, W, C) of one per-example shape."""
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None and name == "x2":
            continue
        shape = getattr(x, "shape", None)
        if shape is None:
            raise TypeError(f"{name} must be an array (N, d) or (N, H, W, C), got {type(x).__name__}")
        if len(shape) not in (2, 4):
            raise ValueError(f"{name} must have shape (N, d) (vectors) or (N, H, W, C) (images, channels last), "
                             f"got {tuple(shape)}")
        if min(shape) < 1:
            raise ValueError(f"{name} must have at least one point and one feature, got shape {tuple(shape)}")
        if np.dtype(x.dtype).kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        check_finite(x, name)
    if x2 is not None and tuple(x2.shape[1:]) != tuple(x1.shape[1:]):
        raise ValueError(f"x1 and x2 must have the same per-example shape, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    return tuple(int(s) for s in x1.shape[1:])


def _check_get(get: Any) -> tuple[str, ...]:
    names = (get,) if isinstance(get, str) else tuple(get) if isinstance(get, (list, tuple)) else None
    if not names or any(g not in GETS for g in names):
        raise ValueError(f"get must be 'nngp', 'ntk' or a sequence of them, got {get!r}")
    return names


def spatial_mode(net, in_shape: tuple, out_shape: tuple) -> str:
    """"none" for vectors; "full" (all pixel pairs) when a layer needs them or the output is an image; else "diag"."""
    if len(in_shape) == 1:
        return "none"
    return "full" if net._uses_pixel_pairs() or len(out_shape) > 1 else "diag"


@functools.partial(jax.jit, static_argnames=("net", "spatial", "same", "want_ntk", "diagonal"))
def _evaluate(net, xa: Array, xb: Optional[Array], *, spatial: str, same: bool, want_ntk: bool,
              diagonal: bool) -> tuple:
    """(nngp, ntk) of one tile by the generic layer maps (ntk omitted when not wanted)."""
    k = input_state(xa, xb, spatial=spatial, same=same, diagonal=diagonal, want_ntk=want_ntk)
    k = net._kernel(k, tuple(xa.shape[1:]), "")
    return (k.nngp, k.ntk) if want_ntk else (k.nngp,)


def _mirror(spatial_out: int):
    """The transpose of a (b1, b2, S...) tile: swap the batch axes, and the pixel halves of a full S."""

    def transpose(t):
        t = np.swapaxes(t, 0, 1) if isinstance(t, np.ndarray) else jnp.swapaxes(t, 0, 1)
        if spatial_out == 4:
            t = t.transpose(0, 1, 4, 5, 2, 3)
        return t

    return transpose


def generic(net, x1: Array, x2: Optional[Array], *, spatial: str, out_shape: tuple, want_ntk: bool,
            diagonal: bool, block_size: Optional[int]) -> tuple:
    """The generic path: every layer's kernel map, in tiles from :func:`ntknotes.tiling.pairwise`."""
    h_w = int(np.prod(x1.shape[1:3])) if spatial != "none" else 1
    per_pair = {"none": 1, "diag": h_w, "full": h_w * h_w}[spatial]
    if diagonal:
        block = block_size or tiling.tile_edge(per_pair, tiling.DEFAULT_BUDGET * 64, cap=2**16)
        return tiling.rowwise(lambda xb: _evaluate(net, xb, None, spatial=spatial, same=False, want_ntk=want_ntk,
                                                   diagonal=True), x1, block=block)
    block = block_size or tiling.tile_edge(per_pair, cap=_FC_TILE)
    spatial_out = len(out_shape) - 1 if len(out_shape) > 1 else 0
    if spatial_out and spatial == "full":
        spatial_out = 4
    return tiling.pairwise(
        lambda a, b, same: _evaluate(net, a, b, spatial=spatial, same=same, want_ntk=want_ntk, diagonal=False),
        x1, x2, block=block, transpose=_mirror(spatial_out),
    )


LEFT_WARN = 1e-9  # bound above which series entries left unrefined (too many per tile) are reported


def _fc_path(spec: _fc.FCSpec, x1, x2, *, want_ntk: bool, diagonal: bool, block_size: Optional[int], dtype,
             constants: Optional[Callable[[_fc.FCSpec, Any], tuple]] = None) -> tuple:
    consts = spec.constants(dtype) if constants is None else constants(spec, dtype)
    d = int(x1.shape[1])
    huge = _fc.needs_scaling(x1, x2)  # False (the usual case): the scaled-form branches are not compiled
    if diagonal:
        q, th, _ = _fc.diag_jit(spec.act, x1, *consts, spec.depth, d, huge)
        return (q[-1], th)
    # activations on the Hermite series: the tiles also return their largest relative error bound
    track = spec.act.uses_series and not is_traced(x1, x2, *consts)
    bounds, qmax, left = [], [], []
    tol = refine_tolerance(dtype if dtype is not None else x1.dtype)

    def prepare(xb):  # once per block: the diagonal pass and the per-point inputs of the tiles
        q, _, e = _fc.diag_jit(spec.act, xb, *consts, spec.depth, d, huge)
        if track:
            qmax.append(jnp.max(q))
        return xb, q, e, _fc.point_jit(spec.act, q)

    def refine_mode(args, p1, p2) -> str:
        """For traced inputs whose values are known (``jax.grad`` without ``jit``), whether the tile
        needs its refined recursion, decided on those values: the differentiated program then holds
        only the path that runs, not both under ``lax.cond`` (each costs seconds of compile time
        on two cores). Under ``jit``: "auto", both paths and ``lax.cond``."""
        if not spec.act.uses_series:
            return "auto"
        known = _fc.concrete((args[1:], p1, p2))
        if known is None:
            return "auto"
        vals, c1, c2 = known
        n = int(_fc.tile_jit(args[0], *vals, track=True, p1=c1, p2=c2, refine="never", huge=huge)[3])
        return "always" if 0 < n <= _fc.TILE_CAPACITY else "never"

    def tile(a, b, same):
        args = (spec.act, a[0], b[0], a[1], b[1], a[2], b[2], *consts, d, same)
        # untraced: the fast path, rerun with the inaccurate pairs refined where its bound says so
        mode = "never" if track else refine_mode(args, a[3], b[3])
        out = _fc.tile_jit(*args, track=track, p1=a[3], p2=b[3], refine=mode, huge=huge)
        if track and 0 < int(out[3]) <= _fc.TILE_CAPACITY:
            out = _fc.tile_jit(*args, track=track, p1=a[3], p2=b[3], refine="always", huge=huge)
        if track:
            bounds.append(out[2])
            left.append(int(out[3]))  # pairs left to the series (more than a tile refines)
            out = out[:2]
        return out

    block = block_size or _FC_TILE
    res = tiling.pairwise(tile, x1, x2, block=block, prepare=prepare)
    if bounds:
        warn_if_inaccurate(spec.act.name, jnp.stack(bounds), jnp.stack(qmax))
        # entries left to the series with bounds below LEFT_WARN are accurate enough for any use of a
        # float64 kernel; past SERIES_TOLERANCE the warning above has already been given
        if sum(left) and LEFT_WARN < float(jnp.max(jnp.stack(bounds))) <= SERIES_TOLERANCE:
            warnings.warn(
                f"{spec.act.name}: {sum(left)} kernel entries (tile by tile, each tile counting its own) keep "
                f"Hermite-series duals with a relative error bound above {tol:.0e} (up to "
                f"{float(jnp.max(jnp.stack(bounds))):.1e}): their tiles had more such pairs than the "
                f"{_fc.TILE_CAPACITY} that are recomputed accurately (correlations near ±1 throughout, as in "
                f"deep networks whose correlations converge to 1)", AccuracyWarning, stacklevel=3)
    return res


def _overflow_layer(spec: _fc.FCSpec, x: Array, consts: tuple) -> Optional[tuple[int, float]]:
    """(l, largest Σ^{l-1}) for the first layer l whose variances Σ^l(x, x) are not finite, else None."""
    q = np.asarray(_fc.diag_jit(spec.act, x, *consts, spec.depth, int(x.shape[1]), _fc.needs_scaling(x))[0])
    for layer in range(q.shape[0]):
        if not np.all(np.isfinite(q[layer])):
            return layer + 1, (float(np.max(q[layer - 1])) if layer else math.nan)
    return None


def _check_result(nngp, ntk, x1, x2, reason: str = "") -> None:
    """Raise ValueError when finite inputs gave NaN kernel entries (a dual map left its range), saying why.

    Where the true value overflows float64 the entries are inf and stay; NaN has no such meaning.
    ``reason`` is the diagnosis of :func:`_diagnose` (the layer whose variances overflow), if any.
    """
    bad = 0
    for k in (nngp, ntk):
        if k is not None:
            try:
                bad += int(np.count_nonzero(np.isnan(np.asarray(k))))
            except Exception:  # traced under jit: nothing to check eagerly
                return
    if bad:
        scale = max(float(jnp.max(jnp.abs(x))) for x in (x1, x2) if x is not None)
        why = reason or (
            "a layer's variances left the range its activation's dual maps cover (activations without a "
            "closed form are tabulated for variances up to 1e8)")
        raise ValueError(
            f"the kernel has {bad} NaN entries although the inputs are finite (largest |x| = "
            f"{scale:.3g}): {why}; the inputs are out of range for this network: rescale them or lower sigma_w"
        )


def _diagnose(spec: Optional[_fc.FCSpec], x1, x2, constants, dtype) -> str:
    """Why a fused FC kernel has non-finite entries: the first layer whose variances overflow, if any."""
    if spec is None:
        return ""
    consts = spec.constants(dtype) if constants is None else constants(spec, dtype)
    for x in (x1, x2):
        if x is None:
            continue
        found = _overflow_layer(spec, x, consts)
        if found is None:
            continue
        layer, prev = found
        limit = float(np.finfo(np.dtype(dtype) if dtype is not None else x.dtype).max)
        if layer == 1:
            return (f"the first layer's variances σ_w²·x·x'/d exceed {np.dtype(x.dtype).name}'s range "
                    f"(largest {limit:.3g}); only erf's kernels are computed in scaled form for such inputs")
        return (f"the variances of layer {layer} overflow {np.dtype(x.dtype).name} (largest {limit:.3g}; "
                f"layer {layer - 1} reaches {prev:.3g}): the true kernel values are beyond the float range")
    return ""


_FC_TILE = 512  # tiles of the fused FC path: a 512² tile's few arrays stay in a core's L2/L3 cache


def is_traced(*values: Any) -> bool:
    """True when any of ``values`` is a JAX tracer (inside ``jax.grad``, ``jax.jit``, ``jax.vmap``, ...)."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def kernel(net, x1, x2=None, *, get: Union[str, Sequence[str]] = GETS, diagonal: bool = False,
           block_size: Optional[int] = None, dtype=None, fast: bool = True,
           constants: Optional[Callable[[_fc.FCSpec, Any], tuple]] = None) -> Union[KernelPair, Array]:
    """See :meth:`ntknotes.stax.base.Layer.kernel`; ``fast=False`` forces the generic path.

    ``constants(spec, dtype)``, if given, replaces the fused path's (σ_w², σ_b², a, b) (traced
    hyperparameters, :func:`ntknotes.kernels.nngp_ntk`); the description must then match that path.
    Traced inputs (under ``jax.grad`` or ``jax.jit``) are evaluated as one tile unless ``block_size``
    is given, because tiles are assembled on the host.
    """
    names = _check_get(get)
    check_bool(diagonal, "diagonal")
    check_bool(fast, "fast")
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    in_shape = check_inputs(x1, x2)
    if diagonal and x2 is not None:
        raise ValueError("diagonal=True gives K(x, x) for the points of x1; pass x2=None")
    out_shape = _output_shape(net, in_shape)
    if is_multi(out_shape):
        raise ValueError(f"the network ends in {len(out_shape)} branches {list(out_shape)}; "
                         f"merge them with FanInSum() or FanInConcat()")
    dtype = check_float_dtype(dtype)
    x1 = jnp.asarray(x1, dtype)
    x2 = None if x2 is None else jnp.asarray(x2, dtype)
    if block_size is None and (constants is not None or is_traced(x1, x2)):
        block_size = max(int(x1.shape[0]), int(x1.shape[0] if x2 is None else x2.shape[0]))
    want_ntk = "ntk" in names
    spec = _fc.match(net, in_shape) if fast else None
    if constants is not None and spec is None:
        raise ValueError("constants apply to the fused fully-connected path only (a stack Dense, φ, ..., Dense)")
    cspec = _cntk.match(net, in_shape) if fast and spec is None and not diagonal else None
    if spec is not None:
        res = _fc_path(spec, x1, x2, want_ntk=want_ntk, diagonal=diagonal, block_size=block_size, dtype=dtype,
                       constants=constants)
    elif cspec is not None:
        gap = cspec.pooling == "gap"
        backend = _cntk.choose_backend(cspec.act, "auto")
        out = _cntk.readouts(x1, x2, depths=(cspec.depth,), gap=gap, act=cspec.act, sw2=cspec.sw2, sb2=cspec.sb2,
                             block_size=block_size, dtype=dtype, backend=backend)
        res = (out[0, 2], out[0, 3]) if gap else (out[0, 0], out[0, 1])
    else:
        spatial = spatial_mode(net, in_shape, out_shape)
        res = generic(net, x1, x2, spatial=spatial, out_shape=out_shape, want_ntk=want_ntk, diagonal=diagonal,
                      block_size=block_size)
    nngp = res[0]
    ntk = res[1] if want_ntk else None
    try:
        _check_result(nngp, ntk, x1, x2)
    except ValueError:
        _check_result(nngp, ntk, x1, x2, _diagnose(spec, x1, x2, constants, dtype))
        raise
    if isinstance(get, str):
        return nngp if get == "nngp" else ntk
    return KernelPair(nngp if "nngp" in names else None, ntk)
