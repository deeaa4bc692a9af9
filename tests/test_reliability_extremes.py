"""Reliability, class 3: extreme but finite inputs.

Convolutional kernels without biases and with a ReLU-family activation are bilinear in the two
images' scales, K(c x, c' x') = c c' K(x, x'), so images scaled by 1e150 or 1e-150 must give c²
times the kernels of the unscaled images (true values well inside float64's range). Where the math
gives no such shortcut (σ_b > 0, erf) or the result cannot be stored (float32), the kernels raise
a ValueError saying the input is out of range instead of returning inf, NaN or zeros.

Activations without closed-form duals (tanh, SiLU, ...) use Hermite tables up to a variance of 1e8;
beyond that they raise instead of returning NaN.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntknotes import activations, kernels
from ntknotes.conv import conv_kernels

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(3, 4, 4, 2))


def _pairs(ks):
    return [ks.flatten.nngp, ks.flatten.ntk, ks.gap.nngp, ks.gap.ntk]


@pytest.mark.parametrize("backend", ["xla", "numba"])
@pytest.mark.parametrize("c", [1e150, 1e-150, 2.0**-500, 3.0])
def test_conv_kernels_are_homogeneous_at_extreme_scales(images, backend, c):
    base = conv_kernels(images, depths=(1, 2), backend=backend)
    scaled = conv_kernels(images * c, depths=(1, 2), backend=backend)
    for k, k0 in zip(_pairs(scaled), _pairs(base)):
        assert np.all(np.isfinite(k)) and np.all(k0 != 0)
        np.testing.assert_allclose((k / c) / c, k0, rtol=1e-13)


def test_conv_cross_kernel_of_differently_scaled_images(images):
    """K(c x, c' x') = c c' K(x, x') with c = 1e150 and c' = 1e-150: the scales multiply to 1."""
    base = conv_kernels(images[:2], images[1:], depths=2, backend="numba")
    mixed = conv_kernels(images[:2] * 1e150, images[1:] * 1e-150, depths=2, backend="numba")
    for k, k0 in zip(_pairs(mixed), _pairs(base)):
        np.testing.assert_allclose(k, k0, rtol=1e-13)


@pytest.mark.parametrize("activation, sigma_b, backend", [("erf", 0.0, "xla"), ("relu", 0.1, "numba")])
def test_conv_kernels_out_of_range_raise(images, activation, sigma_b, backend):
    """No homogeneity to use (σ_b > 0 or erf): pixels of 1e160 square past float64 and raise."""
    with pytest.raises(ValueError, match="out of range"):
        conv_kernels(images * 1e160, depths=1, activation=activation, sigma_b=sigma_b, backend=backend)


def test_conv_kernels_that_underflow_float64_raise(images):
    """Pixels of 2^-1000: the kernels (~2^-2000) are below float64's range; an error, not zeros."""
    with pytest.raises(ValueError, match="float64.*out of range"):
        conv_kernels(images * 2.0**-1000, depths=1, backend="numba")


def test_conv_kernels_beyond_float32_raise(images):
    with pytest.raises(ValueError, match="float32.*out of range"):
        conv_kernels(images * 1e30, depths=1, dtype=jnp.float32, backend="xla")


def test_series_duals_beyond_their_tables_raise():
    """tanh's duals come from Hermite tables up to q = 1e8: beyond, a ValueError instead of NaN."""
    tanh = activations.tanh()
    with pytest.raises(ValueError, match="variance of 1e\\+12 is out of range"):
        tanh.dual(1e12, 0.5e12, 1e12)
    with pytest.raises(ValueError, match="out of range"):
        tanh.dual_and_derivative(1.0, 0.5, 1e12)


def test_series_kernel_of_huge_inputs_raises_instead_of_nan():
    x = np.random.default_rng(1).normal(size=(3, 4)) * 1e10
    with pytest.raises(ValueError, match="out of range"):
        kernels.nngp(x, depth=1, activation="tanh", diagonal=True)
