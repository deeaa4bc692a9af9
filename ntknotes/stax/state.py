"""The kernel state passed between stax layers, and the spatial operations on it.

A state holds, for two batches of inputs x1 (N1 points) and x2 (N2 points), the infinite-width
covariance of one channel of the current layer's features (``nngp``), their tangent kernel
(``ntk``) and each batch's own covariances (``cov1``, ``cov2``), which give the variances the
dual maps of an activation need.  Per-example feature shapes are () for vectors and (H, W) for
images (channels last, NHWC, as in neural-tangents); the kernel arrays carry pixel axes:

=========  =====================  ======================  ==================================
spatial    nngp, ntk              cov1                     used when
=========  =====================  ======================  ==================================
"none"     (N1, N2)               (N1,)                    vectors
"diag"     (N1, N2, H, W)         (N1, H, W)               pixel p of x1 with pixel p of x2 only
"full"     (N1, N2, H, W, H, W)   (N1, H, W, H, W)         every pixel pair (pooling needs it)
=========  =====================  ======================  ==================================

Convolutions and activations never mix pixel offsets, so a network without pooling only ever
needs aligned pixel pairs ("diag"); a network with AvgPool or GlobalAvgPool runs in "full".
A ``diagonal`` state (K(x, x) of each point of x1 only) has nngp and ntk of shape (N1, S...) and no
cov1/cov2 (its nngp is its own covariance).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

Array = jax.Array

__all__ = ["KernelPair", "Kernel", "input_state"]


class KernelPair(NamedTuple):
    """The NNGP kernel and the NTK of a network's output, each (N1, N2) (or (N1,) when diagonal)."""

    nngp: Optional[Array]
    ntk: Optional[Array]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """Infinite-width state between two layers (see the module docstring for the shapes).

    Attributes:
      nngp: covariance of one channel's features of x1 and x2, (N1, N2, S...) or (N1, S...) if diagonal.
      ntk: their tangent kernel with respect to all parameters before this point, same shape, or
        ``None`` when only the NNGP is wanted.
      cov1, cov2: self-covariances (N, S...) of each batch (``None`` in a diagonal state).
      same: bool (N1, N2) marking pairs of identical inputs (their correlation is pinned to 1), or
        ``None``.
      spatial: "none", "diag" or "full".
      gaussian: whether the features are centred Gaussian at infinite width (true after a Dense or
        Conv layer, and after linear maps of Gaussian features); activations and LayerNorm need it.
      fresh: whether the features are independent of every earlier feature (they end in a layer
        with its own zero-mean weights), so that their covariance with another branch is zero.
      diagonal: whether this is a diagonal state.
    """

    nngp: Array
    ntk: Optional[Array]
    cov1: Optional[Array]
    cov2: Optional[Array]
    same: Optional[Array]
    spatial: str
    gaussian: bool
    fresh: bool
    diagonal: bool = False

    def replace(self, **changes) -> "Kernel":
        return dataclasses.replace(self, **changes)

    @property
    def batch_ndim(self) -> int:
        """Leading batch axes of ``nngp``: 1 for a diagonal state, else 2."""
        return 1 if self.diagonal else 2

    def map(self, f, g=None) -> "Kernel":
        """Apply f(array, batch_ndim) to nngp, cov1 and cov2 and g (default f) to ntk."""
        g = f if g is None else g
        nb = self.batch_ndim
        return self.replace(
            nngp=f(self.nngp, nb),
            ntk=None if self.ntk is None else g(self.ntk, nb),
            cov1=None if self.cov1 is None else f(self.cov1, 1),
            cov2=None if self.cov2 is None else f(self.cov2, 1),
        )

    # -- per-pair variances and identity masks ---------------------------------------
    def pixel_variances(self, cov: Array) -> Array:
        """The variance of every pixel of each input, (N, pixels...), from a self-covariance (N, S...)."""
        if self.spatial != "full":
            return cov
        n, h, w = cov.shape[:3]
        return jnp.diagonal(cov.reshape(n, h * w, h * w), axis1=1, axis2=2).reshape(n, h, w)

    def pairs(self) -> list[tuple[str, Array, Array, Array, Array]]:
        """For nngp, cov1 and cov2: (name, array, var_a, var_b, same) where var_a and var_b are the
        variances of the two features of every entry and ``same`` marks entries pairing a feature
        with itself (all three broadcast to the array)."""
        out = []
        if self.diagonal:
            q = self.pixel_variances(self.nngp)
            out.append(("nngp", self.nngp) + self._self_pairs(q))
        else:
            q1 = self.pixel_variances(self.cov1)
            q2 = self.pixel_variances(self.cov2)
            out.append(("nngp", self.nngp, self._side(q1, 0), self._side(q2, 1), self._same_mask()))
            out.append(("cov1", self.cov1) + self._self_pairs(q1))
            out.append(("cov2", self.cov2) + self._self_pairs(q2))
        return out

    def _side(self, q: Array, side: int) -> Array:
        """Variances of batch ``side`` (0: x1, 1: x2) broadcast against a (N1, N2, S...) array."""
        q = q[:, None] if side == 0 else q[None, :]
        if self.spatial == "full":
            if side == 0:
                return q[..., None, None]
            return q[:, :, None, None, :, :]
        return q

    def _self_pairs(self, q: Array) -> tuple[Array, Array, Array]:
        """(var_a, var_b, same) for a self-covariance (N, S...) with pixel variances q (N, pixels...)."""
        if self.spatial != "full":
            return q, q, jnp.ones((), bool)
        h, w = q.shape[1:]
        eye = jnp.eye(h * w, dtype=bool).reshape(h, w, h, w)
        return q[..., None, None], q[:, None, None, :, :], eye

    def _same_mask(self) -> Array:
        if self.same is None:
            return jnp.zeros((), bool)
        same = self.same
        if self.spatial == "diag":
            return same[:, :, None, None]
        if self.spatial == "full":
            h, w = self.cov1.shape[1:3]
            eye = jnp.eye(h * w, dtype=bool).reshape(h, w, h, w)
            return same[:, :, None, None, None, None] & eye
        return same


