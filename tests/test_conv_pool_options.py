"""Conv2D's groups, dilation, padding ('same', 'valid', pairs) and unbatched input; MaxPool2D's
dilation and ceil_mode; AvgPool2D's ceil_mode, count_include_pad and divisor_override.

Proof, over configurations drawn by hypothesis (groups with 1-2 channels per group, depthwise
included; dilation 1-3; kernels 1-4 on each axis, odd and even, with 'same'; ceil_mode windows that
run past the padding and ones torch drops because they would start in the right padding;
count_include_pad x ceil_mode; divisor_override):

* kernels: each extended kernel against its plain reference (im2col and max pooling exactly, argmax
  too; col2im and average pooling within 2 gamma_n S), col2im the adjoint of im2col;
* float64: central finite differences and the adjoint test (tinycnn.gradcheck), and torch.nn.functional
  as the oracle for the forward and every gradient, max-norm relative 1e-10;
* float32: the float32 layer against torch in float64 on the same float32 values, within
  2 gamma_n S (tolerances.py), n the longest sum (below), S the same computation on |operands|;
  max pooling's values and winners bitwise equal to torch's float32 ones.

Sums: conv forward n = (C/G)*KH*KW + 1 (the window's products and the bias); input gradient
n = (O/G)*KH*KW (every output channel of the group and tap that read the pixel); weight gradient and
bias n = N*OH*OW. Average pooling n = KH*KW + 1 (the sum and the division) both ways; max-pool backward
n = KH*KW (a pixel is the winner of at most one window per tap).
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from tolerances import (
    ADJOINT_REL_TOL,
    FD_REL_TOL,
    TORCH_F64_REL_TOL,
    assert_close_reduction,
    assert_rel_close,
    reduction_atol,
)

import tinycnn as tc
from tinycnn import fast
from tinycnn import kernels as K
from tinycnn.fast.ops import AvgPoolOp, ConvOp, MaxPoolOp, PlainOp, make_op
from tinycnn.fast.ops.depthwise import DepthwiseConvOp
from tinycnn.gradcheck import adjoint_check, check_layer, distinct_values

F32, F64 = np.float32, np.float64
SEEDS = st.integers(0, 2**32 - 1)


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Tiny arrays, many calls (finite differences): one thread (same results, see test_gradients.py)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------

def same_amounts(k, d):
    """torch's 'same' rule, written out independently of the layer: total d*(k-1), the odd pixel after."""
    total = d * (k - 1)
    return total // 2, total - total // 2


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (1, 1) if mode == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if mode == "int":
        padding = draw(st.integers(0, 3))
        amounts = ((padding, padding), (padding, padding))
    elif mode == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        amounts = ((padding[0],) * 2, (padding[1],) * 2)
    elif mode == "same":
        padding, amounts = "same", (same_amounts(k[0], d[0]), same_amounts(k[1], d[1]))
    else:
        padding, amounts = "valid", ((0, 0), (0, 0))
    size = []
    for kk, dd, (a, b) in zip(k, d, amounts):
        least = max(1, dd * (kk - 1) + 1 - a - b)          # the smallest input the dilated kernel fits
        size.append(draw(st.integers(least, least + 4)))
    return dict(in_channels=groups * cg, out_channels=groups * og, kernel_size=k, stride=stride, padding=padding,
                dilation=d, groups=groups, bias=draw(st.booleans()), n=draw(st.integers(1, 2)),
                hw=tuple(size), unbatched=draw(st.booleans()), amounts=amounts)


def conv_layer(cfg, dtype, rng):
    return tc.Conv2D(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], stride=cfg["stride"],
                     padding=cfg["padding"], bias=cfg["bias"], dilation=cfg["dilation"], groups=cfg["groups"],
                     dtype=dtype, rng=rng)


def conv_input(cfg, rng):
    shape = (cfg["in_channels"], *cfg["hw"]) if cfg["unbatched"] else (cfg["n"], cfg["in_channels"], *cfg["hw"])
    return rng.standard_normal(shape)


