"""Combinators of :mod:`ntknotes.stax`: ``serial``, ``parallel``, ``FanOut``, ``FanInSum``, ``FanInConcat``.

A residual block is one line::

    block = stax.serial(stax.FanOut(2),
                        stax.parallel(stax.serial(stax.Relu(), stax.Dense(512)), stax.Identity()),
                        stax.FanInSum())

Several branches travel as a tuple: ``FanOut(n)`` copies one input into n, ``parallel`` applies one
layer to each, ``FanInSum``/``FanInConcat`` merge them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from .._checks import check_positive_int
from ..activations import Activation
from .base import Layer, Shape, describe, is_multi
from .state import Kernel
from .layers import Elementwise

__all__ = ["serial", "parallel", "FanOut", "FanInSum", "FanInConcat", "Serial", "Parallel"]

Array = jax.Array


def _as_layer(layer: Any, name: str) -> Layer:
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, Activation):
        return Elementwise(layer)
    raise TypeError(
        f"{name} must be a stax layer (e.g. stax.Dense(512), stax.Relu()) or an ntknotes Activation, "
        f"got {type(layer).__name__} {layer!r}"
    )


def _join(where: str, part: str) -> str:
    return f"{where} > {part}" if where else part


@dataclasses.dataclass(frozen=True)
class Serial(Layer):
    """Layers applied one after the other (see :func:`serial`)."""

    layers: tuple

    def __repr__(self) -> str:
        return f"serial({', '.join(map(repr, self.layers))})"

    def _uses_pixel_pairs(self) -> bool:
        return any(layer._uses_pixel_pairs() for layer in self.layers)

    def _shape(self, shape: Shape, where: str) -> Shape:
        for i, layer in enumerate(self.layers):
            shape = layer._shape(shape, _join(where, f"layer {i}"))
        return shape

    def _init_at(self, key: Array, shape: Shape, where: str, dtype) -> tuple[Shape, Any]:
        keys = jax.random.split(key, max(1, len(self.layers)))
        params = []
        for i, (layer, k) in enumerate(zip(self.layers, keys)):
            shape, p = layer._init_at(k, shape, _join(where, f"layer {i}"), dtype)
            params.append(p)
        return shape, tuple(params)

    def _apply(self, params: Any, x: Any) -> Any:
        if not isinstance(params, (list, tuple)) or len(params) != len(self.layers):
            raise ValueError(
                f"params of {self!r} must be a tuple with one entry per layer ({len(self.layers)}), got "
                f"{type(params).__name__}" + (f" of length {len(params)}" if isinstance(params, (list, tuple)) else "")
            )
        for layer, p in zip(self.layers, params):
            x = layer._apply(p, x)
        return x

    def _kernel(self, k: Any, shape: Shape, where: str) -> Any:
        i = 0
        while i < len(self.layers):
            period, reps = self._repeats(i, shape)
            if reps >= 3 and isinstance(k, Kernel):
                # a block repeated with unchanged shape: apply it once unrolled (its flags settle), then
                # run the other repetitions in one lax.scan, as the fused MLP recursion does (unrolled,
                # XLA splits every layer into several loops over the kernel arrays)
                k, shape = self._kernel_block(k, shape, where, i, period)
                k = self._scan_block(k, shape, where, i + period, period, reps - 1)
                i += period * reps
                continue
            k, shape = self._kernel_block(k, shape, where, i, 1)
            i += 1
        return k

    def _kernel_block(self, k: Any, shape: Shape, where: str, start: int, period: int) -> tuple:
        for j in range(start, start + period):
            w = _join(where, f"layer {j}")
            k = self.layers[j]._kernel(k, shape, w)
            shape = self.layers[j]._shape(shape, w)
        return k, shape

    def _repeats(self, i: int, shape: Shape) -> tuple[int, int]:
        """(period p, repetitions r) of the longest run layers[i:i+p] == layers[i+p:i+2p] == ... that
        maps ``shape`` to itself (p <= 4), or (1, 1)."""
        best = (1, 1)
        for p in range(1, 5):
            block = self.layers[i : i + p]
            if len(block) < p or is_multi(shape) or block[0] is None:
                break
            try:
                out = shape
                for j, layer in enumerate(block):
                    out = layer._shape(out, "")
            except ValueError:
                continue
            if out != shape:
                continue
            r = 1
            while self.layers[i + r * p : i + (r + 1) * p] == block:
                r += 1
            if r * p > best[0] * best[1]:
                best = (p, r)
        return best

    def _scan_block(self, k: Kernel, shape: Shape, where: str, start: int, period: int, reps: int) -> Kernel:
        names = ("nngp", "ntk", "cov1", "cov2")

        def body(carry, _):
            kk, _ = self._kernel_block(k.replace(**dict(zip(names, carry))), shape, where, start, period)
            if (kk.spatial, kk.gaussian, kk.fresh) != (k.spatial, k.gaussian, k.fresh):
                raise _Unsettled
            return tuple(getattr(kk, n) for n in names), None

        try:
            carry, _ = jax.lax.scan(body, tuple(getattr(k, n) for n in names), None, length=reps)
        except _Unsettled:  # the block changes the state's flags: stay unrolled
            for r in range(reps):
                k, _ = self._kernel_block(k, shape, where, start + r * period, period)
            return k
        return k.replace(**dict(zip(names, carry)))


class _Unsettled(Exception):
    """A repeated block changed the kernel state's flags (so it cannot run in a scan)."""


