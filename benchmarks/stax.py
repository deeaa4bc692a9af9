"""Speed and memory of ntknotes.stax: generic layer maps vs fast paths, a pooling CNN, layer-wise empirical NTKs.

Run:  .venv/bin/python benchmarks/stax.py              (CPU, float64, ~10 min on 2 shared cores)
      .venv/bin/python benchmarks/stax.py --quick      (smaller N, a smoke test)

Cases, each in a fresh subprocess (peak resident memory of that child minus a bare JAX process):

(a) analytic NNGP+NTK of a depth-10 ReLU MLP (d = 64, N = 2000): the generic stax path (every
    layer's kernel map, ``fast=False``) against the fused recursion, same run; goal ratio <= 1.5.
(b) analytic kernels of a 4-conv-layer ReLU CNN with AvgPool and global average pooling on
    16×16×3 images (all pixel pairs): kernel entries per second and peak memory.
(c) empirical NTK, layer-wise (``stax_ntk``: forward and backward Grams, no Jacobian) against the
    generic Jacobian contraction (``empirical_ntk(net.apply, ...)``), same run: a residual MLP and a
    CNN, width 512; goal ratio >= 5; both must agree to 1e-10.

Times: first call (compilation included) and the minimum over repeats of later calls, wall clock and
process CPU time (steadier on a shared machine).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _nets(stax):
    res_block = stax.serial(
        stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), stax.Dense(512, 1.4, 0.1)), stax.Identity()), stax.FanInSum()
    )
    return {
        "mlp10": stax.serial(*[layer for _ in range(10) for layer in (stax.Dense(512, 1.4, 0.1), stax.Relu())],
                             stax.Dense(1, 1.4, 0.1)),
        "cnn_pool": stax.serial(
            stax.Conv(64, 3, W_std=1.4), stax.Relu(), stax.AvgPool(2),
            stax.Conv(64, 3, W_std=1.4), stax.Relu(), stax.Conv(64, 3, W_std=1.4), stax.Relu(),
            stax.Conv(64, 3, W_std=1.4), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 1.4),
        ),
        "resmlp512": stax.serial(stax.Dense(512, 1.4, 0.1), res_block, res_block, stax.Relu(), stax.Dense(1, 1.4, 0.1)),
        "cnn512": stax.serial(
            stax.Conv(512, 3, W_std=1.4), stax.Relu(), stax.Conv(512, 3, strides=2, W_std=1.4), stax.Relu(),
            stax.Conv(512, 3, W_std=1.4), stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 1.4),
        ),
    }


def _case(spec: dict) -> dict:
    """Run one case in this process and return its timings (called in the child)."""
    import resource

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from ntknotes import stax
    from ntknotes.empirical import empirical_ntk, stax_ntk
    from ntknotes.stax import _driver

    rng = np.random.default_rng(0)

    from _timing import timed

    kind, n = spec["kind"], spec["n"]
    out: dict = {}
    if kind != "baseline":
        net = _nets(stax)[spec["net"]]
        x = jnp.asarray(rng.normal(size=(n,) + tuple(spec["shape"])))
    if kind == "baseline":
        jax.block_until_ready(jnp.ones(3) + 1)
    elif kind in ("fused", "generic"):
        _, out = timed(lambda: tuple(_driver.kernel(net, x, fast=kind == "fused")), spec["repeats"])
    elif kind == "cnn":
        _, out = timed(lambda: tuple(net.kernel(x)), spec["repeats"])
        out["entries_per_s"] = n * n / out["wall_s"]
    else:
        _, params = net.init(jax.random.PRNGKey(0), x.shape)
        if kind == "layerwise":
            value, out = timed(lambda: stax_ntk(net, params, x), spec["repeats"])
        else:
            value, out = timed(lambda: empirical_ntk(net.apply, params, x, method="jacobian"), spec["repeats"])
        np.save(spec["save"], np.asarray(value))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_case(spec: dict) -> dict:
    """Run ``spec`` in a fresh Python process and parse its JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    import os
    import tempfile

    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small N everywhere (smoke test)")
    ap.add_argument("--n-cnn", type=int, default=None, help="images for the pooling CNN kernels (default 256; quick 32)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_case(json.loads(args.child))))
        return
    q = args.quick
    n_mlp, n_cnn = (300 if q else 2000), args.n_cnn or (32 if q else 256)
    n_res, n_conv = (64 if q else 256), (16 if q else 64)
    base = run_case({"kind": "baseline", "n": 0})["peak_rss_mb"]
    print(f"bare JAX process peak RSS: {base:.0f} MB (subtracted below); float64, {os.cpu_count()} CPUs\n")
    print(f"{'case':58s} {'first s':>8s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s}")

    def show(name, spec):
        r = run_case({"repeats": args.repeats, **spec})
        print(f"{name:58s} {r['first_s']:8.2f} {r['wall_s']:8.3f} {r['cpu_s']:8.3f} {r['peak_rss_mb'] - base:8.0f}", flush=True)
        return r

    ratios = {}
    mlp = dict(net="mlp10", shape=(64,), n=n_mlp)
    fused = show(f"(a) depth-10 ReLU MLP kernels, fused path, N={n_mlp}", {"kind": "fused", **mlp})
    generic = show(f"(a) depth-10 ReLU MLP kernels, generic stax path, N={n_mlp}", {"kind": "generic", **mlp})
    ratios["generic / fused (a), wall"] = (generic["wall_s"] / fused["wall_s"], "<= 1.5")
    cnn = show(f"(b) 4-conv CNN + AvgPool + GAP kernels, 16x16x3, N={n_cnn}",
               {"kind": "cnn", "net": "cnn_pool", "shape": (16, 16, 3), "n": n_cnn, "repeats": 1})  # fmt: skip
    tmp = tempfile.mkdtemp()
    agree = {}
    for net, shape, n in (("resmlp512", (64,), n_res), ("cnn512", (8, 8, 3), n_conv)):
        paths = {m: os.path.join(tmp, f"{net}_{m}.npy") for m in ("layerwise", "jacobian")}
        lw = show(f"(c) empirical NTK {net}, layer-wise, N={n}", {"kind": "layerwise", "net": net, "shape": shape, "n": n, "save": paths["layerwise"]})
        jc = show(f"(c) empirical NTK {net}, Jacobian contraction, N={n}",
                  {"kind": "jacobian", "net": net, "shape": shape, "n": n, "save": paths["jacobian"], "repeats": 1})  # fmt: skip
        a, b = np.load(paths["layerwise"]), np.load(paths["jacobian"])
        agree[net] = float(np.abs(a - b).max() / np.abs(b).max())
        ratios[f"Jacobian / layer-wise {net}, wall"] = (jc["wall_s"] / lw["wall_s"], ">= 5")
    print(f"\n(b) {cnn['entries_per_s']:.0f} kernel entries/s, peak {cnn['peak_rss_mb'] - base:.0f} MB above bare JAX")
    print("\nratios (same run):")
    for name, (value, goal) in ratios.items():
        print(f"  {name:45s} {value:8.2f}   goal {goal}")
    print("\nlayer-wise vs Jacobian NTK, max relative difference:", ", ".join(f"{k} {v:.1e}" for k, v in agree.items()))


if __name__ == "__main__":
    main()
