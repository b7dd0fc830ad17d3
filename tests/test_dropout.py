"""Dropout (inverted): proof of the gradient, the torch formula with the same mask, and the mask's law.

* finite differences in float64 and the adjoint identity, with the layer's rng reset before every
  forward (``before_forward``) so every evaluation uses the same mask;
* torch as oracle: torch cannot share numpy's generator, so tinycnn's mask is handed to torch's own
  formula (x * mask / (1 - p), differentiated by autograd) and to torch's dropout backward kernel
  ``aten.native_dropout_backward(grad, mask, scale)``; float64 within TORCH_F64_REL_TOL, float32
  within the elementwise bound 4 u |value|;
* the mask's statistics: keep rate within a Hoeffding bound (false-alarm chance 1e-9 per check) of
  1 - p, for tinycnn and for torch's own dropout; kept values scaled by exactly 1 / (1 - p); eval mode
  and p = 0 the identity; p = 1 all zeros, as torch.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import (
    ADJOINT_REL_TOL,
    FD_REL_TOL,
    TORCH_F64_REL_TOL,
    assert_rel_close,
    assert_within,
    hoeffding_halfwidth,
)

import tinycnn as tc
from tinycnn.gradcheck import adjoint_check, check_layer

SEEDS = st.integers(0, 2**32 - 1)
SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6))  # N, C, H, W
PROBS = st.floats(0.05, 0.95)




def _elementwise_atol(value, dtype):
    """The table's 'elementwise ops with no reduction' row: 4 u |value|."""
    return 4 * float(np.finfo(dtype).eps) * np.abs(np.asarray(value, dtype=np.float64))


def _seeded(layer, seed):
    """A before_forward that gives ``layer`` a fresh generator from ``seed``: the same mask every time."""
    def reset():
        layer.rng = np.random.default_rng(seed)
    return reset


# -- the gradient ---------------------------------------------------------------------------------

@given(shape=SHAPES, p=PROBS, seed=SEEDS)
def test_finite_differences_and_adjoint_float64(shape, p, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Dropout(p)
    reset = _seeded(layer, seed + 1)
    x = rng.standard_normal(shape)
    report = check_layer(layer, x, rng=rng, tol=FD_REL_TOL, before_forward=reset)
    assert report.ok, report.table()
    lhs, rhs, rel = adjoint_check(layer, x, rng=rng, before_forward=reset)
    # A mask that drops everything makes both sides exactly 0 (rel = 0): still a valid identity.
    assert rel < ADJOINT_REL_TOL, f"<Jv, u> = {lhs!r} but <v, J^T u> = {rhs!r} (relative {rel:.2e})"


# -- torch, with tinycnn's mask -----------------------------------------------------------------

def _torch_with_mask(torch, x, g, keep, p):
    """torch's dropout formula on the given mask: y = x * (mask / (1 - p)); grad by autograd, and by
    torch's own dropout backward kernel."""
    xt = torch.from_numpy(x).requires_grad_(True)
    noise = torch.from_numpy(keep).to(xt.dtype) / (1 - p)         # as ATen builds it: mask, then / (1 - p)
    yt = xt * noise
    yt.backward(torch.from_numpy(g))
    kernel = torch.ops.aten.native_dropout_backward(torch.from_numpy(g), torch.from_numpy(keep), 1 / (1 - p))
    return yt.detach().numpy(), xt.grad.numpy(), kernel.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=SHAPES, p=PROBS, seed=SEEDS)
