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
    "check_bool",
    "check_float_dtype",
    "check_nonempty",
    "check_covariance",
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


def check_key(key: Any, name: str = "key", *, batch: bool = False) -> Any:
    """Return ``key`` if it is one JAX PRNG key (or, with ``batch``, a 1-D batch of them), else raise.

    Both kinds of key are accepted: a typed key from ``jax.random.key(seed)`` (a scalar whose
    dtype is a key type; a batch has shape (E,)) and a legacy key from ``jax.random.PRNGKey(seed)``
    (a uint32 array of shape (2,); a batch has shape (E, 2)).

    Raises:
      TypeError: ``key`` is not a JAX array (an int seed, None, a NumPy array, ...).
      ValueError: a JAX array that is not a key (e.g. float entries) or a batch where one key is
        expected (or one key where a batch is expected).
    """
    import jax  # kept local: the rest of this module needs NumPy only
    import jax.numpy as jnp

    what = "a batch of JAX PRNG keys (jax.random.split(key, E))" if batch else (
        "a JAX PRNG key: a single jax.random.key(seed) or jax.random.PRNGKey(seed)")
    if not isinstance(key, jax.Array):
        raise TypeError(f"{name} must be {what}, got {type(key).__name__} {key!r}")
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    lead = key.shape if typed else key.shape[:-1]
    if not typed and (key.dtype != jnp.uint32 or key.shape[-1:] != (2,)):
        raise ValueError(
            f"{name} must be {what}, got an array of dtype {key.dtype} and shape {key.shape} "
            f"(a legacy key is a uint32 array of shape (2,), a typed key a scalar of a key dtype)"
        )
    if batch and (len(lead) != 1 or lead[0] < 1):
        raise ValueError(f"{name} must be {what}, got {'no batch' if not lead else 'keys of batch shape ' + str(lead)}")
    if not batch and lead:
        raise ValueError(f"{name} must be {what}, got a batch of keys of batch shape {lead}")
    return key


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is True or False (a Python or NumPy bool), else raise TypeError.

    Strings such as ``"false"`` and integers such as 1 are refused: ``bool("false")`` is True.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} of type {type(value).__name__}")


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """Return ``dtype`` as a floating NumPy dtype; ``None`` gives the package default.

    The default is float64 when JAX's 64-bit mode is on, else float32 (:mod:`ntknotes.precision`).

    Raises:
      TypeError: ``dtype`` is not a dtype, or is an integer, bool or complex dtype.
    """
    import jax.numpy as jnp  # local, as in check_key

    from . import precision

    if dtype is None:
        return np.dtype(precision.default_dtype())
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype such as jnp.float32 or jnp.float64, got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"{name} must be a floating dtype such as jnp.float32 or jnp.float64, got {dt.name}")
    return dt


def check_nonempty(x: Any, name: str) -> Any:
    """Raise ValueError if the array ``x`` has no entries (any axis of length 0); return it."""
    shape = np.shape(x)
    if 0 in shape:
        raise ValueError(f"{name} is empty (shape {tuple(shape)}); it needs at least one entry")
    return x


def check_covariance(k11: Any, k12: Any, k22: Any, names: Sequence[str] = ("k11", "k12", "k22")) -> None:
    """Raise ValueError unless (k11, k12, k22) are covariances of Gaussian pairs; arrays broadcast.

    Each triple must have k11 >= 0, k22 >= 0 and |k12| <= √(k11 k22), up to rounding (a relative
    slack of 1e-6, so that correlations computed in float32 pass). NaN entries are refused.
    Traced values (under ``jax.jit``) cannot be inspected and are passed through unchecked.
    """
    try:
        arrays = [np.asarray(k, dtype=np.float64) for k in (k11, k12, k22)]
    except Exception:  # a JAX tracer: cannot be checked eagerly
        return
    try:
        a, c, b = np.broadcast_arrays(*arrays)
    except ValueError:
        raise ValueError(f"{', '.join(names)} do not broadcast together: shapes {[x.shape for x in arrays]}") from None
    for x, nm in ((a, names[0]), (c, names[1]), (b, names[2])):
        if np.isnan(x).any():
            raise ValueError(f"{nm} contains NaN")
    for x, nm in ((a, names[0]), (b, names[2])):
        if (x < 0).any():
            raise ValueError(f"{nm} is a variance and must be >= 0, got {x.min():.6g}")
    with np.errstate(over="ignore", invalid="ignore"):
        # |k12| <= √k11 √k22 in scaled form (no overflow of the product)
        bound = np.sqrt(a) * np.sqrt(b)
        bad = np.abs(c) > bound * (1 + 1e-6) + 1e-300
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        raise ValueError(
            f"({names[0]}, {names[1]}, {names[2]}) is not a covariance: |{names[1]}| must be at most "
            f"sqrt({names[0]}·{names[2]}) (a correlation in [-1, 1]), got {names[1]} = {c.ravel()[i]:.6g} with "
            f"{names[0]} = {a.ravel()[i]:.6g}, {names[2]} = {b.ravel()[i]:.6g}"
        )
