"""Layers of :mod:`ntknotes.stax`: each a frozen dataclass with ``init``, ``apply`` and a kernel map.

Conventions (those of neural-tangents, so that code ports):

* inputs are (N, d) vectors or (N, H, W, C) images (NHWC); every ``input_shape`` and output shape
  includes the batch dimension first (any int, e.g. -1);
* ``W_std`` and ``b_std`` are σ_w and σ_b; ``b_std=None`` means no bias at all, while
  ``b_std=0.0`` is a bias that starts at zero and is trained (its gradient adds 1 to the standard
  NTK); in the NTK parameterization (default) W, b ~ N(0, 1) and the layer computes
  σ_w/√fan_in · x W + σ_b b; in the standard one W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²) and the
  layer computes x W + b;
* kernels are per channel: a Dense(k) output has the kernel K ⊗ I_k; Flatten averages the aligned
  pixel pairs (its Dense readout divides by √(H·W·C)), AvgPool divides by the window size with
  zero padding counted (``normalize_edges=False``), GlobalAvgPool averages every pixel pair.

Deliberate differences from neural-tangents: Dense refuses images (flatten or pool first);
LayerNorm normalizes over the channel axis only; FanInConcat concatenates channels only;
activations and LayerNorm refuse non-Gaussian inputs (e.g. raw inputs, or an activation's output)
instead of silently returning a kernel that the theory does not give; FanInSum refuses branches
whose covariance with each other is not zero (e.g. two Identity branches).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_nonnegative, check_positive_int
from ..activations import Activation, get_activation
from .base import Layer, Shape, describe, is_multi
from .state import Kernel

__all__ = [
    "Dense",
    "Conv",
    "Elementwise",
    "AvgPool",
    "GlobalAvgPool",
    "Flatten",
    "LayerNorm",
    "Identity",
    "PARAMETERIZATIONS",
    "PADDINGS",
]

Array = jax.Array
PARAMETERIZATIONS = ("ntk", "standard")
PADDINGS = ("SAME", "VALID", "CIRCULAR")


# ----------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------
def _check_b_std(b_std: Any, layer: str) -> Optional[float]:
    if b_std is None:
        return None
    return check_nonnegative(b_std, f"{layer}: b_std")


def _pair(value: Any, name: str, n: int = 2) -> tuple[int, ...]:
    """An int or a sequence of n positive ints -> tuple of n positive ints."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        value = (value,) * n
    if not isinstance(value, (tuple, list)) or len(value) != n:
        raise TypeError(f"{name} must be a positive int or a sequence of {n} positive ints, got {value!r}")
    return tuple(check_positive_int(v, f"{name}[{i}]") for i, v in enumerate(value))


def _single(shape: Shape, where: str, layer: Layer) -> tuple:
    if is_multi(shape):
        raise ValueError(
            f"{describe(where, layer)} takes one input but gets {len(shape)} branches {list(shape)}; "
            f"merge them first with FanInSum() or FanInConcat()"
        )
    return shape


def _image(shape: Shape, where: str, layer: Layer) -> tuple[int, int, int]:
    shape = _single(shape, where, layer)
    if len(shape) != 3:
        raise ValueError(
            f"{describe(where, layer)} expects images (N, H, W, C) (channels last), but its input has "
            f"per-example shape {shape}"
        )
    return shape


