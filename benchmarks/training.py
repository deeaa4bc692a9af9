"""Training speed of ntknotes.training: gradient-descent steps per second.

A width-2048 MLP with 3 hidden layers (ReLU, NTK parameterization, 64 → 2048 → 2048 → 2048 → 1)
on 128 digits, full-batch gradient descent on the total MSE loss. Measured in the same run:

* ``train`` / ``gradient_descent``: all steps in one compiled ``lax.scan`` (timed after a
  warm-up call that compiles it);
* the baseline: an un-jitted Python loop, one ``jax.grad`` call and one parameter update per step
  (op-by-op dispatch, as in a naive training script);
* for reference, a Python loop around a jitted step function;
* the linearized model (``linearized=True``), one tangent and its transpose per step.

Usage: ``.venv/bin/python benchmarks/training.py [--steps 20] [--width 2048] [--dtype float32]``.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)  # float64 unless --dtype float32 (ntknotes follows JAX's mode)

from ntknotes.data import load_digits  # noqa: E402
from ntknotes.networks import MLP  # noqa: E402
from ntknotes.training import train  # noqa: E402


def _block(tree) -> None:
    jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = parser.parse_args()
    dtype = jnp.float32 if args.dtype == "float32" else jnp.float64

    data = load_digits(args.n, 10, key=jax.random.PRNGKey(0), classes=(3, 8), targets="pm1")
    x, y = jnp.asarray(data.x_train, dtype), jnp.asarray(data.y_train, dtype)
    net = MLP(64, args.width, depth=3, activation="relu", sigma_w=2**0.5, sigma_b=0.1)
    p0 = net.init(jax.random.PRNGKey(1), dtype)
    lr = 1e-3
    steps = args.steps
    print(f"MLP 64-{args.width}x3-1 ({net.num_params:,} parameters), {args.n} points, {args.dtype}, {steps} steps")

    def timed(fn):
        fn()  # warm-up: compilation and caches
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    results = {}
    results["ntknotes.training.train (one lax.scan)"] = timed(
        lambda: _block(train(net.apply, p0, x, y, lr=lr, steps=steps, record_steps=[0, steps]).params))
    results["ntknotes.training.train, linearized"] = timed(
        lambda: _block(train(net.apply, p0, x, y, lr=lr, steps=steps, record_steps=[0, steps], linearized=True).params))

    loss = lambda p: 0.5 * jnp.sum((net.apply(p, x) - y) ** 2)  # noqa: E731

    def python_loop():
        p = p0
        for _ in range(steps):
            g = jax.grad(loss)(p)
            p = jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g)
        _block(p)

    step = jax.jit(lambda p: jax.tree_util.tree_map(lambda a, b: a - lr * b, p, jax.grad(loss)(p)))

    def jitted_step_loop():
        p = p0
        for _ in range(steps):
            p = step(p)
        _block(p)

    with jax.disable_jit():
        results["baseline: un-jitted Python loop"] = timed(python_loop)
    results["Python loop of a jitted step"] = timed(jitted_step_loop)

    base = results["baseline: un-jitted Python loop"]
    print(f"{'method':42s} {'steps/s':>9s} {'vs baseline':>12s}")
    for name, sec in results.items():
        print(f"{name:42s} {steps / sec:9.2f} {base / sec:11.2f}x")


if __name__ == "__main__":
    main()
