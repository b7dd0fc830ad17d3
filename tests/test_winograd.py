"""Winograd F(2x2, 3x3): the kernels, the executor's path and the pass that chooses it.

* kernels vs their NumPy references (tinycnn/kernels/winograd.py), within the transforms' own
  rounding bounds; the serial twins equal the parallel kernels bit for bit.
* the executor's Conv2D on the Winograd path in float32 against the float64 plain layer, within the
  derived bound gamma_{C+11} S_W (tests/tolerances.py, ``winograd_atol``) for the output and the
  input gradient, and 2 gamma_m S for the weight and bias gradients (im2col + one product).
* the executor with the winograd pass equals the plain layers on random float64 networks (odd and
  even map sizes, padding 0 and 1, bias or not, frozen weights, residual blocks, lanes), at the
  float64 bar of tests/test_fast_equals_plain.py (1e-10 max-norm relative); the derived float64
  bound of each drawn layer is checked to sit below that bar.
* finite differences of the executor's Winograd path in float64.
* the pass's rule, and its switch.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fast_equals_plain import compare, lanes_everywhere  # noqa: F401 - a fixture used below
from tolerances import (
    FD_REL_TOL,
    TORCH_F64_REL_TOL,
    assert_close_reduction,
    assert_within,
    gamma,
    winograd_abs_input,
    winograd_abs_output,
    winograd_atol,
)

import tinycnn as tc
from tinycnn import fast
from tinycnn import kernels as K
from tinycnn.fast.ops import winograd as wino
from tinycnn.fast.ops.conv import ConvOpCache
from tinycnn.fast.ops.winograd import WinogradCache
from tinycnn.fast.passes import winograd as wpass
from tinycnn.gradcheck import check_layer
from tinycnn.kernels.winograd import G


@pytest.fixture(autouse=True)
def _winograd_on():
    """The pass is off by default (slower than im2col on the project's machine): these tests turn it on."""
    old = wpass.set_enabled(True)
    yield
    wpass.set_enabled(old)

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)
NO_LANES = [p for p in fast.PASSES if p != "lanes"]
# the network properties draw fewer examples than the profile's (each runs a small network twice);
# TINYCNN_PROFILE=thorough gives them ten times as many
NET_EXAMPLES = 250 if os.environ.get("TINYCNN_PROFILE") == "thorough" else 25
LANE_EXAMPLES = NET_EXAMPLES * 3 // 5


# ---------------------------------------------------------------------------------------------
# Kernels vs references
# ---------------------------------------------------------------------------------------------

@st.composite
def input_geometry(draw):
    """(C, H, W, N, ph, pw) with an output of at least one pixel (padding up to 2: the input
    gradient's 2 - p)."""
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, 3 - 2 * ph), 9))
    w = draw(st.integers(max(1, 3 - 2 * pw), 9))
    return draw(st.integers(1, 4)), h, w, draw(st.integers(1, 4)), ph, pw


@given(geo=input_geometry(), dtype=DTYPES, seed=SEEDS)
def test_input_transform_matches_reference(geo, dtype, seed):
    """Each V entry is a signed sum of 4 pixels: the kernel rounds twice, the reference (one einsum
    over the 16 taps, zeros exact) at most 3 times, so they differ by <= 2 gamma_3 |B^T||d||B|."""
    c, h, w, n, ph, pw = geo
    xs = np.random.default_rng(seed).standard_normal((c, h, w, n)).astype(dtype)
    th, tw = (h + 2 * ph - 1) // 2, (w + 2 * pw - 1) // 2
    ref = K.winograd_input_reference(xs, ph, pw, np.empty((16, c, th * tw * n), dtype))
    got = np.full((16, c, th * tw * n), np.nan, dtype)                 # every element must be written
    K.winograd_input(xs, ph, pw, got)
    assert_close_reduction(got, ref, 3, dtype, winograd_abs_input(xs, ph, pw), "winograd_input")
    serial = K.winograd_input.serial(xs, ph, pw, np.empty_like(got))
    assert np.array_equal(serial, got), "winograd_input: serial twin differs from the parallel kernel"


@given(o=st.integers(1, 4), oh=st.integers(1, 9), ow=st.integers(1, 9), n=st.integers(1, 4),
       bias=st.booleans(), dtype=DTYPES, seed=SEEDS)