def _geometry(n: int, size: int, stride: int, padding: str, where: str, layer: Layer, axis: str) -> tuple[int, int, int]:
    """(output length, padding before, padding after) of a window sliding over n positions."""
    if padding == "VALID":
        if size > n:
            raise ValueError(
                f"{describe(where, layer)}: the window ({size} along {axis}) is larger than the input ({n}) "
                f"under padding='VALID'"
            )
        return (n - size) // stride + 1, 0, 0
    out = -(-n // stride)
    total = max((out - 1) * stride + size - n, 0)
    return out, total // 2, total - total // 2


def _window_sum(a: Array, axes: Sequence[int], size: int, stride: int, out: int, lo: int, hi: int, circular: bool) -> Array:
    """Σ over offsets o < size of a[.., o + stride·i, ..], the same offset on every axis in ``axes``.

    ``a`` is first padded by (lo, hi) along those axes, with zeros or circularly.  Used both for
    the finite layers (one axis at a time) and for the kernel maps, where a convolution shifts the
    two pixels of a pair together and a pooling shifts them independently.
    """
    if lo or hi:
        widths = [(0, 0)] * a.ndim
        for ax in axes:
            widths[ax] = (lo, hi)
        a = jnp.pad(a, widths, mode="wrap" if circular else "constant")
    total = None
    for o in range(size):
        idx = [slice(None)] * a.ndim
        for ax in axes:
            idx[ax] = slice(o, o + stride * (out - 1) + 1, stride)
        term = a[tuple(idx)]
        total = term if total is None else total + term
    return total


def _spatial_axes(k: Kernel, nb: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The axes of the first and second pixel coordinate (height axes, width axes) of an array."""
    if k.spatial == "diag":
        return (nb,), (nb + 1,)
    return (nb, nb + 2), (nb + 1, nb + 3)


# ----------------------------------------------------------------------------
# affine layers
# ----------------------------------------------------------------------------
def _affine(k: Kernel, summed, *, sw2: float, sb2: float, fan_in: int, parameterization: str, has_bias: bool) -> Kernel:
    """The kernel after an affine layer whose weight-sharing pattern is the linear map ``summed``
    (identity for Dense, the mean over filter offsets for Conv).

    NNGP: σ_w² summed(K) + σ_b².  NTK: σ_w² summed(Θ) + the NTK of this layer's own parameters,
    which is the new NNGP in the NTK parameterization and fan_in·summed(K) + 1[bias] in the
    standard one.
    """
    c = k.map(summed)  # every array through the sharing pattern
    new = c.map(lambda a, nb: sw2 * a + sb2)
    if k.ntk is None:
        return new.replace(ntk=None, gaussian=True, fresh=True)
    if parameterization == "ntk":
        ntk = new.nngp + sw2 * c.ntk
    else:
        ntk = fan_in * c.nngp + sw2 * c.ntk + (1.0 if has_bias else 0.0)
    return new.replace(ntk=ntk, gaussian=True, fresh=True)


def _draw(key: Array, w_shape: tuple, n_out: int, *, sw: float, sb: Optional[float], fan_in: int, parameterization: str, dtype) -> dict:
    k_w, k_b = jax.random.split(key)
    w = jax.random.normal(k_w, w_shape, dtype)
    params = {"W": w if parameterization == "ntk" else w * (sw / math.sqrt(fan_in))}
    if sb is not None:
        b = jax.random.normal(k_b, (n_out,), dtype)
        params["b"] = b if parameterization == "ntk" else b * sb
    return params


def _scales(sw: float, sb: Optional[float], fan_in: int, parameterization: str) -> tuple[float, float]:
    """(weight factor, bias factor) of the forward pass."""
    if parameterization == "standard":
        return 1.0, 1.0
    return sw / math.sqrt(fan_in), (0.0 if sb is None else sb)


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """Fully-connected layer: (N, d) -> (N, out_dim).

    Args:
      out_dim: number of outputs (the width n when the layer is hidden).
      W_std, b_std: σ_w and σ_b; ``b_std=None``: no bias, ``0.0``: a zero-initialized trainable bias.
      parameterization: ``"ntk"`` (default) or ``"standard"`` (see the module docstring).

    Params: ``{"W": (d, out_dim), "b": (out_dim,)}`` (no "b" when ``b_std`` is None).

    Example::

        net = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
        out_shape, params = net.init(jax.random.PRNGKey(0), (-1, 3))
        f = net.apply(params, x)                      # (N, 1)
        k = net.kernel(x)                             # KernelPair((N, N), (N, N))
    """

    out_dim: int
    W_std: float = 1.0
    b_std: Optional[float] = None
    parameterization: str = "ntk"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dim", check_positive_int(self.out_dim, "Dense: out_dim"))
        object.__setattr__(self, "W_std", check_nonnegative(self.W_std, "Dense: W_std"))
        object.__setattr__(self, "b_std", _check_b_std(self.b_std, "Dense"))
        check_choice(self.parameterization, "Dense: parameterization", PARAMETERIZATIONS)

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _single(shape, where, self)
        if len(shape) != 1:
            raise ValueError(
                f"{describe(where, self)} expects vectors (N, d), but its input has per-example shape {shape}; "
                f"put Flatten() or GlobalAvgPool() before it"
            )
        return (self.out_dim,)

    def _init(self, key: Array, shape: Shape, dtype) -> Any:
        return _draw(key, (shape[0], self.out_dim), self.out_dim, sw=self.W_std, sb=self.b_std,
                     fan_in=shape[0], parameterization=self.parameterization, dtype=dtype)

    def scales(self, in_shape: tuple) -> tuple[float, float]:
        """(weight factor, bias factor) of the forward pass for per-example input shape (d,)."""
        return _scales(self.W_std, self.b_std, in_shape[-1], self.parameterization)

    def _apply(self, params: Any, x: Array) -> Array:
        cw, cb = self.scales(x.shape[1:])
        out = cw * (x @ params["W"])
        return out + cb * params["b"] if "b" in params else out

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        return _affine(k, lambda a, nb: a, sw2=self.W_std**2, sb2=(self.b_std or 0.0) ** 2, fan_in=shape[0],
                       parameterization=self.parameterization, has_bias=self.b_std is not None)


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
    """2-D convolution over images (N, H, W, C) -> (N, H', W', out_channels), weights HWIO.

    Args:
      out_channels: output channels (the width n).
      filter_shape: (fh, fw), or one int for a square filter.
      strides: (sh, sw) or one int (default 1).
      padding: ``"SAME"`` (zeros, output ⌈H/s⌉), ``"VALID"`` (no padding, output ⌊(H − fh)/s⌋ + 1) or
        ``"CIRCULAR"`` (periodic, the SAME amounts).
      W_std, b_std, parameterization: as in :class:`Dense`, with fan_in = fh·fw·C.

    Params: ``{"W": (fh, fw, C, out_channels), "b": (out_channels,)}``.

    The kernel map shifts both pixels of a pair together (weights are shared over positions):
    K'[p, p'] = σ_w² mean_δ K[s·p + δ, s·p' + δ] + σ_b² (zero outside the image, or wrapped).

    Example::

        net = stax.serial(stax.Conv(64, 3), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1))
        k = net.kernel(images)                        # images (N, 8, 8, 3)
    """

    out_channels: int
    filter_shape: Union[int, tuple] = (3, 3)
    strides: Union[int, tuple] = (1, 1)
    padding: str = "SAME"
    W_std: float = 1.0
    b_std: Optional[float] = None
    parameterization: str = "ntk"

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_channels", check_positive_int(self.out_channels, "Conv: out_channels"))
        object.__setattr__(self, "filter_shape", _pair(self.filter_shape, "Conv: filter_shape"))
        object.__setattr__(self, "strides", _pair(self.strides, "Conv: strides"))
        check_choice(self.padding, "Conv: padding", PADDINGS)
        object.__setattr__(self, "W_std", check_nonnegative(self.W_std, "Conv: W_std"))
        object.__setattr__(self, "b_std", _check_b_std(self.b_std, "Conv"))
        check_choice(self.parameterization, "Conv: parameterization", PARAMETERIZATIONS)

    def _geom(self, shape: tuple, where: str = "") -> tuple:
        h, w, _ = shape
        gh = _geometry(h, self.filter_shape[0], self.strides[0], self.padding, where, self, "height")
        gw = _geometry(w, self.filter_shape[1], self.strides[1], self.padding, where, self, "width")
        return gh, gw

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _image(shape, where, self)
        (oh, _, _), (ow, _, _) = self._geom(shape, where)
        return (oh, ow, self.out_channels)

    def _fan_in(self, shape: tuple) -> int:
        return self.filter_shape[0] * self.filter_shape[1] * shape[2]

    def _init(self, key: Array, shape: Shape, dtype) -> Any:
        fh, fw = self.filter_shape
        return _draw(key, (fh, fw, shape[2], self.out_channels), self.out_channels, sw=self.W_std, sb=self.b_std,
                     fan_in=self._fan_in(shape), parameterization=self.parameterization, dtype=dtype)

    def patches(self, x: Array) -> Array:
        """im2col: (N, H, W, C) -> (N, H', W', fh·fw·C), the input patch under every output pixel
        (row-major over the filter, channels fastest, matching ``W.reshape(fh·fw·C, out_channels)``)."""
        (oh, lh, hh), (ow, lw, hw) = self._geom(x.shape[1:])
        fh, fw = self.filter_shape
        sh, sw = self.strides
        if lh or hh or lw or hw:
            x = jnp.pad(x, ((0, 0), (lh, hh), (lw, hw), (0, 0)), mode="wrap" if self.padding == "CIRCULAR" else "constant")
        return jnp.concatenate(
            [x[:, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw, :] for a in range(fh) for b in range(fw)],
            axis=-1,
        )

    def scales(self, in_shape: tuple) -> tuple[float, float]:
        """(weight factor, bias factor) of the forward pass for per-example input shape (H, W, C)."""
        return _scales(self.W_std, self.b_std, self._fan_in(in_shape), self.parameterization)

    def _apply(self, params: Any, x: Array) -> Array:
        # im2col then one matmul (XLA's CPU convolution is 10-25x slower inside lax.scan loops such
        # as the trainer's; a matmul keeps its speed)
        cw, cb = self.scales(x.shape[1:])
        w = params["W"]
        out = cw * (self.patches(x) @ w.reshape(-1, w.shape[-1]))
        return out + cb * params["b"] if "b" in params else out

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        (oh, lh, hh), (ow, lw, hw) = self._geom(shape)
        fh, fw = self.filter_shape
        sh, sw = self.strides
        circular = self.padding == "CIRCULAR"

        def summed(a, nb):
            ax_h, ax_w = _spatial_axes(k, nb)
            a = _window_sum(a, ax_h, fh, sh, oh, lh, hh, circular)
            a = _window_sum(a, ax_w, fw, sw, ow, lw, hw, circular)
            return a / (fh * fw)

        return _affine(k, summed, sw2=self.W_std**2, sb2=(self.b_std or 0.0) ** 2, fan_in=self._fan_in(shape),
                       parameterization=self.parameterization, has_bias=self.b_std is not None)


# ----------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------
def _pair_duals(act: Activation, a: Array, qa: Array, qb: Array, same: Array) -> tuple[Array, Array]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for covariances ``a`` with variances qa, qb (broadcasting).

    Pairs of a feature with itself (``same``) get correlation exactly 1: arccos(1 − ε) ≈ √(2ε)
    would turn rounding at 1e-16 into errors of 1e-8.  Positively homogeneous activations (the
    ReLU family) work on correlations with per-feature √q and 1/√q, so one entry costs one arccos
    and a few multiply-adds; correlations within 8 ulp of 1 are rounding of ρ = 1 and snap to it.
    """
    hom = act.homogeneous_dual
    if hom is not None:
        ra, rb = jnp.sqrt(jnp.maximum(qa, 0.0)), jnp.sqrt(jnp.maximum(qb, 0.0))
        ia = jnp.where(ra > 0, 1.0 / jnp.where(ra > 0, ra, 1.0), 0.0)
        ib = jnp.where(rb > 0, 1.0 / jnp.where(rb > 0, rb, 1.0), 0.0)
        snap = 1.0 - 8 * jnp.finfo(a.dtype).eps
        rho = jnp.clip(a * ia * ib, -1.0, 1.0)
        rho = jnp.where(same | (rho > snap), 1.0, rho)
        # the barrier keeps XLA from fusing (and so recomputing) the arccos into each consumer of J and J̇
        j, jdot = jax.lax.optimization_barrier(hom(rho))
        return (ra * rb) * j, jdot
    a = jnp.where(same, qa, a)
    return act.dual_and_derivative(qa, a, qb)


@dataclasses.dataclass(frozen=True)
class Elementwise(Layer):
    """An elementwise activation φ (any :class:`ntknotes.activations.Activation` or its name).

    The kernel map uses φ's closed-form dual maps where it has them (ReLU family via arc-cosine,
    erf via arcsin, identity, sin) and Gauss–Hermite/Legendre quadrature otherwise:
    K' = E[φ(u)φ(v)], Θ' = Θ · E[φ'(u)φ'(v)] with (u, v) ~ N(0, [[K(x,x), K], [K, K(x',x')]]).
    Its input must be Gaussian (come from a Dense or Conv layer, possibly through pooling or sums).

    Example::

        stax.serial(stax.Dense(256), stax.Elementwise("erf"), stax.Dense(1))
    """

    activation: Union[str, Activation] = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "activation", get_activation(self.activation))

    def __repr__(self) -> str:
        return f"Elementwise({self.activation.name})"

    def _shape(self, shape: Shape, where: str) -> Shape:
        return _single(shape, where, self)

    def _apply(self, params: Any, x: Array) -> Array:
        return self.activation(x)

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        if not k.gaussian:
            raise ValueError(
                f"{describe(where, self)} needs Gaussian pre-activations (the output of a Dense or Conv layer, or "
                f"linear maps and sums of such outputs); its input is not (raw inputs, or another activation's "
                f"output), so its infinite-width kernel is not a dual map"
            )
        act = self.activation
        out = {}
        dots = None
        for name, arr, qa, qb, same in k.pairs():
            c, cdot = _pair_duals(act, arr, qa, qb, same)
            out[name] = c
            if name == "nngp":
                dots = cdot
        ntk = None if k.ntk is None else k.ntk * dots
        return k.replace(nngp=out["nngp"], ntk=ntk, cov1=out.get("cov1"), cov2=out.get("cov2"),
                         gaussian=False, fresh=False)