def serial(*layers: Any) -> Serial:
    """Compose layers in sequence: ``serial(a, b, c)`` computes c(b(a(x))).

    Args:
      layers: stax layers or combinators (an :class:`~ntknotes.activations.Activation` is wrapped
        in :class:`~ntknotes.stax.layers.Elementwise`).
    Returns:
      A :class:`Serial` layer whose params are a tuple with one entry per layer.

    Example::

        net = stax.serial(stax.Dense(512, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(1, W_std=1.5, b_std=0.1))
        nngp, ntk = net.kernel(x)
    """
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    if not layers:
        raise ValueError("serial needs at least one layer")
    return Serial(tuple(_as_layer(layer, f"serial: layer {i}") for i, layer in enumerate(layers)))


@dataclasses.dataclass(frozen=True)
class Parallel(Layer):
    """One layer per branch (see :func:`parallel`)."""

    layers: tuple

    def __repr__(self) -> str:
        return f"parallel({', '.join(map(repr, self.layers))})"

    def _uses_pixel_pairs(self) -> bool:
        return any(layer._uses_pixel_pairs() for layer in self.layers)

    def _branches(self, shape: Shape, where: str) -> tuple:
        if not is_multi(shape) or len(shape) != len(self.layers):
            got = f"{len(shape)} branches" if is_multi(shape) else f"one input of per-example shape {shape}"
            raise ValueError(
                f"{describe(where, self)} has {len(self.layers)} branches but gets {got}; put FanOut({len(self.layers)}) before it"
            )
        return shape

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = self._branches(shape, where)
        return tuple(layer._shape(s, _join(where, f"branch {i}")) for i, (layer, s) in enumerate(zip(self.layers, shape)))

    def _init_at(self, key: Array, shape: Shape, where: str, dtype) -> tuple[Shape, Any]:
        shape = self._branches(shape, where)
        keys = jax.random.split(key, len(self.layers))
        outs, params = [], []
        for i, (layer, s, k) in enumerate(zip(self.layers, shape, keys)):
            o, p = layer._init_at(k, s, _join(where, f"branch {i}"), dtype)
            outs.append(o)
            params.append(p)
        return tuple(outs), tuple(params)

    def _apply(self, params: Any, x: Any) -> Any:
        return tuple(layer._apply(p, v) for layer, p, v in zip(self.layers, params, x))

    def _kernel(self, k: Any, shape: Shape, where: str) -> Any:
        return tuple(
            layer._kernel(ki, s, _join(where, f"branch {i}")) for i, (layer, ki, s) in enumerate(zip(self.layers, k, shape))
        )


def parallel(*layers: Any) -> Parallel:
    """Apply the i-th layer to the i-th branch; params are a tuple with one entry per branch.

    Example::

        stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(256), stax.Dense(128)), stax.FanInConcat())
    """
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    if not layers:
        raise ValueError("parallel needs at least one layer")
    return Parallel(tuple(_as_layer(layer, f"parallel: branch {i}") for i, layer in enumerate(layers)))


