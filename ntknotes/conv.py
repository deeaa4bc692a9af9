"""Convolutional NNGP and NTK (the CNTK of Arora et al. 2019) for 3×3 SAME convolutions.

The network these kernels describe (NTK parameterization, all W, b ~ N(0, 1), images of
H × W pixels with C₀ channels, zero padding, ``depth`` = L convolution layers)::

    h¹[p]     = σ_w/√(9 C₀) Σ_{δ ∈ 3×3} W¹[δ]ᵀ x[p + δ] + σ_b b¹
    h^{l+1}[p] = σ_w/√(9 n)  Σ_δ W^{l+1}[δ]ᵀ φ(h^l[p + δ]) + σ_b b^{l+1}
    f(x)      = σ_w/√(HW n) Σ_p W^{out}[p]ᵀ φ(h^L[p]) + σ_b b        (flatten readout, "CNN-V")
    f(x)      = σ_w/√n W^{out}ᵀ (1/HW) Σ_p φ(h^L[p]) + σ_b b          (global average pooling, "GAP")

(:class:`ntknotes.cnn.CNN` is that network).  As the channel count n grows, the covariance of
pre-activations at pixel p of image x and pixel p' of image x' converges to Σ^l(x, x')[p, p'],
a 4-D array of pixel pairs, and the tangent kernel to Θ^l[p, p'].  With C^l = E[φ(u)φ(v)] and
Ċ^l = E[φ'(u)φ'(v)] under the bivariate Gaussian of variances Σ^l(x, x)[p, p],
Σ^l(x', x')[p', p'] and covariance Σ^l(x, x')[p, p'], and B the aligned 3×3 box sum
B[A][p, p'] = Σ_δ A[p + δ, p' + δ] (zero outside the image)::

    Σ¹      = σ_w²/9 B[x[p]·x'[p']/C₀] + σ_b²,                 Θ¹ = Σ¹
    Σ^{l+1} = σ_w²/9 B[C^l] + σ_b²,      Θ^{l+1} = σ_w²/9 B[Ċ^l ⊙ Θ^l] + Σ^{l+1}

and the output kernels read the last layer out as

    K = σ_w² R[C^L] + σ_b²,              Θ = K + σ_w² R[Ċ^L ⊙ Θ^L]

with R the mean over the diagonal pixel pairs p = p' (flatten, "CNTK-V") or over all pixel pairs
(GAP, "CNTK-GAP").  The aligned box sum never mixes pixel offsets, so the flatten kernels only
ever need the diagonal p = p' (an (H, W) array per image pair) while GAP needs the whole (H, W, H, W)
array: H·W times the work.

Implementation: :func:`conv_net` builds the :mod:`ntknotes.stax` description of that network
and :func:`conv_kernels` evaluates it by the fast path of ``ntknotes.stax._cntk``, which keeps
every layer's readout, so one pass at the largest depth gives the kernels at every smaller depth
as well, and equals the generic stax layer maps of each depth's description:

* ``"xla"`` (any device, any activation with closed-form duals): tiles of image pairs, pixel axes
  first and image pairs last, layers in a ``lax.scan``;
* ``"numba"`` (CPU, ReLU family, the default there): :mod:`ntknotes.conv_cpu`, one fused loop per
  layer, sixteen image pairs side by side in every SIMD loop; 3–6× faster than XLA on CPU.
  Numba is imported only when this backend runs.

Example::

    ks = conv_kernels(images, depths=(2, 4), gap=True)      # images (N, H, W, C)
    k, theta = ks.get("gap", 4)                             # (N, N) each
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import jax
import numpy as np

from . import stax
from ._checks import check_bool, check_choice, check_finite, check_float_dtype, check_positive_int
from .activations import ACTIVATIONS, Activation, get_activation
from .stax import KernelPair, _cntk
from .stax.presets import conv_net

__all__ = ["BACKENDS", "POOLINGS", "ConvKernels", "conv_kernels", "conv_nngp_ntk", "conv_net", "check_images"]

Array = jax.Array
POOLINGS = stax.presets.POOLINGS
BACKENDS = _cntk.BACKENDS


class ConvKernels(NamedTuple):
    """Convolutional kernels at several depths, from one pass of the recursion.

    Attributes:
      depths: the depths L (numbers of convolution layers) in the order of the leading axis.
      flatten: KernelPair(nngp, ntk) of the flatten readout (CNN-V), arrays (D, N1, N2).
      gap: KernelPair(nngp, ntk) of the global-average-pooling readout, arrays (D, N1, N2), or
        ``None`` when it was not requested.
    """

    depths: tuple
    flatten: KernelPair
    gap: Optional[KernelPair]

    def get(self, pooling: str, depth: int) -> KernelPair:
        """The (N1, N2) NNGP and NTK for one readout (``"flatten"`` or ``"gap"``) and one depth."""
        check_choice(pooling, "pooling", POOLINGS)
        if depth not in self.depths:
            raise ValueError(f"depth {depth} was not computed; available depths: {list(self.depths)}")
        pair = self.flatten if pooling == "flatten" else self.gap
        if pair is None:
            raise ValueError("the GAP kernels were not computed (pass gap=True)")
        i = self.depths.index(depth)
        return KernelPair(pair.nngp[i], pair.ntk[i])


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def check_images(x, name: str = "x") -> None:
    """Raise unless ``x`` is a finite real array of images with shape (N, H, W, C)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array of images of shape (N, H, W, C), got {type(x).__name__}")
    if len(shape) != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C) (images in rows, channels last), got shape {tuple(shape)}")
    if min(shape) < 1:
        raise ValueError(f"{name} must have at least one image, pixel and channel, got shape {tuple(shape)}")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    check_finite(x, name)