def test_output_transform_matches_reference(o, oh, ow, n, bias, dtype, seed):
    """Each output is a signed sum of 9 entries of m plus the bias: the kernel rounds 5 times, the
    reference at most 9: <= 2 gamma_9 (|A^T||m||A| + |b|)."""
    rng = np.random.default_rng(seed)
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    m = rng.standard_normal((16, o, th * tw * n)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else np.empty(0, dtype)
    ref = K.winograd_output_reference(m, b, oh, ow, n, np.empty((o, oh, ow, n), dtype))
    got = np.full((o, oh, ow, n), np.nan, dtype)
    K.winograd_output(m, b, oh, ow, n, got)
    assert_close_reduction(got, ref, 9, dtype, winograd_abs_output(m, b, oh, ow), "winograd_output")
    serial = K.winograd_output.serial(m, b, oh, ow, n, np.empty_like(got))
    assert np.array_equal(serial, got), "winograd_output: serial twin differs from the parallel kernel"


@given(o=st.integers(1, 4), c=st.integers(1, 4), dtype=DTYPES, seed=SEEDS)
def test_filter_transform_matches_reference(o, c, dtype, seed):
    """Both form G g G^T in float64, the kernel in two stages of sums of at most 3 terms (gamma_4), the
    reference in one einsum over the 9 taps (gamma_8), and each rounds once to the dtype (u at most):
    <= (gamma_4(float64) + gamma_8(float64) + 2 u) |G||g||G|^T."""
    g = np.random.default_rng(seed).standard_normal((o, c, 3, 3)).astype(dtype)
    ref = K.winograd_filter_reference(g)
    got = K.winograd_filter(g)
    assert got.shape == (16, o, c) and got.dtype == dtype and got.flags.c_contiguous
    ag = np.abs(G)
    s = np.einsum("ak,ockl,bl->aboc", ag, np.abs(g.astype(np.float64)), ag).reshape(16, o, c)
    bound = (gamma(4, np.float64) + gamma(8, np.float64) + 2 * float(np.finfo(dtype).eps)) * s
    assert_within(got, ref, bound, "winograd_filter")


@given(k=st.integers(1, 16), m=st.integers(1, 20), c=st.integers(1, 40), p=st.integers(1, 300), dtype=DTYPES,
       seed=SEEDS, threads=st.sampled_from([1, 2]), big=st.booleans())
def test_batched_split_matmul_matches_reference(k, m, c, p, dtype, seed, threads, big):
    """The K products dealt to the threads (MIN_WORK lowered so that small batches split too) agree
    with np.matmul within 2 gamma_C S, and every element of ``out`` is written."""
    import numba

    from tinycnn.kernels import gemm as mm
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m, c)).astype(dtype)
    b = rng.standard_normal((k, c, p)).astype(dtype)
    out = np.full((k, m, p), np.nan, dtype)
    old, old_min = numba.get_num_threads(), mm.MIN_WORK
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    mm.MIN_WORK = 0 if big else old_min
    try:
        got = K.matmul_batched(a, b, out)
    finally:
        numba.set_num_threads(old)
        mm.MIN_WORK = old_min
    assert got is out
    expected = K.matmul_batched_reference(a, b, np.empty((k, m, p), dtype))
    abs_sum = np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    assert_close_reduction(out, expected, c, dtype, abs_sum, "matmul_batched")


# ---------------------------------------------------------------------------------------------
# The op in float32 vs the float64 plain layer, within the derived bound
# ---------------------------------------------------------------------------------------------

def _winograd_op(layer):
    """The executor's op for ``layer`` (every pass but lanes) with the Winograd path forced on, so that
    small channel counts (fast examples) take it too; the pass's own rule is tested below."""
    op = fast.compile([layer], NO_LANES).graph.nodes[0].op
    op.cfg.winograd = True
    return op


@contextmanager
def any_output_size():
    """Every output size takes the Winograd path (down to 1 x 1: one partial tile)."""
    old, wino.MIN_OUTPUT_SIZE = wino.MIN_OUTPUT_SIZE, 1
    try:
        yield
    finally:
        wino.MIN_OUTPUT_SIZE = old


