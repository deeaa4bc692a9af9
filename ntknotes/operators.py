"""Matrix-free kernel operators: K @ v and K(X*, X) @ α tile by tile, never storing K.

A kernel regression on N points needs the N×N kernel only through products with vectors when it
is solved iteratively (:mod:`ntknotes.solvers`).  :class:`KernelOperator` evaluates those
products from any JAX-traceable kernel function ``kernel_fn(x1, x2) -> (n1, n2)``, one
``tile × tile`` block at a time, so its memory is O(tile² + N·k) for k right-hand sides
(plus the inputs X themselves) instead of O(N²).  The train kernel is symmetric: each tile
K(X_i, X_j) with i <= j is computed once and used for both K_ij v_j and K_jiᵀ v_i.

Sharding.  The list of tiles is distributed over a :class:`jax.sharding.Mesh` of devices (all
local devices by default; one device is the degenerate case of the same code): every device
holds the inputs and the vector, computes its share of the tiles (``jax.shard_map``, tiles dealt
round-robin so the triangular schedule is balanced), accumulates its partial product and the
partial products are summed across devices (``lax.psum``).  On several hosts the same code runs
after ``jax.distributed.initialize()`` with a mesh over ``jax.devices()`` (see the README).

Adapters turn the package's kernels into kernel functions: :func:`fc_kernel` for
:func:`ntknotes.kernels.nngp_ntk` and :func:`conv_kernel` for :func:`ntknotes.conv.conv_kernels`
(XLA backend, which is traceable).  Any other function of the same shape plugs in the same way.

Example::

    import jax, jax.numpy as jnp
    from ntknotes.operators import KernelOperator, fc_kernel
    jax.config.update("jax_enable_x64", True)
    x = jax.random.normal(jax.random.PRNGKey(0), (5000, 40))
    op = KernelOperator(fc_kernel("ntk", depth=3), x, tile=1024)
    kv = op.matvec(jnp.ones((5000, 10)))        # (5000, 10) = Θ(X, X) @ ones, Θ never stored
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ._checks import check_choice, check_finite, check_float_dtype, check_positive_int

__all__ = ["KernelFn", "KernelOperator", "fc_kernel", "conv_kernel", "default_mesh", "KINDS"]

Array = jax.Array
KernelFn = Callable[[Array, Array], Array]
KINDS = ("nngp", "ntk")
_AXIS = "devices"


def default_mesh(devices: Optional[Sequence] = None) -> Mesh:
    """A one-axis mesh (axis name ``"devices"``) over ``devices`` (default: all of ``jax.devices()``)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices must name at least one device")
    return Mesh(np.array(devs), (_AXIS,))


def fc_kernel(kind: str = "ntk", *, depth: int, dtype=None, **kwargs) -> KernelFn:
    """Kernel function ``(x1 (n1, d), x2 (n2, d)) -> (n1, n2)`` of a fully-connected network.

    A thin adapter over :func:`ntknotes.kernels.nngp_ntk` (all its keyword arguments pass
    through: activation, sigma_w, sigma_b, parameterization, width).

    Args:
      kind: ``"ntk"`` (Θ) or ``"nngp"`` (K).
      depth: number of hidden layers.
      dtype: float dtype in which the kernel tiles are computed (e.g. ``jnp.float32`` for speed,
        with the operator accumulating in float64); default: the package default.
    """
    check_choice(kind, "kind", KINDS)
    from .kernels import nngp_ntk

    def kernel_fn(x1: Array, x2: Array) -> Array:
        n = max(int(x1.shape[0]), int(x2.shape[0]), 1)
        pair = nngp_ntk(x1, x2, depth=depth, block_size=n, dtype=dtype, **kwargs)
        return pair.ntk if kind == "ntk" else pair.nngp

    kernel_fn.__name__ = f"fc_{kind}_depth{depth}"
    return kernel_fn