def _check_depths(depths) -> tuple:
    if isinstance(depths, (int, np.integer)) and not isinstance(depths, bool):
        depths = (depths,)
    if not isinstance(depths, (list, tuple)) or len(depths) == 0:
        raise TypeError(f"depths must be a positive int or a non-empty sequence of them, got {depths!r}")
    out = tuple(check_positive_int(d, f"depths[{i}]") for i, d in enumerate(depths))
    if len(set(out)) != len(out):
        raise ValueError(f"depths must be distinct, got {list(out)}")
    return out


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def conv_kernels(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depths: Union[int, Sequence[int]],
    gap: bool = True,
    activation: Union[str, Activation] = "relu",
    sigma_w: float = math.sqrt(2.0),
    sigma_b: float = 0.0,
    block_size: Optional[int] = None,
    dtype=None,
    backend: str = "auto",
) -> ConvKernels:
    """NNGP and NTK of 3×3-SAME convolutional networks, flatten and GAP readouts, several depths.

    Args:
      x1: images (N1, H, W, C).
      x2: images (N2, H, W, C), or ``None`` for x2 = x1 (symmetric: only tiles on and above the
        diagonal are computed).
      depths: one depth L >= 1 (number of convolution layers) or several; one pass of the
        recursion to the largest depth serves them all.
      gap: also compute the global-average-pooling kernels (H·W times the cost of the flatten
        kernels, which only need aligned pixel pairs).
      activation: a name or :class:`~ntknotes.activations.Activation` with a closed-form dual
        (ReLU by default, with a fused evaluation).
      sigma_w, sigma_b: weight and bias scales (default √2 and 0: ReLU's variance-preserving choice).
      block_size: edge of a tile of image pairs for the ``"xla"`` backend (default: as many as
        fit in ~2¹⁸ scalars per pixel-pair array).
      dtype: float dtype (default float64 when x64 is on, else float32).
      backend: ``"xla"`` (tiles of image pairs through XLA: any device, any closed-form dual),
        ``"numba"`` (the fused CPU loops of :mod:`ntknotes.conv_cpu`, ReLU family only, 3–6×
        faster on CPU) or ``"auto"``: numba when JAX runs on the CPU and the activation is in the
        ReLU family, XLA otherwise.
    Returns:
      :class:`ConvKernels` with arrays of shape (len(depths), N1, N2) (NumPy, assembled on the host);
      entry i equals ``conv_net(depths[i], pooling=...).kernel(x1, x2)``.
    Raises:
      ValueError / TypeError for non-image inputs, mismatched image shapes, non-positive depths,
      negative or non-finite σ, an unknown backend, ``backend="numba"`` with an activation
      outside the ReLU family, a non-floating ``dtype`` or a ``gap`` that is not a bool.
      ValueError "... out of range" for images whose kernels are not representable: with
      σ_b = 0 and the ReLU family the kernels are computed in scaled form (images scaled by c
      give c² times the kernels, for any c whose c² stays inside float64's range); otherwise
      pixels beyond ~1e150 overflow and raise.
    """
    check_images(x1, "x1")
    if x2 is not None:
        check_images(x2, "x2")
        if tuple(x2.shape[1:]) != tuple(x1.shape[1:]):
            raise ValueError(f"x1 and x2 must have the same image shape, got {tuple(x1.shape[1:])} and {tuple(x2.shape[1:])}")
    depths = _check_depths(depths)
    check_bool(gap, "gap")
    act = get_activation(activation)
    if not act.has_closed_form:
        closed = [name for name in ACTIVATIONS if get_activation(name).has_closed_form]
        raise ValueError(
            f"convolutional kernels need an activation whose dual maps have closed forms (one of {closed}); "
            f"{act.name!r} would need a 2-D quadrature for every pixel pair of every image pair "
            f"(the generic path, conv_net(...).kernel(x), computes it)"
        )
    check_choice(backend, "backend", BACKENDS)
    backend = _cntk.choose_backend(act, backend)
    in_shape = tuple(int(s) for s in x1.shape[1:])
    spec = None
    for pooling in ("flatten", "gap") if gap else ("flatten",):
        net = conv_net(max(depths), pooling=pooling, activation=act, sigma_w=sigma_w, sigma_b=sigma_b)
        net.output_shape((-1,) + in_shape)  # the description must fit the images
        spec = _cntk.match(net, in_shape)
    dtype = check_float_dtype(dtype)
    out = _cntk.readouts(x1, x2, depths=depths, gap=gap, act=act, sw2=spec.sw2, sb2=spec.sb2,
                         block_size=None if block_size is None else check_positive_int(block_size, "block_size"),
                         dtype=dtype, backend=backend)
    flat = KernelPair(out[:, 0], out[:, 1])
    pooled = KernelPair(out[:, 2], out[:, 3]) if gap else None
    return ConvKernels(depths, flat, pooled)


