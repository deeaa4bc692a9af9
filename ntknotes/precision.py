"""Floating-point precision policy for ntknotes, decided in one place.

Importing :mod:`ntknotes` changes no global JAX setting: the library follows JAX's mode, computing
in float64 when JAX's 64-bit mode is on and in float32 otherwise (every kernel also takes an
explicit ``dtype``).  Comparisons with theory (kernels against Monte Carlo, closed forms against
quadrature, dynamics against real training) need float64, so the chapters and the tests turn it
on explicitly before creating any array::

    import jax
    jax.config.update("jax_enable_x64", True)     # or: ntknotes.enable_x64()
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp

from ._checks import check_bool

__all__ = ["enable_x64", "x64_enabled", "default_dtype", "x64_scope"]


def enable_x64(enabled: bool = True) -> None:
    """Turn JAX's 64-bit mode on (or off) for the whole process; call it before creating arrays.

    Raises TypeError unless ``enabled`` is True or False (``"false"`` or 0 are refused).
    """
    jax.config.update("jax_enable_x64", check_bool(enabled, "enabled"))


def x64_enabled() -> bool:
    """Whether JAX currently creates float64 arrays by default."""
    return bool(jax.config.read("jax_enable_x64"))


def default_dtype() -> jnp.dtype:
    """The floating dtype ntknotes uses when a caller gives none: float64 if enabled, else float32."""
    return jnp.dtype(jnp.float64) if x64_enabled() else jnp.dtype(jnp.float32)


def x64_scope() -> contextlib.AbstractContextManager:
    """A context in which JAX computes in float64, leaving the global mode as it was afterwards.

    For one-off tables built in float64 whatever the caller's mode. ``jax.enable_x64`` where JAX
    has it (JAX 0.10 does), else ``jax.experimental.enable_x64`` (older releases such as Colab's 0.7).

    Example::

        with x64_scope():
            table = jnp.arange(3.0)          # float64 inside
    """
    scope = getattr(jax, "enable_x64", None)
    if scope is not None:
        return scope(True)
    from jax.experimental import enable_x64 as experimental_scope  # older JAX

    return experimental_scope(True)