def test_torch_formula_with_the_same_mask(torch, dtype, shape, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    layer = tc.Dropout(p, rng=np.random.default_rng(seed + 1))
    y = layer(x)
    dx = layer.backward(g)
    keep = np.random.default_rng(seed + 1).random(shape) < 1 - p   # the mask, drawn as documented
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(y != 0, keep & (x != 0))          # the layer used exactly that mask
    y_t, dx_t, dx_kernel = _torch_with_mask(torch, x, g, keep, p)
    if dtype == np.float64:
        for name, ours, theirs in [("y", y, y_t), ("grad x", dx, dx_t), ("grad x (aten kernel)", dx, dx_kernel)]:
            assert_rel_close(ours, theirs, TORCH_F64_REL_TOL, f"dropout {name}")
    else:
        for name, ours, theirs in [("y", y, y_t), ("grad x", dx, dx_t), ("grad x (aten kernel)", dx, dx_kernel)]:
            assert_within(ours, theirs, _elementwise_atol(theirs, dtype), f"dropout {name}")


# -- the mask's law ------------------------------------------------------------------------------

N_DRAWS = 200_000       # Hoeffding half-width at a = 1e-9: sqrt(ln(2e9) / 4e5) = 0.0073


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keep_rate_and_scale(torch, p, dtype):
    x = np.ones((8, 5, 50, 100), dtype=dtype)                       # 200 000 elements
    layer = tc.Dropout(p, rng=np.random.default_rng(int(p * 1000)))
    y = layer(x)
    kept = y != 0
    half = hoeffding_halfwidth(x.size)
    rate = kept.mean()
    assert abs(rate - (1 - p)) < half, f"keep rate {rate:.5f}, expected {1 - p} +- {half:.5f}"
    # per channel too (each 40 000 draws, its own bound): no channel is starved or favoured
    per_channel = kept.mean(axis=(0, 2, 3))
    half_c = hoeffding_halfwidth(x.size // x.shape[1])
    assert np.all(np.abs(per_channel - (1 - p)) < half_c), (per_channel, half_c)
    # kept values are exactly 1/(1-p), rounded once to the dtype; the rest exactly 0
    np.testing.assert_array_equal(np.unique(y), [0, dtype(1 / (1 - p))])
    # torch's own dropout follows the same law, with a scale at most a few roundings away
    with torch.random.fork_rng():                          # seeded, without touching the global stream
        torch.manual_seed(int(p * 1000))
        y_t = torch.nn.functional.dropout(torch.from_numpy(x), p=p, training=True).numpy()
    kept_t = y_t != 0
    assert abs(kept_t.mean() - (1 - p)) < half, f"torch keep rate {kept_t.mean():.5f}"
    assert_within(y_t[kept_t], np.full(kept_t.sum(), 1 / (1 - p)), _elementwise_atol(1 / (1 - p), dtype),
                  "torch's kept value vs 1/(1-p)")
    assert_within(y[kept], np.full(kept.sum(), 1 / (1 - p)), _elementwise_atol(1 / (1 - p), dtype),
                  "tinycnn's kept value vs 1/(1-p)")


def test_fresh_mask_every_forward_and_repeatable_with_a_seed():
    x = np.ones((4, 3, 8, 8))
    a = tc.Dropout(0.5, rng=np.random.default_rng(7))
    b = tc.Dropout(0.5, rng=np.random.default_rng(7))
    first, second = a(x), a(x)
    assert not np.array_equal(first, second)                # P(equal) = 2**-768
    np.testing.assert_array_equal(first, b(x))              # same seed, same masks
    np.testing.assert_array_equal(second, b(x))


# -- modes and edge cases ----------------------------------------------------------------------

def test_eval_mode_is_the_identity_and_draws_nothing():
    rng = np.random.default_rng(11)
    layer = tc.Dropout(0.7, rng=rng)
    layer.eval()
    state = rng.bit_generator.state
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(g), g)
    assert rng.bit_generator.state == state
    layer.train()
    assert not np.array_equal(layer(x), x)


def test_sequential_train_and_eval_switch_the_layer():
    rng = np.random.default_rng(5)
    model = tc.Sequential(tc.Flatten(), tc.Dropout(0.5, rng=rng), tc.Dense(12, 2, dtype=np.float64, rng=rng))
    x = np.random.default_rng(6).standard_normal((3, 3, 2, 2))
    model.eval()
    assert model[1].training is False
    np.testing.assert_array_equal(model(x), model(x))       # deterministic: no dropout
    model.train()
    assert model[1].training is True
    assert not np.array_equal(model(x), model(x))


def test_p_zero_is_the_identity_as_torch(torch):
    rng = np.random.default_rng(3)
    layer = tc.Dropout(0.0, rng=rng)
    state = rng.bit_generator.state
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5))
    g = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(g), g)
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(torch.nn.functional.dropout(torch.from_numpy(x), p=0.0).numpy(), x)


def test_p_one_gives_zeros_as_torch(torch):
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 0, 1] = np.inf
    layer = tc.Dropout(1.0)
    y = layer(x)
    y_t = torch.nn.functional.dropout(torch.from_numpy(x), p=1.0, training=True).numpy()
    np.testing.assert_array_equal(y, y_t)                   # zeros, and NaN where x is NaN or inf
    assert np.all(y.ravel()[2:] == 0) and np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 0, 1])
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(g), np.zeros_like(g))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("inf"), float("nan")])
def test_p_outside_zero_one_is_rejected(torch, p):
    with pytest.raises(ValueError, match=rf"Dropout: p .* must lie in \[0, 1\], got p = {p}"):
        tc.Dropout(p)
    if not np.isnan(p):                                     # torch rejects these too (NaN slips through
        with pytest.raises(ValueError):                     # torch's p < 0 or p > 1 test; not ours)
            torch.nn.Dropout(p)


def test_other_bad_arguments():
    with pytest.raises(TypeError, match=r"Dropout: p must be a number in \[0, 1\], got '0.5'"):
        tc.Dropout("0.5")
    with pytest.raises(TypeError, match=r"Dropout: rng must be a np.random.Generator.*got int"):
        tc.Dropout(0.5, rng=42)
    layer = tc.Dropout(0.5)
    with pytest.raises(TypeError, match=r"Dropout\(p=0.5\): input dtype is int64"):
        layer(np.arange(4))
    with pytest.raises(RuntimeError, match=r"Dropout\(p=0.5\): backward\(\) called before forward\(\)"):
        layer.backward(np.ones(4))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\): backward got grad_y of shape \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    assert "Dropout" in tc.__all__
