"""Kernel operators and CG sharded over 4 forced CPU devices equal the single-device results.

The check runs in a subprocess because XLA_FLAGS=--xla_force_host_platform_device_count=4 must be
set before JAX starts.  Same code path on both meshes; only the number of devices differs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from ntknotes.operators import KernelOperator, default_mesh, fc_kernel
    from ntknotes.solvers import NystromPreconditioner, conjugate_gradient

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(700, 10)), rng.normal(size=(90, 10))
    y = rng.normal(size=(700, 3))
    kf = fc_kernel("ntk", depth=3, sigma_w=1.4, sigma_b=0.1)
    ops = {d: KernelOperator(kf, x, tile=128, mesh=default_mesh(jax.devices()[:d])) for d in (1, 4)}
    out = {"devices": [ops[d].num_devices for d in (1, 4)]}
    mv = {d: np.asarray(ops[d].matvec(y)) for d in ops}
    cr = {d: np.asarray(ops[d].cross_matvec(xt, y)) for d in ops}
    col = {d: np.asarray(ops[d].columns([3, 400, 699])) for d in ops}
    pc = NystromPreconditioner.from_operator(ops[1], 100, ridge=1.0, key=jax.random.PRNGKey(0))
    sol = {d: conjugate_gradient(ops[d], y, ridge=1.0, tol=1e-10, preconditioner=pc) for d in ops}
    rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
    out.update(matvec=rel(mv[4], mv[1]), cross=rel(cr[4], cr[1]), columns=rel(col[4], col[1]),
               solve=rel(np.asarray(sol[4].solution), np.asarray(sol[1].solution)),
               iterations=[sol[1].iterations, sol[4].iterations],
               dense_ref=rel(mv[1], np.asarray(ops[1].dense()) @ y))
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_equals_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    print(out)
    assert out["devices"] == [1, 4]
    for name in ("matvec", "cross", "columns", "solve"):
        assert out[name] <= 1e-12, (name, out[name])
    assert out["iterations"][0] == out["iterations"][1]
    assert out["dense_ref"] <= 1e-12
