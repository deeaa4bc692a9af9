"""The on-diagonal NTK of deep ReLU networks at finite depth and width, and its first SGD step.

The network is the one of Hanin & Nica (2020): input dimension n_0, hidden ReLU layers of
widths n_1, ..., n_{d-1}, a scalar linear output, so d weight layers in all::

    h^l = c_l x^{l-1} Ŵ_l + b_l,   x^l = ReLU(h^l)   (l = 1, ..., d-1),   N(x) = c_d x^{d-1} Ŵ_d + b_d,

with Ŵ_l ~ N(0, 1) entrywise, c_l² = 2/n_{l-1} for the hidden layers and c_d² = 1/n_{d-1}
for the output layer (so the effective weights c_l Ŵ_l have variance 2/fan-in and 1/fan-in),
and biases b_l initialized to zero but trainable.  Gradients are taken with respect to
θ = (Ŵ_1, b_1, ..., Ŵ_d, b_d); with this convention the mean of the kernel is exactly

    E[K_N(x, x)] = d ‖x‖²/n_0 + (d + 1)/2.

With δ^l = ∂N/∂h^l (δ^d = 1) and x^0 = x, the kernel on the diagonal splits into per-layer
weight and bias terms, computed from one forward and one backward pass (no Jacobian)::

    K_N(x, x) = Σ_l c_l² ‖x^{l-1}‖² ‖δ^l‖²  +  Σ_l ‖δ^l‖².

One SGD step on the loss ½(N(x) − N*)² with rate λ changes the kernel by, to first order in λ,
ΔK = −2λ (N − N*) ∇Nᵀ H ∇N, evaluated with one Hessian-vector product (``jax.jvp`` of
``jax.grad``).  :func:`sample_ntk` draws many networks at once (``vmap`` over networks,
``jit``-compiled chunks) and returns the per-network terms; for equal hidden widths the
hidden layers are stacked and traversed with ``lax.scan``, so compilation does not grow with
depth, and the draws are the same as those of :meth:`ReLUNet.init` with the same key.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import precision
from ._checks import check_bool, check_finite, check_float_dtype, check_key, check_nonnegative, check_positive, check_positive_int

__all__ = [
    "ReLUNet",
    "NTKTerms",
    "NTKSamples",
    "ntk_terms",
    "ntk_update",
    "sample_ntk",
    "mean_ntk",
    "layer_ratio_product",
    "relu_layer_moments",
]

Array = jax.Array
Params = list  # list[dict[str, Array]]: one {"W": (fan_in, fan_out), "b": (fan_out,)} per layer


@dataclasses.dataclass(frozen=True)
class ReLUNet:
    """The Hanin–Nica ReLU network: ``in_dim`` = n_0, ``widths`` = (n_1, ..., n_{d-1}), scalar output.

    Attributes:
      in_dim: input dimension n_0.
      widths: hidden widths, a tuple of d − 1 >= 1 positive ints (equal or varying).
    """

    in_dim: int
    widths: tuple

    def __post_init__(self) -> None:
        check_positive_int(self.in_dim, "in_dim")
        widths = self.widths
        if isinstance(widths, (numbers.Integral, np.integer)) and not isinstance(widths, bool):
            raise TypeError(
                f"widths must be a sequence of hidden widths (n_1, ..., n_(d-1)), got the int {widths}; "
                "use ReLUNet.equal(in_dim, width, depth) for equal widths"
            )
        if not isinstance(widths, (list, tuple)) or len(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
        object.__setattr__(self, "widths", tuple(check_positive_int(w, f"widths[{i}]") for i, w in enumerate(widths)))

    @classmethod
    def equal(cls, in_dim: int, width: int, depth: int) -> "ReLUNet":
        """A network with ``depth`` = d weight layers and d − 1 hidden layers of equal ``width``."""
        depth = check_positive_int(depth, "depth")
        if depth < 2:
            raise ValueError(f"depth counts weight layers and must be >= 2 (one hidden layer), got {depth}")
        return cls(in_dim, (check_positive_int(width, "width"),) * (depth - 1))

    @property
    def depth(self) -> int:
        """d, the number of weight layers (hidden layers + 1)."""
        return len(self.widths) + 1

    @property
    def sizes(self) -> tuple:
        """(n_0, n_1, ..., n_{d-1}, 1)."""
        return (self.in_dim,) + self.widths + (1,)

    @property
    def beta(self) -> float:
        """β = Σ_{l=1}^{d-1} 1/n_l, the inverse temperature of Hanin & Nica."""
        return float(sum(1.0 / n for n in self.widths))

    @property
    def scales(self) -> tuple:
        """(c_1, ..., c_d): c_l = √(2/n_{l-1}) for hidden layers, c_d = √(1/n_{d-1})."""
        s = self.sizes
        return tuple(math.sqrt(2.0 / s[i]) for i in range(self.depth - 1)) + (math.sqrt(1.0 / s[-2]),)

    @property
    def num_params(self) -> int:
        """Number of trainable scalars, weights and biases."""
        s = self.sizes
        return sum(s[i] * s[i + 1] + s[i + 1] for i in range(self.depth))

    def init(self, key: Array, dtype=None) -> Params:
        """Draw Ŵ_l ~ N(0, 1) (shape (n_{l-1}, n_l)) and set b_l = 0; a list of d dicts.

        All weights come from one draw of Σ n_{l-1} n_l standard normals, cut layer by layer.
        """
        check_key(key)
        dtype = check_float_dtype(dtype)
        z = jax.random.normal(key, (self.num_weights,), dtype)
        s, out, start = self.sizes, [], 0
        for i in range(self.depth):
            stop = start + s[i] * s[i + 1]
            out.append({"W": z[start:stop].reshape(s[i], s[i + 1]), "b": jnp.zeros((s[i + 1],), dtype)})
            start = stop
        return out

    @property
    def num_weights(self) -> int:
        """Σ_l n_{l-1} n_l, the number of weights (biases excluded)."""
        s = self.sizes
        return sum(s[i] * s[i + 1] for i in range(self.depth))

    def apply(self, params: Params, x: Array) -> Array:
        """N(x) for a batch x of shape (B, n_0), returning shape (B,)."""
        h = x
        for i, (layer, c) in enumerate(zip(params, self.scales)):
            h = c * (h @ layer["W"]) + layer["b"]
            if i < self.depth - 1:
                h = jax.nn.relu(h)
        return h[..., 0]

    __call__ = apply


class NTKTerms(NamedTuple):
    """Per-layer parts of K_N(x, x) for one network (or a stack of networks, leading axis M).

    Attributes:
      weight: c_l² ‖x^{l-1}‖² ‖δ^l‖², shape (..., d).
      bias: ‖δ^l‖², shape (..., d) (the last entry is exactly 1).
      output: N(x), shape (...).
    """

    weight: Array
    bias: Array
    output: Array

    @property
    def total(self) -> Array:
        """K_N(x, x), shape (...)."""
        return self.weight.sum(-1) + self.bias.sum(-1)


def _check_input(net: ReLUNet, x) -> Array:
    if not isinstance(net, ReLUNet):
        raise TypeError(f"net must be a ReLUNet, got {type(net).__name__}")
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"x must be an array of shape (n_0,) = ({net.in_dim},), got {type(x).__name__}")
    if tuple(shape) != (net.in_dim,):
        raise ValueError(f"x must be one input of shape ({net.in_dim},), got shape {tuple(shape)}")
    check_finite(x, "x")
    return jnp.asarray(x, dtype=precision.default_dtype())


def _terms(net: ReLUNet, params: Params, x: Array) -> NTKTerms:
    """One forward and one backward pass of a single network at a single input x (n_0,)."""
    scales = net.scales
    acts, gates = [x], []
    h = x
    for i in range(net.depth - 1):
        z = scales[i] * (h @ params[i]["W"]) + params[i]["b"]
        gates.append(z > 0)
        h = jnp.where(gates[-1], z, 0.0)
        acts.append(h)
    out = scales[-1] * (h @ params[-1]["W"][:, 0]) + params[-1]["b"][0]
    # backward: delta^d = 1, delta^{l} = 1{h^l > 0} * (c_{l+1} W_{l+1} delta^{l+1})
    delta = scales[-1] * params[-1]["W"][:, 0]
    sq = [jnp.ones((), x.dtype)]
    for i in range(net.depth - 2, -1, -1):
        delta = jnp.where(gates[i], delta, 0.0)
        sq.append(jnp.vdot(delta, delta))
        if i > 0:
            delta = scales[i] * (params[i]["W"] @ delta)
    bias = jnp.stack(sq[::-1])
    norms = jnp.stack([jnp.vdot(a, a) for a in acts])
    weight = jnp.asarray(scales, x.dtype) ** 2 * norms * bias
    return NTKTerms(weight, bias, out)


def ntk_terms(net: ReLUNet, params: Params, x: Array) -> NTKTerms:
    """Per-layer weight and bias terms of K_N(x, x) for one network, without any Jacobian.

    Args:
      net: the architecture.
      params: from ``net.init(key)`` (a list of d dicts with "W" (n_{l-1}, n_l) and "b" (n_l,)).
      x: one input, shape (n_0,).
    Returns:
      :class:`NTKTerms` with ``weight`` and ``bias`` of shape (d,) and the scalar ``output``.
    """
    x = _check_input(net, x)
    _check_params(net, params)
    return _terms(net, params, x)


def _update(net: ReLUNet, params: Params, x: Array, lr, target) -> Array:
    def f(p):
        return net.apply(p, x[None])[0]

    out, grad = jax.value_and_grad(f)(params)
    _, hvp = jax.jvp(jax.grad(f), (params,), (grad,))
    quad = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(hvp)))
    return -2.0 * lr * (out - target) * quad


def ntk_update(net: ReLUNet, params: Params, x: Array, *, lr: float = 1.0, target: float = 0.0) -> Array:
    """First-order change of K_N(x, x) after one SGD step on ½(N(x) − N*)² with rate λ = ``lr``.

    ΔK = −2λ (N(x) − N*) ∇Nᵀ H ∇N, with H∇N from one Hessian-vector product (``jax.jvp`` of
    ``jax.grad``); no Hessian or Jacobian is formed.

    Args:
      net, params: as in :func:`ntk_terms`.
      x: one input, shape (n_0,).
      lr: the learning rate λ > 0.
      target: the label N*.
    Returns:
      A scalar array.
    """
    x = _check_input(net, x)
    _check_params(net, params)
    lr = check_positive(lr, "lr")
    target = _check_real(target, "target")
    return _update(net, params, x, lr, target)


def _check_real(value, name) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not np.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _check_params(net: ReLUNet, params: Params) -> None:
    if not isinstance(params, (list, tuple)) or len(params) != net.depth:
        raise ValueError(f"params must be a list of {net.depth} layer dicts (from ReLUNet.init), got {type(params).__name__}")
    s = net.sizes
    for i, layer in enumerate(params):
        w = getattr(layer.get("W") if isinstance(layer, dict) else None, "shape", None)
        b = getattr(layer.get("b") if isinstance(layer, dict) else None, "shape", None)
        if w != (s[i], s[i + 1]) or b != (s[i + 1],):
            raise ValueError(f"params[{i}] must hold W {(s[i], s[i + 1])} and b {(s[i + 1],)}, got {w} and {b}")


@dataclasses.dataclass
class NTKSamples:
    """Per-network draws for one architecture and input (M networks).

    Attributes:
      weight, bias: per-layer terms, shape (M, d).
      output: N(x), shape (M,).
      update: ΔK / λ at target N* (first order in λ), shape (M,), or ``None`` if not computed.
    """

    weight: np.ndarray
    bias: np.ndarray
    output: np.ndarray
    update: Optional[np.ndarray] = None

    @property
    def total(self) -> np.ndarray:
        """K_N(x, x) per network, shape (M,)."""
        return self.weight.sum(1) + self.bias.sum(1)


# -- equal hidden widths: hidden layers stacked and traversed with lax.scan ------------------
# Compile time then does not grow with depth; the draws are those of the list form (see _unstack).


def _init_stacked(net: ReLUNet, key: Array, dtype) -> dict:
    """Parameters of an equal-width net: W1 (n_0, n), Wh (d-2, n, n), Wd (n,), biases zero."""
    n0, n, d = net.in_dim, net.widths[0], net.depth
    z = jax.random.normal(key, (net.num_weights,), dtype)  # the same draw as ReLUNet.init
    return {
        "W1": z[: n0 * n].reshape(n0, n),
        "b1": jnp.zeros((n,), dtype),
        "Wh": z[n0 * n : n0 * n + (d - 2) * n * n].reshape(d - 2, n, n),
        "bh": jnp.zeros((d - 2, n), dtype),
        "Wd": z[n0 * n + (d - 2) * n * n :],
        "bd": jnp.zeros((), dtype),
    }


def _unstack(p: dict) -> Params:
    """The list-of-layers form of :func:`_init_stacked`'s parameters."""
    hidden = [{"W": p["Wh"][i], "b": p["bh"][i]} for i in range(p["Wh"].shape[0])]
    return [{"W": p["W1"], "b": p["b1"]}] + hidden + [{"W": p["Wd"][:, None], "b": p["bd"][None]}]