@st.composite
def pool_configs(draw, kind):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if kind == "max" else (1, 1)
    ceil = draw(st.booleans())
    size = []
    for kk, ss, pp, dd in zip(k, s, p, d):
        # ceil mode accepts a span down to -(stride - 1) (torch: the division rounds up to 0 windows + 1)
        least = max(1, dd * (kk - 1) + 1 - 2 * pp - (ss - 1 if ceil else 0))
        size.append(draw(st.integers(least, least + 5)))
    cfg = dict(kind=kind, kernel_size=k, stride=s, padding=p, ceil_mode=ceil, n=draw(st.integers(1, 2)),
               c=draw(st.integers(1, 3)), hw=tuple(size), unbatched=draw(st.booleans()))
    if kind == "max":
        cfg["dilation"] = d
    else:
        cfg["count_include_pad"] = draw(st.booleans())
        cfg["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 7)))
    return cfg


def pool_layer(cfg):
    common = dict(stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"])
    if cfg["kind"] == "max":
        return tc.MaxPool2D(cfg["kernel_size"], dilation=cfg["dilation"], **common)
    return tc.AvgPool2D(cfg["kernel_size"], count_include_pad=cfg["count_include_pad"],
                        divisor_override=cfg["divisor_override"], **common)


def pool_shape(cfg):
    return (cfg["c"], *cfg["hw"]) if cfg["unbatched"] else (cfg["n"], cfg["c"], *cfg["hw"])


def torch_out_size(n, k, s, p, d, ceil):
    """torch's pooling output length (aten pooling_output_shape), restated here for the reach tests."""
    out = -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1 if ceil else (n + 2 * p - d * (k - 1) - 1) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def drops_a_window(cfg):
    """ceil_mode where rounding up alone would add a window starting in the right padding (torch drops it)."""
    d = cfg.get("dilation", (1, 1))
    for axis in (0, 1):
        n, k, s, p = cfg["hw"][axis], cfg["kernel_size"][axis], cfg["stride"][axis], cfg["padding"][axis]
        naive = -(-(n + 2 * p - d[axis] * (k - 1) - 1) // s) + 1
        if cfg["ceil_mode"] and (naive - 1) * s >= n + p:
            return True
    return False


def runs_past_padding(cfg):
    """A window (kept by torch's rule) that reaches past the right padding: only ceil_mode makes one."""
    d = cfg.get("dilation", (1, 1))
    for axis in (0, 1):
        n, k, s, p = cfg["hw"][axis], cfg["kernel_size"][axis], cfg["stride"][axis], cfg["padding"][axis]
        out = torch_out_size(n, k, s, p, d[axis], cfg["ceil_mode"])
        if (out - 1) * s - p + d[axis] * (k - 1) + 1 > n + p:
            return True
    return False


# ----------------------------------------------------------------------------------------------
# The strategies reach the hard cases (a test of the test data)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, condition", [
    ("depthwise, several groups", lambda c: c["groups"] == c["in_channels"] > 1),
    ("groups with several channels each", lambda c: c["groups"] > 1 and c["in_channels"] > c["groups"]),
    ("'same' with an even kernel (asymmetric padding)",
     lambda c: c["padding"] == "same" and any(a != b for a, b in c["amounts"])),
    ("'same' with an odd dilated kernel", lambda c: c["padding"] == "same" and c["kernel_size"][0] % 2 == 1
     and c["kernel_size"][0] > 1 and c["dilation"][0] > 1),
    ("dilation with stride and padding", lambda c: c["dilation"][0] > 1 and c["stride"][0] > 1
     and isinstance(c["padding"], (int, tuple)) and c["amounts"][0][0] > 0),
    ("unbatched grouped input", lambda c: c["unbatched"] and c["groups"] > 1),
])
def test_conv_strategy_reaches(name, condition):
    assert condition(find(conv_configs(), condition)), name


@pytest.mark.parametrize("kind, name, condition", [
    ("max", "ceil_mode drops a window that would start in the right padding", drops_a_window),
    ("avg", "ceil_mode drops a window that would start in the right padding", drops_a_window),
    ("max", "a ceil_mode window running past the padding", runs_past_padding),
    ("avg", "count_include_pad with a window running past the padding",
     lambda c: c["count_include_pad"] and c["divisor_override"] is None and runs_past_padding(c)),
    ("avg", "count_include_pad=False, ceil_mode and padding",
     lambda c: not c["count_include_pad"] and c["ceil_mode"] and max(c["padding"]) > 0),
    ("avg", "divisor_override with ceil_mode", lambda c: c["divisor_override"] is not None and c["ceil_mode"]),
    ("max", "dilation with padding and ceil_mode", lambda c: max(c["dilation"]) > 1 and max(c["padding"]) > 0
     and c["ceil_mode"]),
])
def test_pool_strategy_reaches(kind, name, condition):
    assert condition(find(pool_configs(kind), condition)), name


# ----------------------------------------------------------------------------------------------
# Kernels with the new parameters against their references
# ----------------------------------------------------------------------------------------------

def window_args(cfg):
    """im2col's arguments for a conv config: kh, kw, sh, sw, pt, pl, dh, dw, pb, pr."""
    (kh, kw), (sh, sw), (dh, dw) = cfg["kernel_size"], cfg["stride"], cfg["dilation"]
    (pt, pb), (pl, pr) = cfg["amounts"]
    return kh, kw, sh, sw, pt, pl, dh, dw, pb, pr


@given(cfg=conv_configs(), dtype=st.sampled_from([F32, F64]), seed=SEEDS)
def test_im2col_col2im_with_dilation_and_asymmetric_padding(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["in_channels"], *cfg["hw"])).astype(dtype)
    args = window_args(cfg)
    kh, kw, sh, sw, pt, pl, dh, dw, pb, pr = args
    cols = K.im2col(x, *args)
    np.testing.assert_array_equal(cols, K.im2col_reference(x, *args))
    oh, ow = K.conv_output_size(x.shape[2], kh, sh, pt, dh, pb), K.conv_output_size(x.shape[3], kw, sw, pl, dw, pr)
    assert cols.shape == (x.shape[1] * kh * kw, x.shape[0] * oh * ow)
    # the layout, entry by entry: cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*sh - pt + i*dh, ...]
    for _ in range(10):
        n, c, i, j = (int(rng.integers(0, s)) for s in (x.shape[0], x.shape[1], kh, kw))
        yo, xo = int(rng.integers(0, oh)), int(rng.integers(0, ow))
        ih, iw = yo * sh - pt + i * dh, xo * sw - pl + j * dw
        want = x[n, c, ih, iw] if 0 <= ih < x.shape[2] and 0 <= iw < x.shape[3] else 0.0
        assert cols[(c * kh + i) * kw + j, (n * oh + yo) * ow + xo] == want
    c = rng.standard_normal(cols.shape).astype(dtype)
    shape = x.shape
    abs_sum = K.col2im_reference(np.abs(c).astype(F64), *shape, *args)
    assert_close_reduction(K.col2im(c, *shape, *args), K.col2im_reference(c, *shape, *args), kh * kw, dtype,
                           abs_sum, name="col2im")
    # adjoint: <im2col(x), c> = <x, col2im(c)> (float64)
    x64, c64 = x.astype(F64), c.astype(F64)
    lhs = float(np.sum(K.im2col(x64, *args) * c64))
    rhs = float(np.sum(x64 * K.col2im(c64, *shape, *args)))
    bound = reduction_atol(c.size + kh * kw, F64, float(np.sum(K.im2col(np.abs(x64), *args) * np.abs(c64))))
    assert abs(lhs - rhs) <= bound


