"""Throughput of the convolutional kernels (ntknotes.conv) against this machine's measured peaks.

For 8×8 and 32×32 images at depth 6, prints CNTK-GAP and CNTK-V kernel entries per second
(each entry gives NNGP and NTK together) for both backends (``numba``: the fused CPU loops of
ntknotes.conv_cpu, the default on CPU; ``xla``: tiles of image pairs through XLA, the path on a
GPU), the operations per entry counted by XLA's cost analysis of the compiled tile
(transcendentals separately), and the achieved rate as a fraction of references measured in the
same run:

* ``matmul``: the FLOP/s of a large matmul, the machine's dense peak.  The CNTK recursion has no
  contraction to spend it on (after the first layer's Gram matrix every operation is elementwise,
  about 50 per pixel pair and layer), so this fraction is small by construction.
* ``elementwise``: the FLOP/s of a long Horner polynomial over an in-cache array in a fused loop,
  the peak of vectorized elementwise arithmetic.
* ``dual``: the rate at which the ReLU dual pair (J(ρ), J'(ρ)), the irreducible per-entry work
  of one layer (one arccos, one square root), is evaluated over an in-cache array in one fused
  loop on all cores, the faster of an XLA loop and a Numba loop; divided by pixel pairs × layers
  it bounds the entries per second of any implementation that evaluates the duals entry by entry.

A naive baseline (one image pair per compiled XLA call, ``block_size=1``) is timed in the same run.

    .venv/bin/python benchmarks/conv.py [--quick] [--dtype float32]
"""
from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numba
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64 unless --dtype float32 (ntknotes follows JAX's mode)

from ntknotes import tiling  # noqa: E402
from ntknotes.activations import get_activation  # noqa: E402
from ntknotes.conv import conv_kernels  # noqa: E402
from ntknotes.stax._cntk import _TILE_BUDGET, _tile  # noqa: E402
from ntknotes.conv_cpu import _acos

DEPTH = 6


def _best_time(f, *args, repeats: int = 5) -> float:
    jax.block_until_ready(f(*args))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(n: int, dtype) -> float:
    """FLOP/s of an n×n matmul (best of five)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    return 2 * n**3 / _best_time(jax.jit(lambda a: a @ a), a)


def _in_cache_loop(step, n: int, iterations: int, dtype):
    x = jax.random.uniform(jax.random.PRNGKey(0), (n,), dtype, -0.9, 0.9)
    f = jax.jit(lambda x: jax.lax.fori_loop(0, iterations, lambda i, x: step(x), x))
    return _best_time(f, x)


def elementwise_peak(dtype, n: int = 2**16, degree: int = 64, iterations: int = 50) -> float:
    """FLOP/s of a degree-``degree`` Horner polynomial (one multiply-add per term) over n values."""
    def step(x):
        p = jnp.full_like(x, 0.5)
        for _ in range(degree):
            p = p * x + 0.01
        return p
    return 2 * degree * n * iterations / _in_cache_loop(step, n, iterations, dtype)


def dual_rate(dtype, n: int = 2**16, iterations: int = 200) -> float:
    """ReLU dual pairs (J(ρ), J'(ρ)) per second over n in-cache correlations."""
    unit = get_activation("relu").homogeneous_dual

    def step(rho):
        j, jdot = unit(rho)
        return jnp.clip(0.9 * j + 0.3 * jdot - 0.1, -1.0, 1.0)  # both outputs feed the next step
    return n * iterations / _in_cache_loop(step, n, iterations, dtype)


@numba.njit(parallel=True, fastmath=True)
def _numba_dual_loop(rho, iterations):
    out = rho.copy()
    for i in numba.prange(out.shape[0]):
        for _ in range(iterations):
            for k in range(out.shape[1]):
                r = min(max(out[i, k], -1.0), 1.0)
                angle = math.pi - _acos(r)
                sine = math.sqrt(max((1.0 - r) * (1.0 + r), 0.0))
                j = (sine + angle * r) * (0.5 / math.pi)
                jdot = angle * (0.5 / math.pi)
                out[i, k] = 0.9 * j + 0.3 * jdot - 0.1  # both outputs feed the next step
    return out


def numba_dual_rate(dtype, n: int = 2**16, iterations: int = 200) -> float:
    """ReLU dual pairs per second in a Numba loop over n in-cache correlations, on all cores."""
    rho = np.random.default_rng(0).uniform(-0.9, 0.9, (n // 16, 16)).astype(dtype)
    _numba_dual_loop(rho, 1)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        _numba_dual_loop(rho, iterations)
        best = min(best, time.perf_counter() - t0)
    return n * iterations / best


def ops_per_entry(side: int, gap: bool, dtype) -> tuple[float, float]:
    """(flops, transcendentals) per kernel entry from XLA's cost analysis of one default tile."""
    act = get_activation("relu")
    b = tiling.tile_edge((side * side) ** 2 if gap else side * side, _TILE_BUDGET)
    x = jnp.ones((b, side, side, 3), dtype)
    q = jnp.ones((DEPTH, b, side, side), dtype)
    two, zero = jnp.asarray(2.0, dtype), jnp.asarray(0.0, dtype)
    cost = _tile.lower(act, x, x, q, q, two, zero, DEPTH, gap).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) / b**2, float(cost.get("transcendentals", 0.0)) / b**2


def entries_per_second(side: int, gap: bool, n: int, dtype, backend: str, block_size=None) -> float:
    """Kernel entries per second for an n×n cross kernel of random side×side×3 images."""
    x1 = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (n, side, side, 3)))
    x2 = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (n, side, side, 3)))
    run = lambda: conv_kernels(  # noqa: E731
        x1, x2, depths=DEPTH, gap=gap, dtype=dtype, block_size=block_size, backend=backend
    )
    run()  # compile at the measured size
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return n * n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems (a smoke test)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = parser.parse_args()
    dtype = jnp.dtype(args.dtype)
    cpu = jax.default_backend() == "cpu"
    mm = matmul_peak(1024 if args.quick else 2048, dtype)
    ew = elementwise_peak(dtype)
    du_xla = dual_rate(dtype)
    du_numba = numba_dual_rate(dtype)
    du = max(du_xla, du_numba if cpu else 0.0)
    print(f"device: {jax.devices()[0].platform}, {args.dtype}, depth {DEPTH}, "
          f"xla tile budget {_TILE_BUDGET} scalars, {numba.get_num_threads()} numba threads")
    print(f"references: matmul {mm / 1e9:.1f} GFLOP/s | elementwise {ew / 1e9:.1f} GFLOP/s | ReLU dual "
          f"{du_xla / 1e6:.0f} (XLA) / {du_numba / 1e6:.0f} (Numba) M pixel pairs/s")
    sizes = {8: {True: 16 if args.quick else 64, False: 64 if args.quick else 512},
             32: {True: 2 if args.quick else 16, False: 16 if args.quick else 128}}  # 16: a full SIMD tile
    naive_n = {8: {True: 4 if args.quick else 8, False: 8 if args.quick else 24},
               32: {True: 1 if args.quick else 2, False: 4 if args.quick else 8}}
    backends = ("numba", "xla") if cpu else ("xla",)
    print(f"{'image':>6} {'kernel':>9} {'backend':>7} {'entries/s':>11} {'vs naive':>8} {'flop/entry':>11} "
          f"{'transc.':>9} {'GFLOP/s':>8} {'%matmul':>8} {'%elem.':>7} {'%dual':>6}")
    for side in (8, 32):
        for gap in (True, False):
            naive = entries_per_second(side, gap, naive_n[side][gap], dtype, "xla", block_size=1)
            flops, transc = ops_per_entry(side, gap, dtype)
            pairs = (side**4 if gap else side**2) * DEPTH  # pixel pairs × layers per entry
            for backend in backends:
                rate = entries_per_second(side, gap, sizes[side][gap], dtype, backend)
                achieved = rate * flops
                print(f"{side:>3}x{side:<2} {'CNTK-GAP' if gap else 'CNTK-V':>9} {backend:>7} {rate:11.1f} "
                      f"{rate / naive:7.1f}x {flops:11.3g} {transc:9.3g} {achieved / 1e9:8.2f} "
                      f"{achieved / mm:8.1%} {achieved / ew:7.1%} {rate * pairs / du:6.0%}")
            print(f"{side:>3}x{side:<2} {'CNTK-GAP' if gap else 'CNTK-V':>9} {'naive':>7} {naive:11.1f}")


if __name__ == "__main__":
    main()