def _float64_twin(layer):
    twin = tc.Conv2D(layer.in_channels, layer.out_channels, 3, padding=layer.padding, bias=layer.bias is not None,
                     dtype=np.float64)
    twin.weight.data[...] = layer.weight.data
    if layer.bias is not None:
        twin.bias.data[...] = layer.bias.data
    return twin


def _direct_abs(layer, x, g):
    """S of the direct convolution (float64 layer on |x|, |w|, |b|) for y and dx, and the weight and
    bias gradients' S."""
    ab = _float64_twin(layer)
    ab.weight.data[...] = np.abs(ab.weight.data)
    if ab.bias is not None:
        ab.bias.data[...] = np.abs(ab.bias.data)
    s_y = ab.forward(np.abs(x).astype(np.float64))
    s_dx = ab.backward(np.abs(g).astype(np.float64))
    return s_y, s_dx, ab.weight.grad, None if ab.bias is None else ab.bias.grad


@given(seed=SEEDS, n=st.integers(1, 4), c=st.integers(1, 6), o=st.integers(1, 6), h=st.integers(1, 11),
       w=st.integers(1, 11), p=st.integers(0, 1), bias=st.booleans())
def test_winograd_op_float32_within_the_derived_bound(seed, n, c, o, h, w, p, bias):
    assume(h + 2 * p >= 3 and w + 2 * p >= 3)                                   # an output at all
    rng = np.random.default_rng(seed)
    layer = tc.Conv2D(c, o, 3, padding=p, bias=bias, rng=rng)                    # float32
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    op = _winograd_op(layer)
    with any_output_size():
        y1 = op.forward(x)
        assert isinstance(op.cache, WinogradCache)
        g = rng.standard_normal(y1.shape).astype(np.float32)
        dx1 = op.backward(g)
    exact = _float64_twin(layer)
    y0 = exact.forward(x.astype(np.float64))
    dx0 = exact.backward(g.astype(np.float64))
    s_y, s_dx, s_dw, s_db = _direct_abs(layer, x, g)
    b = None if layer.bias is None else layer.bias.data
    # the Winograd side's bound plus the float64 plain layer's own rounding
    bound_y = winograd_atol(x, layer.weight.data, b, p, p, np.float32) + gamma(9 * c + 1, np.float64) * s_y
    assert_within(y1, y0, bound_y + np.finfo(np.float32).tiny, "Winograd output")
    flipped = layer.weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)          # (C, O, 3, 3)
    bound_dx = winograd_atol(g, flipped, None, 2 - p, 2 - p, np.float32) + gamma(9 * o, np.float64) * s_dx
    assert_within(dx1, dx0, bound_dx + np.finfo(np.float32).tiny, "Winograd input gradient")
    m = n * y0.shape[2] * y0.shape[3]
    assert_close_reduction(op.grads["weight"], exact.weight.grad, m, np.float32, s_dw, "weight grad")
    if bias:
        assert_close_reduction(op.grads["bias"], exact.bias.grad, m, np.float32, s_db, "bias grad")


@given(seed=SEEDS, n=st.integers(1, 3), c=st.integers(16, 20), h=st.integers(6, 9), p=st.integers(0, 1))
def test_winograd_bound_in_float64_sits_below_the_executor_bar(seed, n, c, h, p):
    """The float64 networks below are compared at 1e-10 max-norm relative: the derived float64 bound
    of such a layer (16-20 channels) is far below that, and the op is within it."""
    rng = np.random.default_rng(seed)
    layer = tc.Conv2D(c, c, 3, padding=p, dtype=np.float64, rng=rng)
    x = rng.standard_normal((n, c, h, h + 1))
    op = _winograd_op(layer)
    y1 = op.forward(x)
    y0 = fast.compile([layer], plain=True).forward(x)
    bound = winograd_atol(x, layer.weight.data, layer.bias.data, p, p, np.float64)
    s_y = _direct_abs(layer, x, np.zeros_like(y0))[0]
    assert bound.max() < TORCH_F64_REL_TOL * np.abs(y0).max()
    assert_within(y1, y0, bound + gamma(9 * c + 1, np.float64) * s_y, "Winograd output, float64")