@given(cfg=pool_configs("max"), dtype=st.sampled_from([F32, F64]), seed=SEEDS, ties=st.booleans())
def test_maxpool_kernels_with_dilation_and_ceil_mode(cfg, dtype, seed, ties):
    rng = np.random.default_rng(seed)
    shape = (cfg["n"], cfg["c"], *cfg["hw"])
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    args = (*cfg["kernel_size"], *cfg["stride"], *cfg["padding"])
    opts = (*cfg["dilation"], cfg["ceil_mode"])
    y, am = K.maxpool2d_forward(x, *args, None, None, *opts)
    y_ref, am_ref = K.maxpool2d_forward_reference(x, *args, None, None, *opts)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(am, am_ref)
    g = rng.standard_normal(y.shape).astype(dtype)
    kh, kw = cfg["kernel_size"]
    abs_sum = K.maxpool2d_backward_reference(np.abs(g).astype(F64), am, *cfg["hw"])
    assert_close_reduction(K.maxpool2d_backward(g, am, *cfg["hw"]), K.maxpool2d_backward_reference(g, am, *cfg["hw"]),
                           kh * kw, dtype, abs_sum, name="maxpool backward")


@given(cfg=pool_configs("avg"), dtype=st.sampled_from([F32, F64]), seed=SEEDS)
def test_avgpool_kernels_with_ceil_mode_count_include_pad_divisor(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["c"], *cfg["hw"])).astype(dtype)
    args = (*cfg["kernel_size"], *cfg["stride"], *cfg["padding"])
    opts = (cfg["ceil_mode"], cfg["count_include_pad"], cfg["divisor_override"] or 0)
    n = cfg["kernel_size"][0] * cfg["kernel_size"][1] + 1
    y = K.avgpool2d_forward(x, *args, *opts)
    abs_y = K.avgpool2d_forward_reference(np.abs(x).astype(F64), *args, *opts)
    assert_close_reduction(y, K.avgpool2d_forward_reference(x, *args, *opts), n, dtype, abs_y, name="avg forward")
    g = rng.standard_normal(y.shape).astype(dtype)
    abs_g = K.avgpool2d_backward_reference(np.abs(g).astype(F64), *cfg["hw"], *args, *opts)
    assert_close_reduction(K.avgpool2d_backward(g, *cfg["hw"], *args, *opts),
                           K.avgpool2d_backward_reference(g, *cfg["hw"], *args, *opts), n, dtype, abs_g,
                           name="avg backward")


# ----------------------------------------------------------------------------------------------
# Torch as the oracle
# ----------------------------------------------------------------------------------------------

def torch_conv(torch, layer, x, w, b):
    return torch.nn.functional.conv2d(x, w, b, stride=layer.stride, padding=layer.padding,
                                      dilation=layer.dilation, groups=layer.groups)


def torch_pool(torch, cfg, x):
    F = torch.nn.functional
    if cfg["kind"] == "max":
        return F.max_pool2d(x, cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"],
                            ceil_mode=cfg["ceil_mode"], return_indices=True)
    return F.avg_pool2d(x, cfg["kernel_size"], cfg["stride"], cfg["padding"], ceil_mode=cfg["ceil_mode"],
                        count_include_pad=cfg["count_include_pad"], divisor_override=cfg["divisor_override"]), None