@dataclasses.dataclass(frozen=True)
class FanOut(Layer):
    """Copy one input into ``num`` identical branches.

    The copies are one random variable: their covariance with each other is their variance, so a
    later :class:`FanInSum` needs all but one branch to pass through a layer with its own weights.
    """

    num: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "num", check_positive_int(self.num, "FanOut: num"))

    def _shape(self, shape: Shape, where: str) -> Shape:
        if is_multi(shape):
            raise ValueError(f"{describe(where, self)} copies one input but gets {len(shape)} branches")
        return (shape,) * self.num

    def _apply(self, params: Any, x: Any) -> Any:
        return (x,) * self.num

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Any:
        return (k.replace(fresh=False),) * self.num


def _merge_shapes(layer: Layer, shape: Shape, where: str, concat: bool) -> tuple:
    if not is_multi(shape):
        raise ValueError(f"{describe(where, layer)} merges branches but gets one input of per-example shape {shape}; put FanOut and parallel before it")
    first = shape[0]
    for i, s in enumerate(shape):
        if len(s) != len(first) or (s[:-1] != first[:-1] if concat else s != first):
            what = "all but the channel axis" if concat else "the same shape"
            raise ValueError(
                f"{describe(where, layer)} needs branches of {what}; got per-example shapes {list(shape)} "
                f"(branch {i} differs from branch 0)"
            )
    return shape


@dataclasses.dataclass(frozen=True)
class FanInSum(Layer):
    """Sum the branches (all of the same shape).

    Kernel: the sum of the branches' kernels, exact when the branches are jointly Gaussian with zero
    covariance between them — every branch Gaussian, and all but at most one ending in a layer with
    its own weights (a residual block's skip branch is the one).  Other sums are refused.
    """

    def _shape(self, shape: Shape, where: str) -> Shape:
        return _merge_shapes(self, shape, where, False)[0]

    def _apply(self, params: Any, x: Any) -> Any:
        out = x[0]
        for v in x[1:]:
            out = out + v
        return out

    def _kernel(self, ks: Any, shape: Shape, where: str) -> Kernel:
        bad = [i for i, k in enumerate(ks) if not k.gaussian]
        if bad:
            raise ValueError(
                f"{describe(where, self)}: branches {bad} are not Gaussian (e.g. an activation's output); the "
                f"infinite-width kernel of a sum needs jointly Gaussian branches: end each branch in a Dense or "
                f"Conv layer (or Identity of such an output)"
            )
        shared = [i for i, k in enumerate(ks) if not k.fresh]
        if len(shared) > 1:
            raise ValueError(
                f"{describe(where, self)}: branches {shared} are correlated with each other (none of them ends "
                f"in a layer with its own weights), so the kernel of their sum is not the sum of their kernels; "
                f"at most one branch may skip such a layer"
            )
        first = ks[0]

        def total(name):
            vals = [getattr(k, name) for k in ks]
            if vals[0] is None:
                return None
            out = vals[0]
            for v in vals[1:]:
                out = out + v
            return out

        return first.replace(nngp=total("nngp"), ntk=total("ntk"), cov1=total("cov1"), cov2=total("cov2"),
                             gaussian=True, fresh=all(k.fresh for k in ks))


@dataclasses.dataclass(frozen=True)
class FanInConcat(Layer):
    """Concatenate the branches along the channel axis (the last one).

    Kernel: the channel-weighted mean Σ_i n_i K_i / Σ_i n_i.  The concatenated features are not
    identically distributed across channels, so an activation or LayerNorm may not follow directly
    (a Dense or Conv layer may); neural-tangents has the same restriction.
    """

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _merge_shapes(self, shape, where, True)
        return shape[0][:-1] + (sum(s[-1] for s in shape),)

    def _apply(self, params: Any, x: Any) -> Any:
        return jnp.concatenate(list(x), axis=-1)

    def _kernel(self, ks: Any, shape: Shape, where: str) -> Kernel:
        widths = [s[-1] for s in shape]
        total_width = float(sum(widths))

        def mix(name):
            vals = [getattr(k, name) for k in ks]
            if vals[0] is None:
                return None
            out = (widths[0] / total_width) * vals[0]
            for n, v in zip(widths[1:], vals[1:]):
                out = out + (n / total_width) * v
            return out

        return ks[0].replace(nngp=mix("nngp"), ntk=mix("ntk"), cov1=mix("cov1"), cov2=mix("cov2"),
                             gaussian=False, fresh=all(k.fresh for k in ks))
