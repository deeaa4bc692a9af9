"""Empirical neural tangent kernels of finite networks.

The empirical NTK of a network f(·; θ) with k outputs is the Gram matrix of its
parameter gradients, Θ̂(x, x')_{ab} = Σ_p ∂f_a(x)/∂θ_p ∂f_b(x')/∂θ_p.

* :func:`empirical_ntk` works for any ``apply(params, x)``: either by contracting
  per-example Jacobians (``method="jacobian"``, tiled over the inputs so only
  ``block_size`` Jacobians live at once) or from NTK-vector products
  (``method="ntvp"``: one ``jax.vjp`` and one ``jax.jvp`` per column, never a Jacobian).
* :func:`ntk_vector_product` computes Θ̂(x1, x2) v without any Jacobian.
* :func:`mlp_ntk` is the fast layer-wise formula for :class:`ntknotes.networks.MLP`:
  Θ̂ = Σ_l (forward Gram of layer l's input, times its weight factor, plus the bias
  factor) ⊙ (Gram of the backward signals ∂f/∂h^l), costing O(N² Σ n_l) time and
  O(N² + N Σ n_l) memory, never O(N · #params).

Output modes: ``"trace"`` returns the kernel averaged over the output diagonal,
(1/k) Σ_a Θ̂_{aa}, shape (N1, N2) (for one output, simply Θ̂); ``"full"`` returns
the whole (N1, N2, k, k) tensor.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from . import tiling
from ._checks import check_bool, check_choice, check_finite, check_float_dtype, check_key, check_positive_int, check_same_features
from .networks import MLP, Params

__all__ = [
    "empirical_ntk",
    "ntk_vector_product",
    "mlp_ntk",
    "mlp_ntk_per_layer",
    "empirical_nngp",
    "stax_ntk",
    "monte_carlo_kernels",
    "KernelEstimate",
]

Array = jax.Array
ApplyFn = Callable[[object, Array], Array]
OUTPUT_MODES = ("trace", "full")
_JACOBIAN_BUDGET = 2**26  # scalars of Jacobian held at once per block (512 MB in float64)


def _as_2d_output(apply: ApplyFn) -> ApplyFn:
    """Wrap apply so that it always returns (N, k)."""

    def f(params, x):
        out = apply(params, x)
        return out[:, None] if out.ndim == 1 else out

    return f


def _check_inputs(x1, x2):
    if not hasattr(x1, "shape") or x1.ndim < 2:
        raise ValueError(f"x1 must be a batch of inputs with shape (N, ...), got {getattr(x1, 'shape', type(x1))}")
    check_finite(x1, "x1")
    if x2 is not None:
        if not hasattr(x2, "shape") or x2.ndim < 2:
            raise ValueError(f"x2 must be a batch of inputs with shape (N, ...), got {getattr(x2, 'shape', type(x2))}")
        check_same_features(x1, x2)
        check_finite(x2, "x2")


def _flat_jacobian(apply2d: ApplyFn, params, xb: Array) -> Array:
    """Per-example Jacobians of a block of inputs, flattened: shape (b, k, P)."""

    def single(x):
        jac = jax.jacrev(lambda p: apply2d(p, x[None])[0])(params)  # leaves (k, *shape)
        leaves = jax.tree_util.tree_leaves(jac)
        return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)

    return jax.vmap(single)(xb)


def _reduce(block: Array, output: str) -> Array:
    """(b1, k, b2, k) -> (b1, b2) for "trace" or (b1, b2, k, k) for "full"."""
    if output == "trace":
        return jnp.einsum("iaja->ij", block) / block.shape[1]
    return jnp.transpose(block, (0, 2, 1, 3))


def empirical_ntk(
    apply: ApplyFn,
    params,
    x1: Array,
    x2: Optional[Array] = None,
    *,
    method: str = "jacobian",
    output: str = "trace",
    block_size: Optional[int] = None,
) -> Array:
    """The empirical NTK Θ̂(x1, x2) of any network ``apply(params, x)``.

    Args:
      apply: a function of (params, x) with x of shape (N, ...) returning (N, k) or (N,).
      params: any pytree of arrays.
      x1: inputs (N1, ...); x2: inputs (N2, ...) or ``None`` for x2 = x1.
      method: ``"jacobian"`` (contract per-example Jacobians, tiled) or ``"ntvp"``
        (NTK-vector products with ``jax.vjp``/``jax.jvp``, no Jacobian at all).
      output: ``"trace"`` for the (N1, N2) output-averaged kernel, ``"full"`` for (N1, N2, k, k).
      block_size: inputs per Jacobian block (default: as many as fit in ~2^25 scalars).

    Returns:
      A jax array of shape (N1, N2) or (N1, N2, k, k).
    """
    if not callable(apply):
        raise TypeError(f"apply must be callable as apply(params, x), got {type(apply).__name__}")
    check_choice(method, "method", ("jacobian", "ntvp"))
    check_choice(output, "output", OUTPUT_MODES)
    _check_inputs(x1, x2)
    f = _as_2d_output(apply)
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    if method == "ntvp":
        return _ntk_by_products(f, params, x1, x2, output)
    k = int(jax.eval_shape(lambda p: f(p, x1[:1]), params).shape[1])
    n_params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
    if block_size is None:
        block_size = max(1, _JACOBIAN_BUDGET // max(1, k * n_params))
    bs = check_positive_int(block_size, "block_size")
    n2 = x1.shape[0] if symmetric else x2.shape[0]
    # keep every column block's Jacobian when they fit in 4 budgets; otherwise recompute per tile
    (out,) = tiling.pairwise(
        lambda a, b, same: (_contract(a, b, output),), x1, None if symmetric else x2, block=bs,
        prepare=lambda xb: _jacobian_block(apply, params, xb), transpose=_mirror(output), symmetrize=False,
        keep=n2 * k * n_params <= 4 * _JACOBIAN_BUDGET,
    )
    return jnp.asarray(out)


@functools.partial(jax.jit, static_argnames=("apply",))
def _jacobian_block(apply: ApplyFn, params, xb: Array) -> Array:
    """Flattened per-example Jacobians (b, k, P) of a block; compiled once per ``apply`` and shape."""
    return _flat_jacobian(_as_2d_output(apply), params, xb)


@functools.partial(jax.jit, static_argnames=("output",))
def _contract(ja: Array, jb: Array, output: str) -> Array:
    return _reduce(jnp.einsum("iap,jbp->iajb", ja, jb), output)


def _mirror(output: str):
    """The transpose of an NTK tile: (b1, b2) -> (b2, b1), or (b1, b2, k, k) -> (b2, b1, k, k) swapping outputs too."""
    if output == "trace":
        return lambda t: np.swapaxes(t, 0, 1)
    return lambda t: np.transpose(t, (1, 0, 3, 2))


def ntk_vector_product(apply: ApplyFn, params, x1: Array, x2: Array, v: Array) -> Array:
    """Θ̂(x1, x2) v without forming a Jacobian: J(x1) [J(x2)ᵀ v].

    Args:
      apply: ``apply(params, x)`` returning (N, k) or (N,).
      params: pytree; x1: (N1, ...); x2: (N2, ...).
      v: (N2, k) (or (N2,) for a single output), a vector in the output space of x2.
    Returns:
      (N1, k) (or (N1,) when v is 1-D): Σ_{m,b} Θ̂(x1_n, x2_m)_{ab} v_{mb}.
    """
    _check_inputs(x1, x2)
    f = _as_2d_output(apply)
    squeeze = v.ndim == 1
    v2 = v[:, None] if squeeze else v
    out = jax.eval_shape(lambda p: f(p, x2), params)
    if v2.shape != out.shape:
        raise ValueError(f"v must have shape {out.shape} (or ({out.shape[0]},) for one output), got {v.shape}")
    _, vjp_fn = jax.vjp(lambda p: f(p, x2), params)
    (tangent,) = vjp_fn(jnp.asarray(v2, out.dtype))
    _, prod = jax.jvp(lambda p: f(p, x1), (params,), (tangent,))
    return prod[:, 0] if squeeze else prod


def _ntk_by_products(f: ApplyFn, params, x1: Array, x2: Array, output: str) -> Array:
    """All columns of Θ̂ from NTK-vector products with the unit vectors, vmapped."""
    out2 = jax.eval_shape(lambda p: f(p, x2), params)
    n2, k = out2.shape
    _, vjp_fn = jax.vjp(lambda p: f(p, x2), params)

    def column(e):
        (tangent,) = vjp_fn(e.reshape(n2, k))
        return jax.jvp(lambda p: f(p, x1), (params,), (tangent,))[1]  # (N1, k)

    eye = jnp.eye(n2 * k, dtype=out2.dtype)
    cols = jax.lax.map(column, eye, batch_size=min(64, n2 * k))  # (N2*k, N1, k)
    full = jnp.transpose(cols.reshape(n2, k, x1.shape[0], k), (2, 0, 3, 1))  # (N1, N2, k_a, k_b)
    if output == "trace":
        return jnp.einsum("ijaa->ij", full) / k
    return full


# ----------------------------------------------------------------------------
# layer-wise NTK of ntknotes MLPs
# ----------------------------------------------------------------------------
def _backward_signals(net: MLP, params: Params, fwd) -> list:
    """δ^l = ∂f/∂h^l for l = 1..L+1, each (N, k, n_l); δ^{L+1} is the identity per example."""
    n, k = fwd.output.shape
    scales = net.layer_scales()
    delta = jnp.broadcast_to(jnp.eye(k, dtype=fwd.output.dtype), (n, k, k))
    deltas = [delta]
    for l in range(net.depth, 0, -1):  # weight layer l maps x^l -> h^{l+1}
        cw = scales[l][0]
        back = cw * jnp.einsum("nab,jb->naj", delta, params[l]["W"])
        delta = back * net.activation.derivative(fwd.preactivations[l - 1])[:, None, :]
        deltas.append(delta)
    return deltas[::-1]  # index i: signal at the output of weight layer i


@functools.partial(jax.jit, static_argnames=("net", "output", "symmetric"))
def _mlp_ntk_terms(net: MLP, params: Params, x1: Array, x2: Array, output: str, symmetric: bool) -> Array:
    f1 = net.forward(params, x1)
    d1 = _backward_signals(net, params, f1)
    if symmetric:
        f2, d2 = f1, d1
    else:
        f2 = net.forward(params, x2)
        d2 = _backward_signals(net, params, f2)
    terms = []
    for i, (cw, cb) in enumerate(net.layer_scales()):
        fwd_gram = cw**2 * (f1.inputs[i] @ f2.inputs[i].T)
        if net.has_bias:
            fwd_gram = fwd_gram + cb**2
        if output == "trace":
            back = jnp.einsum("naj,maj->nm", d1[i], d2[i]) / net.out_dim
            terms.append(fwd_gram * back)
        else:
            back = jnp.einsum("naj,mbj->nmab", d1[i], d2[i])
            terms.append(fwd_gram[:, :, None, None] * back)
    return jnp.stack(terms)


def mlp_ntk_per_layer(
    net: MLP, params: Params, x1: Array, x2: Optional[Array] = None, *, output: str = "trace"
) -> Array:
    """Each weight layer's part of the empirical NTK of an :class:`~ntknotes.networks.MLP`.

    Returns:
      An array of shape (L+1, N1, N2) (or (L+1, N1, N2, k, k) for ``output="full"``); entry i is
      the contribution of the weights and bias of layer i+1, and the entries sum to Θ̂.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"mlp_ntk needs an ntknotes.networks.MLP, got {type(net).__name__}; use empirical_ntk")
    check_choice(output, "output", OUTPUT_MODES)
    _check_inputs(x1, x2)
    net._check_params(params)
    if x1.shape[1] != net.in_dim:
        raise ValueError(f"x1 has {x1.shape[1]} features but the network takes {net.in_dim}")
    symmetric = x2 is None
    return _mlp_ntk_terms(net, params, x1, x1 if symmetric else x2, output, symmetric)


