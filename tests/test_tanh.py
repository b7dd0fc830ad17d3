"""Tanh: y = tanh(x), dy/dx = 1 - y**2 from the cached output; proven three ways.

* central finite differences in float64 (relative error < FD_REL_TOL) and the adjoint identity;
* torch as oracle: float64 within TORCH_F64_REL_TOL; float32 within the bounds of tests/tolerances.py
  (the two libraries' tanh accuracy, then the backward's roundings), each library's float32 tanh also
  checked on its own against torch's float64 tanh, so a wrong accuracy figure fails by name;
* hypothesis shapes (batch 1-4, channels 1-6, non-square H x W), random upstream gradients.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import (
    ADJOINT_REL_TOL,
    FD_REL_TOL,
    TINYCNN_TANH_ULPS_F32,
    TORCH_F64_REL_TOL,
    TORCH_TANH_ULPS_F32,
    assert_rel_close,
    assert_within,
    tanh_backward_atol,
    tanh_forward_atol,
)

import tinycnn as tc
from tinycnn.gradcheck import adjoint_check, check_layer

SEEDS = st.integers(0, 2**32 - 1)
SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))  # N, C, H, W




def _input(rng, shape, scale=2.0):
    """Values spread over the curved part of tanh and into its saturation (|x| up to ~8)."""
    return scale * rng.standard_normal(shape)


@given(shape=SHAPES, seed=SEEDS)
def test_finite_differences_and_adjoint_float64(shape, seed):
    rng = np.random.default_rng(seed)
    x = _input(rng, shape, scale=1.5)
    report = check_layer(tc.Tanh(), x, rng=rng, tol=FD_REL_TOL)
    assert report.ok, report.table()
    lhs, rhs, rel = adjoint_check(tc.Tanh(), x, rng=rng)
    assert rel < ADJOINT_REL_TOL, f"<Jv, u> = {lhs!r} but <v, J^T u> = {rhs!r} (relative {rel:.2e})"


def _torch_tanh(torch, x, g):
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = torch.tanh(xt)
    yt.backward(torch.from_numpy(g))
    return yt.detach().numpy(), xt.grad.numpy()


@given(shape=SHAPES, seed=SEEDS)
def test_torch_oracle_float64(torch, shape, seed):
    rng = np.random.default_rng(seed)
    x = _input(rng, shape)
    g = rng.standard_normal(shape)
    layer = tc.Tanh()
    y = layer(x)
    dx = layer.backward(g)
    y_t, dx_t = _torch_tanh(torch, x, g)
    assert y.dtype == dx.dtype == np.float64
    assert_rel_close(y, y_t, TORCH_F64_REL_TOL, "tanh y")
    assert_rel_close(dx, dx_t, TORCH_F64_REL_TOL, "tanh grad x")


@given(shape=SHAPES, seed=SEEDS)
def test_torch_oracle_float32(torch, shape, seed):
    rng = np.random.default_rng(seed)
    x = _input(rng, shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    layer = tc.Tanh()
    y = layer(x)
    dx = layer.backward(g)
    y_t, dx_t = _torch_tanh(torch, x, g)
    assert y.dtype == dx.dtype == np.float32
    # Each library alone, against torch's float64 tanh of the same float32 inputs (~1e-16 off exact).
    exact = torch.tanh(torch.from_numpy(x.astype(np.float64))).numpy()
    u = float(np.finfo(np.float32).eps)
    assert_within(y, exact, TINYCNN_TANH_ULPS_F32 * u * np.abs(exact), "tinycnn float32 tanh vs exact")
    assert_within(y_t, exact, TORCH_TANH_ULPS_F32 * u * np.abs(exact), "torch float32 tanh vs exact "
                  "(the accuracy assumed in tolerances.TORCH_TANH_ULPS_F32)")
    # And against each other.
    assert_within(y, y_t, tanh_forward_atol(x), "tanh y vs torch")
    assert_within(dx, dx_t, tanh_backward_atol(x, g), "tanh grad x vs torch")


def test_backward_uses_one_minus_y_squared_on_hand_values():
    """tanh(0) = 0 (slope 1), tanh(ln 3 / 2) = 1/2 (slope 3/4), tanh(-ln 3 / 2) = -1/2: worked by hand."""
    layer = tc.Tanh()
    a = np.log(3.0) / 2
    x = np.array([[0.0, a, -a]])
    np.testing.assert_allclose(layer(x), [[0.0, 0.5, -0.5]], rtol=1e-15, atol=1e-16)
    g = np.array([[0.3, -2.0, 5.0]])
    np.testing.assert_allclose(layer.backward(g), [[0.3, -1.5, 3.75]], rtol=1e-14)


def test_saturation_nan_and_dtype():
    layer = tc.Tanh()
    x = np.array([-1e30, -40.0, 40.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y[:5], [-1, -1, 1, 1, -1])
    assert np.isnan(y[5])                                     # NaN propagates, not hidden
    dx = layer.backward(np.full(6, 0.7, dtype=np.float32))
    np.testing.assert_array_equal(dx[:5], 0)
    assert np.isnan(dx[5])


def test_bad_input_messages():
    layer = tc.Tanh()
    with pytest.raises(RuntimeError, match=r"Tanh\(\): backward\(\) called before forward\(\)"):
        layer.backward(np.ones(3))
    with pytest.raises(TypeError, match=r"Tanh\(\): input dtype is int64"):
        layer(np.arange(3))
    layer(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Tanh\(\): backward got grad_y of shape \(3, 2\).*\(2, 3\)"):
        layer.backward(np.ones((3, 2)))


def test_in_a_sequential_and_exported():
    assert "Tanh" in tc.__all__
    rng = np.random.default_rng(3)
    model = tc.Sequential(tc.Dense(4, 3, dtype=np.float64, rng=rng), tc.Tanh())
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(model(x), np.tanh(x @ model[0].weight.data.T + model[0].bias.data), rtol=1e-14)


# -- measurement (not a test): python tests/test_tanh.py [n] ------------------------------------------

def _measure(n: int = 1_000_000) -> None:
    """Each float32 tanh's error in units of u |tanh x| against torch's float64 tanh, and the gap
    between tinycnn and torch as a fraction of the derived bounds, over n values ~ 3 N(0, 1)."""
    import torch
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal(n)).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    exact = torch.tanh(torch.from_numpy(x.astype(np.float64))).numpy()
    u = float(np.finfo(np.float32).eps)
    layer = tc.Tanh()
    y = layer(x)
    dx = layer.backward(g)
    y_t, dx_t = _torch_tanh(torch, x, g)
    nz = exact != 0
    for who, yy in (("tinycnn", y), ("torch", y_t)):
        print(f"{who:<8} max |y - tanh x| / (u |tanh x|) = "
              f"{np.max(np.abs(yy[nz] - exact[nz]) / (u * np.abs(exact[nz]))):.3f}")
    print(f"forward  max |diff| / bound = {np.max(np.abs(y - y_t) / (tanh_forward_atol(x) + 1e-45)):.3f}")
    print(f"backward max |diff| / bound = {np.max(np.abs(dx - dx_t) / (tanh_backward_atol(x, g) + 1e-45)):.3f}")


if __name__ == "__main__":
    _measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
