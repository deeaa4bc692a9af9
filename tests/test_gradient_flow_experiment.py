"""The chapter's experiments at a tiny size: shapes, the closed forms they report, save/load, errors."""
import dataclasses

import jax
import numpy as np
import pytest

import ntknotes  # noqa: F401
from ntknotes.experiments import gradient_flow as gf

TINY = dataclasses.replace(
    gf.PRESETS["paper"],  # the paper preset's code path at a size a test can afford
    width=400, n_record=12, n_grid=9, widths=(100, 400), digits_n=40, digits_width=64, digits_steps=20,
    step_factors=(0.5, 1.5), step_steps=20, horizon=1.0,
)
KEY = jax.random.PRNGKey(3)


def test_toy_dynamics_tiny(tmp_path):
    r = gf.toy_dynamics(TINY, key=KEY)
    n, m, rec = TINY.n_points, TINY.n_grid, r.steps.size
    assert r.outputs.shape == r.outputs_flow.shape == (rec, n)
    assert r.grid.shape == (rec, m) and r.tracked.shape == (rec, 6)
    # at t = 0 the closed form is the network itself
    np.testing.assert_allclose(r.outputs_flow[0], r.outputs[0], atol=1e-12)
    np.testing.assert_allclose(r.grid_flow[0], r.grid[0], atol=1e-12)
    assert r.displacement[0] == 0 and r.displacement_flow[0] == 0
    np.testing.assert_allclose(r.loss_bound[0], r.loss[0], rtol=1e-12)
    assert r.eigenvalues[0] * r.times[-1] >= TINY.horizon
    loaded = gf.ToyResult.load(r.save(tmp_path / "toy.npz"))
    np.testing.assert_array_equal(loaded.outputs, r.outputs)
    assert loaded.tracked_names == r.tracked_names


def test_sweep_labels_steps_tiny():
    s = gf.width_sweep(TINY, key=KEY)
    assert s.rel_change.shape == (2,) and np.all(s.rel_change > 0) and np.isfinite(s.slope)
    lab = gf.label_trainability(TINY, key=KEY)
    np.testing.assert_allclose(lab.proj_true.sum(), TINY.digits_n, rtol=1e-10)  # ±1 labels: ‖y‖² = N
    np.testing.assert_allclose(lab.proj_random.sum(), TINY.digits_n, rtol=1e-10)
    assert lab.loss_true.shape == lab.kernel_true.shape == lab.steps.shape
    st = gf.step_sizes(TINY, key=KEY)
    assert st.loss_net.shape == st.loss_lin.shape == st.loss_kernel.shape == (2, st.steps.size)
    np.testing.assert_allclose(st.loss_lin, st.loss_kernel, rtol=1e-6)


def test_config_errors():
    with pytest.raises(ValueError, match="scale"):
        gf.get_config("huge")
    with pytest.raises(TypeError):
        gf.get_config(3)
    with pytest.raises(TypeError, match="key"):
        gf.toy_dynamics(TINY, key=0)
    with pytest.raises(ValueError, match="width"):
        gf.toy_dynamics(dataclasses.replace(TINY, width=0), key=KEY)
    assert gf.get_config("ci") is gf.PRESETS["ci"]
