"""Finite convolutional networks matching the analytic kernels of :mod:`ntknotes.conv`.

:class:`CNN` is the network whose infinite-channel limit :func:`ntknotes.conv.conv_kernels`
computes: L convolution layers with 3×3 filters, SAME (zero) padding and stride 1, then either a
flattening linear readout ("CNN-V") or global average pooling followed by a linear readout
("CNN-GAP").  NTK parameterization: every W, b ~ N(0, 1) and each layer multiplies by
σ_w/√fan_in (fan_in = 9·channels for a convolution, H·W·n for the flatten readout, n for GAP)
and σ_b.  So Monte Carlo averages of ``empirical_ntk(net.apply, params, x)`` converge to
``net.kernels(x).ntk`` as ``channels`` grows::

    net = CNN(image_shape=(8, 8, 1), channels=256, depth=3, pooling="gap")
    params = net.init(jax.random.PRNGKey(0))
    f = net.apply(params, x)          # x: (N, 8, 8, 1) or flattened (N, 64); f: (N, out_dim)

Parameters: a list of L + 1 dicts; convolution layers hold "W" (3, 3, C_in, C_out) and the
readout "W" (features, out_dim); each has "b" when σ_b > 0.

:class:`CNN` is a thin constructor over :mod:`ntknotes.stax`: ``net.stax`` is its description
(:func:`ntknotes.stax.presets.conv_net`), whose layers compute the forward pass.

Train it with :func:`ntknotes.training.train` (plain minibatch SGD: ``batch_size`` and ``key``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from . import stax
from ._checks import check_choice, check_float_dtype, check_key, check_nonnegative, check_positive_int
from .activations import Activation, get_activation
from .conv import POOLINGS, ConvKernels, conv_kernels
from .stax.presets import conv_net

__all__ = ["CNN"]

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CNN:
    """A ReLU CNN of ``depth`` 3×3 SAME convolutions with ``channels`` channels each.

    Attributes:
      image_shape: (H, W, C) of the input images.
      channels: channels n of every convolution layer (the "width").
      depth: number of convolution layers L >= 1.
      out_dim: number of outputs k.
      pooling: ``"flatten"`` (CNN-V) or ``"gap"`` (global average pooling).
      activation: name or :class:`~ntknotes.activations.Activation`.
      sigma_w, sigma_b: weight and bias scales (σ_b = 0: no biases).
    """

    image_shape: tuple
    channels: int
    depth: int = 1
    out_dim: int = 1
    pooling: str = "gap"
    activation: Union[str, Activation] = "relu"
    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.0

    def __post_init__(self) -> None:
        shape = self.image_shape
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {shape!r}")
        object.__setattr__(self, "image_shape", tuple(check_positive_int(s, "image_shape") for s in shape))
        check_positive_int(self.channels, "channels")
        check_positive_int(self.depth, "depth")
        check_positive_int(self.out_dim, "out_dim")
        check_choice(self.pooling, "pooling", POOLINGS)
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "sigma_w", check_nonnegative(self.sigma_w, "sigma_w"))
        object.__setattr__(self, "sigma_b", check_nonnegative(self.sigma_b, "sigma_b"))

    @functools.cached_property
    def stax(self) -> stax.Serial:
        """The :mod:`ntknotes.stax` description of this network (same params, as a tuple with ``()`` for activations)."""
        return conv_net(self.depth, pooling=self.pooling, channels=self.channels, activation=self.activation,
                        sigma_w=self.sigma_w, sigma_b=self.sigma_b, out_dim=self.out_dim)

    def to_stax(self, params: list) -> tuple:
        """These params in the layout of :attr:`stax`."""
        self._check_params(params)
        out = []
        for layer in params[:-1]:
            out += [dict(layer), ()]
        return tuple(out) + ((), dict(params[-1]))

    @property
    def has_bias(self) -> bool:
        return self.sigma_b > 0

    @property
    def readout_dim(self) -> int:
        """Number of features entering the linear readout."""
        h, w, _ = self.image_shape
        return self.channels * (h * w if self.pooling == "flatten" else 1)

    @property
    def num_params(self) -> int:
        """Total number of trainable scalars."""
        c_in = self.image_shape[2]
        n, total = self.channels, 0
        for l in range(self.depth):
            total += 9 * (c_in if l == 0 else n) * n + (n if self.has_bias else 0)
        return total + self.readout_dim * self.out_dim + (self.out_dim if self.has_bias else 0)

    def init(self, key: Array, dtype=None) -> list:
        """Draw all parameters i.i.d. N(0, 1): a list of ``depth`` + 1 layer dicts.

        Args:
          key: a JAX PRNG key.
          dtype: float dtype (default from :mod:`ntknotes.precision`).
        """
        check_key(key)
        dtype = check_float_dtype(dtype)
        keys = jax.random.split(key, 2 * (self.depth + 1))
        c_in, n = self.image_shape[2], self.channels
        params = []
        for l in range(self.depth + 1):
            shape = (3, 3, c_in if l == 0 else n, n) if l < self.depth else (self.readout_dim, self.out_dim)
            layer = {"W": jax.random.normal(keys[2 * l], shape, dtype)}
            if self.has_bias:
                layer["b"] = jax.random.normal(keys[2 * l + 1], (shape[-1],), dtype)
            params.append(layer)
        return params

    def _images(self, x: Array) -> Array:
        shape = getattr(x, "shape", None)
        if shape is None:
            raise TypeError(f"x must be an array of images, got {type(x).__name__}")
        if len(shape) == 2 and shape[1] == int(np.prod(self.image_shape)):
            return jnp.reshape(x, (shape[0],) + self.image_shape)
        if len(shape) != 4 or tuple(shape[1:]) != self.image_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.image_shape))}) or (N, {int(np.prod(self.image_shape))}),"
                f" got {tuple(shape)}"
            )
        return x

    def features(self, params: list, x: Array) -> Array:
        """The readout's input: (N, readout_dim) (flattened last layer, or its channel means for GAP)."""
        self._check_params(params)
        h = self._images(x)
        layers = self.stax.layers
        for l in range(self.depth):
            h = layers[2 * l + 1]._apply((), layers[2 * l]._apply(params[l], h))
        return layers[-2]._apply((), h)

    def apply(self, params: list, x: Array) -> Array:
        """Network outputs f(x), shape (N, out_dim), for images (N, H, W, C) or flattened (N, H·W·C)."""
        return self.stax.layers[-1]._apply(params[-1], self.features(params, x))

    __call__ = apply

    def kernels(self, x1: Array, x2: Optional[Array] = None, **kwargs: Any) -> ConvKernels:
        """Analytic NNGP and NTK of this architecture at its depth (see :func:`ntknotes.conv.conv_kernels`)."""
        x1 = self._images(x1)
        x2 = None if x2 is None else self._images(x2)
        return conv_kernels(
            x1, x2, depths=self.depth, gap=self.pooling == "gap", activation=self.activation,
            sigma_w=self.sigma_w, sigma_b=self.sigma_b, **kwargs,
        )

    def _check_params(self, params: list) -> None:
        if not isinstance(params, (list, tuple)) or len(params) != self.depth + 1:
            raise ValueError(f"params must be a list of {self.depth + 1} layer dicts (from CNN.init), got {type(params).__name__}")
        c_in, n = self.image_shape[2], self.channels
        for l, layer in enumerate(params):
            want = (3, 3, c_in if l == 0 else n, n) if l < self.depth else (self.readout_dim, self.out_dim)
            shape = getattr(layer.get("W") if isinstance(layer, dict) else None, "shape", None)
            if shape != want:
                raise ValueError(f"params[{l}]['W'] must have shape {want}, got {shape}")
