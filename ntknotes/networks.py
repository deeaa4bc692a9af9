"""Finite networks that the analytic kernels describe, as pure functions on pytrees.

:class:`MLP` holds the same hyperparameters as :func:`ntknotes.kernels.nngp_ntk`,
so averages over random networks converge to the analytic kernels::

    net = MLP(in_dim=3, width=512, depth=2, activation="relu", sigma_w=1.4, sigma_b=0.1)
    params = net.init(jax.random.PRNGKey(0))
    f = net.apply(params, x)            # (N, out_dim)
    K, Theta = net.kernels(x)           # analytic NNGP and NTK of the same architecture

Parameters are a list with one dict per layer, ``{"W": (fan_in, fan_out), "b": (fan_out,)}``;
the key ``"b"`` is absent when σ_b = 0 (a network without biases).

NTK parameterization: W, b ~ N(0, 1) and the layer computes (σ_w/√fan_in) x W + σ_b b.
Standard parameterization: W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²) and the layer computes x W + b.

:class:`MLP` is a thin constructor over :mod:`ntknotes.stax`: ``net.stax`` is its description
(:func:`ntknotes.stax.presets.mlp`), whose layers compute its forward pass and whose kernel map
gives ``net.kernels``.  The convolutional networks that :mod:`ntknotes.conv` describes live in
:mod:`ntknotes.cnn`; ``networks.CNN`` still finds :class:`~ntknotes.cnn.CNN`, loading it on first use.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp

from . import stax
from ._checks import check_choice, check_float_dtype, check_key, check_matrix, check_nonnegative, check_positive_int, check_widths
from .activations import Activation, get_activation
from .stax import PARAMETERIZATIONS, KernelPair
from .stax.presets import mlp

__all__ = ["MLP", "Forward", "Params"]

Array = jax.Array
Params = list  # list[dict[str, Array]]


class Forward(NamedTuple):
    """Intermediate values of one forward pass over a batch of N inputs.

    Attributes:
      output: f(x), shape (N, out_dim).
      preactivations: h^1..h^L of the hidden layers, each (N, n_l).
      inputs: the input of each weight layer, x^0 = x, x^l = φ(h^l); L + 1 arrays (N, n_{l}).
    """

    output: Array
    preactivations: tuple
    inputs: tuple


@dataclasses.dataclass(frozen=True)
class MLP:
    """A fully-connected network with L = ``depth`` hidden layers.

    Attributes:
      in_dim: input dimension d.
      width: hidden width n, or a tuple with one width per hidden layer.
      depth: number of hidden layers L >= 1.
      out_dim: number of outputs k.
      activation: name or :class:`~ntknotes.activations.Activation`.
      sigma_w, sigma_b: weight and bias scales (σ_b = 0: no biases).
      parameterization: ``"ntk"`` or ``"standard"``.
    """

    in_dim: int
    width: Union[int, Sequence[int]]
    depth: int = 1
    out_dim: int = 1
    activation: Union[str, Activation] = "relu"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    parameterization: str = "ntk"

    def __post_init__(self) -> None:
        check_positive_int(self.in_dim, "in_dim")
        check_positive_int(self.depth, "depth")
        check_positive_int(self.out_dim, "out_dim")
        object.__setattr__(self, "width", check_widths(self.width, self.depth))
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "sigma_w", check_nonnegative(self.sigma_w, "sigma_w"))
        object.__setattr__(self, "sigma_b", check_nonnegative(self.sigma_b, "sigma_b"))
        check_choice(self.parameterization, "parameterization", PARAMETERIZATIONS)

    # -- the description ------------------------------------------------------
    @functools.cached_property
    def stax(self) -> stax.Serial:
        """The :mod:`ntknotes.stax` description of this network (its params are ``self.to_stax(params)``)."""
        return mlp(self.depth, activation=self.activation, sigma_w=self.sigma_w, sigma_b=self.sigma_b,
                   parameterization=self.parameterization, width=self.width, out_dim=self.out_dim)

    def to_stax(self, params: Params) -> tuple:
        """These params in the layout of :attr:`stax` (one entry per layer, ``()`` for activations)."""
        self._check_params(params)
        out = []
        for layer in params[:-1]:
            out += [dict(layer), ()]
        return tuple(out) + (dict(params[-1]),)

    # -- shapes ------------------------------------------------------------
    @property
    def widths(self) -> tuple[int, ...]:
        """(d, n_1, ..., n_L, k): the sizes of every layer, input and output included."""
        return (self.in_dim,) + tuple(self.width) + (self.out_dim,)

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    @property
    def num_params(self) -> int:
        """Total number of trainable scalars."""
        w = self.widths
        return sum(w[i] * w[i + 1] + (w[i + 1] if self.has_bias else 0) for i in range(len(w) - 1))

    # -- parameters ----------------------------------------------------------
    def init(self, key: Array, dtype=None) -> Params:
        """Draw parameters: a list of L + 1 dicts with "W" (fan_in, fan_out) and, if σ_b > 0, "b".

        Args:
          key: a JAX PRNG key.
          dtype: float dtype (default from :mod:`ntknotes.precision`).
        """
        check_key(key)
        dtype = check_float_dtype(dtype)
        w = self.widths
        keys = jax.random.split(key, 2 * (len(w) - 1))
        params = []
        for i in range(len(w) - 1):
            W = jax.random.normal(keys[2 * i], (w[i], w[i + 1]), dtype)
            layer = {"W": W}
            if self.has_bias:
                layer["b"] = jax.random.normal(keys[2 * i + 1], (w[i + 1],), dtype)
            if self.parameterization == "standard":
                layer["W"] = W * (self.sigma_w / math.sqrt(w[i]))
                if self.has_bias:
                    layer["b"] = layer["b"] * self.sigma_b
            params.append(layer)
        return params

    def layer_scales(self) -> list[tuple[float, float]]:
        """(weight factor, bias factor) multiplying W and b in each layer's forward pass."""
        if self.parameterization == "standard":
            return [(1.0, 1.0)] * (self.depth + 1)
        return [(self.sigma_w / math.sqrt(n), self.sigma_b) for n in self.widths[:-1]]

    # -- forward -------------------------------------------------------------
    def forward(self, params: Params, x: Array) -> Forward:
        """Forward pass keeping every layer's input and pre-activation (used by layer-wise NTKs).

        Runs the Dense and activation layers of :attr:`stax`."""
        self._check_params(params)
        check_matrix(x, "x", features=self.in_dim)
        layers = self.stax.layers
        inputs, pre = [x], []
        h = x
        for i, layer in enumerate(params):
            z = layers[2 * i]._apply(layer, h)
            if i == self.depth:
                return Forward(z, tuple(pre), tuple(inputs))
            pre.append(z)
            h = layers[2 * i + 1]._apply((), z)
            inputs.append(h)
        raise AssertionError("unreachable")

    def apply(self, params: Params, x: Array) -> Array:
        """The network output f(x), shape (N, out_dim), for inputs x of shape (N, in_dim)."""
        return self.forward(params, x).output

    __call__ = apply

    # -- theory ---------------------------------------------------------------
    def kernels(self, x1: Array, x2: Optional[Array] = None, **kwargs: Any) -> KernelPair:
        """Analytic NNGP and NTK of this architecture (per output): ``self.stax.kernel(x1, x2, **kwargs)``."""
        check_matrix(x1, "x1", features=self.in_dim)
        if x2 is not None:
            check_matrix(x2, "x2", features=self.in_dim)
        return self.stax.kernel(x1, x2, **kwargs)

    def _check_params(self, params: Params) -> None:
        if not isinstance(params, (list, tuple)) or len(params) != self.depth + 1:
            raise ValueError(
                f"params must be a list of {self.depth + 1} layer dicts (from MLP.init), got {type(params).__name__}"
                + (f" of length {len(params)}" if isinstance(params, (list, tuple)) else "")
            )
        w = self.widths
        keys = {"W", "b"} if self.has_bias else {"W"}
        for i, layer in enumerate(params):
            if not isinstance(layer, dict) or set(layer) != keys:
                got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
                raise ValueError(f"params[{i}] must be a dict with keys {sorted(keys)} (sigma_b={self.sigma_b}), got {got}")
            shape = getattr(layer["W"], "shape", None)
            if shape != (w[i], w[i + 1]):
                raise ValueError(f"params[{i}]['W'] must have shape {(w[i], w[i + 1])}, got {shape}")
            if self.has_bias and getattr(layer["b"], "shape", None) != (w[i + 1],):
                raise ValueError(f"params[{i}]['b'] must have shape {(w[i + 1],)}, got {getattr(layer['b'], 'shape', None)}")


def __getattr__(name: str) -> Any:
    """``networks.CNN``: the convolutional network of :mod:`ntknotes.cnn`, imported on first use only."""
    if name == "CNN":
        from .cnn import CNN

        return CNN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