def conv_torch_grads(torch, layer, x, w, b, g):
    """(y, dx, dw, db) from torch in float64 for numpy inputs (b may be None)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    y = torch_conv(torch, layer, xt, wt, bt)
    y.backward(torch.tensor(g, dtype=torch.float64))
    return (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if b is None else bt.grad.numpy())


@given(cfg=conv_configs(), seed=SEEDS)
def test_conv_matches_torch_float64_and_float32(cfg, seed, torch):
    rng = np.random.default_rng(seed)
    layer = conv_layer(cfg, F64, rng)
    x = conv_input(cfg, rng)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    b = None if layer.bias is None else layer.bias.data
    ty, tdx, tdw, tdb = conv_torch_grads(torch, layer, x, layer.weight.data, b, g)
    assert y.shape == ty.shape and dx.shape == x.shape
    assert_rel_close(y, ty, TORCH_F64_REL_TOL, "forward")
    assert_rel_close(dx, tdx, TORCH_F64_REL_TOL, "grad x")
    assert_rel_close(layer.weight.grad, tdw, TORCH_F64_REL_TOL, "grad weight")
    if b is not None:
        assert_rel_close(layer.bias.grad, tdb, TORCH_F64_REL_TOL, "grad bias")

    # float32: the same (float32-representable) values, against torch's float64 result
    l32 = conv_layer(cfg, F32, rng)
    x32, g32 = x.astype(F32), g.astype(F32)
    y32 = l32(x32)
    dx32 = l32.backward(g32)
    w, b = l32.weight.data.astype(F64), None if l32.bias is None else l32.bias.data.astype(F64)
    ey, edx, edw, edb = conv_torch_grads(torch, l32, x32.astype(F64), w, b, g32.astype(F64))
    sy, sdx, sdw, _ = conv_torch_grads(torch, l32, np.abs(x32).astype(F64), np.abs(w),
                                       None if b is None else np.abs(b), np.abs(g32).astype(F64))
    _, sdx, _, _ = conv_torch_grads(torch, l32, x32.astype(F64), np.abs(w), None, np.abs(g32).astype(F64))
    kh, kw = cfg["kernel_size"]
    cg, og = cfg["in_channels"] // cfg["groups"], cfg["out_channels"] // cfg["groups"]
    m = int(np.prod(y32.shape)) // cfg["out_channels"]               # N*OH*OW
    assert_close_reduction(y32, ey, cg * kh * kw + 1, F32, sy, name="float32 forward")
    assert_close_reduction(dx32, edx, og * kh * kw, F32, sdx, name="float32 grad x")
    assert_close_reduction(l32.weight.grad, edw, m, F32, sdw, name="float32 grad weight")
    if b is not None:
        g_axes = (0, 2, 3) if g32.ndim == 4 else (1, 2)
        assert_close_reduction(l32.bias.grad, edb, m, F32, np.abs(g32).astype(F64).sum(axis=g_axes),
                               name="float32 grad bias")


def pool_torch_grads(torch, cfg, x, g):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y, idx = torch_pool(torch, cfg, xt)
    y.backward(torch.tensor(g, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), idx


@given(cfg=st.one_of(pool_configs("max"), pool_configs("avg")), seed=SEEDS)
def test_pool_matches_torch_float64_and_float32(cfg, seed, torch):
    rng = np.random.default_rng(seed)
    layer = pool_layer(cfg)
    max_pool = cfg["kind"] == "max"
    x = distinct_values(pool_shape(cfg), rng) if max_pool else rng.standard_normal(pool_shape(cfg))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    # A max-pool window without a pixel (dilation larger than the input): torch gives -inf and a winner
    # index past its (H, W) plane, so its backward would add that window's gradient to a pixel of the
    # next plane. Here such a window routes nothing; torch gets a zero gradient there.
    empty = np.isneginf(y)
    ty, tdx, tidx = pool_torch_grads(torch, cfg, x, np.where(empty, 0.0, g))
    assert y.shape == ty.shape and dx.shape == x.shape
    if max_pool:
        np.testing.assert_array_equal(y, ty)                            # no arithmetic: bitwise
        am = layer._cache.argmax.reshape(ty.shape)
        np.testing.assert_array_equal(am[~empty], tidx.numpy()[~empty])
        assert np.all(am[empty] == -1)
    else:
        assert_rel_close(y, ty, TORCH_F64_REL_TOL, "forward")
    assert_rel_close(dx, tdx, TORCH_F64_REL_TOL, "grad x")

    # float32
    x32, g32 = x.astype(F32), g.astype(F32)
    y32 = layer(x32)
    dx32 = layer.backward(g32)
    kh, kw = cfg["kernel_size"]
    g32_torch = np.where(empty, 0.0, g32.astype(F64))
    ey, edx, _ = pool_torch_grads(torch, cfg, x32.astype(F64), g32_torch)
    if max_pool:
        t32, tidx32 = torch_pool(torch, cfg, torch.tensor(x32))
        np.testing.assert_array_equal(y32, t32.numpy())
        am = layer._cache.argmax.reshape(t32.shape)
        keep = ~np.isneginf(t32.numpy())
        np.testing.assert_array_equal(am[keep], tidx32.numpy()[keep])
        _, sdx, _ = pool_torch_grads(torch, cfg, x32.astype(F64), np.abs(g32_torch))
        assert_close_reduction(dx32, edx, kh * kw, F32, sdx, name="float32 maxpool grad x")
    else:
        sy, sdx, _ = pool_torch_grads(torch, cfg, np.abs(x32).astype(F64), np.abs(g32).astype(F64))
        assert_close_reduction(y32, ey, kh * kw + 1, F32, sy, name="float32 avgpool forward")
        assert_close_reduction(dx32, edx, kh * kw + 1, F32, sdx, name="float32 avgpool grad x")


# ----------------------------------------------------------------------------------------------
# Finite differences and the adjoint test (float64)
# ----------------------------------------------------------------------------------------------

def gradcheck_all(layer, x, rng):
    report = check_layer(layer, x, rng=rng, tol=FD_REL_TOL)
    assert report.ok, report.table()
    for wrt in ["x", *dict(layer.named_parameters())]:
        lhs, rhs, rel = adjoint_check(layer, x, rng=rng, wrt=wrt)
        assert rel < ADJOINT_REL_TOL, (wrt, lhs, rhs, rel)


@given(cfg=conv_configs(), seed=SEEDS)
def test_conv_finite_differences_and_adjoint(cfg, seed):
    rng = np.random.default_rng(seed)
    gradcheck_all(conv_layer(cfg, F64, rng), conv_input(cfg, rng), rng)


@given(cfg=st.one_of(pool_configs("max"), pool_configs("avg")), seed=SEEDS)
def test_pool_finite_differences_and_adjoint(cfg, seed):
    """Max pooling sees distinct values 1e-2 apart: no step h = 1e-6 changes a winner. A window with
    no pixel gives -inf (no derivative to take): those configurations are checked on the others."""
    rng = np.random.default_rng(seed)
    layer = pool_layer(cfg)
    x = distinct_values(pool_shape(cfg), rng)
    if cfg["kind"] == "max" and np.isneginf(layer(x)).any():
        return
    gradcheck_all(layer, x, rng)


# ----------------------------------------------------------------------------------------------
# Semantics spelled out on small cases (hand-computed, independent of torch and of the kernels)
# ----------------------------------------------------------------------------------------------

def test_same_padding_puts_the_odd_pixel_after():
    """Kernel 2, 'same': total padding 1, none before and one after: y[i] = w0*x[i] + w1*x[i+1]."""
    conv = tc.Conv2D(1, 1, (1, 2), padding="same", bias=False, dtype=F64)
    conv.weight.data[...] = [[[[10.0, 1.0]]]]
    y = conv(np.array([[[[1.0, 2.0, 3.0]]]]))
    np.testing.assert_array_equal(y, [[[[12.0, 23.0, 30.0]]]])
    assert conv.padding == "same" and conv.padding_amounts == ((0, 0), (0, 1))
    assert tc.Conv2D(1, 1, 4, padding="same", dilation=(1, 3)).padding_amounts == ((1, 2), (4, 5))
    assert tc.Conv2D(1, 1, 3, padding="valid").padding_amounts == ((0, 0), (0, 0))


def test_dilation_and_groups_by_hand():
    """Dilation 2 reads x[i], x[i+2]; two groups: output channel 0 sees channel 0 only, 1 sees 1."""
    conv = tc.Conv2D(2, 2, (1, 2), dilation=2, groups=2, bias=False, dtype=F64)
    assert conv.weight.shape == (2, 1, 1, 2)
    conv.weight.data[...] = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(2, 1, 1, 2)
    x = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]).reshape(1, 2, 1, 4)
    y = conv(x)
    np.testing.assert_array_equal(y[0, 0, 0], [1 + 30, 2 + 40])
    np.testing.assert_array_equal(y[0, 1, 0], [500 + 7000, 600 + 8000])


def test_ceil_mode_and_divisors_by_hand():
    """torch's output-size rule and divisors on a row of 5 (or 6) pixels, worked out by hand."""
    # padding 1, kernel 2, stride 2: ceil((5 + 2 - 2) / 2) + 1 = 4, but window 3 would start at
    # 3*2 - 1 = 5 >= H = 5, in the right padding: dropped
    assert K.pool_output_size(5, 2, 2, 1, 1, True) == 3
    assert K.pool_output_size(5, 2, 2, 0, 1, True) == 3            # ceil(3/2) + 1 = 3: window [4, 5] kept
    assert K.pool_output_size(5, 2, 2, 0, 1, False) == 2
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 1, 5)
    # no padding, ceil: windows [0,1], [2,3], [4,(5)]: the last runs past the input (and past the padding)
    y = tc.AvgPool2D((1, 2), ceil_mode=True)(x)
    np.testing.assert_array_equal(y, [[[[1.5, 3.5, 5.0]]]])        # divisor = cells up to H + p = 5: one
    y = tc.AvgPool2D((1, 2), padding=(0, 1), ceil_mode=True)(x)    # windows [-1,0], [1,2], [3,4]
    np.testing.assert_array_equal(y, [[[[0.5, 2.5, 4.5]]]])        # the padded zero counts
    y = tc.AvgPool2D((1, 2), padding=(0, 1), count_include_pad=False)(x)
    np.testing.assert_array_equal(y, [[[[1.0, 2.5, 4.5]]]])        # only real pixels count
    y = tc.AvgPool2D((1, 2), padding=(0, 1), divisor_override=4)(x)
    np.testing.assert_array_equal(y, [[[[0.25, 1.25, 2.25]]]])
    x6 = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(1, 1, 1, 6)
    # kernel 2, dilation 2, stride 2: taps (0, 2), (2, 4) and, with ceil_mode, (4, 6): 6 is past the input
    np.testing.assert_array_equal(tc.MaxPool2D((1, 2), stride=2, dilation=(1, 2))(x6), [[[[3.0, 5.0]]]])
    np.testing.assert_array_equal(tc.MaxPool2D((1, 2), stride=2, dilation=(1, 2), ceil_mode=True)(x6),
                                  [[[[3.0, 5.0, 5.0]]]])