def mlp_ntk(net: MLP, params: Params, x1: Array, x2: Optional[Array] = None, *, output: str = "trace") -> Array:
    """The empirical NTK of an :class:`~ntknotes.networks.MLP` by the layer-wise formula.

    Same value as ``empirical_ntk(net.apply, params, x1, x2)`` but without Jacobians:
    O(N1 N2 Σ_l n_l) time and O(N1 N2 + N Σ_l n_l k) memory.

    Returns:
      (N1, N2) for ``output="trace"``, (N1, N2, k, k) for ``"full"``.
    """
    return jnp.sum(mlp_ntk_per_layer(net, params, x1, x2, output=output), axis=0)


def empirical_nngp(apply: ApplyFn, params, x1: Array, x2: Optional[Array] = None) -> Array:
    """One network's output Gram (1/k) f(x1) f(x2)ᵀ, shape (N1, N2); its mean over random
    networks is the NNGP kernel."""
    _check_inputs(x1, x2)
    f = _as_2d_output(apply)
    a = f(params, x1)
    b = a if x2 is None else f(params, x2)
    return a @ b.T / a.shape[1]


# ----------------------------------------------------------------------------
# stax networks
# ----------------------------------------------------------------------------
def _tapped_forward(net, params, x, taps):
    """The forward pass of a stax network, adding ``taps[i]`` to the output of its i-th Dense/Conv
    layer (``taps=None``: add nothing).  Returns (output, [(layer, input)], [layer output])."""
    from .stax import Conv, Dense, Parallel, Serial

    records, outputs = [], []

    def run(layer, p, v):
        if isinstance(layer, Serial):
            for sub, q in zip(layer.layers, p):
                v = run(sub, q, v)
            return v
        if isinstance(layer, Parallel):
            return tuple(run(sub, q, u) for sub, q, u in zip(layer.layers, p, v))
        z = layer._apply(p, v)
        if isinstance(layer, (Dense, Conv)):
            if taps is not None:
                z = z + taps[len(outputs)]
            records.append((layer, v))
            outputs.append(z)
        return z

    return run(net, params, x), records, outputs


