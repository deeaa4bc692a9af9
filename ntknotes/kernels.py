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
the NNGP is the same but (a_l, b_l) = (n_l, 1[bias]) with n_0 = d, so the NTK
grows linearly with the width.  Here σ_b = 0 means a network without biases (as in
:class:`ntknotes.networks.MLP`); a zero-initialized trainable bias is ``stax.Dense(b_std=0.0)``.

These functions are thin constructors over :mod:`ntknotes.stax`: :func:`mlp` builds the
description ``serial(Dense, φ, ..., Dense)`` and its ``kernel`` method evaluates it (by the fused
recursion of ``ntknotes.stax._fc``, which equals the generic layer maps).  Results are
(N1, N2) kernels of a scalar output (a network with k outputs has kernel K ⊗ I_k), computed in
tiles by :func:`ntknotes.tiling.pairwise`; train-train kernels compute only the upper tiles.

Example::

    k, theta = nngp_ntk(x, depth=3, activation="relu", sigma_w=1.4, sigma_b=0.1)   # (N, N) each
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import stax
from ._checks import check_float_dtype, check_matrix, check_same_features
from .activations import Activation
from .stax import KernelPair, _driver, _fc
from .stax.presets import mlp

__all__ = [
    "KernelPair",
    "LayerKernels",
    "nngp_ntk",
    "nngp",
    "ntk",
    "layer_kernels",
    "mlp",
    "PARAMETERIZATIONS",
]

Array = jax.Array
PARAMETERIZATIONS = stax.PARAMETERIZATIONS


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
# the description
# ----------------------------------------------------------------------------
def _concrete(value: Any) -> Any:
    """A concrete 0-d JAX or NumPy scalar as a Python float (so the description's checks accept it)."""
    if not _driver.is_traced(value) and isinstance(value, (jax.Array, np.ndarray)) and np.ndim(value) == 0:
        return float(value)
    return value


def _description(depth, activation, sigma_w, sigma_b, parameterization, width):
    """The network description and, when σ_w or σ_b is traced (``jax.grad`` with respect to them),
    the map (spec, dtype) -> (σ_w², σ_b², a, b) that puts the traced values into the fused recursion.

    The description is built with placeholders (σ = 1) for traced values, so a traced σ_b is a network
    with biases; traced values skip the checks on σ (they have no value to check).
    """
    sigma_w, sigma_b = _concrete(sigma_w), _concrete(sigma_b)
    traced_w, traced_b = _driver.is_traced(sigma_w), _driver.is_traced(sigma_b)
    net = mlp(depth, activation=activation, sigma_w=1.0 if traced_w else sigma_w,
              sigma_b=1.0 if traced_b else sigma_b, parameterization=parameterization, width=width)
    if not (traced_w or traced_b):
        return net, None

    def constants(spec: _fc.FCSpec, dtype) -> tuple:
        sw2, sb2, a, b = spec.constants(dtype)
        if traced_w:
            sw2 = jnp.square(jnp.asarray(sigma_w, dtype))
        if traced_b:
            sb2 = jnp.square(jnp.asarray(sigma_b, dtype))
        if parameterization == "ntk":  # (a_l, b_l) = (σ_w², σ_b²); the standard ones do not depend on σ
            a, b = jnp.broadcast_to(sw2, a.shape), jnp.broadcast_to(sb2, b.shape)
        return sw2, sb2, a, b

    return net, constants