def test_unbatched_input_equals_the_batch_of_one():
    rng = np.random.default_rng(5)
    layers = [tc.Conv2D(4, 6, 3, padding="same", groups=2, dtype=F64, rng=rng),
              tc.MaxPool2D(3, stride=2, padding=1, dilation=2, ceil_mode=True),
              tc.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)]
    x = rng.standard_normal((4, 7, 6))
    for layer in layers:
        y1 = layer(x)
        g = rng.standard_normal(y1.shape)
        dx1 = layer.backward(g)
        grads1 = [p.grad.copy() for p in layer.parameters()]
        y = layer(x[None])
        dx = layer.backward(g[None])
        assert y1.shape == y.shape[1:] and dx1.shape == x.shape
        np.testing.assert_array_equal(y1, y[0])
        np.testing.assert_array_equal(dx1, dx[0])
        for a, p in zip(grads1, layer.parameters()):
            np.testing.assert_array_equal(a, p.grad)
        assert layer.output_shape(x.shape) == y1.shape


# ----------------------------------------------------------------------------------------------
# Bad arguments: the layer, the argument and the numbers
# ----------------------------------------------------------------------------------------------

BAD = [
    (lambda: tc.Conv2D(6, 4, 3, groups=4), ValueError,
     r"Conv2D: in_channels must be divisible by groups, got in_channels = 6, groups = 4 \(6 % 4 = 2\)"),
    (lambda: tc.Conv2D(4, 6, 3, groups=4), ValueError,
     r"Conv2D: out_channels must be divisible by groups, got out_channels = 6, groups = 4 \(6 % 4 = 2\)"),
    (lambda: tc.Conv2D(4, 4, 3, groups=0), ValueError, r"Conv2D: groups must be a positive integer, got 0"),
    (lambda: tc.Conv2D(4, 4, 3, dilation=(1, 0)), ValueError, r"Conv2D: dilation must be >= 1, got \(1, 0\)"),
    (lambda: tc.Conv2D(4, 4, 3, padding="full"), ValueError,
     r"Conv2D: padding must be an int, an \(h, w\) pair, 'same' or 'valid', got 'full'"),
    (lambda: tc.Conv2D(4, 4, 3, stride=(1, 2), padding="same"), ValueError,
     r"Conv2D: padding='same' is not supported for strided convolutions \(stride = \(1, 2\)\)"),
    (lambda: tc.Conv2D(1, 1, 3, dilation=3)(np.zeros((1, 1, 6, 9))), ValueError,
     r"Conv2D\(1, 1.*dilated kernel height dilation\*\(kernel - 1\) \+ 1 = 3\*\(3 - 1\) \+ 1 = 7 is larger than "
     r"the padded input height 6 \+ 2\*0 = 6; output height = \(in \+ 2\*padding - dilation\*\(kernel - 1\) - 1\) "
     r"// stride \+ 1 = \(6 \+ 2\*0 - 3\*\(3 - 1\) - 1\) // 1 \+ 1 = 0"),
    (lambda: tc.MaxPool2D(3, dilation=0), ValueError, r"MaxPool2D: dilation must be >= 1, got \(0, 0\)"),
    (lambda: tc.MaxPool2D(3, ceil_mode=1), TypeError, r"MaxPool2D: ceil_mode must be True or False, got 1"),
    (lambda: tc.AvgPool2D(3, count_include_pad="no"), TypeError,
     r"AvgPool2D: count_include_pad must be True or False, got 'no'"),
    (lambda: tc.AvgPool2D(3, divisor_override=0), ValueError,
     r"AvgPool2D: divisor_override must be None or a positive integer, got 0"),
    (lambda: tc.MaxPool2D(2, stride=1, dilation=4, ceil_mode=True)(np.zeros((1, 1, 3, 3))), ValueError,
     r"MaxPool2D\(kernel_size=\(2, 2\), stride=\(1, 1\), padding=\(0, 0\), dilation=\(4, 4\), ceil_mode=True\): "
     r"output height = ceil\(\(in \+ 2\*padding - dilation\*\(kernel - 1\) - 1\) / stride\) \+ 1 "
     r"= ceil\(\(3 \+ 2\*0 - 4\*\(2 - 1\) - 1\) / 1\) \+ 1 = -1 < 1"),
    (lambda: tc.MaxPool2D(2, dilation=4)(np.zeros((1, 1, 3, 3))), ValueError,
     r"MaxPool2D\(kernel_size=\(2, 2\).*dilated kernel height dilation\*\(kernel - 1\) \+ 1 = 4\*\(2 - 1\) \+ 1 = 5 "
     r"is larger than the padded input height 3 \+ 2\*0 = 3"),
    (lambda: tc.AvgPool2D(2)(np.zeros((1, 1, 1, 1, 4))), ValueError,
     r"AvgPool2D\(.*expected a 4-D input \(N, C, H, W\), got 5-D input of shape \(1, 1, 1, 1, 4\) "
     r"\(a 3-D unbatched input \(C, H, W\) is accepted too\)"),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_arguments_name_the_layer_argument_and_numbers(i):
    call, exc, match = BAD[i]
    with pytest.raises(exc, match=match):
        call()


def test_unbatched_backward_checks_the_unbatched_shape():
    layer = tc.Conv2D(2, 3, 3, dtype=F64)
    layer(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match=r"backward got grad_y of shape \(1, 3, 3, 3\), but forward produced an "
                                         r"output of shape \(3, 3, 3\)"):
        layer.backward(np.zeros((1, 3, 3, 3)))


# ----------------------------------------------------------------------------------------------
# The executor: fast ops only for what they implement, the rest plain; Sequential agrees with torch
# ----------------------------------------------------------------------------------------------

class _Node:
    kind = "layer"

    def __init__(self, layer):
        self.layer = layer


@pytest.mark.parametrize("layer, op", [
    (tc.Conv2D(2, 2, 3, padding=1), ConvOp),
    (tc.Conv2D(2, 2, 3, padding=(1, 0), stride=2), ConvOp),
    (tc.Conv2D(2, 2, 3, groups=2), DepthwiseConvOp),             # depthwise: tests/test_depthwise.py
    (tc.Conv2D(4, 4, 3, groups=2), PlainOp),                     # grouped, not depthwise
    (tc.Conv2D(2, 2, 3, dilation=2), PlainOp),
    (tc.Conv2D(2, 2, 3, padding="same"), ConvOp),                # symmetric: 1 before, 1 after
    (tc.Conv2D(2, 2, (3, 5), padding="valid"), ConvOp),
    (tc.Conv2D(2, 2, (3, 2), padding="same"), PlainOp),           # even width: 0 before, 1 after
    (tc.Conv2D(2, 2, 3, padding="same", dilation=2), PlainOp),
    (tc.MaxPool2D(2), MaxPoolOp),
    (tc.MaxPool2D(3, 2, 1), MaxPoolOp),
    (tc.MaxPool2D(2, dilation=2), PlainOp),
    (tc.MaxPool2D(2, ceil_mode=True), PlainOp),
    (tc.AvgPool2D(2, padding=1), AvgPoolOp),
    (tc.AvgPool2D(2, ceil_mode=True), PlainOp),
    (tc.AvgPool2D(2, padding=1, count_include_pad=False), PlainOp),
    (tc.AvgPool2D(2, divisor_override=3), PlainOp),
])
def test_make_op_is_fast_only_for_the_configurations_the_op_implements(layer, op):
    assert type(make_op(_Node(layer))) is op


def test_sequential_with_the_new_options_matches_torch_through_the_executor(torch):
    """A small network using every new option, through the executor (all passes) and the plain plan,
    against the same torch module tree: forward, input gradient and every weight gradient (float64)."""
    nn = torch.nn
    rng = np.random.default_rng(11)
    layers = [tc.Conv2D(3, 6, 3, padding="same", dtype=F64, rng=rng), tc.ReLU(),
              tc.MaxPool2D(3, stride=2, padding=1, dilation=2, ceil_mode=True),
              tc.Conv2D(6, 6, 3, padding=1, groups=6, bias=False, dtype=F64, rng=rng),
              tc.Conv2D(6, 4, (2, 3), padding="same", dilation=(2, 1), dtype=F64, rng=rng), tc.ReLU(),
              tc.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
              tc.AvgPool2D(2, stride=1, padding=1, ceil_mode=True, divisor_override=3),
              tc.Flatten(), tc.Dense(4 * 6 * 5, 3, dtype=F64, rng=rng)]
    theirs = nn.Sequential(nn.Conv2d(3, 6, 3, padding="same"), nn.ReLU(),
                           nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                           nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False),
                           nn.Conv2d(6, 4, (2, 3), padding="same", dilation=(2, 1)), nn.ReLU(),
                           nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                           nn.AvgPool2d(2, stride=1, padding=1, ceil_mode=True, divisor_override=3),
                           nn.Flatten(), nn.Linear(120, 3)).double()
    model = tc.Sequential(*layers)
    with torch.no_grad():
        for k, v in theirs.state_dict().items():
            v.copy_(torch.from_numpy(model.state_dict()[k]))
    x = rng.standard_normal((2, 3, 16, 15))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    for plain in (True, False):
        plan = fast.compile(layers, plain=plain)
        y = np.array(plan.forward(x))
        dx = np.array(plan.backward(g))
        assert_rel_close(y, yt.detach().numpy(), TORCH_F64_REL_TOL, f"forward (plain={plain})")
        assert_rel_close(dx, xt.grad.numpy(), TORCH_F64_REL_TOL, f"grad x (plain={plain})")
        grads = {k: p.grad for k, p in model.named_parameters()}
        for k, p in theirs.named_parameters():
            assert_rel_close(grads[k], p.grad.numpy(), TORCH_F64_REL_TOL, f"grad {k} (plain={plain})")
    assert y.shape == (2, 3)


