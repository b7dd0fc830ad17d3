"""The speed work's own properties: fast paths agree with the plain references they replace.

* ``maxpool2d_forward``'s unrolled 2 x 2 path (no padding, any stride) gives exactly the reference's
  values and winners, with ties, NaN and -inf in the windows (the general property test in
  test_kernels.py draws 2 x 2 unpadded windows only rarely).
* The channel-major layout (tinycnn/fast/layout.py): the executor's Conv2D and pooling ops give bitwise the
  same outputs and gradients whatever the memory layout of their input and upstream gradient
  (C order, channel-major, Fortran order), and Conv2D with the bias folded into its matrix multiply
  agrees with the plain im2col computation within the derived reduction bound (tolerances.py).
* ``im2col_cm`` / ``col2im_cm`` agree with their references (exactly / within the reduction bound).
* The elementwise ReLU kernels in ``tinycnn.kernels.elementwise`` (ReLU, and a residual join's sum +
  ReLU) agree with their references exactly.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import assert_close_reduction

import tinycnn as tc
from tinycnn import fast
from tinycnn import kernels as K
from tinycnn.fast.layout import is_channel_major

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)


def layouts(a):
    """The same (N, C, H, W) values in three memory layouts: C order, channel-major, Fortran order."""
    cm = np.ascontiguousarray(a.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)     # (C, H, W, N) memory
    return {"C": np.ascontiguousarray(a), "channel-major": cm, "Fortran": np.asfortranarray(a)}


# --------------------------------------------------------------------------------------------
# Max pooling: the unrolled 2 x 2 path
# --------------------------------------------------------------------------------------------

@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(2, 9), w=st.integers(2, 9),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dtype=DTYPES, seed=SEEDS,
       specials=st.sampled_from(["none", "ties", "nan", "-inf"]))
def test_maxpool_2x2_fast_path_matches_reference_exactly(n, c, h, w, sh, sw, dtype, seed, specials):
    rng = np.random.default_rng(seed)
    if specials == "none":
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    else:
        x = rng.integers(-1, 2, size=(n, c, h, w)).astype(dtype)       # many tied maxima
        if specials != "ties":
            special = np.nan if specials == "nan" else -np.inf
            x[rng.random(x.shape) < 0.3] = special
    y, argmax = K.maxpool2d_forward(x, 2, 2, sh, sw, 0, 0)
    y_ref, argmax_ref = K.maxpool2d_forward_reference(x, 2, 2, sh, sw, 0, 0)
    np.testing.assert_array_equal(y, y_ref)                            # NaN == NaN here
    np.testing.assert_array_equal(argmax, argmax_ref)


# --------------------------------------------------------------------------------------------
# Channel-major im2col / col2im (tinycnn/kernels/im2col_cm.py)
# --------------------------------------------------------------------------------------------

cm_windows = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 4), "kh": st.integers(1, 4), "kw": st.integers(1, 4),
    "sh": st.integers(1, 3), "sw": st.integers(1, 3), "ph": st.integers(0, 3), "pw": st.integers(0, 3),
    "extra_h": st.integers(0, 5), "extra_w": st.integers(0, 5),
})


def _cm_args(win):
    ph, pw = min(win["ph"], win["kh"] - 1), min(win["pw"], win["kw"] - 1)
    h = max(1, win["kh"] - 2 * ph) + win["extra_h"]
    w = max(1, win["kw"] - 2 * pw) + win["extra_w"]
    oh = (h + 2 * ph - win["kh"]) // win["sh"] + 1
    ow = (w + 2 * pw - win["kw"]) // win["sw"] + 1
    return h, w, (win["kh"], win["kw"], win["sh"], win["sw"], ph, pw), oh, ow


@given(win=cm_windows, dtype=DTYPES, seed=SEEDS)
def test_im2col_cm_matches_reference_exactly(win, dtype, seed):
    h, w, args, oh, ow = _cm_args(win)
    n, c = win["n"], win["c"]
    xs = np.random.default_rng(seed).standard_normal((c, h, w, n)).astype(dtype)   # (C, H, W, N)
    shape = (c * args[0] * args[1], n * oh * ow)
    cols = K.im2col_cm(xs, *args, np.full(shape, np.nan, dtype=dtype))     # every entry must be written
    np.testing.assert_array_equal(cols, K.im2col_cm_reference(xs, *args, np.empty(shape, dtype=dtype)))


@given(win=cm_windows, dtype=DTYPES, seed=SEEDS, data=st.data())
def test_im2col_cm_pixels_are_the_whole_columns_cut_exactly(win, dtype, seed, data):
    """The columns of output pixels p0..p1-1 (Conv2D's cache-sized blocks) are columns p0*N..p1*N-1 of
    im2col_cm's whole matrix, every entry written, in the parallel kernel and its serial twin."""
    h, w, args, oh, ow = _cm_args(win)
    n, c = win["n"], win["c"]
    p0 = data.draw(st.integers(0, oh * ow - 1), label="p0")
    p1 = data.draw(st.integers(p0 + 1, oh * ow), label="p1")
    xs = np.random.default_rng(seed).standard_normal((c, h, w, n)).astype(dtype)   # (C, H, W, N)
    whole = K.im2col_cm(xs, *args, np.empty((c * args[0] * args[1], n * oh * ow), dtype=dtype))
    shape = (c * args[0] * args[1], (p1 - p0) * n)
    for kernel in (K.im2col_cm_pixels, K.im2col_cm_pixels.serial):
        cols = kernel(xs, *args, p0, p1, np.full(shape, np.nan, dtype=dtype))
        np.testing.assert_array_equal(cols, whole[:, p0 * n:p1 * n])
        np.testing.assert_array_equal(cols, K.im2col_cm_pixels_reference(xs, *args, p0, p1, np.empty(shape, dtype)))


@given(win=cm_windows, dtype=DTYPES, seed=SEEDS)
def test_col2im_cm_matches_reference(win, dtype, seed):
    h, w, args, oh, ow = _cm_args(win)
    n, c = win["n"], win["c"]
    kh, kw, sh, sw = args[:4]
    cols = np.random.default_rng(seed).standard_normal((c * kh * kw, n * oh * ow)).astype(dtype)
    dxc = K.col2im_cm(cols, c, n, h, w, *args)                               # (C, H, W, N)
    assert dxc.shape == (c, h, w, n)
    abs_sum = K.col2im_cm_reference(np.abs(cols).astype(np.float64), c, n, h, w, *args)
    overlap = -(-kh // sh) * -(-kw // sw)                                   # windows per input pixel, at most
    assert_close_reduction(dxc, K.col2im_cm_reference(cols, c, n, h, w, *args), overlap, dtype, abs_sum,
                           name="col2im_cm")


# --------------------------------------------------------------------------------------------
# The executor's ops: the layout never changes a value
# --------------------------------------------------------------------------------------------

UNCUT = [p for p in fast.PASSES if p != "lanes"]


def fast_op(layer):
    """The op the executor runs ``layer`` with, every pass but lanes applied."""
    return fast.compile([layer], UNCUT).graph.nodes[0].op


conv_configs = st.fixed_dictionaries({
    "n": st.integers(1, 3), "c": st.integers(1, 4), "o": st.integers(1, 4),
    "kh": st.integers(1, 3), "kw": st.integers(1, 3), "sh": st.integers(1, 2), "sw": st.integers(1, 2),
    "ph": st.integers(0, 2), "pw": st.integers(0, 2), "extra_h": st.integers(0, 4), "extra_w": st.integers(0, 4),
    "bias": st.booleans(),
})


def _conv_case(cfg, dtype, seed):
    rng = np.random.default_rng(seed)
    ph, pw = min(cfg["ph"], cfg["kh"] - 1), min(cfg["pw"], cfg["kw"] - 1)
    h = max(1, cfg["kh"] - 2 * ph) + cfg["extra_h"]
    w = max(1, cfg["kw"] - 2 * pw) + cfg["extra_w"]
    layer = tc.Conv2D(cfg["c"], cfg["o"], (cfg["kh"], cfg["kw"]), stride=(cfg["sh"], cfg["sw"]),
                      padding=(ph, pw), bias=cfg["bias"], dtype=dtype, rng=rng)
    x = rng.standard_normal((cfg["n"], cfg["c"], h, w)).astype(dtype)
    return layer, x, rng


@given(cfg=conv_configs, dtype=DTYPES, seed=SEEDS)
def test_conv2d_is_bitwise_layout_independent(cfg, dtype, seed):
    layer, x, rng = _conv_case(cfg, dtype, seed)
    op = fast_op(layer)
    g = None
    results = {}
    for name, xl in layouts(x).items():
        y = op.forward(xl)
        if g is None:
            g = rng.standard_normal(y.shape).astype(dtype)              # random upstream gradient
        for gname, gl in layouts(g).items():
            dx = op.backward(gl)
            grads = [np.array(dx), op.grads["weight"].copy()]
            if layer.bias is not None:
                grads.append(op.grads["bias"].copy())
            results[(name, gname)] = [np.array(y)] + grads
    first = next(iter(results.values()))
    for key, arrays in results.items():
        for a, b in zip(arrays, first):
            np.testing.assert_array_equal(a, b, err_msg=f"layout {key}")


@given(cfg=conv_configs, dtype=DTYPES, seed=SEEDS)
def test_conv2d_fast_path_agrees_with_plain_im2col(cfg, dtype, seed):
    """Conv2D (channel-major kernels, bias in the matrix multiply) vs im2col_reference + matmul."""
    layer, x, rng = _conv_case(cfg, dtype, seed)
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    n, c = x.shape[:2]
    o = layer.out_channels
    op = fast_op(layer)
    y = op.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = op.backward(g)
    layer.weight.grad = op.grads["weight"]
    if layer.bias is not None:
        layer.bias.grad = op.grads["bias"]
    b = layer.bias.data if layer.bias is not None else np.zeros(o, dtype)

    def plain(x, w2d, b, g):
        cols = K.im2col_reference(x, kh, kw, sh, sw, ph, pw)                 # (C*KH*KW, N*OH*OW)
        out = w2d @ cols + b[:, None]                                        # (O, N*OH*OW)
        g2d = g.transpose(1, 0, 2, 3).reshape(o, -1)
        dcols = w2d.T @ g2d
        return (out.reshape(o, n, *y.shape[2:]).transpose(1, 0, 2, 3), g2d @ cols.T, g2d.sum(axis=1),
                K.col2im_reference(dcols, *x.shape, kh, kw, sh, sw, ph, pw))

    w2d = layer.weight.data.reshape(o, -1)
    y_ref, dw_ref, db_ref, dx_ref = plain(x, w2d, b, g)
    a = [np.abs(v).astype(np.float64) for v in (x, w2d, b, g)]
    y_abs, dw_abs, db_abs, dx_abs = plain(*a)
    k = c * kh * kw
    m = g.shape[0] * g.shape[2] * g.shape[3]
    assert_close_reduction(y, y_ref, k + 1, dtype, y_abs, name="Conv2D output")
    assert_close_reduction(layer.weight.grad.reshape(o, -1), dw_ref, m, dtype, dw_abs, name="Conv2D weight grad")
    if layer.bias is not None:
        assert_close_reduction(layer.bias.grad, db_ref, m, dtype, db_abs, name="Conv2D bias grad")
    assert_close_reduction(dx, dx_ref, o * kh * kw, dtype, dx_abs, name="Conv2D input grad")


@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(2, 8), w=st.integers(2, 8),
       k=st.integers(1, 3), s=st.integers(1, 3), pad=st.integers(0, 1), dtype=DTYPES, seed=SEEDS,
       kind=st.sampled_from([tc.MaxPool2D, tc.AvgPool2D]))
def test_pooling_is_bitwise_layout_independent(n, c, h, w, k, s, pad, dtype, seed, kind):
    k = min(k, h, w)
    pad = min(pad, k // 2)
    layer = fast_op(kind(k, stride=s, padding=pad))
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(n, c, h, w)).astype(dtype)            # ties on purpose
    ref_y = ref_dx = g = None
    for name, xl in layouts(x).items():
        y = layer.forward(xl)
        if name == "channel-major" and n > 1 and c > 1 and kind is tc.MaxPool2D:
            assert is_channel_major(y), "max pooling should keep a channel-major input channel-major"
        if g is None:
            g = rng.standard_normal(y.shape).astype(dtype)
            ref_y = np.array(y)
        np.testing.assert_array_equal(y, ref_y, err_msg=f"{kind.__name__} forward, {name} input")
        for gname, gl in layouts(g).items():
            dx = layer.backward(gl)
            if ref_dx is None:
                ref_dx = np.array(dx)
            np.testing.assert_array_equal(dx, ref_dx, err_msg=f"{kind.__name__} backward, {name}/{gname}")


def test_conv2d_output_is_a_channel_major_view_with_fresh_memory():
    """The layout trick must not alias: two forwards give two independent outputs."""
    rng = np.random.default_rng(0)
    layer = fast_op(tc.Conv2D(3, 4, 3, rng=rng))
    x1 = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    x2 = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y1 = layer.forward(x1)
    keep = y1.copy()
    y2 = layer.forward(x2)
    assert is_channel_major(y1) and is_channel_major(y2)
    np.testing.assert_array_equal(y1, keep)
    assert not np.shares_memory(y1, y2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_seed_cnn_through_layouts_matches_c_order_network(dtype):
    """A whole Sequential (Conv-ReLU-Pool x2, Flatten, Dense): output and every gradient are the same
    as when each layer's output is first copied to C order (the pre-layout behaviour)."""
    rng = np.random.default_rng(1)
    layers = [tc.Conv2D(3, 5, 3, padding=1, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
              tc.Conv2D(5, 6, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
              tc.Flatten(), tc.Dense(6 * 2 * 2, 3, dtype=dtype, rng=rng)]
    x = rng.standard_normal((4, 3, 12, 12)).astype(dtype)
    g = rng.standard_normal((4, 3)).astype(dtype)

    ops = [node.op for node in fast.compile(layers, UNCUT).graph.nodes]

    def run(copy):
        h = x
        for op in ops:
            h = op.forward(h)
            h = np.ascontiguousarray(h) if copy else h
        d = g
        for op in reversed(ops):
            d = op.backward(d)
            d = np.ascontiguousarray(d) if copy else d
        return [np.array(h), np.array(d)] + [op.grads[k].copy() for op in ops for k in sorted(op.grads)]

    for a, b in zip(run(copy=False), run(copy=True)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Elementwise ReLU kernels (tinycnn.kernels.elementwise)
# --------------------------------------------------------------------------------------------

@given(size=st.integers(0, 300), dtype=DTYPES, seed=SEEDS,
       specials=st.lists(st.sampled_from([np.nan, 0.0, -0.0, np.inf, -np.inf]), max_size=8))
def test_relu_kernels_match_references_exactly(size, dtype, seed, specials):
    from tinycnn.kernels import elementwise as E

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)                          # random upstream gradient
    for i, v in enumerate(specials[:size]):
        x[rng.integers(size)] = v
        g[rng.integers(size)] = v if i % 2 else g[0]
    y, positive = E.relu_forward(x)
    y_ref, positive_ref = E.relu_forward_reference(x)
    assert y.dtype == x.dtype and positive.dtype == np.bool_
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))     # -0.0 vs +0.0 too
    np.testing.assert_array_equal(positive, positive_ref)
    gx = E.relu_backward(positive, g)
    gx_ref = E.relu_backward_reference(positive, g)
    np.testing.assert_array_equal(gx, gx_ref)
    np.testing.assert_array_equal(np.signbit(gx), np.signbit(gx_ref))


@given(size=st.integers(0, 300), dtype=DTYPES, seed=SEEDS,
       specials=st.lists(st.sampled_from([np.nan, 0.0, -0.0, np.inf, -np.inf]), max_size=8))
def test_add_relu_kernel_matches_its_reference_exactly(size, dtype, seed, specials):
    from tinycnn.kernels import elementwise as E

    rng = np.random.default_rng(seed)
    a = rng.standard_normal(size).astype(dtype)
    b = rng.standard_normal(size).astype(dtype)
    for i, v in enumerate(specials[:size]):
        (a if i % 2 else b)[rng.integers(size)] = v
    y, positive = E.add_relu_forward(a, b, np.empty(size, dtype), np.empty(size, np.bool_))
    y_ref, positive_ref = E.add_relu_forward_reference(a, b, np.empty(size, dtype), np.empty(size, np.bool_))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(positive, positive_ref)


def test_elementwise_kernels_sit_beside_same_signature_references():
    import inspect

    from tinycnn.kernels import elementwise as E

    for name in ("relu_forward", "relu_backward", "add_relu_forward"):
        fast = getattr(E, name)
        fast = getattr(fast, "py_func", fast)                          # the Python source under the JIT
        ref = getattr(E, f"{name}_reference")
        assert list(inspect.signature(fast).parameters) == list(inspect.signature(ref).parameters)


# --------------------------------------------------------------------------------------------
# Output arrays given by the caller (the layers pass recycled, uninitialised arrays)
# --------------------------------------------------------------------------------------------

def _garbage(shape, dtype):
    """An output array full of NaN: a kernel that forgets to write (or zero) an element shows it."""
    a = np.empty(shape, dtype=dtype)
    a[...] = np.nan if np.dtype(dtype).kind == "f" else 7
    return a


@given(win=cm_windows, dtype=DTYPES, seed=SEEDS)
def test_kernels_write_into_given_outputs_exactly_as_they_allocate(win, dtype, seed):
    rng = np.random.default_rng(seed)
    h, w, args, oh, ow = _cm_args(win)
    n, c = win["n"], win["c"]
    kh, kw = args[0], args[1]
    # col2im_cm, fast and reference
    dcols = rng.standard_normal((c * kh * kw, n * oh * ow)).astype(dtype)
    for fn in (K.col2im_cm, K.col2im_cm_reference):
        out = _garbage((c, h, w, n), dtype)
        got = fn(dcols, c, n, h, w, *args, out=out)
        assert got is out or np.shares_memory(got, out)
        np.testing.assert_array_equal(out, fn(dcols, c, n, h, w, *args))
    # max pooling forward / backward (the padding must be at most half the window)
    pargs = (kh, kw, args[2], args[3], min(args[4], kh // 2), min(args[5], kw // 2))
    poh = (h + 2 * pargs[4] - kh) // pargs[2] + 1
    pow_ = (w + 2 * pargs[5] - kw) // pargs[3] + 1
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    g = rng.standard_normal((n, c, poh, pow_)).astype(dtype)
    for fwd, bwd in ((K.maxpool2d_forward, K.maxpool2d_backward),
                     (K.maxpool2d_forward_reference, K.maxpool2d_backward_reference)):
        y_out, a_out = _garbage((n, c, poh, pow_), dtype), _garbage((n, c, poh, pow_), np.int64)
        fwd(x, *pargs, y_out, a_out)
        y_ref, a_ref = fwd(x, *pargs)
        np.testing.assert_array_equal(y_out, y_ref)
        np.testing.assert_array_equal(a_out, a_ref)
        gx_out = _garbage((n, c, h, w), dtype)
        bwd(g, a_ref, h, w, gx_out)
        np.testing.assert_array_equal(gx_out, bwd(g, a_ref, h, w))
    # ReLU
    v = rng.standard_normal(n * c * h * w).astype(dtype)
    for fwd, bwd in ((K.elementwise.relu_forward, K.elementwise.relu_backward),
                     (K.elementwise.relu_forward_reference, K.elementwise.relu_backward_reference)):
        y_out, p_out = _garbage(v.shape, dtype), np.ones(v.shape, np.bool_)
        fwd(v, y_out, p_out)
        y_ref, p_ref = fwd(v)
        np.testing.assert_array_equal(y_out, y_ref)
        np.testing.assert_array_equal(p_out, p_ref)
        gx_out = _garbage(v.shape, dtype)
        bwd(p_ref, v, gx_out)
        np.testing.assert_array_equal(gx_out, bwd(p_ref, v))


# --------------------------------------------------------------------------------------------
# The split matrix multiply (tinycnn/kernels/gemm.py)
# --------------------------------------------------------------------------------------------

@given(m=st.integers(1, 70), k=st.integers(1, 700), p=st.integers(1, 1500), dtype=DTYPES, seed=SEEDS,
       threads=st.sampled_from([1, 2]), transposed_b=st.booleans(), big=st.booleans())
def test_split_matmul_matches_reference(m, k, p, dtype, seed, threads, transposed_b, big):
    """Column, row and K splits (MIN_WORK lowered so that small products split too) agree with
    np.matmul within 2 gamma_K S, and every element of ``out`` is written."""
    import numba

    from tinycnn.kernels import gemm as mm
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(dtype)
    # b as the layers pass it: C order, or the transpose of a C-ordered (P, K) array (cols.T)
    b = (rng.standard_normal((p, k)).astype(dtype).T if transposed_b
         else rng.standard_normal((k, p)).astype(dtype))
    out = np.full((m, p), np.nan, dtype=dtype)
    old, old_min = numba.get_num_threads(), mm.MIN_WORK
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    mm.MIN_WORK = 0 if big else old_min
    try:
        got = K.matmul(a, b, out)
    finally:
        numba.set_num_threads(old)
        mm.MIN_WORK = old_min
    assert got is out
    expected = K.matmul_reference(a, b, np.empty((m, p), dtype=dtype))
    abs_sum = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert_close_reduction(out, expected, k, dtype, abs_sum, name="matmul")


def test_split_matmul_restores_the_blas_thread_count():
    import numba
    from threadpoolctl import threadpool_info

    from tinycnn.kernels import gemm as mm
    if numba.config.NUMBA_NUM_THREADS < 2 or mm._blas_controllers() is None:
        pytest.skip("needs 2 threads and threadpoolctl")
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        a = np.ones((64, 300), np.float32)
        b = np.ones((300, 4000), np.float32)
        out = K.matmul(a, b, np.empty((64, 4000), np.float32))
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(out, 300.0)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


@pytest.mark.parametrize("m,k,p", [(64, 289, 3000),    # columns split (a convolution's forward)
                                   (300, 64, 40),      # rows split
                                   (32, 5000, 28)])    # K split (a weight gradient)
def test_each_matmul_split_is_exercised(m, k, p):
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    test_split_matmul_matches_reference.hypothesis.inner_test(
        m=m, k=k, p=p, dtype=np.float32, seed=1, threads=2, transposed_b=True, big=True)


# --------------------------------------------------------------------------------------------
# Serial twins (tinycnn/_jit.py): kernels.launch runs small work on the serially compiled copy
# --------------------------------------------------------------------------------------------

@given(win=cm_windows, dtype=DTYPES, seed=SEEDS)
def test_serial_twins_compute_exactly_what_the_parallel_kernels_compute(win, dtype, seed):
    """Same Python source, compiled with and without parallel=True: bitwise the same results, for
    every parallel kernel the layers launch (and launch() picks either by size)."""
    import numba

    from tinycnn import _jit
    rng = np.random.default_rng(seed)
    h, w, args, oh, ow = _cm_args(win)
    n, c = win["n"], win["c"]
    kh, kw = args[0], args[1]
    pargs = (kh, kw, args[2], args[3], min(args[4], kh // 2), min(args[5], kw // 2))
    xs = rng.standard_normal((c, h, w, n)).astype(dtype)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    dcols = rng.standard_normal((c * kh * kw, n * oh * ow)).astype(dtype)
    v = rng.standard_normal(n * c * h * w).astype(dtype)
    cases = [
        (K.im2col_cm, (xs, *args, np.empty((c * kh * kw, n * oh * ow), dtype))),
        (K.col2im_cm, (dcols, c, n, h, w, *args)),
        (K.maxpool2d_forward_cm, (xs, *pargs)),
        (K.maxpool2d_forward, (x, *pargs)),
        (K.elementwise.relu_forward, (v,)),
        (K.elementwise.relu_backward, (v > 0, v)),
    ]
    y_cm, a_cm = K.maxpool2d_forward_cm(xs, *pargs)
    y_n, a_n = K.maxpool2d_forward(x, *pargs)
    cases += [(K.maxpool2d_backward_cm, (rng.standard_normal(y_cm.shape).astype(dtype), a_cm, h, w)),
              (K.maxpool2d_backward, (rng.standard_normal(y_n.shape).astype(dtype), a_n, h, w))]
    for kernel, kargs in cases:
        assert kernel.serial is not kernel, kernel
        parallel = kernel(*[a.copy() if isinstance(a, np.ndarray) else a for a in kargs])
        serial = kernel.serial(*[a.copy() if isinstance(a, np.ndarray) else a for a in kargs])
        for p, s in zip(parallel if isinstance(parallel, tuple) else (parallel,),
                        serial if isinstance(serial, tuple) else (serial,)):
            np.testing.assert_array_equal(p, s, err_msg=kernel.py_func.__name__)
    # launch: the parallel kernel for large work with several threads, the twin otherwise
    calls = []
    fake = lambda *a: calls.append("parallel")                     # noqa: E731
    fake.serial = lambda *a: calls.append("serial")
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        _jit.launch(fake, _jit.PARALLEL_MIN_ELEMENTS - 1)
        _jit.launch(fake, _jit.PARALLEL_MIN_ELEMENTS)
        numba.set_num_threads(1)
        _jit.launch(fake, _jit.PARALLEL_MIN_ELEMENTS)
    finally:
        numba.set_num_threads(old)
    expected_big = "parallel" if numba.config.NUMBA_NUM_THREADS > 1 else "serial"
    assert calls == ["serial", expected_big, "serial"], calls