def _signals(net, params, x):
    """Per Dense/Conv layer: its input (N, ...) and the backward signals ∂f_a/∂z, (k, N, ...) for each output a."""
    _, _, zs = _tapped_forward(net, params, x, None)  # shapes only (dead code for XLA)
    taps = [jnp.zeros_like(z) for z in zs]

    def f(t):
        out, records, _ = _tapped_forward(net, params, x, t)
        return out, [v for _, v in records]

    out, vjp, inputs = jax.vjp(f, taps, has_aux=True)
    k = out.shape[-1]
    cot = jnp.broadcast_to(jnp.eye(k, dtype=out.dtype)[:, None, :], (k,) + out.shape)
    grads = jax.vmap(lambda c: vjp(c)[0])(cot)
    return inputs, grads


def _pixel_gram(patch_shape: tuple, out_channels: int) -> bool:
    """Whether a Conv layer's NTK term is cheaper from pixel-pair Grams, Σ_{p,p'} (patch·patch')(g·g'),
    costing P²(K + C) per input pair, than from per-example weight gradients (K·C per pair, and
    K·C scalars per example to hold).  ``patch_shape`` = (P pixels, K = fh·fw·C_in)."""
    pixels, k_in = patch_shape
    return pixels * pixels * (k_in + out_channels) <= k_in * out_channels