# ----------------------------------------------------------------------------------------------
# Saving and export round trips of the new arguments
# ----------------------------------------------------------------------------------------------

def test_save_and_load_keep_the_new_arguments(tmp_path):
    rng = np.random.default_rng(2)
    model = tc.Sequential(tc.Conv2D(2, 4, 2, padding="same", dilation=(1, 2), groups=2, rng=rng),
                          tc.MaxPool2D(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                          tc.AvgPool2D(2, ceil_mode=True, count_include_pad=False, divisor_override=3),
                          input_shape=(2, 9, 9))
    path = tmp_path / "m.tinycnn"
    tc.save_model(model, path)
    back = tc.load_model(path)
    assert [repr(a) for a in back.layers] == [repr(b) for b in model.layers]
    x = rng.standard_normal((2, 2, 9, 9)).astype(F32)
    np.testing.assert_array_equal(back(x), model(x))


EXPORTABLE = {
    "grouped dilated 'same' conv, even kernel": (
        lambda r: [tc.Conv2D(4, 6, (2, 3), padding="same", dilation=(2, 1), groups=2, rng=r)], (4, 7, 6)),
    "depthwise conv": (lambda r: [tc.Conv2D(3, 3, 3, stride=2, padding=1, groups=3, bias=False, rng=r)], (3, 7, 6)),
    "'valid' conv": (lambda r: [tc.Conv2D(2, 2, 3, padding="valid", rng=r)], (2, 5, 5)),
    "dilated max pool": (lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.MaxPool2D(3, stride=2, padding=1, dilation=2)],
                         (2, 9, 8)),
    "ceil-mode max pool": (lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.MaxPool2D(2, ceil_mode=True)], (2, 7, 6)),
    "avg pool without the padding": (
        lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.AvgPool2D(3, stride=2, padding=1, count_include_pad=False)],
        (2, 7, 6)),
    "avg pool with divisor_override": (
        lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.AvgPool2D(2, padding=1, divisor_override=3)], (2, 7, 6)),
}