def conv_kernel(kind: str = "ntk", *, depth: int, pooling: str = "gap", dtype=None, **kwargs) -> KernelFn:
    """Kernel function ``(x1 (n1, H, W, C), x2 (n2, H, W, C)) -> (n1, n2)`` of a 3×3 CNN.

    A thin adapter over :func:`ntknotes.conv.conv_kernels` (other keyword arguments, e.g.
    ``backend``, pass through).  ``conv_kernels`` runs partly outside JAX (argument checks, the
    Numba CPU backend), so each tile is computed on the host through :func:`jax.pure_callback`:
    traceable, usable inside the operator's compiled schedule, but on a GPU the tiles come back
    through host memory.

    Args:
      kind: ``"ntk"`` or ``"nngp"``.
      depth: number of convolution layers.
      pooling: ``"gap"`` or ``"flatten"``.
      dtype: float dtype of the tiles (default: the package default).
    """
    check_choice(kind, "kind", KINDS)
    check_choice(pooling, "pooling", ("gap", "flatten"))
    from .conv import conv_kernels

    out_dtype = check_float_dtype(dtype)

    def host(x1, x2):
        n = max(x1.shape[0], x2.shape[0], 1)
        ck = conv_kernels(np.asarray(x1), np.asarray(x2), depths=depth, gap=pooling == "gap", block_size=n,
                          dtype=out_dtype, **kwargs)
        pair = ck.get(pooling, depth)
        return np.asarray(pair.ntk if kind == "ntk" else pair.nngp, out_dtype)

    def kernel_fn(x1: Array, x2: Array) -> Array:
        shape = jax.ShapeDtypeStruct((x1.shape[0], x2.shape[0]), out_dtype)
        return jax.pure_callback(host, shape, x1, x2)

    kernel_fn.__name__ = f"conv_{pooling}_{kind}_depth{depth}"
    return kernel_fn


