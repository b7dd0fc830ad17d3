"""GELU in the executor: the GELU op and BatchNorm2D + GELU fused equal the plain layers.

* The kernels' own accuracy (``tinycnn.kernels.gelu``: Phi from a Chebyshev series of erfcx and an
  exp by squaring, no C library call) against mpmath: within ``GELU_REL_ERR``; and their coefficients
  are erfcx's, recomputed here with mpmath.
* float64: the op and the fused batch norm agree with the layers to the oracle bar (relative 1e-10),
  forward, input gradient and parameter gradients, in any memory layout, in training and evaluation.
* float32: within the derived bounds of tests/tolerances.py (``gelu_atol``, ``gelu_grad_atol``,
  ``batchnorm_gelu_atol``), which rest on the kernels' bound and on one assumption about the layer's
  erfc and exp (``LIBM_ULPS_F64``), checked here against mpmath.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from optional_packages import require
from tolerances import (
    LIBM_ULPS_F64,
    TORCH_F64_REL_TOL,
    assert_rel_close,
    assert_within,
    batchnorm_gelu_atol,
    gelu_atol,
    gelu_grad_atol,
)

import tinycnn as tc
from tinycnn import fast
from tinycnn.fast.ops.batchnorm import BatchNormOp
from tinycnn.fast.ops.gelu import GELUOp
from tinycnn.kernels import gelu as G

SEEDS = st.integers(0, 2**31 - 1)
NO_LANES = [p for p in fast.PASSES if p != "lanes"]
U64 = float(np.finfo(np.float64).eps)


def _grid():
    """GELU's whole float64 range where exp(-x^2/2) is a normal number (|x| <= 37.5), densest near 0."""
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(-37.5, 37.5, 1501), rng.standard_normal(500) * 3, [0.0, -0.75, 1e-8]])


def test_erfcx_coefficients_are_its_chebyshev_coefficients():
    """ERFCX_CHEB recomputed: erfcx(z(u)) at 80 Chebyshev nodes in mpmath (40 digits), z = 2 (1+u)/(1-u);
    every stored coefficient within 1 ulp of the recomputed one and the dropped ones below 1e-17."""
    mpmath = require("mpmath", "test")
    mp = mpmath.mp
    mp.dps = 40
    n = 80

    def erfcx(u):
        if u == 1:
            return mp.mpf(0)
        z = 2 * (1 + u) / (1 - u)
        return mp.exp(z * z) * mp.erfc(z)

    theta = [mp.pi * (j + mp.mpf(1) / 2) / n for j in range(n)]
    values = [erfcx(mp.cos(t)) for t in theta]
    coef = [float(2 * mp.fsum(v * mp.cos(k * t) for v, t in zip(values, theta)) / n) for k in range(40)]
    for k, (stored, exact) in enumerate(zip(G.ERFCX_CHEB, coef)):
        assert abs(stored - exact) <= U64 * abs(exact), (k, stored, exact)
    assert len(G.ERFCX_CHEB) == 28 and max(abs(c) for c in coef[28:]) < 1e-17


def test_gelu_kernel_is_within_its_bound_of_the_exact_values():
    """y and the slope from ``gelu_forward`` within GELU_REL_ERR of mpmath's values (the slope's bound
    relative to |Phi| + |x phi|, its two terms), over the whole range."""
    mpmath = require("mpmath", "test")
    mpmath.mp.dps = 40
    x = _grid()
    y, slope = G.gelu_forward(x, np.empty_like(x), np.empty_like(x))
    for xi, yi, si in zip(x, y, slope):
        v = mpmath.mpf(float(xi))
        cdf = mpmath.erfc(-v / mpmath.sqrt(2)) / 2
        xphi = v * mpmath.exp(-v * v / 2) / mpmath.sqrt(2 * mpmath.pi)
        assert abs(yi - float(v * cdf)) <= G.GELU_REL_ERR * abs(float(v * cdf)), (xi, yi)
        assert abs(si - float(cdf + xphi)) <= G.GELU_REL_ERR * float(abs(cdf) + abs(xphi)), (xi, si)


def test_the_layers_erfc_and_exp_are_within_the_assumed_ulps():
    """The assumption behind the layer side of ``gelu_atol``: Python's math.erfc and NumPy's float64 exp
    within LIBM_ULPS_F64 ulps of mpmath's value at the same float64 argument."""
    mpmath = require("mpmath", "test")
    mpmath.mp.dps = 40
    for x in _grid():
        t = -x / math.sqrt(2.0)                                        # the layer's erfc argument
        a = -0.5 * x * x                                               # its exp argument
        want = float(mpmath.erfc(mpmath.mpf(t)))
        assert abs(math.erfc(t) - want) <= LIBM_ULPS_F64 * U64 * abs(want), (x, t)
        want = float(mpmath.exp(mpmath.mpf(a)))
        assert abs(float(np.exp(np.float64(a))) - want) <= LIBM_ULPS_F64 * U64 * abs(want) + 1e-300, (x, a)


def _layouts(a):
    """The same (N, C, H, W) values as C order and as a channel-major view."""
    cm = np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    return {"C": np.ascontiguousarray(a), "channel-major": cm}