@pytest.mark.parametrize("name", sorted(EXPORTABLE))
def test_new_arguments_export_to_onnx(name):
    """Exported in float64 and run by onnx.reference (float64): equal to tinycnn's forward (1e-10). (A
    1x1 conv before each pool: a network without parameters exports as a float32 graph.)"""
    import json

    from optional_packages import require

    from tinycnn import export, saving
    require("onnx", "onnx")
    from onnx.reference import ReferenceEvaluator
    factory, shape = EXPORTABLE[name]
    rng = np.random.default_rng(4)
    model = tc.Sequential(*factory(rng), input_shape=shape)
    tree = json.loads(json.dumps(saving.architecture(model)).replace('"float32"', '"float64"'))
    model64 = saving.from_architecture(tree)
    model64.load_state_dict({k: rng.standard_normal(v.shape) for k, v in model.state_dict().items()})
    x = rng.standard_normal((2, *shape))
    y = ReferenceEvaluator(export.build_onnx(model64)).run(None, {"input": x})[0]
    assert_rel_close(y, model64(x), TORCH_F64_REL_TOL, name)


def test_ceil_mode_average_pool_with_partial_windows_is_refused_by_the_exporter():
    from tinycnn import export
    from tinycnn.export import ExportError
    model = tc.Sequential(tc.AvgPool2D(2, ceil_mode=True), input_shape=(1, 5, 5))
    with pytest.raises(ExportError, match=r"layer 0 \(AvgPool2D\(.*ceil_mode=True\)\) cannot be exported: ceil_mode"):
        export.build_onnx(model)


