"""Speed and memory of the kernel core: analytic NTK and layer-wise vs generic empirical NTK.

Run:  .venv/bin/python benchmarks/kernels.py            (CPU, float64, the issue's sizes)
      .venv/bin/python benchmarks/kernels.py --gpu      (adds the analytic NTK at N = 20,000, float32)
      .venv/bin/python benchmarks/kernels.py --n-large 20000 --float32

Each case runs in a fresh subprocess, so its peak resident memory (``ru_maxrss`` of that child,
which includes the ~0.3-0.5 GB of a bare JAX process, reported separately as "baseline") belongs
to that case alone. Times: the first call (compilation included) and the minimum over repeats of
later calls, wall clock and process CPU time (CPU time is less disturbed by other processes on a
shared machine).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

GOALS = {"analytic_depth10_n4000_s": 1.5, "layerwise_2048_s": 1.0, "speedup_2048": 20.0}


def _case(spec: dict) -> dict:
    """Run one case in this process and return its timings (called in the child)."""
    import resource

    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)  # ntknotes follows JAX's mode; these figures are float64
    from ntknotes.empirical import empirical_ntk, mlp_ntk
    from ntknotes.kernels import nngp_ntk
    from ntknotes.networks import MLP

    dtype = jnp.float32 if spec.get("float32") else jnp.float64
    rng = np.random.default_rng(0)

    from _timing import timed

    kind = spec["kind"]
    if kind == "baseline":
        jax.block_until_ready(jnp.ones(3) + 1)
        out = {}
    elif kind == "analytic":
        x = jnp.asarray(rng.normal(size=(spec["n"], 64)), dtype)
        _, out = timed(lambda: nngp_ntk(x, depth=spec["depth"], sigma_w=1.4, sigma_b=0.1, dtype=dtype), spec["repeats"])
    else:
        net = MLP(in_dim=64, width=spec["width"], depth=3, activation="relu", sigma_w=1.4, sigma_b=0.1)
        params = net.init(jax.random.PRNGKey(0), dtype)
        x = jnp.asarray(rng.normal(size=(spec["n"], 64)), dtype)
        if kind == "layerwise":
            _, out = timed(lambda: mlp_ntk(net, params, x), spec["repeats"])
        else:
            _, out = timed(lambda: empirical_ntk(net.apply, params, x, method="jacobian"), spec["repeats"])
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_case(spec: dict) -> dict:
    """Run ``spec`` in a fresh Python process and parse its JSON line."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls after the first (minimum reported)")
    ap.add_argument("--gpu", action="store_true", help="also the float32 analytic NTK at N = --n-large")
    ap.add_argument("--n-large", type=int, default=None, help="extra analytic case with this many points")
    ap.add_argument("--float32", action="store_true", help="run the extra large case in float32")
    ap.add_argument(
        "--generic-n", type=int, default=64,
        help="points for the generic Jacobian NTK at width 2048 (its O(N² P) cost takes many minutes at "
        "N = 256 on 2 cores; the time is scaled by (256/n)², exact for the contraction). Use 256 to measure.",
    )  # fmt: skip
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_case(json.loads(args.child))))
        return

    base = run_case({"kind": "baseline"})["peak_rss_mb"]
    rows = []
    print(f"bare JAX process peak RSS: {base:.0f} MB (subtracted below)\n")
    print(f"{'case':44s} {'first s':>8s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s}")

    def show(name, r):
        rows.append((name, r))
        cpu = f"{r['cpu_s']:8.3f}" if r.get("cpu_s") is not None else f"{'-':>8s}"
        print(f"{name:44s} {r['first_s']:8.3f} {r['wall_s']:8.3f} {cpu} {r['peak_rss_mb'] - base:8.0f}", flush=True)
        return r

    res = {}
    for n in (1000, 4000):
        for depth in (3, 10):
            res[("a", n, depth)] = show(
                f"analytic ReLU NTK N={n} depth={depth}", run_case({"kind": "analytic", "n": n, "depth": depth, "repeats": args.repeats})
            )
    n_large = args.n_large or (20000 if args.gpu else None)
    if n_large:
        f32 = args.float32 or args.gpu
        show(f"analytic ReLU NTK N={n_large} depth=10 {'f32' if f32 else 'f64'}",
             run_case({"kind": "analytic", "n": n_large, "depth": 10, "repeats": 1, "float32": f32}))  # fmt: skip
    for width in (512, 2048):
        lw = show(f"layer-wise empirical NTK width={width} N=256",
                  run_case({"kind": "layerwise", "width": width, "n": 256, "repeats": args.repeats}))  # fmt: skip
        gn = 256 if width == 512 else args.generic_n
        g = show(f"generic Jacobian NTK width={width} N={gn}",
                 run_case({"kind": "generic", "width": width, "n": gn, "repeats": 1 if gn > 64 else args.repeats}))  # fmt: skip
        scale = (256 / gn) ** 2
        res[("ratio", width)] = (g["wall_s"] * scale / lw["wall_s"], g["cpu_s"] * scale / lw["cpu_s"], gn)
        res[("lw", width)] = lw

    print("\nratios (generic / layer-wise, same run):")
    for width in (512, 2048):
        wr, cr, gn = res[("ratio", width)]
        note = "" if gn == 256 else f"  (generic timed at N={gn}, scaled by (256/{gn})^2)"
        print(f"  width {width}: wall {wr:6.1f}x, cpu {cr:6.1f}x{note}")
    a = res[("a", 4000, 10)]
    checks = [
        ("analytic depth 10, N=4000 < 1.5 s (wall)", a["wall_s"], a["wall_s"] < GOALS["analytic_depth10_n4000_s"]),
        ("layer-wise width 2048 < 1 s (wall)", res[("lw", 2048)]["wall_s"], res[("lw", 2048)]["wall_s"] < 1.0),
        (">= 20x faster than generic at width 2048 (wall)", res[("ratio", 2048)][0], res[("ratio", 2048)][0] >= 20),
    ]
    print("\ngoals:")
    for name, value, ok in checks:
        print(f"  {'MET    ' if ok else 'NOT MET'} {name}: {value:.3f}")


if __name__ == "__main__":
    main()