def _schedule(pairs: np.ndarray, n_dev: int) -> tuple[np.ndarray, np.ndarray]:
    """Deal tile pairs (P, 2) round-robin to ``n_dev`` devices; pad with weight-0 dummies.

    Returns (pairs (n_dev·Q, 2) int32, weights (n_dev·Q,)), laid out so that device d's
    contiguous shard holds pairs d, d + n_dev, d + 2·n_dev, ...
    """
    p = len(pairs)
    q = max(1, -(-p // n_dev))
    padded = np.zeros((q * n_dev, 2), np.int32)
    padded[:p] = pairs
    weights = np.zeros(q * n_dev)
    weights[:p] = 1.0
    order = np.arange(q * n_dev).reshape(q, n_dev).T.reshape(-1)
    return padded[order], weights[order]


class KernelOperator:
    """The symmetric operator v ↦ K(X, X) v (+ ridge·v), evaluated tile by tile.

    Args:
      kernel_fn: JAX-traceable ``(x1 (n1, ...), x2 (n2, ...)) -> (n1, n2)``, e.g. from
        :func:`fc_kernel`, :func:`conv_kernel`, or a ``stax`` network's kernel.
      x: training inputs (N, ...) (points on the first axis).
      tile: edge of a kernel tile (memory per device O(tile²) for the tile plus the kernel's
        own intermediates).
      dtype: dtype of the vectors and of the accumulation (default: float64 when x64 is on);
        tiles are cast to it.
      mesh: a one-axis :class:`jax.sharding.Mesh` (default: :func:`default_mesh`, all local
        devices). Pass ``default_mesh(jax.devices()[:1])`` for a single device.

    Attributes:
      n: N; ``shape`` (N, N); ``num_devices``; ``tile``; ``dtype``; ``matvec_seconds`` (wall
      time of the last product, set by :meth:`matvec`).

    Example::

        op = KernelOperator(fc_kernel("ntk", depth=3), x)      # x (N, d)
        y = op.matvec(v)                                        # v (N,) or (N, k)
        f = op.cross_matvec(x_test, alpha)                      # K(x_test, x) @ alpha, (M, k)
    """

    def __init__(
        self,
        kernel_fn: KernelFn,
        x: Array,
        *,
        tile: int = 1024,
        dtype=None,
        mesh: Optional[Mesh] = None,
    ) -> None:
        if not callable(kernel_fn):
            raise TypeError(f"kernel_fn must be callable (x1, x2) -> (n1, n2), got {kernel_fn!r}")
        shape = getattr(x, "shape", None)
        if shape is None or len(shape) < 2 or shape[0] < 1:
            raise ValueError(f"x must be an array of points (N, ...) with N >= 1 and features, got shape {shape}")
        check_finite(x, "x")
        self.tile = check_positive_int(tile, "tile")
        self.dtype = jnp.dtype(dtype) if dtype is not None else jnp.dtype(jnp.result_type(float))
        if not jnp.issubdtype(self.dtype, jnp.floating):
            raise TypeError(f"dtype must be a floating dtype, got {self.dtype}")
        self.mesh = default_mesh() if mesh is None else mesh
        if not isinstance(self.mesh, Mesh) or len(self.mesh.axis_names) != 1:
            raise ValueError(f"mesh must be a one-axis jax.sharding.Mesh, got {mesh!r}")
        self.kernel_fn = kernel_fn
        self.n = int(shape[0])
        self.shape = (self.n, self.n)
        self.num_devices = int(self.mesh.devices.size)
        self.tile = min(self.tile, self.n)
        self.matvec_seconds: Optional[float] = None
        self._axis = self.mesh.axis_names[0]
        self._replicated = NamedSharding(self.mesh, P())
        xa = np.asarray(x)
        self._x_dtype = xa.dtype if jnp.issubdtype(xa.dtype, jnp.floating) else self.dtype
        self._nb = -(-self.n // self.tile)
        self._x = self._pad_points(xa)
        ii, jj = np.triu_indices(self._nb)
        self._sym_pairs, self._sym_w = _schedule(np.stack([ii, jj], 1), self.num_devices)
        self._matvec = self._build_matvec()
        self._columns = self._build_columns()
        self._diag = None
        self._cross: dict = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _pad_points(self, xa: np.ndarray) -> Array:
        """Pad the points to a whole number of tiles with copies of the first point (its rows
        and columns only ever meet zero vector entries) and replicate them on the mesh."""
        n = xa.shape[0]
        npad = -(-n // self.tile) * self.tile
        if npad > n:
            xa = np.concatenate([xa, np.repeat(xa[:1], npad - n, axis=0)], axis=0)
        return jax.device_put(jnp.asarray(xa, self._x_dtype), self._replicated)

    def _pad_vec(self, v: Array, npad: int) -> Array:
        v = jnp.asarray(v, self.dtype)
        if v.shape[0] < npad:
            v = jnp.concatenate([v, jnp.zeros((npad - v.shape[0],) + v.shape[1:], self.dtype)], axis=0)
        return jax.device_put(v, self._replicated)

    def _tile(self, xa: Array, xb: Array) -> Array:
        t = self.kernel_fn(xa, xb)
        if t.shape != (xa.shape[0], xb.shape[0]):
            raise ValueError(
                f"kernel_fn must return an ({xa.shape[0]}, {xb.shape[0]}) array for inputs of "
                f"{xa.shape[0]} and {xb.shape[0]} points, got shape {t.shape}"
            )
        return t.astype(self.dtype)

    def _build_matvec(self):
        b, axis, tile_fn = self.tile, self._axis, self._tile

        def local(pairs, weights, x, v):
            def step(out, pw):
                (i, j), w = pw
                xi = lax.dynamic_slice_in_dim(x, i * b, b)
                xj = lax.dynamic_slice_in_dim(x, j * b, b)
                t = tile_fn(xi, xj)
                t = jnp.where(i == j, 0.5 * (t + t.T), t)  # diagonal tiles: exactly symmetric
                vi = lax.dynamic_slice_in_dim(v, i * b, b)
                vj = lax.dynamic_slice_in_dim(v, j * b, b)
                oi = lax.dynamic_slice_in_dim(out, i * b, b) + w * (t @ vj)
                out = lax.dynamic_update_slice_in_dim(out, oi, i * b, 0)
                wj = jnp.where(i == j, 0.0, w).astype(out.dtype)
                oj = lax.dynamic_slice_in_dim(out, j * b, b) + wj * (t.T @ vi)
                return lax.dynamic_update_slice_in_dim(out, oj, j * b, 0), None

            out, _ = lax.scan(step, jnp.zeros_like(v), (pairs, weights.astype(v.dtype)))
            return lax.psum(out, axis)

        f = jax.shard_map(local, mesh=self.mesh, in_specs=(P(axis), P(axis), P(), P()), out_specs=P(),
                          check_vma=False)
        return jax.jit(f)

    def _cross_fn(self, m_pad: int):
        b, axis, tile_fn = self.tile, self._axis, self._tile

        def local(pairs, weights, xt, x, alpha):
            def step(out, pw):
                (a, j), w = pw
                xa = lax.dynamic_slice_in_dim(xt, a * b, b)
                xj = lax.dynamic_slice_in_dim(x, j * b, b)
                t = tile_fn(xa, xj)
                oa = lax.dynamic_slice_in_dim(out, a * b, b) + w * (t @ lax.dynamic_slice_in_dim(alpha, j * b, b))
                return lax.dynamic_update_slice_in_dim(out, oa, a * b, 0), None

            out0 = jnp.zeros((m_pad,) + alpha.shape[1:], alpha.dtype)
            out, _ = lax.scan(step, out0, (pairs, weights.astype(alpha.dtype)))
            return lax.psum(out, axis)

        f = jax.shard_map(local, mesh=self.mesh, in_specs=(P(axis), P(axis), P(), P(), P()), out_specs=P(),
                          check_vma=False)
        return jax.jit(f)

    def _check_vec(self, v, name: str) -> Array:
        shape = getattr(v, "shape", None)
        if shape is None or len(shape) not in (1, 2) or shape[0] != self.n:
            raise ValueError(f"{name} must have shape ({self.n},) or ({self.n}, k), got {shape}")
        return v

    # -- public ----------------------------------------------------------------------------------
    def matvec(self, v: Array, ridge: float = 0.0) -> Array:
        """(K + ridge·I) v for v of shape (N,) or (N, k); returns the same shape, dtype ``self.dtype``."""
        self._check_vec(v, "v")
        vec = v.ndim == 1
        v2 = jnp.reshape(v, (self.n, -1))
        t0 = time.perf_counter()
        out = self._matvec(self._sym_pairs, self._sym_w, self._x, self._pad_vec(v2, self._x.shape[0]))
        out = out[: self.n]
        if ridge:
            out = out + ridge * jnp.asarray(v2, self.dtype)
        out.block_until_ready()
        self.matvec_seconds = time.perf_counter() - t0
        return out[:, 0] if vec else out

    __matmul__ = matvec

    def cross_matvec(self, x_test: Array, alpha: Array) -> Array:
        """K(x_test, X) @ alpha for x_test (M, ...) and alpha (N,) or (N, k): (M,) or (M, k)."""
        shape = getattr(x_test, "shape", None)
        if shape is None or tuple(shape[1:]) != tuple(self._x.shape[1:]) or shape[0] < 1:
            raise ValueError(f"x_test must have shape (M, {', '.join(map(str, self._x.shape[1:]))}), got {shape}")
        check_finite(x_test, "x_test")
        self._check_vec(alpha, "alpha")
        vec = alpha.ndim == 1
        a2 = jnp.reshape(alpha, (self.n, -1))
        xt = self._pad_points(np.asarray(x_test))
        ma = xt.shape[0] // self.tile
        aa, jj = np.meshgrid(np.arange(ma), np.arange(self._nb), indexing="ij")
        pairs, w = _schedule(np.stack([aa.ravel(), jj.ravel()], 1), self.num_devices)
        if xt.shape[0] not in self._cross:
            self._cross[xt.shape[0]] = self._cross_fn(xt.shape[0])
        out = self._cross[xt.shape[0]](pairs, w, xt, self._x, self._pad_vec(a2, self._x.shape[0]))
        out = out[: shape[0]]
        return out[:, 0] if vec else out

    def columns(self, idx: Array) -> Array:
        """The columns K(X, X[idx]) of the kernel, shape (N, len(idx)) (e.g. Nyström landmarks)."""
        idx = np.asarray(idx, np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.n:
            raise ValueError(f"idx must be non-empty indices in [0, {self.n}), got {idx[:5]}...")
        return self._columns(self._x, self._x[idx])[: self.n]

    def _build_columns(self):
        b, nb = self.tile, self._nb

        def cols(x, xs):
            blocks = x.reshape((nb, b) + x.shape[1:])
            return lax.map(lambda xb: self._tile(xb, xs), blocks).reshape(nb * b, -1)

        return jax.jit(cols)

    def diagonal(self) -> Array:
        """k(x_i, x_i) for every training point, shape (N,)."""
        if self._diag is None:
            self._diag = jax.jit(jax.vmap(lambda a: self._tile(a[None], a[None])[0, 0]))
        return self._diag(self._x)[: self.n]

    def dense(self) -> Array:
        """The full (N, N) kernel (small N only: the stored-kernel path), assembled from tiles.

        Symmetrized, (K + Kᵀ)/2, as the operator is: the products use the upper triangle only, and
        tiles computed in a lower precision (float32) differ from their transposes by rounding.
        """
        k = self.columns(np.arange(self.n))
        return 0.5 * (k + k.T)

    def estimate(self, k: int = 1, *, rank: int = 0, vectors: int = 6) -> dict:
        """Bytes of memory a solve needs and the time of one product (by timing one).

        Args:
          k: number of right-hand sides; rank: Nyström rank of a preconditioner (its N×rank
          factor); vectors: N×k vectors the solver keeps (CG: about 6).
        Returns:
          dict with ``matvec_seconds`` (one K @ v of k columns, compiled beforehand),
          ``bytes`` (estimated peak of the arrays named above plus two tiles per device and
          the inputs) and ``tiles`` (number of tiles per product).
        """
        v = jnp.ones((self.n, k), self.dtype)
        self.matvec(v)  # compile
        self.matvec(v)
        item = self.dtype.itemsize
        nbytes = (
            (vectors + 2) * self.n * k * item
            + rank * self.n * item * 2
            + 8 * self.tile * self.tile * item * self.num_devices
            + self._x.size * self._x.dtype.itemsize * self.num_devices
        )
        return {"matvec_seconds": self.matvec_seconds, "bytes": int(nbytes),
                "tiles": int(self._nb * (self._nb + 1) // 2)}

    def __repr__(self) -> str:
        name = getattr(self.kernel_fn, "__name__", "kernel_fn")
        return f"KernelOperator({name}, N={self.n}, tile={self.tile}, devices={self.num_devices}, dtype={self.dtype})"
