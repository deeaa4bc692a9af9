"""Throughput of the convolutional kernels (ntknotes.conv) against this machine's measured peak.

For 8×8 and 32×32 images at depth 6, prints CNTK-GAP and CNTK-V kernel entries per second
(each entry gives NNGP and NTK together), the floating-point operations per entry counted by
XLA's cost analysis of the compiled tile (transcendentals counted separately), and the implied
fraction of the peak of a large float64 matmul measured in the same run.

    .venv/bin/python benchmarks/conv.py [--quick]
"""
from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import ntknotes  # noqa: F401  (float64)
from ntknotes.activations import get_activation
from ntknotes.conv import _TILE_BUDGET, _tile, _tile_edge, _variances, conv_kernels


def peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """float64 FLOP/s of an n×n matmul (best of ``repeats``), the reference peak."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float64)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def flops_per_entry(hw: int, depth: int, gap: bool) -> tuple[float, float]:
    """(flops, transcendentals) per kernel entry from XLA's cost analysis of one tile."""
    act = get_activation("relu")
    b = _tile_edge(hw * hw, gap, None)
    x = jnp.ones((b, int(math.isqrt(hw)), int(math.isqrt(hw)), 3))
    q = jnp.ones((depth, b, x.shape[1], x.shape[2]))
    c = _tile.lower(act, x, x, q, q, jnp.asarray(2.0), jnp.asarray(0.0), depth, gap).compile().cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return float(c.get("flops", float("nan"))) / b**2, float(c.get("transcendentals", 0.0)) / b**2


def entries_per_second(side: int, depth: int, gap: bool, n: int) -> float:
    """Kernel entries per second for an n×n cross kernel of random side×side×3 images."""
    x1 = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (n, side, side, 3)))
    x2 = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (n, side, side, 3)))
    conv_kernels(x1, x2, depths=depth, gap=gap)  # warm-up at the measured size
    t0 = time.perf_counter()
    conv_kernels(x1, x2, depths=depth, gap=gap)
    return n * n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems (a smoke test)")
    args = parser.parse_args()
    depth = 6
    peak = peak_flops(1024 if args.quick else 2048)
    print(f"device: {jax.devices()[0].platform}, float64 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"tile budget {_TILE_BUDGET} scalars per pixel-pair array")
    sizes = {8: {"gap": 64 if not args.quick else 16, "flatten": 512 if not args.quick else 64},
             32: {"gap": 8 if not args.quick else 2, "flatten": 128 if not args.quick else 16}}
    print(f"{'image':>7} {'kernel':>9} {'entries/s':>12} {'GFLOP/entry':>12} {'transc./entry':>14} {'GFLOP/s':>9} {'of peak':>8}")
    for side in (8, 32):
        for gap in (True, False):
            n = sizes[side]["gap" if gap else "flatten"]
            rate = entries_per_second(side, depth, gap, n)
            fl, tr = flops_per_entry(side * side, depth, gap)
            achieved = rate * fl
            name = "CNTK-GAP" if gap else "CNTK-V"
            print(f"{side:>4}x{side:<2} {name:>9} {rate:12.1f} {fl / 1e9:12.5f} {tr:14.3g} {achieved / 1e9:9.2f} {achieved / peak:8.1%}")


if __name__ == "__main__":
    main()