def input_state(x1: Array, x2: Optional[Array], *, spatial: str, same: bool, diagonal: bool, want_ntk: bool) -> Kernel:
    """The state of the inputs themselves: per-channel Gram arrays, zero NTK (no parameters yet).

    Args:
      x1: (N1, d) vectors or (N1, H, W, C) images; x2 likewise or ``None`` for a diagonal state.
      spatial: "none" for vectors, "diag" or "full" for images.
      same: x1 and x2 are the same inputs (a diagonal tile of a symmetric kernel).
    """
    c = x1.shape[-1]

    def gram(a, b):
        if spatial == "none":
            return a @ b.T / c
        if spatial == "diag":
            return jnp.einsum("aijc,bijc->abij", a, b) / c
        return jnp.einsum("aijc,bklc->abijkl", a, b) / c

    def self_gram(a):
        if spatial == "none":
            return jnp.sum(a * a, axis=-1) / c
        if spatial == "diag":
            return jnp.sum(a * a, axis=-1) / c
        return jnp.einsum("aijc,aklc->aijkl", a, a) / c

    if diagonal:
        nngp = self_gram(x1)
        return Kernel(nngp, jnp.zeros_like(nngp) if want_ntk else None, None, None, None, spatial, False, False, True)
    nngp = gram(x1, x2)
    cov1 = self_gram(x1)
    cov2 = cov1 if same else self_gram(x2)
    mask = jnp.eye(x1.shape[0], dtype=bool) if same else None
    return Kernel(nngp, jnp.zeros_like(nngp) if want_ntk else None, cov1, cov2, mask, spatial, False, False)