# ----------------------------------------------------------------------------
# pooling, flatten, normalization, identity
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AvgPool(Layer):
    """Average pooling over windows of images (N, H, W, C) -> (N, H', W', C).

    Args:
      window_shape: (wh, ww) or one int.
      strides: (sh, sw), one int, or ``None`` for the window shape (non-overlapping windows).
      padding: ``"VALID"`` (default) or ``"SAME"``; padded zeros count in the mean (neural-tangents'
        ``normalize_edges=False``).

    The kernel map averages both pixels of a pair independently over their windows, so it needs
    every pixel pair (a network with AvgPool runs its kernel in "full" spatial mode).

    Example::

        stax.serial(stax.Conv(32, 3), stax.Relu(), stax.AvgPool(2), stax.Flatten(), stax.Dense(1))
    """

    window_shape: Union[int, tuple] = (2, 2)
    strides: Union[None, int, tuple] = None
    padding: str = "VALID"

    needs_pixel_pairs = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "window_shape", _pair(self.window_shape, "AvgPool: window_shape"))
        strides = self.window_shape if self.strides is None else self.strides
        object.__setattr__(self, "strides", _pair(strides, "AvgPool: strides"))
        check_choice(self.padding, "AvgPool: padding", ("SAME", "VALID"))

    def _geom(self, shape: tuple, where: str = "") -> tuple:
        h, w, _ = shape
        return (_geometry(h, self.window_shape[0], self.strides[0], self.padding, where, self, "height"),
                _geometry(w, self.window_shape[1], self.strides[1], self.padding, where, self, "width"))

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _image(shape, where, self)
        (oh, _, _), (ow, _, _) = self._geom(shape, where)
        return (oh, ow, shape[2])

    def _pool(self, a: Array, axes_h: Sequence[int], axes_w: Sequence[int], shape: tuple) -> Array:
        """Average every axis in axes_h over height windows and every axis in axes_w over width windows."""
        (oh, lh, hh), (ow, lw, hw) = self._geom(shape)
        wh, ww = self.window_shape
        sh, sw = self.strides
        for ax in axes_h:
            a = _window_sum(a, (ax,), wh, sh, oh, lh, hh, False) / wh
        for ax in axes_w:
            a = _window_sum(a, (ax,), ww, sw, ow, lw, hw, False) / ww
        return a

    def _apply(self, params: Any, x: Array) -> Array:
        return self._pool(x, (1,), (2,), x.shape[1:])

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        def pool(a, nb):
            ax_h, ax_w = _spatial_axes(k, nb)
            return self._pool(a, ax_h, ax_w, shape)

        return k.map(pool)


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """The mean over all pixels: images (N, H, W, C) -> vectors (N, C).

    Kernel: the mean of K over all pixel pairs (needs every pixel pair: "full" spatial mode).

    Example::

        stax.serial(stax.Conv(64, 3), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(10))
    """

    needs_pixel_pairs = True

    def _shape(self, shape: Shape, where: str) -> Shape:
        return (_image(shape, where, self)[2],)

    def _apply(self, params: Any, x: Array) -> Array:
        return jnp.mean(x, axis=(1, 2))

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        out = k.map(lambda a, nb: jnp.mean(a, axis=tuple(range(nb, nb + 4))))
        return out.replace(spatial="none")


