"""Depthwise convolution in the executor: the kernels equal their references, the op equals the layer.

* kernels (``tinycnn.kernels.depthwise``, parallel and serial variants, float32 and float64) against
  the plain NumPy references beside them: forward within 2 gamma_{KH*KW+1} S, the input gradient
  within 2 gamma_{M*KH*KW} S (tests/tolerances.py, ``assert_close_reduction``), the weight and bias
  gradients within the bound of two float64-accumulated sums (``float64_sum_atol``: one final
  rounding each, which a float32 accumulation would not meet), every output element written;
* the op (``tinycnn.fast.ops.depthwise``) against the plain Conv2D layer in float32, each tensor
  within the bound of its own reduction;
* networks with depthwise layers (multipliers, kernel sizes, strides, paddings, bias or not, frozen
  weights, inside a Residual, batch 1) through the executor against the plain plan in float64
  (relative 1e-10, ``test_fast_equals_plain.compare``), and in two lanes;
* routing: which Conv2D configurations the op takes (the rest stays on the layer's code).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_fast_equals_plain import compare, lanes_everywhere  # noqa: F401 - a fixture used below
from tolerances import assert_close_reduction, assert_within, float64_sum_atol

import tinycnn as tc
from tinycnn import _jit, fast
from tinycnn import kernels as K
from tinycnn.fast.ops import ConvOp, PlainOp, make_op
from tinycnn.fast.ops.depthwise import DepthwiseConvOp

SEEDS = st.integers(0, 2**31 - 1)
DTYPES = st.sampled_from([np.float32, np.float64])


# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------

@st.composite
def cases(draw, max_batch=None, min_channels=1):
    """A dict: n, c, mult, h, w, kh, kw, sh, sw, ph, pw, bias. Batch 1..17 (1 and odd sizes common),
    ``min_channels``-5 channels (a layer with one input channel has groups 1: ConvOp's), multiplier
    1-3, non-square kernels 1-5, stride 1-3, padding 0..K (so whole windows can lie in the padding),
    input big enough for one window plus 0-6 pixels."""
    batches = [1, 2, 3, 5, 8, 17] if max_batch is None else [b for b in (1, 2, 3, 5) if b <= max_batch]
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))
    h = draw(st.integers(max(1, kh - 2 * ph), max(1, kh - 2 * ph) + 6))
    w = draw(st.integers(max(1, kw - 2 * pw), max(1, kw - 2 * pw) + 6))
    return dict(n=draw(st.sampled_from(batches)), c=draw(st.integers(min_channels, 5)), mult=draw(st.integers(1, 3)),
                h=h, w=w, kh=kh, kw=kw, sh=draw(st.integers(1, 3)), sw=draw(st.integers(1, 3)), ph=ph, pw=pw,
                bias=draw(st.booleans()))


def _out_size(case):
    oh = (case["h"] + 2 * case["ph"] - case["kh"]) // case["sh"] + 1
    ow = (case["w"] + 2 * case["pw"] - case["kw"]) // case["sw"] + 1
    return oh, ow


# a 3x3 stride-1 and a stride-2 MobileNet layer, a 1x1 kernel whose windows lie wholly in the padding,
# and a kernel as large as the padded input (one output pixel)
EDGE = [dict(n=17, c=3, mult=1, h=6, w=5, kh=3, kw=3, sh=1, sw=1, ph=1, pw=1, bias=False),
        dict(n=2, c=2, mult=1, h=7, w=8, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, bias=True),
        dict(n=1, c=1, mult=3, h=2, w=3, kh=1, kw=1, sh=1, sw=2, ph=1, pw=1, bias=True),
        dict(n=3, c=2, mult=2, h=3, w=2, kh=5, kw=4, sh=2, sw=3, ph=1, pw=1, bias=False)]


def with_edges(test):
    for case in EDGE:
        for dtype in (np.float32, np.float64):
            test = example(case=case, dtype=dtype, seed=0)(test)
    return test


def _arrays(case, dtype, rng):
    """xs: (C, H, W, N), w: (O, KH, KW), b: (O,) or (0,), g: (O, OH, OW, N)."""
    c, o = case["c"], case["c"] * case["mult"]
    oh, ow = _out_size(case)
    xs = rng.standard_normal((c, case["h"], case["w"], case["n"])).astype(dtype)
    w = rng.standard_normal((o, case["kh"], case["kw"])).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if case["bias"] else np.empty(0, dtype)
    g = rng.standard_normal((o, oh, ow, case["n"])).astype(dtype)
    return xs, w, b, g


def _geometry(case):
    return case["sh"], case["sw"], case["ph"], case["pw"]


# ---------------------------------------------------------------------------------------------
# Kernels vs references
# ---------------------------------------------------------------------------------------------

def _variants(kernel):
    return [("parallel", kernel), ("serial", kernel.serial)]


@given(case=cases(), dtype=DTYPES, seed=SEEDS)
@with_edges
def test_depthwise_forward_matches_reference(case, dtype, seed):
    rng = np.random.default_rng(seed)
    xs, w, b, _ = _arrays(case, dtype, rng)
    oh, ow = _out_size(case)
    shape = (w.shape[0], oh, ow, case["n"])
    expected = K.depthwise_forward_reference(xs, w, b, *_geometry(case), np.empty(shape, dtype))
    f64 = np.float64
    abs_sum = K.depthwise_forward_reference(np.abs(xs).astype(f64), np.abs(w).astype(f64), np.abs(b).astype(f64),
                                            *_geometry(case), np.empty(shape, f64))
    for name, kernel in _variants(K.depthwise_forward):
        out = kernel(xs, w, b, *_geometry(case), np.full(shape, np.nan, dtype))     # every entry written
        assert out.dtype == dtype
        assert_close_reduction(out, expected, case["kh"] * case["kw"] + 1, dtype, abs_sum, f"forward ({name})")


@given(case=cases(), dtype=DTYPES, seed=SEEDS)
@with_edges
def test_depthwise_backward_input_matches_reference(case, dtype, seed):
    rng = np.random.default_rng(seed)
    xs, w, _, g = _arrays(case, dtype, rng)
    expected = K.depthwise_backward_input_reference(g, w, *_geometry(case), np.empty(xs.shape, dtype))
    abs_sum = K.depthwise_backward_input_reference(np.abs(g).astype(np.float64), np.abs(w).astype(np.float64),
                                                   *_geometry(case), np.empty(xs.shape, np.float64))
    terms = case["mult"] * case["kh"] * case["kw"]
    for name, kernel in _variants(K.depthwise_backward_input):
        dx = kernel(g, w, *_geometry(case), np.full(xs.shape, np.nan, dtype))
        assert_close_reduction(dx, expected, terms, dtype, abs_sum, f"input gradient ({name})")


@given(case=cases(), dtype=DTYPES, seed=SEEDS)
@with_edges
def test_depthwise_backward_weight_matches_reference_to_float64_accumulation(case, dtype, seed):
    """dw and db against the exact sums (float64 reference on the dtype values) within one final
    rounding plus the float64 sums' bound: what float64 accumulation promises (the module docstring)."""
    rng = np.random.default_rng(seed)
    xs, w, b, g = _arrays(case, dtype, rng)
    o = w.shape[0]
    f64 = np.float64
    nb = o if case["bias"] else 0
    exact_db = np.empty(nb, f64)
    exact = K.depthwise_backward_weight_reference(xs.astype(f64), g.astype(f64), *_geometry(case),
                                                  np.empty(w.shape, f64), exact_db)
    abs_db = np.empty(nb, f64)
    abs_sum = K.depthwise_backward_weight_reference(np.abs(xs).astype(f64), np.abs(g).astype(f64), *_geometry(case),
                                                    np.empty(w.shape, f64), abs_db)
    oh, ow = _out_size(case)
    terms = case["n"] * oh * ow
    ref_db = np.empty(nb, dtype)
    ref = K.depthwise_backward_weight_reference(xs, g, *_geometry(case), np.empty(w.shape, dtype), ref_db)
    assert_within(ref, exact, float64_sum_atol(exact, terms, dtype, abs_sum), "reference weight gradient")
    for name, kernel in _variants(K.depthwise_backward_weight):
        db = np.full(nb, np.nan, dtype)
        dw = kernel(xs, g, *_geometry(case), np.full(w.shape, np.nan, dtype), db)
        assert dw.dtype == dtype
        assert_within(dw, exact, float64_sum_atol(exact, terms, dtype, abs_sum), f"weight gradient ({name})")
        assert_within(db, exact_db, float64_sum_atol(exact_db, terms, dtype, abs_db), f"bias gradient ({name})")


def test_weight_gradient_without_bias_leaves_the_empty_bias_alone_and_batch_one_runs():
    rng = np.random.default_rng(0)
    case = dict(n=1, c=2, mult=2, h=5, w=4, kh=3, kw=2, sh=1, sw=1, ph=1, pw=0, bias=False)
    xs, w, b, g = _arrays(case, np.float32, rng)
    dw = K.depthwise_backward_weight(xs, g, *_geometry(case), np.empty(w.shape, np.float32), b)
    assert b.shape == (0,) and np.isfinite(dw).all()


# ---------------------------------------------------------------------------------------------
# The op vs the plain layer, float32
# ---------------------------------------------------------------------------------------------

def _layer(case, rng, dtype=np.float32):
    c = case["c"]
    return tc.Conv2D(c, c * case["mult"], (case["kh"], case["kw"]), stride=(case["sh"], case["sw"]),
                     padding=(case["ph"], case["pw"]), bias=case["bias"], groups=c, dtype=dtype, rng=rng)


def _op(layer):
    """The executor's op for ``layer``, every pass but lanes applied."""
    return fast.compile([layer], [p for p in fast.PASSES if p != "lanes"]).graph.nodes[0].op


@given(case=cases(max_batch=5, min_channels=2), seed=SEEDS, input_grad=st.booleans(),
       layout=st.sampled_from(["C", "cm"]))
def test_depthwise_op_float32_within_the_reduction_bound(case, seed, input_grad, layout):
    rng = np.random.default_rng(seed)
    layer = _layer(case, rng)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    y0 = layer.forward(x)
    g = rng.standard_normal(y0.shape).astype(np.float32)
    dx0 = layer.backward(g)
    op = _op(layer)
    assert type(op) is DepthwiseConvOp and op.cfg.channel_major
    if layout == "cm":                                  # what a fast op before it hands on
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    y1 = op.forward(x)
    dx1 = op.backward(g, input_grad)
    # S: the same computation on |x|, |w|, |b|, |g| in float64
    ab = _layer(case, rng, np.float64)
    ab.weight.data[...] = np.abs(layer.weight.data)
    if case["bias"]:
        ab.bias.data[...] = np.abs(layer.bias.data)
    s_y = ab.forward(np.abs(x).astype(np.float64))
    s_dx = ab.backward(np.abs(g).astype(np.float64))
    taps = case["kh"] * case["kw"]
    m = case["n"] * y0.shape[2] * y0.shape[3]
    assert_close_reduction(y1, y0, taps + 1, np.float32, s_y, "depthwise output")
    if input_grad:
        assert_close_reduction(dx1, dx0, case["mult"] * taps, np.float32, s_dx, "depthwise input grad")
    else:
        assert dx1 is None
    assert op.grads["weight"].shape == layer.weight.data.shape
    assert_close_reduction(op.grads["weight"], layer.weight.grad, m, np.float32, ab.weight.grad,
                           "depthwise weight grad")
    if case["bias"]:
        assert_close_reduction(op.grads["bias"], layer.bias.grad, m, np.float32, ab.bias.grad, "depthwise bias grad")
    else:
        assert "bias" not in op.grads


@given(case=cases(max_batch=5, min_channels=2), seed=SEEDS)
def test_depthwise_op_with_a_frozen_weight_computes_no_weight_gradient(case, seed):
    rng = np.random.default_rng(seed)
    layer = _layer(case, rng)
    layer.weight.requires_grad = False
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    y0 = layer.forward(x)
    g = rng.standard_normal(y0.shape).astype(np.float32)
    layer.backward(g)
    op = _op(layer)
    op.forward(x)
    op.backward(g)
    assert "weight" not in op.grads
    if case["bias"]:
        m = case["n"] * y0.shape[2] * y0.shape[3]
        abs_db = np.abs(g).astype(np.float64).sum(axis=(0, 2, 3))
        assert_close_reduction(op.grads["bias"], layer.bias.grad, m, np.float32, abs_db, "bias grad (frozen weight)")
    else:
        assert op.grads == {}


# ---------------------------------------------------------------------------------------------
# Networks: executor vs plain plan, float64
# ---------------------------------------------------------------------------------------------

@st.composite
def depthwise_networks(draw, residual=None):
    """(layers, x, training, seed): a stem conv, 1-2 depthwise-separable blocks (depthwise conv with a
    random multiplier, kernel, stride, padding and bias, maybe frozen; BatchNorm2D; ReLU; pointwise
    conv), some inside a Residual, then Flatten and Dense; float64, batch 1-5."""
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    dt = np.float64
    n = draw(st.sampled_from([1, 2, 3, 5]))
    c = draw(st.integers(2, 3))                        # (one channel would make groups 1: ConvOp's)
    x = rng.standard_normal((n, 2, 7, 6))

    def bn(ch):
        layer = tc.BatchNorm2D(ch, dtype=dt)
        layer.weight.data[...] = rng.uniform(0.5, 1.5, ch)
        layer.bias.data[...] = rng.standard_normal(ch)
        return layer

    def depthwise(ch, keep_size):
        k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        if keep_size:                                  # a residual branch must keep (C, H, W)
            if k[0] % 2 == 0 or k[1] % 2 == 0:
                k = (3, 3)
            stride, pad, mult = (1, 1), (k[0] // 2, k[1] // 2), 1
        else:
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            pad = (draw(st.integers(0, k[0])), draw(st.integers(0, k[1])))
            mult = draw(st.integers(1, 3))
        layer = tc.Conv2D(ch, ch * mult, k, stride=stride, padding=pad, bias=draw(st.booleans()), groups=ch,
                          dtype=dt, rng=rng)
        if draw(st.booleans()):
            layer.weight.requires_grad = False
        return layer

    layers = [tc.Conv2D(2, c, 3, padding=1, dtype=dt, rng=rng)]
    shape = (c, 7, 6)
    for _ in range(draw(st.integers(1, 2))):
        ch = shape[0]
        in_residual = draw(st.booleans()) if residual is None else residual
        dw = depthwise(ch, keep_size=in_residual)
        try:
            dw_shape = dw.output_shape(shape)
        except ValueError:
            continue                                   # does not fit: leave it out
        co = ch if in_residual else draw(st.integers(2, 3))
        block = [dw, bn(dw.out_channels), tc.ReLU(), tc.Conv2D(dw.out_channels, co, 1, bias=False, dtype=dt, rng=rng)]
        if in_residual:
            layers.append(tc.Residual(tc.Sequential(*block), None, post=tc.ReLU() if draw(st.booleans()) else None))
        else:
            layers += block
        shape = (co, *dw_shape[1:])
    layers += [tc.Flatten(), tc.Dense(int(np.prod(shape)), 3, dtype=dt, rng=rng)]
    return layers, x, draw(st.booleans()), seed


def _depthwise_ops(plan):
    return [node.op for node in plan.graph.nodes if node.kind == "layer" and type(node.layer) is tc.Conv2D
            and node.layer.groups > 1]


@given(net=depthwise_networks(), input_grad=st.booleans())
def test_networks_with_depthwise_layers_fast_equal_plain_float64(net, input_grad):
    plan = compare(*net, input_grad=input_grad)
    ops = _depthwise_ops(plan)
    assert ops and all(type(op) is DepthwiseConvOp for op in ops), plan.describe()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=depthwise_networks(residual=True))
def test_depthwise_inside_a_residual_in_lanes_equals_plain_float64(lanes_everywhere, net):  # noqa: F811
    layers, x, training, seed = net
    plan = compare(layers, x, training, seed)
    assert _depthwise_ops(plan) and all(type(op) is DepthwiseConvOp for op in _depthwise_ops(plan))
    assert "add" in [node.kind for node in plan.graph.nodes]
    if len(x) >= 2:
        assert len(plan.last.slices) == 2                  # it really ran in two lanes


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(net=depthwise_networks(residual=False))
def test_depthwise_chains_in_lanes_equal_plain_float64(lanes_everywhere, net):  # noqa: F811
    layers, x, training, seed = net
    plan = compare(layers, x, training, seed)
    if len(x) >= 2:
        assert len(plan.last.slices) == 2


def test_depthwise_first_layer_gets_only_its_weight_gradient_in_training():
    """The prune pass asks the first layer for no input gradient: the op returns None and still
    forms dW and db, equal to the plain layer's (float64)."""
    rng = np.random.default_rng(7)
    dt = np.float64
    layers = [tc.Conv2D(2, 4, 3, padding=1, groups=2, dtype=dt, rng=rng), tc.ReLU(), tc.Flatten(),
              tc.Dense(4 * 5 * 5, 2, dtype=dt, rng=rng)]
    plan = compare(layers, rng.standard_normal((3, 2, 5, 5)), True, 3, input_grad=False)
    assert type(plan.graph.nodes[0].op) is DepthwiseConvOp
    assert "no input gradient in training" in plan.graph.nodes[0].notes


# ---------------------------------------------------------------------------------------------
# Routing and the passes' notes
# ---------------------------------------------------------------------------------------------

class _Node:
    kind = "layer"

    def __init__(self, layer):
        self.layer = layer


@pytest.mark.parametrize("layer, op", [
    (tc.Conv2D(2, 2, 3, groups=2), DepthwiseConvOp),
    (tc.Conv2D(3, 6, (3, 5), stride=2, padding=(1, 2), groups=3, bias=False), DepthwiseConvOp),   # multiplier 2
    (tc.Conv2D(2, 2, (3, 3), padding="same", groups=2), DepthwiseConvOp),      # symmetric: 1 before, 1 after
    (tc.Conv2D(1, 3, 3, groups=1), ConvOp),                                   # one channel: groups 1, ConvOp's
    (tc.Conv2D(4, 4, 3, groups=2), PlainOp),                                  # grouped, not depthwise
    (tc.Conv2D(2, 2, 3, groups=2, dilation=2), PlainOp),
    (tc.Conv2D(2, 2, (3, 2), padding="same", groups=2), PlainOp),             # even width: 0 before, 1 after
    (tc.Conv2D(2, 2, 3, padding=1, groups=2, padding_mode="reflect"), PlainOp),
])
def test_make_op_takes_depthwise_configurations_only(layer, op):
    assert type(make_op(_Node(layer))) is op


def test_a_conv2d_subclass_keeps_its_own_code():
    class MyConv(tc.Conv2D):
        pass

    assert type(make_op(_Node(MyConv(2, 2, 3, groups=2)))) is PlainOp


def test_mobilenet_runs_every_convolution_on_a_fast_op():
    model = tc.zoo.mobilenet((3, 16, 16), 10, np.random.default_rng(0), width=2)
    plan = fast.compile(model)
    convs = [node for node in plan.graph.nodes if type(node.layer) is tc.Conv2D]
    depthwise = [node for node in convs if node.layer.groups > 1]
    assert len(depthwise) == 7 and all(type(node.op) is DepthwiseConvOp for node in depthwise)
    assert all(type(node.op) is ConvOp for node in convs if node.layer.groups == 1)
    assert all("channel-major" in node.notes for node in depthwise)


def test_depthwise_bias_is_not_described_as_inside_a_product():
    rng = np.random.default_rng(1)
    plan = fast.compile([tc.Conv2D(2, 2, 3, groups=2, rng=rng), tc.Conv2D(2, 2, 3, rng=rng)])
    notes = [node.notes for node in plan.graph.nodes]
    assert "bias in the product" not in notes[0] and "bias in the product" in notes[1]


class _Recording:
    """Stands in for a parallel kernel: counts calls of the parallel variant and of its serial twin. A
    parallel call inside a lane is counted and run serially (run in parallel from two lanes at once,
    Numba's workqueue layer would end the process)."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, {"parallel": 0, "parallel in a lane": 0, "serial": 0}

    def __call__(self, *args):
        if _jit.serial_here():
            self.calls["parallel in a lane"] += 1
            return self.kernel.serial(*args)
        self.calls["parallel"] += 1
        return self.kernel(*args)

    def serial(self, *args):
        self.calls["serial"] += 1
        return self.kernel.serial(*args)


def test_lanes_launch_only_the_serial_kernels(lanes_everywhere, monkeypatch):  # noqa: F811
    """Two lanes run the op at once: each must run the serial twins (Numba's workqueue layer refuses
    parallel kernels launched from two threads at once); the uncut batch may start threads."""
    names = ("depthwise_forward", "depthwise_backward_input", "depthwise_backward_weight")
    recorders = {name: _Recording(getattr(K, name)) for name in names}
    for name, rec in recorders.items():
        monkeypatch.setattr(K, name, rec)
    rng = np.random.default_rng(5)
    dt = np.float64
    layers = [tc.Conv2D(2, 2, 3, padding=1, groups=2, dtype=dt, rng=rng),
              tc.Conv2D(2, 4, 3, padding=1, groups=2, dtype=dt, rng=rng), tc.ReLU(), tc.Flatten(),
              tc.Dense(4 * 5 * 5, 2, dtype=dt, rng=rng)]
    plan = compare(layers, rng.standard_normal((4, 2, 5, 5)), True, 3)
    assert len(plan.last.slices) == 2
    for name, rec in recorders.items():
        assert rec.calls["parallel in a lane"] == 0, (name, rec.calls)
    assert all(recorders[name].calls["serial"] > 0 for name in names)
