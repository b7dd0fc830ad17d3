"""LeakyReLU, GELU (exact and tanh), SiLU, Identity: finite differences, adjoint, torch as oracle in float64
and float32 (derived bounds), the subgradient at 0 and NaN, empty batches and bad arguments."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import away_from_zero, check_layer
from layer_oracle import assert_all_close_f64, run_both
from tolerances import FD_REL_TOL, TORCH_EXP_ULPS_F32, assert_within

F64, F32 = np.float64, np.float32
U32 = float(np.finfo(F32).eps)
shapes = st.one_of(st.tuples(st.integers(1, 4), st.integers(1, 6)),
                   st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)))
slopes = st.one_of(st.just(0.01), st.floats(-2, 2, allow_nan=False))


def layers_and_modules(torch, slope=0.01):
    nn = torch.nn
    return {"LeakyReLU": (tc.LeakyReLU(slope), nn.LeakyReLU(slope)),
            "GELU": (tc.GELU(), nn.GELU()),
            "GELU(tanh)": (tc.GELU(approximate="tanh"), nn.GELU(approximate="tanh")),
            "SiLU": (tc.SiLU(), nn.SiLU()),
            "Identity": (tc.Identity(), nn.Identity())}


NAMES = ["LeakyReLU", "GELU", "GELU(tanh)", "SiLU", "Identity"]


def make_layer(name, slope=0.01):
    return {"LeakyReLU": lambda: tc.LeakyReLU(slope), "GELU": tc.GELU,
            "GELU(tanh)": lambda: tc.GELU(approximate="tanh"), "SiLU": tc.SiLU, "Identity": tc.Identity}[name]()


@pytest.mark.parametrize("name", NAMES)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), slope=slopes)
def test_finite_differences_and_adjoint(name, shape, seed, slope):
    rng = np.random.default_rng(seed)
    x = away_from_zero(shape, rng, scale=3.0)        # LeakyReLU's kink at 0 out of reach of h
    report = check_layer(make_layer(name, slope), x, rng=rng, tol=FD_REL_TOL, adjoint=True)
    assert report.ok, report.table()


@pytest.mark.parametrize("name", NAMES)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), slope=slopes)
def test_torch_oracle_float64(torch, name, shape, seed, slope):
    rng = np.random.default_rng(seed)
    layer, module = layers_and_modules(torch, slope)[name]
    x = rng.standard_normal(shape) * 4               # tails too: GELU's Phi and SiLU's sigmoid saturate
    if name == "GELU":
        # torch evaluates 1 + erf(x / sqrt 2), which cancels for x << 0: its absolute error ~u_64 is a
        # relative error u_64 / Phi(x), above the 1e-10 bar once Phi(x) < ~1e-6 (x < -4.75). Inside
        # |x| <= 4 (Phi >= 3e-5) the bar holds for both; the tail is tested against erfc directly below.
        x = np.clip(x, -4.0, 4.0)
    assert_all_close_f64(run_both(torch, layer, module.double(), x, rng))


def test_gelu_keeps_accuracy_far_in_the_negative_tail(torch):
    """x Phi(x) for x = -30 is ~ -1e-196: erfc keeps it, 1 + erf(x / sqrt 2) would give 0."""
    x = np.array([[-30.0, -10.0, -5.0]])
    y = tc.GELU().forward(x)
    want = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x[0]])
    np.testing.assert_allclose(y[0], want, rtol=1e-14)
    assert y[0, 0] < 0


@given(shape=shapes, seed=st.integers(0, 2**32 - 1), slope=slopes)
def test_leaky_relu_float32_is_one_rounding_from_torch(torch, shape, seed, slope):
    """y = a * x and dx = a * g are one correctly rounded product on both sides: at most u |value| apart
    (the elementwise row of tests/tolerances.py allows 4 u; one rounding each is 2 u at most)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(F32)
    pairs = run_both(torch, tc.LeakyReLU(slope), torch.nn.LeakyReLU(slope), x, rng)
    for name, (ours, theirs) in pairs.items():
        assert ours.dtype == F32
        assert_within(ours, theirs, 2 * U32 * np.abs(theirs.astype(F64)), name)


