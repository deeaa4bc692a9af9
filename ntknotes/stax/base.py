"""The base class of stax layers: the public ``init``/``apply``/``kernel`` on top of each layer's
``_shape``, ``_init``, ``_apply`` and ``_kernel``."""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Union

import jax
import numpy as np

from .._checks import check_float_dtype, check_key
from .state import KernelPair

Array = jax.Array
Shape = tuple  # a per-example shape (ints), or a tuple of them for several branches
GETS = ("nngp", "ntk")

__all__ = ["Layer", "Shape", "describe", "is_multi"]


def is_multi(shape: Shape) -> bool:
    """Whether ``shape`` lists several branches' shapes rather than being one shape."""
    return len(shape) > 0 and isinstance(shape[0], tuple)


def describe(where: str, layer: "Layer") -> str:
    """'layer 2 > branch 0 (Dense(out_dim=512, ...))' — the position of a layer in a description."""
    return f"{where or 'the network'} ({layer!r})"


def _per_example(shape: Any, name: str) -> Shape:
    """Strip the batch axis of an input shape (or of each branch's shape)."""
    if isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(shape[0], (list, tuple)):
        return tuple(_per_example(s, f"{name}[{i}]") for i, s in enumerate(shape))
    if not isinstance(shape, (list, tuple)) or len(shape) < 2:
        raise ValueError(f"{name} must include the batch axis first, e.g. (-1, d) or (-1, H, W, C); got {shape!r}")
    rest = tuple(shape[1:])
    for s in rest:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"{name} must have positive sizes after the batch axis, got {shape!r}")
    return tuple(int(s) for s in rest)


def _with_batch(shape: Shape, n: int) -> Shape:
    if is_multi(shape):
        return tuple(_with_batch(s, n) for s in shape)
    return (n,) + tuple(shape)


@functools.lru_cache(maxsize=512)
def _output_shape(layer: "Layer", shape: Shape) -> Shape:
    return layer._shape(shape, "")


class Layer:
    """A stax layer or combinator (a frozen dataclass).  Subclasses implement

    * ``_shape(shape, where) -> shape``: the per-example output shape, raising ``ValueError`` that
      names ``where`` (the layer's position) when the input does not fit;
    * ``_init(key, shape, dtype) -> params`` (default: no parameters, ``()``);
    * ``_apply(params, x) -> y``;
    * ``_kernel(state, shape, where) -> state``: the infinite-width map of a :class:`Kernel`.

    ``needs_pixel_pairs`` is True for layers whose kernel map mixes pixel offsets (pooling).
    """

    needs_pixel_pairs = False

    # -- defaults -------------------------------------------------------------------
    def _init(self, key: Array, shape: Shape, dtype) -> Any:
        return ()

    def _shape(self, shape: Shape, where: str) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, params: Any, x: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _kernel(self, k: Any, shape: Shape, where: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _uses_pixel_pairs(self) -> bool:
        return self.needs_pixel_pairs

    def _init_at(self, key: Array, shape: Shape, where: str, dtype) -> tuple[Shape, Any]:
        """(output shape, params) — combinators override this to pass positions down."""
        return self._shape(shape, where), self._init(key, shape, dtype)

    # -- the public interface ---------------------------------------------------------
    def output_shape(self, input_shape: Any) -> Shape:
        """The output shape (batch axis first) for an input shape (batch axis first), or raise."""
        shape = _per_example(input_shape, "input_shape")
        n = input_shape[0][0] if is_multi(shape) else input_shape[0]
        return _with_batch(_output_shape(self, shape), n)

    def init(self, key: Array, input_shape: Any, dtype=None) -> tuple[Shape, Any]:
        """Draw parameters for inputs of ``input_shape``.

        Args:
          key: a JAX PRNG key.
          input_shape: the input shape with the batch axis first, e.g. (-1, d) or x.shape; a
            list of shapes for a layer that takes several branches.
          dtype: float dtype of the parameters (default float64 in x64 mode, else float32).
        Returns:
          (output_shape, params): params is a pytree (dicts "W"/"b" for Dense and Conv, tuples
          for combinators, ``()`` for layers without parameters).
        """
        check_key(key)
        shape = _per_example(input_shape, "input_shape")
        dtype = check_float_dtype(dtype)
        out, params = self._init_at(key, shape, "", dtype)
        n = input_shape[0][0] if is_multi(shape) else input_shape[0]
        return _with_batch(out, n), params

    def apply(self, params: Any, x: Any) -> Any:
        """The finite network's output for inputs x of shape (N, ...) (a list of arrays for several branches)."""
        shape = tuple(tuple(v.shape[1:]) for v in x) if isinstance(x, (list, tuple)) else tuple(x.shape[1:])
        _output_shape(self, shape)  # raises, naming the layer, on inputs the description does not fit
        return self._apply(params, x)

    __call__ = apply

    def kernel(
        self,
        x1: Array,
        x2: Optional[Array] = None,
        *,
        get: Union[str, Sequence[str]] = ("nngp", "ntk"),
        diagonal: bool = False,
        block_size: Optional[int] = None,
        dtype=None,
    ) -> Union[KernelPair, Array]:
        """The infinite-width NNGP kernel and NTK of this network's output (per output channel).

        Args:
          x1: inputs (N1, d) or images (N1, H, W, C).
          x2: inputs (N2, ...), or ``None`` for the symmetric kernel of x1 with itself (only the
            tiles on and above the diagonal are computed).
          get: ``"nngp"``, ``"ntk"`` or both (default); a single name returns that array alone.
          diagonal: only K(x, x) and Θ(x, x) of the points of x1: arrays (N1,).
          block_size: tile edge (inputs per tile); default from a memory budget of
            :data:`ntknotes.tiling.DEFAULT_BUDGET` scalars per tile array.
          dtype: float dtype of the computation (default float64 in x64 mode, else float32).
        Returns:
          ``KernelPair(nngp, ntk)`` of arrays (N1, N2) (plus the output's pixel axes if the network
          ends on images), or one array when ``get`` is a name.  Fast paths (a stack of identical
          Dense + φ layers; a 3×3 SAME conv stack of the ReLU family with a Flatten or GAP readout)
          give the same numbers as the generic path.
        Raises:
          ValueError / TypeError on inputs that do not fit the description (naming the layer) and
          on descriptions without an infinite-width kernel (e.g. an activation of raw inputs).

        Shape checks always run; the check for NaN or infinite inputs needs concrete values and is
        skipped under ``jax.jit`` (traced inputs, then evaluated as one tile): call eagerly to get it,
        or use ``jax.experimental.checkify`` inside jit.
        """
        from . import _driver  # the evaluation machinery (tiles, fast paths)

        return _driver.kernel(self, x1, x2, get=get, diagonal=diagonal, block_size=block_size, dtype=dtype)

    def empirical_ntk(self, params: Any, x1: Array, x2: Optional[Array] = None, **kwargs: Any) -> Array:
        """The empirical NTK Θ̂(x1, x2) of the finite network with ``params``, averaged over outputs.

        Layer by layer from forward and backward Grams where every layer allows it (no Jacobian);
        see :func:`ntknotes.empirical.stax_ntk` for the options.
        """
        from ..empirical import stax_ntk  # the empirical kernels sit above stax

        return stax_ntk(self, params, x1, x2, **kwargs)
