"""``ntknotes.stax``: a network described once gives its finite version and its infinite-width kernels.

Layers are small frozen dataclasses; each has ``init(key, input_shape) -> (output_shape, params)``,
``apply(params, x)`` and a kernel map on a :class:`~ntknotes.stax.state.Kernel` state (the NNGP
and NTK between two inputs and each input's own variances, with pixel axes for images).  The
combinators ``serial``, ``parallel``, ``FanOut``, ``FanInSum`` and ``FanInConcat`` build any
architecture from them; every layer and combinator offers

* ``net.init(key, (-1, d))`` and ``net.apply(params, x)``: the finite network;
* ``net.kernel(x1, x2=None, get=("nngp", "ntk"), diagonal=False)``: its infinite-width NNGP and
  NTK (tiled, memory bounded; fast paths for plain MLPs and 3×3 CNNs give the same numbers);
* ``net.empirical_ntk(params, x1, x2)``: the finite network's empirical NTK.

Conventions follow neural-tangents (NHWC images, ``W_std``/``b_std`` as σ_w/σ_b, ``b_std=None`` for
no bias and ``0.0`` for a zero-initialized trainable one, NTK or standard parameterization,
Flatten/AvgPool normalizations); where ntknotes differs, :mod:`ntknotes.stax.layers` says so.

Example (a residual MLP)::

    from ntknotes import stax
    block = stax.serial(stax.FanOut(2),
                        stax.parallel(stax.serial(stax.Relu(), stax.Dense(512, W_std=1.4)), stax.Identity()),
                        stax.FanInSum())
    net = stax.serial(stax.Dense(512, W_std=1.4), block, block, stax.Relu(), stax.Dense(1, W_std=1.4))
    _, params = net.init(jax.random.PRNGKey(0), (-1, 3))
    f = net.apply(params, x)                  # (N, 1)
    nngp, ntk = net.kernel(x)                 # (N, N) each
"""
from __future__ import annotations

from .. import activations as _act
from .base import Layer
from .state import Kernel, KernelPair
from . import presets
from .combinators import FanInConcat, FanInSum, FanOut, Parallel, Serial, parallel, serial
from .layers import PADDINGS, PARAMETERIZATIONS, AvgPool, Conv, Dense, Elementwise, Flatten, GlobalAvgPool, Identity, LayerNorm

__all__ = [
    "Layer", "Kernel", "KernelPair", "PADDINGS", "PARAMETERIZATIONS",
    "Dense", "Conv", "Elementwise", "AvgPool", "GlobalAvgPool", "Flatten", "LayerNorm", "Identity",
    "serial", "parallel", "FanOut", "FanInSum", "FanInConcat", "Serial", "Parallel",
    "Relu", "LeakyRelu", "ABRelu", "Erf", "Tanh", "SigmoidCentered", "Linear", "Sin", "Gelu", "AbsCentered",
    "Hermite", "PhiOpt",
]


# every activation of ntknotes.activations as a layer (closed-form duals where it has them)
def Relu() -> Elementwise:
    """ReLU, max(z, 0) (arc-cosine dual)."""
    return Elementwise(_act.relu())


def LeakyRelu(slope: float = 0.01) -> Elementwise:
    """Leaky ReLU: z for z >= 0, slope·z otherwise (closed-form dual)."""
    return Elementwise(_act.leaky_relu(slope))


def ABRelu(a: float, b: float) -> Elementwise:
    """a·z for z < 0, b·z for z >= 0 (closed-form dual)."""
    return Elementwise(_act.abrelu(a, b))


def Erf() -> Elementwise:
    """erf(z) (arcsin dual)."""
    return Elementwise(_act.erf())


def Tanh() -> Elementwise:
    """tanh(z) (dual by quadrature)."""
    return Elementwise(_act.tanh())


def SigmoidCentered() -> Elementwise:
    """sigmoid(z) − 1/2 (dual by quadrature)."""
    return Elementwise(_act.sigmoid_centered())


def Linear() -> Elementwise:
    """The identity activation φ(z) = z as an activation layer (exact dual: the kernel itself)."""
    return Elementwise(_act.identity())


def Sin(frequency: float = 1.0) -> Elementwise:
    """sin(frequency·z) (closed-form dual)."""
    return Elementwise(_act.sin(frequency))


def Gelu() -> Elementwise:
    """GELU z·Φ(z) (dual by quadrature)."""
    return Elementwise(_act.gelu())


def AbsCentered() -> Elementwise:
    """abs(z) − √(2/π) (dual by quadrature)."""
    return Elementwise(_act.abs_centered())


def Hermite(k: int) -> Elementwise:
    """The normalized Hermite polynomial h_k (dual ρ^k by quadrature)."""
    return Elementwise(_act.hermite(k))


def PhiOpt(d: int) -> Elementwise:
    """φ_opt for inputs on S^d (Radhakrishnan et al.)."""
    return Elementwise(_act.phi_opt(d))