@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_silu_float32_within_derived_bounds(torch, shape, seed):
    """Ours: float64 evaluation rounded once, |err| <= 0.5 u |value| (+ float64 error, 2^-20 u). Torch's
    float32 SiLU: x / (1 + exp(-x)) with ATen's exp (E = TORCH_EXP_ULPS_F32 ulps) and two roundings, so
    sigmoid's relative error is <= (E + 2) u and y's <= (E + 3) u. Backward, torch's g s (1 + x (1 - s)):
    with s off by d = (E + 2) u s, the factor moves by |1 + x (1 - 2 s)| d; 4 roundings of the rest."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(F32)
    u = rng.standard_normal(shape).astype(F32)
    pairs = run_both(torch, tc.SiLU(), torch.nn.SiLU(), x, rng, u=u)
    x64, g = x.astype(F64), np.abs(u.astype(F64))
    s = 1 / (1 + np.exp(-x64))
    y = x64 * s
    mine = 0.5 + 2.0 ** -20
    assert_within(*pairs["y"], (mine + TORCH_EXP_ULPS_F32 + 3) * U32 * np.abs(y), "y")
    factor = s * (1 + x64 * (1 - s))
    d = (TORCH_EXP_ULPS_F32 + 2) * U32 * s
    bound = g * (np.abs(1 + x64 * (1 - 2 * s)) * d + (4 + mine) * U32 * (s * (1 + np.abs(x64) * (1 - s)))) \
        + mine * U32 * np.abs(g * factor)
    assert_within(*pairs["grad x"], bound, "grad x")


def test_leaky_relu_subgradient_at_zero_and_nan_is_the_slope_as_torch(torch):
    x = np.array([[0.0, -0.0, np.nan, 1.0, -1.0]])
    layer = tc.LeakyReLU(0.2)
    y = layer.forward(x)
    g = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    gx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.leaky_relu(xt, 0.2)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, yt.detach().numpy())        # NaN in the same place
    np.testing.assert_array_equal(gx, xt.grad.numpy())
    assert gx[0, 0] == 0.2 and gx[0, 2] == pytest.approx(0.6)


def test_identity_returns_the_very_arrays():
    x = np.ones((2, 3))
    layer = tc.Identity(54, unused="torch ignores these too")
    assert layer.forward(x) is x
    g = np.full((2, 3), 2.0)
    assert layer.backward(g) is g


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_keeps_torch_shapes(torch, name):
    layer, module = layers_and_modules(torch)[name]
    x = np.zeros((0, 3, 2))
    y = layer.forward(x)
    assert y.shape == tuple(module(torch.zeros(0, 3, 2)).shape) == (0, 3, 2)
    assert layer.backward(np.zeros((0, 3, 2))).shape == (0, 3, 2)


def test_bad_arguments_name_the_layer_and_the_value():
    with pytest.raises(ValueError, match=r"LeakyReLU: negative_slope must be a finite number, got nan"):
        tc.LeakyReLU(float("nan"))
    with pytest.raises(ValueError, match=r"LeakyReLU: negative_slope must be a finite number, got 'a'"):
        tc.LeakyReLU("a")
    with pytest.raises(ValueError, match=r"GELU: approximate must be 'none' or 'tanh', got 'erf'"):
        tc.GELU(approximate="erf")
    with pytest.raises(TypeError, match=r"SiLU\(\): input dtype is int64"):
        tc.SiLU().forward(np.ones(3, dtype=np.int64))
    layer = tc.GELU()
    with pytest.raises(RuntimeError, match=r"GELU\(\): backward\(\) called before forward"):
        layer.backward(np.ones(3))
    layer.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"GELU\(\): backward got grad_y of shape \(3,\)"):
        layer.backward(np.ones(3))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_is_the_float64_value_rounded_once(approximate):
    """float32 GELU is evaluated in float64 and rounded once: within (0.5 + 2^-20) ulp of the value the
    formula gives in float64 (|x| <= 12 keeps erfc's conditioning, 2 z^2 <= 144, far below 2^-20 ulp).
    Torch's float32 GELU is not compared: ATen's vectorised erf documents no error bound."""
    rng = np.random.default_rng(7)
    x = np.clip(rng.standard_normal((64, 33)) * 4, -12, 12).astype(F32)
    x64 = x.astype(F64)
    if approximate == "none":
        want = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x64.ravel()]).reshape(x.shape)
    else:
        want = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    y = tc.GELU(approximate=approximate).forward(x)
    assert y.dtype == F32
    assert_within(y, want, (0.5 + 2.0 ** -20) * U32 * np.abs(want) + np.finfo(F32).smallest_subnormal, "y")