def test_small_outputs_take_im2col_and_backward_follows():
    rng = np.random.default_rng(0)
    layer = tc.Conv2D(3, 2, 3, padding=0, dtype=np.float64, rng=rng)
    op = _winograd_op(layer)
    op.forward(rng.standard_normal((2, 3, 7, 7)))           # output 5 x 5 < 6: im2col
    assert isinstance(op.cache, ConvOpCache)
    op.forward(rng.standard_normal((2, 3, 8, 9)))           # output 6 x 7: Winograd
    assert isinstance(op.cache, WinogradCache)
    assert op.backward(rng.standard_normal((2, 2, 6, 7))).shape == (2, 3, 8, 9)


# ---------------------------------------------------------------------------------------------
# The executor with the winograd pass equals the plain layers (float64)
# ---------------------------------------------------------------------------------------------

CHANNELS = st.integers(16, 19)


@st.composite
def winograd_networks(draw):
    """(layers, x, training, seed): float64 input (N, C, H, W) with C >= 16 and H, W in 6..11 (odd and
    even), then 1-3 blocks, each a 3x3 stride-1 Conv2D (padding 0 or 1, bias or not, weight frozen or
    not) followed by ReLU, or a residual block (conv, ReLU, conv; identity shortcut; ReLU after),
    then Flatten and Dense(-> 3)."""
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    n = draw(st.sampled_from([1, 2, 3, 5]))
    c, h, w = draw(CHANNELS), draw(st.integers(6, 11)), draw(st.integers(6, 11))
    x = rng.standard_normal((n, c, h, w))
    layers = []
    for kind in draw(st.lists(st.sampled_from(["conv", "conv", "residual"]), min_size=1, max_size=3)):
        if kind == "conv":
            p = draw(st.integers(0, 1))
            if h + 2 * p - 2 < 1 or w + 2 * p - 2 < 1:
                continue
            o = draw(CHANNELS)
            conv = tc.Conv2D(c, o, 3, padding=p, bias=draw(st.booleans()), dtype=np.float64, rng=rng)
            if draw(st.booleans()):
                conv.weight.requires_grad = False
            layers += [conv, tc.ReLU()]
            c, h, w = o, h + 2 * p - 2, w + 2 * p - 2
        else:
            block = tc.Sequential(tc.Conv2D(c, c, 3, padding=1, bias=draw(st.booleans()), dtype=np.float64, rng=rng),
                                  tc.ReLU(), tc.Conv2D(c, c, 3, padding=1, dtype=np.float64, rng=rng))
            layers.append(tc.Residual(block, post=tc.ReLU()))
    layers += [tc.Flatten(), tc.Dense(c * h * w, 3, dtype=np.float64, rng=rng)]
    return layers, x, draw(st.booleans()), seed


def _winograd_ran(plan) -> int:
    """How many nodes ran forward on the Winograd path (lane 0)."""
    return sum(isinstance(node.op.cache, WinogradCache) for node in plan.graph.nodes)


def _needs_winograd(layers, x) -> bool:
    """Whether the first layer is a convolution that must take the Winograd path."""
    first = layers[0]
    if type(first) is tc.Residual:
        first = first.block.layers[0]
    h, w = x.shape[2:]
    ph = first.padding_amounts[0][0] if isinstance(first, tc.Conv2D) else 0
    return isinstance(first, tc.Conv2D) and min(h, w) + 2 * ph - 2 >= 6


@settings(deadline=None, max_examples=NET_EXAMPLES)
@given(net=winograd_networks(), input_grad=st.booleans())
def test_networks_with_winograd_equal_plain_float64(net, input_grad):
    layers, x, training, seed = net
    plan = compare(layers, x, training, seed, input_grad=input_grad)
    marked = [node for node in plan.graph.nodes if node.op.cfg.winograd]
    assert len(marked) == sum(isinstance(node.layer, tc.Conv2D) for node in plan.graph.nodes), plan.describe()
    if _needs_winograd(layers, x):
        assert _winograd_ran(plan) >= 1, plan.describe()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=LANE_EXAMPLES)
@given(net=winograd_networks())
def test_networks_with_winograd_in_lanes_equal_plain_float64(lanes_everywhere, net):  # noqa: F811
    layers, x, training, seed = net
    if len(x) < 2:
        x = np.concatenate([x, x[::-1] * 0.5])                  # two images at least: two lanes
    plan = compare(layers, x, training, seed)
    assert len(plan.last.slices) == 2                            # it really ran in lanes
    if _needs_winograd(layers, x):
        assert all(_winograd_ran_lane(plan, t) >= 1 for t in range(2)), plan.describe()