def _layer_factors(net, params, x) -> list:
    """Per Dense/Conv layer, the factors of its NTK term for a block of inputs x (b, ...):
    Dense: (c_w·input (b, d), backward signals (k, b, n)); Conv: either pixel-level factors
    (c_w·patches (b, P, K), signals (k, b, P, C)) or per-example weight gradients
    (c_w Σ_p patch[p] ⊗ g[p] (k, b, K, C), summed signals Σ_p g[p] (k, b, C)), whichever is cheaper."""
    from .stax import Dense

    inputs, grads = _signals(net, params, x)
    out = []
    for layer, v, g in zip(_layers_of(net), inputs, grads):
        cw, _ = layer.scales(v.shape[1:])
        if isinstance(layer, Dense):
            out.append((cw * v, g))
            continue
        patches = layer.patches(v)
        patches = patches.reshape(patches.shape[0], -1, patches.shape[-1])  # (b, P, K)
        g = g.reshape(g.shape[:2] + (-1, g.shape[-1]))  # (k, b, P, C)
        if _pixel_gram(patches.shape[1:], g.shape[-1]):
            out.append((cw * patches, g))
        else:
            out.append((cw * jnp.einsum("npc,anpo->anco", patches, g), jnp.sum(g, axis=2)))
    return out


def _layerwise_tile(net, params, a, b):
    """Σ over Dense/Conv layers of (forward Gram) ⊙ (backward Gram), averaged over outputs: (b1, b2)."""
    from .stax import Dense

    total = 0.0
    for layer, p, (fa, ga), (fb, gb) in zip(_layers_of(net), _layer_params(net, params), a, b):
        k = ga.shape[0]
        bias = _bias_scale(layer) ** 2 if "b" in p else 0.0
        if isinstance(layer, Dense):
            total = total + (fa @ fb.T + bias) * (jnp.einsum("anj,amj->nm", ga, gb) / k)
        elif fa.ndim == 3:  # pixel-level factors: Σ_{p,p'} (patch·patch') (g·g') + bias (Σ_p g)·(Σ_p' g')
            fwd = jnp.einsum("npc,mqc->nmpq", fa, fb)
            back = jnp.einsum("anpo,amqo->nmpq", ga, gb)
            total = total + jnp.sum(fwd * back, axis=(2, 3)) / k
            if bias:
                total = total + bias * jnp.einsum("ano,amo->nm", jnp.sum(ga, axis=2), jnp.sum(gb, axis=2)) / k
        else:  # per-example weight gradients
            total = total + jnp.einsum("anco,amco->nm", fa, fb) / k + bias * jnp.einsum("ano,amo->nm", ga, gb) / k
    return total


