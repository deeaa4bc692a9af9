"""One timing helper for the benchmark scripts (imported by their child processes, which run
with benchmarks/ first on sys.path)."""
from __future__ import annotations

import time
from typing import Any, Callable


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, dict]:
    """Call ``fn`` once (compilation included), then ``repeats`` more times.

    Returns ``(value of the first call, {"first_s", "wall_s", "cpu_s"})``: the first call's wall
    time, and the minimum wall and process-CPU seconds of the later calls (``wall_s`` falls back
    to the first call and ``cpu_s`` to None when ``repeats`` is 0).
    """
    import jax

    t0 = time.perf_counter()
    value = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return value, {"first_s": first, "wall_s": min(walls, default=first), "cpu_s": min(cpus, default=None)}
