"""Descriptions of the two classic architectures, shared by the thin constructors of ntknotes.

:func:`mlp` is the network of :func:`ntknotes.kernels.nngp_ntk` and :class:`ntknotes.networks.MLP`;
:func:`conv_net` the one of :func:`ntknotes.conv.conv_kernels` and :class:`ntknotes.cnn.CNN`.  Here
σ_b = 0 means no biases (``b_std=None``), as those constructors have always meant it.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

from .._checks import check_choice, check_nonnegative, check_positive_int, check_widths
from ..activations import Activation, get_activation
from .combinators import Serial, serial
from .layers import PARAMETERIZATIONS, Conv, Dense, Elementwise, Flatten, GlobalAvgPool

__all__ = ["mlp", "conv_net", "PLACEHOLDER_WIDTH", "POOLINGS"]

PLACEHOLDER_WIDTH = 512  # hidden width (or channels) of descriptions whose kernel does not depend on it
POOLINGS = ("flatten", "gap")


def mlp(
    depth: int,
    *,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    parameterization: str = "ntk",
    width: Union[None, int, Sequence[int]] = None,
    out_dim: int = 1,
) -> Serial:
    """The stax description of a fully-connected network with L = ``depth`` hidden layers.

    ``serial(Dense(n_1), φ, ..., Dense(n_L), φ, Dense(out_dim))`` with W_std = σ_w and b_std = σ_b,
    or no biases when σ_b = 0.  ``width`` (an int or one per hidden layer) may be omitted in the NTK
    parameterization, whose kernels do not depend on it (the description then uses 512).

    Example::

        net = mlp(2, activation="erf", sigma_w=1.5, width=1024)
        _, params = net.init(jax.random.PRNGKey(0), (-1, 3))
    """
    depth = check_positive_int(depth, "depth")
    sigma_w = check_nonnegative(sigma_w, "sigma_w")
    sigma_b = check_nonnegative(sigma_b, "sigma_b")
    check_choice(parameterization, "parameterization", PARAMETERIZATIONS)
    if width is None:
        if parameterization == "standard":
            raise ValueError("the standard-parameterization NTK depends on the width: pass width=n (or one per layer)")
        widths = (PLACEHOLDER_WIDTH,) * depth
    else:
        widths = check_widths(width, depth)
    act = Elementwise(get_activation(activation))
    b_std = sigma_b if sigma_b > 0 else None
    layers = []
    for n in widths:
        layers += [Dense(n, sigma_w, b_std, parameterization), act]
    return serial(*layers, Dense(check_positive_int(out_dim, "out_dim"), sigma_w, b_std, parameterization))


def conv_net(
    depth: int,
    *,
    pooling: str = "gap",
    channels: int = PLACEHOLDER_WIDTH,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = math.sqrt(2.0),
    sigma_b: float = 0.0,
    out_dim: int = 1,
) -> Serial:
    """The stax description of L = ``depth`` 3×3 SAME convolutions + φ, then Flatten or GAP and a Dense readout.

    NTK parameterization, W_std = σ_w and b_std = σ_b (no biases when σ_b = 0) in every layer.
    The kernels do not depend on ``channels`` (the description's width).

    Example::

        net = conv_net(3, pooling="gap", channels=128)
        _, params = net.init(jax.random.PRNGKey(0), (-1, 8, 8, 3))
    """
    depth = check_positive_int(depth, "depth")
    check_choice(pooling, "pooling", POOLINGS)
    sw = check_nonnegative(sigma_w, "sigma_w")
    sb = check_nonnegative(sigma_b, "sigma_b")
    b_std = sb if sb > 0 else None
    act = Elementwise(get_activation(activation))
    layers = []
    for _ in range(depth):
        layers += [Conv(check_positive_int(channels, "channels"), (3, 3), padding="SAME", W_std=sw, b_std=b_std), act]
    readout = Flatten() if pooling == "flatten" else GlobalAvgPool()
    return serial(*layers, readout, Dense(check_positive_int(out_dim, "out_dim"), sw, b_std))