_layer_factors_jit = jax.jit(_layer_factors, static_argnums=0)
_layerwise_tile_jit = jax.jit(_layerwise_tile, static_argnums=0)


def _bias_scale(layer) -> float:
    """The forward factor of a layer's bias (σ_b in the NTK parameterization, 1 in the standard one)."""
    if layer.parameterization == "standard":
        return 1.0
    return 0.0 if layer.b_std is None else layer.b_std


def _layers_of(net) -> list:
    """The Dense and Conv layers of a stax network in forward order."""
    from .stax import Conv, Dense, Parallel, Serial

    if isinstance(net, (Serial, Parallel)):
        return [leaf for sub in net.layers for leaf in _layers_of(sub)]
    return [net] if isinstance(net, (Dense, Conv)) else []


def _layer_params(net, params) -> list:
    """The params of the Dense and Conv layers of a stax network, in the order of :func:`_layers_of`."""
    from .stax import Conv, Dense, Parallel, Serial

    if isinstance(net, (Serial, Parallel)):
        return [leaf for sub, q in zip(net.layers, params) for leaf in _layer_params(sub, q)]
    return [params] if isinstance(net, (Dense, Conv)) else []


_LAYERWISE_BUDGET = 2**26  # scalars of prepared factors in one block, or of one tile's pixel-pair Grams (512 MB in float64)


