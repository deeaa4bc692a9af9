"""Floating-point precision policy for ntknotes, decided in one place.

Comparisons with theory (kernels against Monte Carlo, closed forms against
quadrature, dynamics against real training) need float64, so importing
:mod:`ntknotes` turns on JAX's 64-bit mode.  Set the environment variable
``NTKNOTES_X64=0`` before the import to keep JAX's 32-bit default (useful for
large GPU runs, where every function also accepts an explicit ``dtype``).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp

__all__ = ["enable_x64", "x64_enabled", "default_dtype"]


def enable_x64(enabled: bool = True) -> None:
    """Turn JAX's 64-bit mode on (or off) for the whole process."""
    jax.config.update("jax_enable_x64", bool(enabled))


def x64_enabled() -> bool:
    """Whether JAX currently creates float64 arrays by default."""
    return bool(jax.config.read("jax_enable_x64"))


def default_dtype() -> jnp.dtype:
    """The floating dtype ntknotes uses when a caller gives none: float64 if enabled, else float32."""
    return jnp.dtype(jnp.float64) if x64_enabled() else jnp.dtype(jnp.float32)


if os.environ.get("NTKNOTES_X64", "1") != "0":
    enable_x64(True)