def _validate(x1, x2):
    check_matrix(x1, "x1")
    if x2 is not None:
        check_matrix(x2, "x2")
        check_same_features(x1, x2)


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
      block_size: tile edge for large kernels (default 512); tiles bound the device memory
        to O(block_size²) and the result is assembled on the host as NumPy arrays.
      dtype: float dtype (default: float64 when JAX's x64 mode is on, else float32).

    Returns:
      KernelPair(nngp, ntk), each of shape (N1, N2), or (N1,) if ``diagonal``.

    Raises:
      ValueError / TypeError on wrong shapes, mismatched features, depth < 1, a width < 1,
      negative or non-finite σ, NaN inputs, an unknown activation, a non-floating ``dtype``
      (TypeError) or a ``diagonal`` that is not a bool (TypeError).
      ValueError when finite inputs give NaN kernel entries, saying why: the first layer's
      σ_w²·x·x'/d exceeds the float range (inputs beyond |x| ~ 1e154; erf's kernels are computed in
      scaled form there and stay finite), a later layer's variances overflow (the message names the
      layer), or a variance left the range of the activation's dual maps (activations without a
      closed form cover variances up to 1e8).

    Warns:
      ntknotes.activations.AccuracyWarning: for activations on the Hermite series (tanh, SiLU, ...)
      when the certified error bound of some pair exceeds 1e-5 relative (large variances with
      correlations near ±1); the bound is tracked for concrete inputs only.

    Differentiable with respect to x1, x2, ``sigma_w`` and ``sigma_b`` (``jax.grad``, also on the
    diagonal, where ρ = 1); traced arguments are evaluated as one tile unless ``block_size`` is set.
    The finiteness and range checks need concrete values: under ``jax.jit`` or ``jax.grad`` (traced
    x or σ) they are skipped. Call the function eagerly to get them, or wrap a jitted caller with
    ``jax.experimental.checkify`` (e.g. ``checkify.checkify(f, errors=checkify.float_checks)``) to
    catch NaN inside jit.

    Example::

        k, theta = nngp_ntk(x, depth=2, activation="erf", sigma_w=1.5)
        g = jax.grad(lambda s: nngp(x, depth=2, sigma_w=s).sum())(1.5)
    """
    net, constants = _description(depth, activation, sigma_w, sigma_b, parameterization, width)
    _validate(x1, x2)
    return _driver.kernel(net, x1, x2, diagonal=diagonal, block_size=block_size, dtype=dtype, constants=constants)


def nngp(x1: Array, x2: Optional[Array] = None, **kwargs) -> Array:
    """The NNGP kernel K(x1, x2), shape (N1, N2); keyword arguments as in :func:`nngp_ntk`.

    Differentiable in x and σ; its input checks are skipped for traced values (under ``jax.jit``):
    see :func:`nngp_ntk` for eager use and ``jax.experimental.checkify``.
    """
    return nngp_ntk(x1, x2, **kwargs).nngp


def ntk(x1: Array, x2: Optional[Array] = None, **kwargs) -> Array:
    """The NTK Θ(x1, x2), shape (N1, N2); keyword arguments as in :func:`nngp_ntk`.

    Differentiable in x and σ; its input checks are skipped for traced values (under ``jax.jit``):
    see :func:`nngp_ntk` for eager use and ``jax.experimental.checkify``.
    """
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

    Same arguments as :func:`nngp_ntk` (no tiling: meant for a few thousand points); as there,
    differentiable in x and σ, with the input checks skipped for traced values (under ``jax.jit``).
    Returns:
      LayerKernels whose arrays have shape (L+1, N1, N2).
    """
    net, constants = _description(depth, activation, sigma_w, sigma_b, parameterization, width)
    _validate(x1, x2)
    spec = _fc.match(net, (int(x1.shape[1]),))
    dtype = check_float_dtype(dtype)
    consts = spec.constants(dtype) if constants is None else constants(spec, dtype)
    d = int(x1.shape[1])
    x1 = jnp.asarray(x1, dtype)
    symmetric = x2 is None
    x2 = x1 if symmetric else jnp.asarray(x2, dtype)
    huge = _fc.needs_scaling(x1, x2)
    q1, _, e1 = _fc.diag_jit(spec.act, x1, *consts, spec.depth, d, huge)
    q2, _, e2 = (q1, None, e1) if symmetric else _fc.diag_jit(spec.act, x2, *consts, spec.depth, d, huge)
    sig, sdot, th, terms = _fc.tile_jit(spec.act, x1, x2, q1, q2, e1, e2, *consts, d, symmetric, collect=True,
                                        huge=huge)
    # the term of layer l is multiplied by the Σ̇ of every later layer
    later = jnp.cumprod(jnp.concatenate([sdot[1:], jnp.ones_like(sdot[:1])], axis=0)[::-1], axis=0)[::-1]
    contributions = terms * later
    # erf inputs beyond ~1e154: Θ¹ overflows and Σ̇² underflows, but Θ¹ Σ̇² = Θ² - term_2 is finite
    first = jnp.where(jnp.isfinite(terms[0]), contributions[0], (th[1] - terms[1]) * later[1])
    return LayerKernels(sig, sdot, th, contributions.at[0].set(first))