def stax_ntk(net, params, x1: Array, x2: Optional[Array] = None, *, method: str = "layerwise",
             output: str = "trace", block_size: Optional[int] = None) -> Array:
    """The empirical NTK of a :mod:`ntknotes.stax` network with ``params`` (from ``net.init``).

    ``method="layerwise"`` (default) never forms the Jacobian: one forward pass keeps every Dense
    and Conv layer's input, one backward pass per output (``vmap``ped) its output signal
    g = ∂f/∂z, and the NTK is Σ_layers (forward Gram) ⊙ (backward Gram):
    Dense: (c_w² x·x' + c_b²)(g·g'); Conv: c_w² ⟨Σ_p patch[p] ⊗ g[p], Σ_p' patch'[p'] ⊗ g'[p']⟩
    + c_b² ⟨Σ_p g[p], Σ_p' g'[p']⟩ (c_w, c_b the layer's forward factors).  Evaluated in tiles of
    inputs (:func:`ntknotes.tiling.pairwise`), memory O(N² + N·Σ width·pixels·k) plus one tile's
    per-example weight gradients.  ``"jacobian"`` and ``"ntvp"`` are the generic methods of
    :func:`empirical_ntk`.

    Args:
      net: a stax layer or combinator with vector outputs (N, k).
      params: its parameters; x1 (N1, ...), x2 (N2, ...) or ``None`` for x2 = x1.
      method: ``"layerwise"``, ``"jacobian"`` or ``"ntvp"``.
      output: ``"trace"`` (the (N1, N2) kernel averaged over outputs) or ``"full"`` ((N1, N2, k, k);
        generic methods only).
      block_size: inputs per tile (default from a budget of 2²⁴ scalars of per-example gradients).
    Returns:
      (N1, N2) (or (N1, N2, k, k)).

    Example::

        _, params = net.init(jax.random.PRNGKey(0), x.shape)
        theta_hat = stax_ntk(net, params, x)
    """
    from .stax import Layer

    if not isinstance(net, Layer):
        raise TypeError(f"net must be an ntknotes.stax layer, got {type(net).__name__}; use empirical_ntk(apply, ...)")
    check_choice(method, "method", ("layerwise", "jacobian", "ntvp"))
    check_choice(output, "output", OUTPUT_MODES)
    if method != "layerwise" or output == "full":
        if method == "layerwise":
            raise ValueError("method='layerwise' gives the output-averaged kernel (output='trace'); use method='jacobian' for 'full'")
        return empirical_ntk(net.apply, params, x1, x2, method=method, output=output, block_size=block_size)
    _check_inputs(x1, x2)
    out = net.output_shape((-1,) + tuple(x1.shape[1:]))
    if len(out) != 2:
        raise ValueError(f"stax_ntk needs a network with vector outputs (N, k); this one outputs {out}")
    # scalars per example of the prepared factors, and per input pair of a tile's pixel-pair Grams
    factors = jax.eval_shape(lambda p, v: _layer_factors(net, p, v), params, x1[:1])
    per_example = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(factors))
    per_pair = max([1] + [2 * f[0].shape[1] ** 2 for f in factors if f[0].ndim == 3])
    if block_size is None:
        block_size = max(1, min(1024, _LAYERWISE_BUDGET // per_example, math.isqrt(_LAYERWISE_BUDGET // per_pair)))
    bs = check_positive_int(block_size, "block_size")
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    (res,) = tiling.pairwise(lambda a, b, same: (_layerwise_tile_jit(net, params, a, b),), x1, x2, block=bs,
                             prepare=lambda xb: _layer_factors_jit(net, params, xb), symmetrize=False,
                             keep=n2 * per_example <= 4 * _LAYERWISE_BUDGET)
    return jnp.asarray(res)


class KernelEstimate(NamedTuple):
    """Monte Carlo means over random finite networks and their standard errors, each (N1, N2).

    Attributes:
      nngp: mean of f(x1) f(x2)ᵀ / k (k outputs): converges to the NNGP kernel as the width grows.
      ntk: mean of the output-averaged empirical NTK: converges to the NTK.
      nngp_stderr, ntk_stderr: standard errors of those means (sample s.d. / √n_samples).
      n_samples: number of networks.
    """

    nngp: Array
    ntk: Array
    nngp_stderr: Array
    ntk_stderr: Array
    n_samples: int


def monte_carlo_kernels(net, x1: Array, x2: Optional[Array] = None, *, key: Array, n_samples: int,
                        chunk_size: int = 8, ntk: bool = True, dtype=None) -> KernelEstimate:
    """Average the output Gram and the empirical NTK over ``n_samples`` networks drawn by ``net.init``.

    The finite width is the one in the description (e.g. ``Dense(1024)``); the averages converge to
    ``net.kernel(x1, x2)`` as it grows (NNGP: the output covariance at initialization; NTK: the
    empirical NTK, which also concentrates).  Networks run ``chunk_size`` at a time (``vmap``), each
    with its layer-wise empirical NTK (as :func:`stax_ntk`, no Jacobian): meant for a few dozen points.

    Args:
      net: a stax network with vector outputs (N, k).
      x1: inputs (N1, ...); x2: inputs (N2, ...) or ``None`` for x2 = x1.
      key: PRNG key; n_samples: number of networks; dtype: parameter dtype.
      ntk: also estimate the NTK (``False`` skips the Jacobians; the NTK fields are then NaN).
    Returns:
      :class:`KernelEstimate` with arrays (N1, N2).

    Example::

        net = stax.serial(stax.Dense(1024), stax.Relu(), stax.Dense(8))
        est = monte_carlo_kernels(net, x, key=jax.random.PRNGKey(0), n_samples=32)
        z = (est.ntk - net.kernel(x).ntk) / est.ntk_stderr
    """
    from .stax import Layer

    if not isinstance(net, Layer):
        raise TypeError(f"net must be an ntknotes.stax layer, got {type(net).__name__}")
    check_key(key)
    n_samples = check_positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 (for a standard error), got {n_samples}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    check_bool(ntk, "ntk")
    dtype = check_float_dtype(dtype)
    _check_inputs(x1, x2)
    xb = x1 if x2 is None else x2
    shape = (-1,) + tuple(x1.shape[1:])
    out = net.output_shape(shape)
    if len(out) != 2:
        raise ValueError(f"monte_carlo_kernels needs a network with vector outputs (N, k); this one outputs {out}")

    symmetric = x2 is None

    def one(k):
        _, params = net.init(k, shape, dtype)
        fa = net.apply(params, x1)
        fb = fa if symmetric else net.apply(params, xb)
        n_out = fa.shape[1]
        if not ntk:
            return fa @ fb.T / n_out, jnp.full((fa.shape[0], fb.shape[0]), jnp.nan, fa.dtype)
        factors_a = _layer_factors(net, params, x1)
        factors_b = factors_a if symmetric else _layer_factors(net, params, xb)
        return fa @ fb.T / n_out, _layerwise_tile(net, params, factors_a, factors_b)

    keys = jax.random.split(key, n_samples)
    nngps, ntks = jax.lax.map(jax.jit(one), keys, batch_size=min(chunk_size, n_samples))

    def mean_se(v):
        return jnp.mean(v, axis=0), jnp.std(v, axis=0, ddof=1) / jnp.sqrt(n_samples)

    (m1, s1), (m2, s2) = mean_se(nngps), mean_se(ntks)
    return KernelEstimate(m1, m2, s1, s2, n_samples)