def _apply_stacked(net: ReLUNet, p: dict, x: Array) -> Array:
    c1, ch, cd = net.scales[0], math.sqrt(2.0 / net.widths[0]), net.scales[-1]
    a = jax.nn.relu(c1 * (x @ p["W1"]) + p["b1"])

    def layer(a, wb):
        return jax.nn.relu(ch * (a @ wb[0]) + wb[1]), None

    a, _ = jax.lax.scan(layer, a, (p["Wh"], p["bh"]))
    return cd * (a @ p["Wd"]) + p["bd"]


def _terms_stacked(net: ReLUNet, p: dict, x: Array) -> NTKTerms:
    c1, ch, cd = net.scales[0], math.sqrt(2.0 / net.widths[0]), net.scales[-1]
    z = c1 * (x @ p["W1"]) + p["b1"]
    g1 = z > 0
    a = jnp.where(g1, z, 0.0)

    def forward(a, wb):
        z = ch * (a @ wb[0]) + wb[1]
        g = z > 0
        return jnp.where(g, z, 0.0), (g, jnp.vdot(a, a))

    a, (gh, norms_h) = jax.lax.scan(forward, a, (p["Wh"], p["bh"]))
    out = cd * (a @ p["Wd"]) + p["bd"]
    gates = jnp.concatenate([g1[None], gh])  # (d-1, n): gates of hidden layers 1..d-1
    delta = jnp.where(gates[-1], cd * p["Wd"], 0.0)  # delta^{d-1}

    def backward(delta, wg):  # delta^{l+1} -> delta^l through W_{l+1}
        delta = jnp.where(wg[1], ch * (wg[0] @ delta), 0.0)
        return delta, jnp.vdot(delta, delta)

    last = jnp.vdot(delta, delta)
    _, sq = jax.lax.scan(backward, delta, (p["Wh"], gates[:-1]), reverse=True)
    bias = jnp.concatenate([sq, last[None], jnp.ones((1,), x.dtype)])
    norms = jnp.concatenate([jnp.vdot(x, x)[None], norms_h, jnp.vdot(a, a)[None]])
    scales2 = jnp.asarray([c1**2] + [ch**2] * (net.depth - 2) + [cd**2], x.dtype)
    return NTKTerms(scales2 * norms * bias, bias, out)


