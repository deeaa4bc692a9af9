"""Input validation shared by the public functions of ntknotes.

Every check raises early with the offending value and what was expected.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

__all__ = [
    "check_positive_int",
    "check_nonnegative",
    "check_positive",
    "check_matrix",
    "check_finite",
    "check_same_features",
    "check_choice",
    "check_widths",
    "check_key",
]


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


def check_nonnegative(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return v


def check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise."""
    v = check_nonnegative(value, name)
    if v == 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return v


def check_finite(x: Any, name: str) -> None:
    """Raise ValueError if array ``x`` has NaN or infinite entries (skipped for traced values)."""
    try:
        arr = np.asarray(x)
    except Exception:  # a JAX tracer: cannot be checked eagerly
        return
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite entries; inputs must be finite")


def check_matrix(x: Any, name: str, *, features: int | None = None, finite: bool = True) -> Any:
    """Check that ``x`` is a 2-D array (N, d) of real numbers, optionally with d == ``features``."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array of shape (N, d), got {type(x).__name__}")
    if len(shape) != 2:
        raise ValueError(f"{name} must have shape (N, d) (points in rows), got shape {tuple(shape)}")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} must have at least one point and one feature, got shape {tuple(shape)}")
    if features is not None and shape[1] != features:
        raise ValueError(f"{name} has {shape[1]} features per point but {features} were expected")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    if finite:
        check_finite(x, name)
    return x


def check_same_features(x1: Any, x2: Any, name1: str = "x1", name2: str = "x2") -> None:
    """Raise ValueError when two (N, d) arrays disagree in d."""
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"{name1} and {name2} must have the same feature shape; got {tuple(x1.shape)} and {tuple(x2.shape)}"
        )


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_widths(width: Any, depth: int, name: str = "width") -> tuple[int, ...]:
    """Normalize ``width`` (an int or a sequence of ``depth`` ints) to a tuple of positive ints."""
    if isinstance(width, (numbers.Integral, np.integer)) and not isinstance(width, bool):
        return (check_positive_int(width, name),) * depth
    if isinstance(width, (list, tuple)):
        if len(width) != depth:
            raise ValueError(f"{name} must list one width per hidden layer ({depth}), got {len(width)}: {width}")
        return tuple(check_positive_int(w, f"{name}[{i}]") for i, w in enumerate(width))
    raise TypeError(f"{name} must be a positive int or a sequence of {depth} positive ints, got {width!r}")


def check_key(key: Any, name: str = "key") -> Any:
    """Return ``key`` if it is one JAX PRNG key (a raw uint32 (2,) array or a typed key scalar), else raise."""
    import jax  # kept local: the rest of this module needs NumPy only
    import jax.numpy as jnp

    if not isinstance(key, jax.Array):
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.PRNGKey(seed)), got {type(key).__name__} {key!r}")
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name} must be a single PRNG key, got a batch of shape {key.shape}")
    elif key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            f"{name} must be a PRNG key: a uint32 array of shape (2,) from jax.random.PRNGKey, "
            f"got dtype {key.dtype} and shape {key.shape}"
        )
    return key