def test_to_torch_module_carries_the_new_arguments(torch):
    """interop.to_torch_module builds nn modules with the same groups, dilation, padding and pooling
    options: the same state-dict keys and shapes, the same forward (float64)."""
    from tinycnn.interop import to_torch_module
    rng = np.random.default_rng(8)
    model = tc.Sequential(tc.Conv2D(4, 6, (2, 3), padding="same", dilation=(2, 1), groups=2, dtype=F64, rng=rng),
                          tc.MaxPool2D(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                          tc.AvgPool2D(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False,
                                       divisor_override=None),
                          tc.AvgPool2D(2, divisor_override=3), input_shape=(4, 11, 10))
    theirs = to_torch_module(model).double()
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()}
    conv, maxpool, avg1, avg2 = theirs
    assert (conv.groups, conv.dilation, conv.padding) == (2, (2, 1), "same")
    assert (maxpool.dilation, maxpool.ceil_mode) == ((2, 2), True)
    assert (avg1.ceil_mode, avg1.count_include_pad, avg2.divisor_override) == (True, False, 3)
    with torch.no_grad():
        for k, v in theirs.state_dict().items():
            v.copy_(torch.from_numpy(model.state_dict()[k]))
        x = rng.standard_normal((2, 4, 11, 10))
        assert_rel_close(model(x), theirs(torch.from_numpy(x)).numpy(), TORCH_F64_REL_TOL, "to_torch forward")


def test_new_arguments_run_in_onnxruntime_layer_by_layer(tmp_path):
    """float32 through onnxruntime (graph optimisations off): each layer, fed the runtime's output of
    the layer before, within that layer's float32 bound (tolerances.layer_forward_atol); the output
    within the propagated bound (network_forward_atol)."""
    from optional_packages import require
    from tolerances import assert_within, layer_forward_atol, network_forward_atol

    from tinycnn import export
    ort = require("onnxruntime", "onnx")
    rng = np.random.default_rng(9)
    model = tc.Sequential(tc.Conv2D(3, 6, (2, 3), padding="same", dilation=(2, 1), groups=3, rng=rng), tc.ReLU(),
                          tc.MaxPool2D(3, stride=2, padding=1, dilation=2),
                          tc.Conv2D(6, 6, 3, padding="valid", groups=6, rng=rng),
                          tc.AvgPool2D(2, padding=1, count_include_pad=False),
                          tc.AvgPool2D(2, stride=1, divisor_override=3), input_shape=(3, 13, 12)).eval()
    path = tmp_path / "m.onnx"
    path.write_bytes(export.build_onnx(model, layer_outputs=True).SerializeToString())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((4, 3, 13, 12)).astype(F32)
    outs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    layer_in = x
    for i, layer in enumerate(model.layers):
        theirs = outs[f"layer.{i}"]
        assert theirs.shape == np.asarray(layer.forward(layer_in)).shape
        assert_within(theirs, layer.forward(layer_in), layer_forward_atol(layer, layer_in), name=f"layer {i} {layer!r}")
        layer_in = theirs
    assert_within(outs["output"], model(x), network_forward_atol(model.layers, x), name="output")


_NO_JIT_SCRIPT = """
import sys
import numba, numpy as np
sys.path.insert(0, sys.argv[1])                      # tests/: for the tolerance table
from tolerances import assert_close_reduction
from tinycnn import kernels as K
assert numba.config.DISABLE_JIT
f64 = np.float64
rng = np.random.default_rng(3)
x = rng.standard_normal((2, 3, 9, 8))
conv = (3, 2, 2, 1, 2, 0, 2, 3, 1, 1)                # kh kw sh sw pt pl dh dw pb pr
cols = K.im2col(x, *conv)
assert np.array_equal(cols, K.im2col_reference(x, *conv))
c = rng.standard_normal(cols.shape)
assert_close_reduction(K.col2im(c, *x.shape, *conv), K.col2im_reference(c, *x.shape, *conv), 6, f64,
                       K.col2im_reference(np.abs(c), *x.shape, *conv), name="col2im")
pool = (3, 2, 2, 2, 1, 1)
y, am = K.maxpool2d_forward(x, *pool, None, None, 2, 1, True)
y_r, am_r = K.maxpool2d_forward_reference(x, *pool, None, None, 2, 1, True)
assert np.array_equal(y, y_r) and np.array_equal(am, am_r)
g = rng.standard_normal(y.shape)
assert_close_reduction(K.maxpool2d_backward(g, am, 9, 8), K.maxpool2d_backward_reference(g, am, 9, 8), 6, f64,
                       K.maxpool2d_backward_reference(np.abs(g), am, 9, 8), name="maxpool backward")
for opts in ((True, False, 0), (True, True, 0), (False, True, 5)):
    ya = K.avgpool2d_forward(x, *pool, *opts)
    assert_close_reduction(ya, K.avgpool2d_forward_reference(x, *pool, *opts), 7, f64,
                           K.avgpool2d_forward_reference(np.abs(x), *pool, *opts), name="avgpool forward")
    g = rng.standard_normal(ya.shape)
    assert_close_reduction(K.avgpool2d_backward(g, 9, 8, *pool, *opts),
                           K.avgpool2d_backward_reference(g, 9, 8, *pool, *opts), 7, f64,
                           K.avgpool2d_backward_reference(np.abs(g), 9, 8, *pool, *opts), name="avgpool backward")
print("NO-JIT OK")
"""


def test_new_parameters_run_without_the_jit():
    """Under NUMBA_DISABLE_JIT=1 the extended kernels run as plain Python and agree with their
    references (im2col and max pooling exactly, the sums within 2 gamma_n S: n = KH*KW = 6 terms,
    +1 for the average's division)."""
    import os
    import subprocess
    import sys
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", _NO_JIT_SCRIPT, tests_dir],
                          env=dict(os.environ, NUMBA_DISABLE_JIT="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "NO-JIT OK" in done.stdout, done.stderr