def conv_nngp_ntk(
    x1: Array,
    x2: Optional[Array] = None,
    *,
    depth: int,
    pooling: str = "gap",
    activation: Union[str, Activation] = "relu",
    sigma_w: float = math.sqrt(2.0),
    sigma_b: float = 0.0,
    block_size: Optional[int] = None,
    dtype=None,
    backend: str = "auto",
) -> KernelPair:
    """NNGP and NTK of one convolutional architecture, each (N1, N2).

    Args:
      x1, x2: images (N, H, W, C); ``x2=None`` for the symmetric train-train kernel.
      depth: number of 3×3 convolution layers L >= 1.
      pooling: ``"gap"`` (global average pooling, CNTK-GAP) or ``"flatten"`` (CNTK-V).
      activation, sigma_w, sigma_b, block_size, dtype, backend: as in :func:`conv_kernels`.
    Returns:
      KernelPair(nngp, ntk) of shape (N1, N2).
    """
    check_choice(pooling, "pooling", POOLINGS)
    ks = conv_kernels(
        x1, x2, depths=depth, gap=pooling == "gap", activation=activation,
        sigma_w=sigma_w, sigma_b=sigma_b, block_size=block_size, dtype=dtype, backend=backend,
    )
    return ks.get(pooling, check_positive_int(depth, "depth"))
