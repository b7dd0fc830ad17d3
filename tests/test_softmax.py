"""Softmax layer: finite differences, the adjoint identity, torch as oracle, hypothesis shapes, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import ADJOINT_REL_TOL, FD_REL_TOL, TORCH_F64_REL_TOL, assert_rel_close

import tinycnn as tc
from tinycnn.gradcheck import adjoint_check, check_layer

# (N, K) or (N, K, H, W): softmax runs over axis 1 in both.
shapes = st.one_of(
    st.tuples(st.integers(1, 4), st.integers(1, 6)),
    st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3)),
)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_softmax_backward_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    report = check_layer(tc.Softmax(), x, rng=rng, tol=FD_REL_TOL)
    # A saturated softmax (one y_k ~ 1) has a gradient near 0, where a relative error compares rounding
    # noise: the central difference of L = sum(g * y) carries up to ~2 u_64 S / h absolute error,
    # S = sum |g * y| <= 5 * size (|y| <= 1, |g| < 5 for the check's normal draws). Below that floor the
    # difference is no evidence of a wrong gradient.
    floor = 4 * np.finfo(np.float64).eps * 5 * x.size / 1e-6
    assert report.ok or all(row.max_abs_diff <= floor for row in report.rows), report.table()


@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_softmax_adjoint_identity(shape, seed):
    rng = np.random.default_rng(seed)
    lhs, rhs, rel = adjoint_check(tc.Softmax(), rng.standard_normal(shape) * 3, rng=rng)
    # Both sides are 0 when K == 1 (the output is constant 1); rel is then 0/tiny.
    assert rel < ADJOINT_REL_TOL or max(abs(lhs), abs(rhs)) < 1e-12, (lhs, rhs, rel)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_softmax_matches_torch_forward_and_backward(torch, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    g = rng.standard_normal(shape)                       # random upstream gradient, never ones
    layer = tc.Softmax()
    y = layer.forward(x)
    gx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.softmax(xt, dim=1)
    yt.backward(torch.tensor(g))
    assert_rel_close(y, yt.detach().numpy(), TORCH_F64_REL_TOL, "softmax forward")
    assert_rel_close(gx, xt.grad.numpy(), TORCH_F64_REL_TOL, "softmax grad x")


def test_softmax_float32_stays_float32_and_large_logits_do_not_overflow():
    x = np.array([[1000.0, 0.0, -1000.0], [88.0, 89.0, 90.0]], dtype=np.float32)
    y = tc.Softmax().forward(x)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.0])
    # exp(88..90 - 90) normalised: computed in float64 by hand
    e = np.exp(np.array([-2.0, -1.0, 0.0]))
    np.testing.assert_allclose(y[1], e / e.sum(), rtol=4 * np.finfo(np.float32).eps)


def test_softmax_rejects_bad_input_with_its_name():
    with pytest.raises(TypeError, match=r"Softmax\(\): input dtype is int64"):
        tc.Softmax().forward(np.array([[1, 2]], dtype=np.int64))
    with pytest.raises(ValueError, match=r"Softmax\(\): expected input \(N, K, \.\.\.\).*shape \(3,\)"):
        tc.Softmax().forward(np.zeros(3))
    with pytest.raises(RuntimeError, match=r"Softmax\(\): backward\(\) called before forward\(\)"):
        tc.Softmax().backward(np.zeros((1, 2)))
    layer = tc.Softmax()
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Softmax\(\): backward got grad_y of shape \(3, 2\)"):
        layer.backward(np.zeros((3, 2)))
