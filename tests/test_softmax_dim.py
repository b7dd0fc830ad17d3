"""Softmax(dim) and LogSoftmax(dim): every axis, negative dims, finite differences, adjoint, torch as oracle
(float64 1e-10; float32 within a first-order bound derived below), empty batches, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import check_layer
from tinycnn.layers.softmax_dim import LogSoftmax, Softmax
from layer_oracle import assert_all_close_f64, run_both
from tolerances import (FD_REL_TOL, NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32, TORCH_EXP_ULPS_F32, TORCH_LOG_ULPS_F32,
                        assert_within, gamma)

F64, F32 = np.float64, np.float32
U32 = float(np.finfo(F32).eps)


@st.composite
def shape_and_dim(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, dim


KINDS = {"Softmax": (Softmax, lambda torch, d: torch.nn.Softmax(dim=d)),
         "LogSoftmax": (LogSoftmax, lambda torch, d: torch.nn.LogSoftmax(dim=d))}


@pytest.mark.parametrize("kind", list(KINDS))
@given(sd=shape_and_dim(), seed=st.integers(0, 2**32 - 1))
def test_finite_differences_and_adjoint(kind, sd, seed):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    report = check_layer(KINDS[kind][0](dim), rng.uniform(-2, 2, shape), rng=rng, tol=FD_REL_TOL, adjoint=True)
    # K = 1 along dim: softmax is the constant 1 (log-softmax 0), every derivative 0 on both sides
    assert report.ok or all(r.max_abs_diff < 1e-12 for r in report.rows), report.table()


@pytest.mark.parametrize("kind", list(KINDS))
@given(sd=shape_and_dim(), seed=st.integers(0, 2**32 - 1))
def test_torch_oracle_float64(torch, kind, sd, seed):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    ours, theirs = KINDS[kind]
    assert_all_close_f64(run_both(torch, ours(dim), theirs(torch, dim), rng.standard_normal(shape) * 3, rng))


def softmax_f32_bounds(x, g, axis, log: bool):
    """First-order bound on |ours - torch| for float32 (log-)softmax along ``axis`` and its gradient.

    One side, E_exp / E_log its exp / log accuracy in ulps, d = x - m (rounded: u |d|):
      S = sum exp(d):         relative  r_S = max(u |d|) + E_exp u + gamma_K
      softmax y = e / S:      relative  u |d| + E_exp u + r_S + u
      log-softmax d - log S:  absolute  u |d| + r_S + E_log u |log S| + u |y|
    Gradients, with y's (or p = exp(y)'s) error carried first order and a few roundings each:
      softmax dx = y (g - sum g y):  |g - s| err(y) + |y| (sum |g| err(y) + gamma_K sum |g y|) + 3 u |dx|
      log dx = g - p sum g:          |sum g| err(p) + |p| gamma_K sum |g| + 2 u (|g| + |p sum g|)
    Summed over the two sides (NumPy's exp/log and ATen's)."""
    x, g = np.asarray(x, F64), np.asarray(g, F64)
    k = x.shape[axis]
    d = x - x.max(axis=axis, keepdims=True)
    e = np.exp(d)
    s_sum = e.sum(axis=axis, keepdims=True)
    y = e / s_sum
    logy = d - np.log(s_sum)
    total_y = total_dx = 0.0
    for e_exp, e_log in ((NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32), (TORCH_EXP_ULPS_F32, TORCH_LOG_ULPS_F32)):
        r_s = (U32 * np.abs(d)).max(axis=axis, keepdims=True) + e_exp * U32 + gamma(k, F32)
        if not log:
            err_y = (U32 * np.abs(d) + e_exp * U32 + r_s + U32) * y
            gs = (g * y).sum(axis=axis, keepdims=True)
            dx = y * (g - gs)
            err_dx = (np.abs(g - gs) * err_y + y * ((np.abs(g) * err_y).sum(axis=axis, keepdims=True)
                                                    + gamma(k, F32) * np.abs(g * y).sum(axis=axis, keepdims=True))
                      + 3 * U32 * np.abs(dx))
        else:
            err_y = U32 * np.abs(d) + r_s + e_log * U32 * np.abs(np.log(s_sum)) + U32 * np.abs(logy)
            p = y
            err_p = p * (err_y + e_exp * U32 + U32)
            gsum = g.sum(axis=axis, keepdims=True)
            err_dx = (np.abs(gsum) * err_p + p * gamma(k, F32) * np.abs(g).sum(axis=axis, keepdims=True)
                      + 2 * U32 * (np.abs(g) + np.abs(p * gsum)))
        total_y = total_y + err_y
        total_dx = total_dx + err_dx
    return total_y, total_dx


@pytest.mark.parametrize("kind", list(KINDS))
@given(sd=shape_and_dim(), seed=st.integers(0, 2**32 - 1))
def test_torch_oracle_float32_within_derived_bounds(torch, kind, sd, seed):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    ours, theirs = KINDS[kind]
    x = (rng.standard_normal(shape) * 3).astype(F32)
    u = rng.standard_normal(shape).astype(F32)
    pairs = run_both(torch, ours(dim), theirs(torch, dim), x, rng, u=u)
    assert pairs["y"][0].dtype == F32
    b_y, b_dx = softmax_f32_bounds(x, u, dim % len(shape), log=(kind == "LogSoftmax"))
    assert_within(*pairs["y"], b_y, "y")
    assert_within(*pairs["grad x"], b_dx, "grad x")


def test_default_dim_is_one_as_tinycnns_softmax():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2))
    np.testing.assert_array_equal(Softmax().forward(x), tc.Softmax().forward(x))
    assert repr(Softmax()) == "Softmax(dim=1)" and Softmax().output_shape((4, 2)) == (4, 2)
    np.testing.assert_allclose(np.exp(LogSoftmax().forward(x)).sum(axis=1), 1.0, rtol=1e-15)


def test_large_logits_do_not_overflow():
    x = np.array([[1000.0, 0.0, -1000.0]], dtype=F32)
    assert np.isfinite(Softmax(-1).forward(x)).all() and np.isfinite(LogSoftmax(-1).forward(x)).all()
    assert LogSoftmax(1).forward(x)[0, 2] == pytest.approx(-2000.0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_empty_inputs_keep_torch_shapes(torch, kind):
    ours, theirs = KINDS[kind]
    for shape, dim in (((0, 5), 1), ((2, 0), 1), ((0, 3, 2), -1)):
        y = ours(dim).forward(np.zeros(shape))
        assert y.shape == tuple(theirs(torch, dim)(torch.zeros(shape)).shape) == shape


def test_bad_input_names_the_layer_the_argument_and_the_numbers():
    with pytest.raises(TypeError, match=r"LogSoftmax: dim must be an integer axis .* got 1.5"):
        LogSoftmax(1.5)
    with pytest.raises(ValueError, match=r"Softmax\(dim=3\): dim=3 is out of range for a 3-D input of shape "
                                         r"\(2, 3, 4\) \(valid: -3..2\)"):
        Softmax(3).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"layer 0, LogSoftmax\(dim=-4\), cannot take .*: dim=-4 is out of range for a "
                                         r"3-D input of shape \(N, 3, 4\)"):
        tc.Sequential(LogSoftmax(-4), input_shape=(3, 4))
    with pytest.raises(TypeError, match=r"Softmax\(dim=1\): input dtype is int64"):
        Softmax().forward(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(3,\)"):
        LogSoftmax(0).forward(np.zeros(3))