def _update_stacked(net: ReLUNet, p: dict, x: Array, target) -> Array:
    f = functools.partial(_apply_stacked, net, x=x)
    out, grad = jax.value_and_grad(lambda q: f(q))(p)
    _, hvp = jax.jvp(jax.grad(lambda q: f(q)), (p,), (grad,))
    quad = sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(hvp)))
    return -2.0 * (out - target) * quad


@functools.lru_cache(maxsize=64)
def _chunk_fn(net: ReLUNet, dtype: str, with_update: bool, target: float) -> Callable:
    """A jitted map (keys (C, ...), x (n_0,)) -> per-network arrays, vmapped over the C keys."""
    equal = len(set(net.widths)) == 1

    def one(key, x):
        if equal:
            p = _init_stacked(net, key, dtype)
            t = _terms_stacked(net, p, x)
            upd = _update_stacked(net, p, x, target) if with_update else jnp.zeros((), dtype)
        else:
            params = net.init(key, dtype)
            t = _terms(net, params, x)
            upd = _update(net, params, x, 1.0, target) if with_update else jnp.zeros((), dtype)
        return t.weight, t.bias, t.output, upd

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def sample_ntk(
    net: ReLUNet,
    x: Array,
    key: Array,
    *,
    num_networks: int,
    chunk_size: int = 1024,
    update: bool = False,
    target: float = 0.0,
    dtype=None,
    progress: bool = False,
) -> NTKSamples:
    """Draw ``num_networks`` independent networks and return their kernel terms at x.

    Networks are drawn inside a ``jit``-compiled function ``vmap``ped over ``chunk_size``
    PRNG keys at a time (memory ∝ chunk_size · Σ n_{l-1} n_l); the chunks run one after another.

    Args:
      net: the architecture.
      x: one input, shape (n_0,).
      key: a JAX PRNG key; network i uses ``jax.random.split(key, num_networks)[i]``, so the draws
        do not depend on ``chunk_size``.
      num_networks: M >= 2.
      chunk_size: networks per compiled call.
      update: also compute ΔK/λ (first SGD step, :func:`ntk_update` with λ = 1).
      target: the label N* of that step.
      dtype: float dtype (default from :mod:`ntknotes.precision`).
      progress: show a tqdm progress bar over chunks.
    Returns:
      :class:`NTKSamples` with arrays of leading dimension M.
    """
    x = _check_input(net, x)
    check_key(key)
    check_bool(update, "update")
    check_bool(progress, "progress")
    m = check_positive_int(num_networks, "num_networks")
    if m < 2:
        raise ValueError(f"num_networks must be >= 2 to estimate moments, got {m}")
    chunk = min(check_positive_int(chunk_size, "chunk_size"), m)
    target = _check_real(target, "target")
    dtype = str(check_float_dtype(dtype))
    x = x.astype(dtype)
    keys = jax.random.split(key, m)
    n_chunks = -(-m // chunk)
    pad = n_chunks * chunk - m
    if pad:
        keys = jnp.concatenate([keys, keys[:pad]])
    fn = _chunk_fn(net, dtype, bool(update), target)
    starts = range(0, n_chunks * chunk, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"d={net.depth}, n={max(net.widths)}", unit="chunk")
    parts = [jax.device_get(fn(keys[s : s + chunk], x)) for s in starts]
    weight, bias, out, upd = (np.concatenate([p[i] for p in parts])[:m] for i in range(4))
    return NTKSamples(weight, bias, out, upd if update else None)


def mean_ntk(depth: int, x_sq_over_n0: float) -> float:
    """The exact mean E[K_N(x, x)] = d ‖x‖²/n_0 + (d + 1)/2 (d weight layers, zero biases at init)."""
    d = check_positive_int(depth, "depth")
    return d * check_nonnegative(x_sq_over_n0, "x_sq_over_n0") + 0.5 * (d + 1)


def layer_ratio_product(widths: Sequence[int]) -> float:
    """Π_l (1 + 5/n_l): the exact E[R²]/E[R]² of a product of independent one-layer ReLU norm ratios."""
    if isinstance(widths, (numbers.Integral, np.integer)):
        widths = (widths,)
    return float(np.prod([1.0 + 5.0 / check_positive_int(n, "width") for n in widths]))


_MAX_MOMENT_ORDER = 100


def relu_layer_moments(width: int, order: int = 4) -> np.ndarray:
    """Exact moments E[R^k], k = 0..order, of one ReLU layer's squared-norm ratio.

    R = (2/n) Σ_{j=1}^{n} ReLU(g_j)² with g_j i.i.d. N(0, 1) is the factor by which a layer of
    width n multiplies ‖x^l‖² (so E[R] = 1 and E[R²] = 1 + 5/n).  Each summand is 0 or g² with
    probability ½, so E[ReLU(g)^{2k}] = (2k − 1)!!/2 for k >= 1; the moments of the sum follow
    by the binomial convolution of raw moments.

    The n-fold convolution is taken by repeated squaring, so the cost is O(order² log n): a width
    of 10⁹ takes as long as a width of 10.

    Args:
      width: n ≥ 1 (any size: 10⁹ is as fast as 10).
      order: highest moment k, 1 ≤ k ≤ 100.
    Returns:
      float array of shape (order + 1,).
    Raises:
      ValueError: order above 100: the cost grows as order², and E[R^k] >= (2k − 1)!!·(2/n)^k/2
        leaves float64's range for k of a few hundred at small widths.

    Example:
      >>> relu_layer_moments(10, 2)  # doctest: +SKIP
      array([1. , 1. , 1.5])
    """
    n = check_positive_int(width, "width")
    order = check_positive_int(order, "order")
    if order > _MAX_MOMENT_ORDER:
        raise ValueError(
            f"order must be at most {_MAX_MOMENT_ORDER}, got {order}: the cost grows as order² and the moments "
            f"E[R^k] ~ (2k-1)!! overflow float64 for orders of a few hundred"
        )
    y = np.array([1.0] + [0.5 * float(np.prod(np.arange(1, 2 * k, 2, dtype=np.float64))) for k in range(1, order + 1)])
    y *= (2.0 / n) ** np.arange(order + 1)
    binom = np.array([[math.comb(k, i) for i in range(order + 1)] for k in range(order + 1)], dtype=float)

    def convolve(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Raw moments of X + Y for independent X, Y with raw moments p and q."""
        return np.array([sum(binom[k, i] * p[i] * q[k - i] for i in range(k + 1)) for k in range(order + 1)])

    m = np.zeros(order + 1)
    m[0] = 1.0  # moments of the empty sum
    base, remaining = y, n
    while remaining:
        if remaining & 1:
            m = convolve(m, base)
        remaining >>= 1
        if remaining:
            base = convolve(base, base)
    return m
