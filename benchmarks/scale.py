"""Kernel regression at scale: NTK regression of a depth-3 ReLU MLP on MNIST-1D at large N.

Every case runs in a fresh Python subprocess (so peak memory is the case's own and the device
count can be forced before JAX starts) and prints one JSON line; the parent prints a table.

    .venv/bin/python benchmarks/scale.py                          # N = 20k, 50k; CG on 1 device + direct at 20k
    .venv/bin/python benchmarks/scale.py --n 100000 --no-direct --tol 1e-2  # the 100k case (20 min quiet, 2 cores)
    .venv/bin/python benchmarks/scale.py --n 20000 --devices 1 4   # 4 forced CPU devices against 1
    .venv/bin/python benchmarks/scale.py --json results.jsonl      # also append the rows to a file

Cases: "cg" = matrix-free KernelOperator (tiles computed in ``--tile-dtype``, float32 by
default, accumulated in float64) + randomly-pivoted-Cholesky Nyström preconditioner + CG to a
relative residual ``--tol``; "direct" = the kernel formed tile by tile in float64 and solved by
``regression.solve_kernel(method="cholesky")``.  Same ridge for both: ``--ridge-rel`` × the mean
of the kernel's diagonal.  Memory: the child's peak resident set size (``ru_maxrss``, which
covers XLA's CPU buffers).  On a GPU (``--gpu``) the cases run on the default JAX backend.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def child(args) -> None:
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}").strip()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from ntknotes.data.mnist1d import make_mnist1d
    from ntknotes.operators import KernelOperator, default_mesh, fc_kernel
    from ntknotes.regression import accuracy, solve_kernel, solve_operator

    t_start = time.perf_counter()
    ds = make_mnist1d(args.n, args.n_test, seed=args.seed)
    x, y = np.asarray(ds.x_train), np.asarray(ds.y_train, np.float64)
    xt, labels = np.asarray(ds.x_test), np.argmax(np.asarray(ds.y_test), axis=1)
    t_data = time.perf_counter() - t_start
    tile_dtype = jnp.float32 if args.solver == "cg" and args.tile_dtype == "float32" else jnp.float64
    kf = fc_kernel("ntk", depth=3, sigma_w=args.sigma_w, sigma_b=args.sigma_b, dtype=tile_dtype)
    mesh = default_mesh(jax.devices()[: args.devices])
    op = KernelOperator(kf, x, tile=args.tile, dtype=jnp.float64, mesh=mesh)
    mean_diag = float(jnp.mean(op.diagonal()))
    ridge = args.ridge_rel * mean_diag
    t0 = time.perf_counter()
    info: dict = {}
    if args.solver == "direct":
        k = op.dense()
        t_kernel = time.perf_counter() - t0
        sol = solve_kernel(k, y, ridge=ridge, method="cholesky")
        weights = sol.weights
        del k
        info.update(kernel_s=round(t_kernel, 1), iterations=0, residual=None)
    else:
        sol = solve_operator(
            op, y, ridge=ridge, method="cg", tol=args.tol, max_iter=args.max_iter, rank=args.rank,
            key=jax.random.PRNGKey(args.seed), progress=args.progress, verbose=True,
        )
        weights = sol.weights
        info.update(iterations=sol.iterations, residual=sol.residual, converged=sol.converged, rank=sol.rank,
                    matvec_s=round(sol.estimate["matvec_seconds"], 2), est_bytes=sol.estimate["bytes"])
    t_solve = time.perf_counter() - t0
    t1 = time.perf_counter()
    pred = op.cross_matvec(xt, jnp.asarray(weights))
    t_pred = time.perf_counter() - t1
    acc = accuracy(pred, labels)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(
        n=args.n, n_test=args.n_test, solver=args.solver, devices=len(jax.devices()[: args.devices]),
        platform=jax.devices()[0].platform, tile_dtype=str(jnp.dtype(tile_dtype)), ridge=ridge, tol=args.tol,
        data_s=round(t_data, 1), solve_s=round(t_solve, 1), predict_s=round(t_pred, 1),
        total_s=round(time.perf_counter() - t_start, 1), peak_mb=round(rss_mb), accuracy=acc,
        cpu_s=round(time.process_time(), 1), **info,
    )), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[20000, 50000])
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--devices", type=int, nargs="+", default=[1])
    ap.add_argument("--direct-max", type=int, default=20000, help="run the direct solve up to this N")
    ap.add_argument("--no-direct", action="store_true")
    ap.add_argument("--tile", type=int, default=2048)
    ap.add_argument("--tile-dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--rank", type=int, default=2000)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--ridge-rel", type=float, default=1e-2)
    ap.add_argument("--sigma-w", type=float, default=1.4)
    ap.add_argument("--sigma-b", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--json", help="append each case's JSON line to this file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--solver", choices=["cg", "direct"], default="cg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.n, args.devices = args.n[0], args.devices[0]
        child(args)
        return
    cases = []
    for n in args.n:
        for d in args.devices:
            cases.append((n, d, "cg"))
        if not args.no_direct and n <= args.direct_max:
            cases.append((n, 1, "direct"))
    rows = []
    passthrough = ["--n-test", str(args.n_test), "--tile", str(args.tile), "--tile-dtype", args.tile_dtype,
                   "--rank", str(args.rank), "--tol", str(args.tol), "--max-iter", str(args.max_iter),
                   "--ridge-rel", str(args.ridge_rel), "--sigma-w", str(args.sigma_w),
                   "--sigma-b", str(args.sigma_b), "--seed", str(args.seed)] + (["--progress"] if args.progress else [])
    for n, d, solver in cases:
        cmd = [sys.executable, __file__, "--child", "--n", str(n), "--devices", str(d), "--solver", solver] + passthrough
        print(f"# running N={n:,} devices={d} solver={solver}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-2000:])
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"# case N={n} devices={d} {solver} failed (rc {proc.returncode})", file=sys.stderr)
            continue
        row = json.loads(lines[-1])
        rows.append(row)
        print(lines[-1], flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(lines[-1] + "\n")
    print("\n| N | solver | devices | tiles | iterations | residual | solve s | predict s | total s | peak MB | test acc |")
    print("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        res = "" if r.get("residual") is None else f"{r['residual']:.1e}"
        print(f"| {r['n']:,} | {r['solver']} | {r['devices']} | {r['tile_dtype']} | {r.get('iterations', '')} | {res} | "
              f"{r['solve_s']} | {r['predict_s']} | {r['total_s']} | {r['peak_mb']} | {r['accuracy']:.4f} |")


if __name__ == "__main__":
    main()