def _winograd_ran_lane(plan, t) -> int:
    return sum(isinstance(op.cache, WinogradCache) for op in plan.lanes[t])


def test_frozen_winograd_layer_gets_no_weight_gradient():
    rng = np.random.default_rng(5)
    conv = tc.Conv2D(16, 16, 3, padding=1, dtype=np.float64, rng=rng)
    conv.weight.requires_grad = False
    layers = [tc.Conv2D(16, 16, 3, padding=1, dtype=np.float64, rng=rng), tc.ReLU(), conv, tc.Flatten(),
              tc.Dense(16 * 36, 2, dtype=np.float64, rng=rng)]
    plan = compare(layers, rng.standard_normal((2, 16, 6, 6)), True, 5, input_grad=False)
    op = plan.graph.nodes[2].op
    assert isinstance(op.cache, WinogradCache)
    assert "weight" not in op.grads and "bias" in op.grads


# ---------------------------------------------------------------------------------------------
# Finite differences of the executor's Winograd path (float64)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding, bias, size", [(1, True, (6, 7)), (0, False, (9, 8))])
def test_winograd_path_gradcheck_float64(padding, bias, size):
    rng = np.random.default_rng(11)
    net = tc.Sequential(tc.Conv2D(16, 16, 3, padding=padding, bias=bias, dtype=np.float64, rng=rng))
    x = rng.standard_normal((1, 16, *size))
    report = check_layer(net, x, rng=rng, tol=FD_REL_TOL)
    assert report.ok, report.table()
    assert isinstance(net._last_plan.graph.nodes[0].op.cache, WinogradCache), net._last_plan.describe()


# ---------------------------------------------------------------------------------------------
# The pass's rule and its switch
# ---------------------------------------------------------------------------------------------

def _marked(layer):
    return fast.compile([layer]).graph.nodes[0].op.cfg.winograd


def test_pass_rule():
    rng = np.random.default_rng(0)

    def conv(c=16, o=16, k=3, **kw):
        return tc.Conv2D(c, o, k, rng=rng, **kw)

    assert _marked(conv(padding=1)) and _marked(conv(padding=0)) and _marked(conv(padding=(0, 1)))
    assert _marked(conv(padding="same")) and _marked(conv(bias=False))
    assert not _marked(conv(c=15)) and not _marked(conv(o=15)) and not _marked(conv(c=3, o=64))
    assert not _marked(conv(k=5, padding=2)) and not _marked(conv(k=(3, 1)))
    assert not _marked(conv(stride=2, padding=1)) and not _marked(conv(padding=2))
    assert not _marked(conv(dilation=2, padding=2)) and not _marked(conv(groups=2, padding=1))
    assert not _marked(conv(padding=1, padding_mode="reflect"))
    assert "winograd" in fast.compile([conv(padding=1)]).describe()


def test_pass_switches_off():
    layer = tc.Conv2D(16, 16, 3, padding=1, rng=np.random.default_rng(0))
    assert not fast.compile([layer], [p for p in fast.PASSES if p != "winograd"]).graph.nodes[0].op.cfg.winograd
    old = fast.set_winograd_enabled(False)
    try:
        assert not _marked(layer) and not wpass.enabled()
    finally:
        fast.set_winograd_enabled(old)
    assert _marked(layer) == old


def test_the_pass_is_off_unless_asked_for_and_plans_then_do_not_list_it():
    import subprocess
    import sys
    code = ("import numpy as np, tinycnn as tc; from tinycnn import fast; "
            "p = fast.compile([tc.Conv2D(16, 16, 3, padding=1, rng=np.random.default_rng(0))]); "
            "print(p.graph.nodes[0].op.cfg.winograd, 'winograd' in p.passes)")
    env = {k: v for k, v in os.environ.items() if k != "TINYCNN_WINOGRAD"}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    on = subprocess.run([sys.executable, "-c", code], env={**env, "TINYCNN_WINOGRAD": "1"},
                        capture_output=True, text=True, check=True)
    assert off.stdout.split() == ["False", "False"] and on.stdout.split() == ["True", "True"]
