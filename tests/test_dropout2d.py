"""Dropout2D: whole channels dropped, the keep rate, the gradient through the same mask, torch's edge
cases (p = 0, p = 1, eval), empty batches, bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import check_layer
from tolerances import FD_REL_TOL, hoeffding_halfwidth

F64, F32 = np.float64, np.float32


def seeded(layer, seed):
    def reset():                                   # the same mask on every forward
        layer.rng = np.random.default_rng(seed)
    return reset


@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       p=st.sampled_from([0.0, 0.3, 0.7, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_finite_differences_and_adjoint_with_a_fixed_mask(n, c, h, w, p, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Dropout2D(p)
    report = check_layer(layer, rng.standard_normal((n, c, h, w)), rng=rng, tol=FD_REL_TOL,
                         before_forward=seeded(layer, seed), adjoint=True)
    assert report.ok or p == 1.0, report.table()        # p = 1: everything 0 on both sides
    if p == 1.0:
        assert all(r.max_abs_diff == 0 for r in report.rows)


@given(p=st.sampled_from([0.1, 0.5, 0.9]), seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([F32, F64]))
def test_channels_are_kept_whole_scaled_or_zeroed_and_the_gradient_uses_the_same_mask(p, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((5, 6, 3, 4)) + 3).astype(dtype)        # nonzero everywhere
    layer = tc.Dropout2D(p, rng=np.random.default_rng(seed))
    y = layer.forward(x)
    g = rng.standard_normal(x.shape).astype(dtype)
    gx = layer.backward(g)
    scale = dtype(1 / (1 - p))
    kept = (y != 0).reshape(5, 6, -1)
    assert np.all(kept.all(axis=2) | ~kept.any(axis=2))             # every map all kept or all dropped
    keep = kept.all(axis=2)[:, :, None, None]
    np.testing.assert_array_equal(y, np.where(keep, x * scale, 0))
    np.testing.assert_array_equal(gx, np.where(keep, g * scale, 0))
    assert y.dtype == gx.dtype == dtype


def test_keep_rate_is_one_minus_p_within_hoeffding():
    n, c = 400, 50                                   # 20,000 channel draws
    for p in (0.2, 0.5, 0.8):
        layer = tc.Dropout2D(p, rng=np.random.default_rng(1))
        y = layer.forward(np.ones((n, c, 2, 2)))
        rate = float((y[:, :, 0, 0] != 0).mean())
        assert abs(rate - (1 - p)) < hoeffding_halfwidth(n * c), (p, rate)


def test_eval_p0_p1_and_nan_as_torch(torch):
    x = np.array(np.random.default_rng(0).standard_normal((2, 3, 2, 2)))
    x[0, 0, 0, 0] = np.nan
    for p in (0.0, 0.4, 1.0):
        layer, module = tc.Dropout2D(p, rng=np.random.default_rng(0)), torch.nn.Dropout2d(p)
        layer.eval(), module.eval()
        np.testing.assert_array_equal(layer.forward(x), module(torch.tensor(x)).numpy())
    layer, module = tc.Dropout2D(1.0), torch.nn.Dropout2d(1.0)
    np.testing.assert_array_equal(layer.forward(x), module(torch.tensor(x)).numpy())   # NaN * 0 = NaN both
    layer = tc.Dropout2D(0.0)
    assert layer.forward(x) is not None and np.array_equal(layer.forward(x), x, equal_nan=True)


def test_empty_batch_keeps_torch_shapes(torch):
    layer = tc.Dropout2D(0.5, rng=np.random.default_rng(0))
    y = layer.forward(np.zeros((0, 3, 4, 4)))
    assert y.shape == tuple(torch.nn.Dropout2d(0.5)(torch.zeros(0, 3, 4, 4)).shape) == (0, 3, 4, 4)
    assert layer.backward(np.zeros((0, 3, 4, 4))).shape == (0, 3, 4, 4)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"Dropout2D: p is the probability .* got p = 1.5"):
        tc.Dropout2D(1.5)
    with pytest.raises(TypeError, match=r"Dropout2D: p must be a number"):
        tc.Dropout2D("0.5")
    with pytest.raises(TypeError, match=r"Dropout2D: rng must be a np.random.Generator .* got int"):
        tc.Dropout2D(0.5, rng=3)
    with pytest.raises(ValueError, match=r"Dropout2D\(p=0.5\): expected a 4-D input \(N, C, H, W\), got 3-D"):
        tc.Dropout2D(0.5).forward(np.zeros((2, 3, 4)))