def _gelu_op(layer):
    plan = fast.compile([layer], NO_LANES)
    op = plan.graph.nodes[0].op
    assert isinstance(op, GELUOp)
    return op


@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 4), hw=st.integers(1, 5),
       layout=st.sampled_from(["C", "channel-major"]), scale=st.sampled_from([1.0, 4.0]))
def test_gelu_op_float64_equals_the_layer(seed, n, c, hw, layout, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, hw, hw)) * scale
    g = rng.standard_normal(x.shape)
    layer = tc.GELU()
    y0, dx0 = layer.forward(x), layer.backward(g)
    op = _gelu_op(tc.GELU())
    y1 = op.forward(_layouts(x)[layout])
    dx1 = op.backward(_layouts(g)[layout])
    assert y1.shape == x.shape and dx1.shape == x.shape
    assert_rel_close(y1, y0, TORCH_F64_REL_TOL, "GELU output")
    assert_rel_close(dx1, dx0, TORCH_F64_REL_TOL, "GELU input gradient")


@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 4), hw=st.integers(1, 5),
       layout=st.sampled_from(["C", "channel-major"]), scale=st.sampled_from([1.0, 4.0, 12.0]))
def test_gelu_op_float32_within_the_derived_bound(seed, n, c, hw, layout, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, hw, hw)) * scale).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    layer = tc.GELU()
    y0, dx0 = layer.forward(x), layer.backward(g)
    op = _gelu_op(tc.GELU())
    y1 = op.forward(_layouts(x)[layout])
    dx1 = op.backward(_layouts(g)[layout])
    assert y1.dtype == dx1.dtype == np.float32
    assert_within(y1, y0, gelu_atol(x, np.float32)[0], "GELU output")
    assert_within(dx1, dx0, gelu_grad_atol(x, g, np.float32), "GELU input gradient")


def test_only_the_exact_gelu_gets_the_fast_op():
    plan = fast.compile([tc.GELU(), tc.GELU(approximate="tanh")])
    assert isinstance(plan.graph.nodes[0].op, GELUOp)
    assert type(plan.graph.nodes[1].op).__name__ == "PlainOp"


def _bn(rng, c, affine, dtype):
    layer = tc.BatchNorm2D(c, affine=affine, dtype=dtype)
    if affine:
        layer.weight.data[...] = rng.uniform(0.5, 1.5, c)
        layer.bias.data[...] = rng.standard_normal(c)
    layer.running_mean[...] = rng.standard_normal(c)
    layer.running_var[...] = rng.uniform(0.5, 2, c)
    return layer


@given(seed=SEEDS, n=st.integers(1, 5), c=st.integers(1, 4), hw=st.integers(1, 6), training=st.booleans(),
       affine=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_batchnorm_gelu_fused_equals_the_two_layers(seed, n, c, hw, training, affine, dtype):
    """The fused op against BatchNorm2D then GELU on their own code: float64 to 1e-10, float32 within
    ``batchnorm_gelu_atol``; output, input gradient, weight and bias gradients, running statistics."""
    if training and n * hw * hw <= 1:
        return
    rng = np.random.default_rng(seed)
    layer = _bn(rng, c, affine, dtype)
    layer.train(training)
    x = (rng.standard_normal((n, c, hw, hw)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    running = None if training else (layer.running_mean.copy(), layer.running_var.copy())
    saved = [layer.running_mean.copy(), layer.running_var.copy()]
    layers = [layer, tc.GELU()]
    plain = fast.compile(layers, plain=True)
    y0 = np.array(plain.forward(x))
    dx0 = np.array(plain.backward(g))
    grads0 = [q.grad.copy() for q in layer.parameters()]
    after0 = [layer.running_mean.copy(), layer.running_var.copy()]
    layer.running_mean[...], layer.running_var[...] = saved
    plan = fast.compile(layers, NO_LANES)
    assert len(plan.graph.nodes) == 1 and isinstance(plan.graph.nodes[0].op, BatchNormOp)
    assert plan.graph.nodes[0].op.cfg.fuse_gelu and "GELU fused" in plan.describe()
    y1 = np.array(plan.forward(x))
    dx1 = np.array(plan.backward(g))
    grads1 = [q.grad.copy() for q in layer.parameters()]
    if dtype == np.float64:
        assert_rel_close(y1, y0, TORCH_F64_REL_TOL, "BN+GELU output")
        assert_rel_close(dx1, dx0, TORCH_F64_REL_TOL, "BN+GELU input gradient")
        for a, b in zip(grads1, grads0):
            assert_rel_close(a, b, TORCH_F64_REL_TOL, "BN+GELU parameter gradient")
        for a, b in zip([layer.running_mean, layer.running_var], after0):
            assert_rel_close(a, b, TORCH_F64_REL_TOL, "running statistics")
        return
    bound = batchnorm_gelu_atol(x, g, layer.weight.data if affine else None, layer.bias.data if affine else None,
                                layer.eps, np.float32, running=running)
    assert_within(y1, y0, bound["y"], "BN+GELU output")
    assert_within(dx1, dx0, bound["dx"], "BN+GELU input gradient")
    if affine:
        assert_within(grads1[0], grads0[0], bound["dweight"], "BN+GELU weight gradient")
        assert_within(grads1[1], grads0[1], bound["dbias"], "BN+GELU bias gradient")