def _aligned_pixels(k: Kernel, a: Array, nb: int) -> Array:
    """The aligned pixel pairs p = p' of an array: (B..., H, W)."""
    if k.spatial != "full":
        return a
    h, w = a.shape[nb], a.shape[nb + 1]
    flat = a.reshape(a.shape[:nb] + (h * w, h * w))
    return jnp.diagonal(flat, axis1=nb, axis2=nb + 1).reshape(a.shape[:nb] + (h, w))


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
    """Images (N, H, W, C) -> vectors (N, H·W·C) (vectors pass unchanged).

    Kernel: the mean of K over the aligned pixel pairs p = p' (a following Dense layer divides by
    √(H·W·C), as in neural-tangents).

    Example::

        stax.serial(stax.Conv(64, 3), stax.Relu(), stax.Flatten(), stax.Dense(10))
    """

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _single(shape, where, self)
        return (int(np.prod(shape)),)

    def _apply(self, params: Any, x: Array) -> Array:
        return x.reshape(x.shape[0], -1)

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        if k.spatial == "none":
            return k
        out = k.map(lambda a, nb: jnp.mean(_aligned_pixels(k, a, nb), axis=(nb, nb + 1)))
        return out.replace(spatial="none")


@dataclasses.dataclass(frozen=True)
class LayerNorm(Layer):
    """Layer normalization over the channel axis: (x − mean_c x)/√(var_c x + eps), no parameters.

    Kernel (infinite width, Gaussian input): K'[x, x'] = K / √((K(x,x) + eps)(K(x',x') + eps)) per
    pixel pair, and the NTK likewise.  Unlike neural-tangents, only the channel axis can be
    normalized.  Needs Gaussian inputs and more than one channel.

    Example::

        stax.serial(stax.Dense(512), stax.LayerNorm(), stax.Relu(), stax.Dense(1))
    """

    eps: float = 1e-12

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_nonnegative(self.eps, "LayerNorm: eps"))

    def _shape(self, shape: Shape, where: str) -> Shape:
        shape = _single(shape, where, self)
        if shape[-1] < 2:
            raise ValueError(
                f"{describe(where, self)} normalizes over the channel axis, which has size {shape[-1]}; "
                f"a size-1 axis has zero variance"
            )
        return shape

    def _apply(self, params: Any, x: Array) -> Array:
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + self.eps)

    def _kernel(self, k: Kernel, shape: Shape, where: str) -> Kernel:
        if not k.gaussian:
            raise ValueError(
                f"{describe(where, self)} needs Gaussian inputs (the output of a Dense or Conv layer); its "
                f"infinite-width kernel assumes centred features"
            )
        scaled = {}
        for name, arr, qa, qb, _ in k.pairs():
            scaled[name] = 1.0 / jnp.sqrt((qa + self.eps) * (qb + self.eps))
        return k.replace(
            nngp=k.nngp * scaled["nngp"],
            ntk=None if k.ntk is None else k.ntk * scaled["nngp"],
            cov1=None if k.cov1 is None else k.cov1 * scaled["cov1"],
            cov2=None if k.cov2 is None else k.cov2 * scaled["cov2"],
        )


@dataclasses.dataclass(frozen=True)
class Identity(Layer):
    """The identity map (the skip branch of a residual block).

    Example::

        block = stax.serial(stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(512)),
                                                          stax.Identity()), stax.FanInSum())
    """

    def _shape(self, shape: Shape, where: str) -> Shape:
        return shape

    def _apply(self, params: Any, x: Array) -> Array:
        return x

    def _kernel(self, k, shape: Shape, where: str):
        return k
