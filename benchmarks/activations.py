"""Analytic NTK+NNGP time per activation, next to ReLU's closed form in the same run.

Run:  .venv/bin/python benchmarks/activations.py                       (N = 1000, depth 3 and 10, float64 and float32)
      .venv/bin/python benchmarks/activations.py --n 4000 --depths 10 --dtypes float32
      .venv/bin/python benchmarks/activations.py --activations relu gelu tanh --json out.json

For each (N, depth, dtype) the inputs are x ~ N(0, 1)^{N×64}, σ_w = 1.4, σ_b = 0.1, and each
activation's kernel ``ntknotes.kernels.nngp_ntk(x, ...)`` is timed in this process: the first
call (compilation and, for series activations, building the Hermite table once per activation)
and the minimum wall time over ``--repeats`` later calls. The ratio is that minimum over
ReLU's minimum in the same configuration. Goals (issue 17): GELU and erf <= 2x ReLU; tanh,
SiLU, softplus and a user callable <= 5x ReLU.

The user callable is φ(z) = z·exp(-z²/8) + 0.3·cos z, wrapped with
``ntknotes.activations.from_callable``.
"""
from __future__ import annotations

import argparse
import json
import time

GOALS = {"gelu": 2.0, "erf": 2.0, "tanh": 5.0, "silu": 5.0, "softplus": 5.0, "callable": 5.0}
ALL = ("relu", "erf", "gelu", "tanh", "silu", "softplus", "callable")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[1000])
    p.add_argument("--depths", type=int, nargs="+", default=[3, 10])
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    p.add_argument("--activations", nargs="+", default=list(ALL), choices=ALL)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from ntknotes import activations as A
    from ntknotes.kernels import nngp_ntk

    acts = {name: A.get_activation(name) for name in args.activations if name != "callable"}
    if "callable" in args.activations:
        acts["callable"] = A.from_callable(lambda z: z * jnp.exp(-z * z / 8) + 0.3 * jnp.cos(z), name="bump")
    if "relu" not in acts:
        acts = {"relu": A.relu(), **acts}

    rows = []
    for n in args.n:
        x64 = np.random.default_rng(0).normal(size=(n, 64))
        for dtype_name in args.dtypes:
            dtype = jnp.dtype(dtype_name)
            x = jnp.asarray(x64, dtype)
            for depth in args.depths:
                base = None
                for name, act in acts.items():
                    def run():
                        kp = nngp_ntk(x, depth=depth, activation=act, sigma_w=1.4, sigma_b=0.1, dtype=dtype)
                        return jax.block_until_ready(kp.ntk)

                    t0 = time.perf_counter()
                    out = run()
                    first = time.perf_counter() - t0
                    walls = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        run()
                        walls.append(time.perf_counter() - t0)
                    wall = min(walls)
                    if name == "relu":
                        base = wall
                    finite = bool(np.all(np.isfinite(np.asarray(out))))
                    row = {"n": n, "depth": depth, "dtype": dtype_name, "activation": name, "first_s": first,
                           "wall_s": wall, "ratio": wall / base, "goal": GOALS.get(name), "finite": finite}
                    rows.append(row)
                    goal = f"<= {row['goal']:.0f}x" if row["goal"] else ""
                    print(f"N={n:5d} depth={depth:3d} {dtype_name}  {name:9s} first {first:7.2f} s  "
                          f"min {wall:7.3f} s  {wall / base:6.2f}x ReLU {goal}{'' if finite else '  NON-FINITE'}",
                          flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
