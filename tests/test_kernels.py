"""Every Numba kernel in tinycnn.kernels agrees with its plain ``*_reference`` twin.

Shapes come from ``window_shapes.windows`` (batch 1-4, channels 1-6, non-square kernels 1-5,
stride 1-3, padding 0..K-1 for im2col and 2*P <= K for pooling, rows left over) plus the hand-picked
``EDGE_CASES``; dtypes float32 and float64.

Equality rules (tolerances.py):
* exact where both sides do the same operations: im2col only copies values; max pooling only
  compares them (so the winner, ``argmax``, must match too, ties included);
* elsewhere ``|fast - reference| <= 2 * gamma_n * S``, with n the longest sum either side forms and
  S the same computation on absolute values in float64.
"""
import inspect
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import example, find, given
from hypothesis import strategies as st
from tolerances import assert_close_reduction, reduction_atol
from window_shapes import EDGE_CASES, IM2COL_EDGE_CASES, windows

from tinycnn import kernels as K

DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)


def with_edge_cases(cases, dtypes=(np.float32, np.float64), **extra):
    """Run a property also on every hand-picked Window (in each dtype, with ``extra`` arguments)."""
    def decorate(test):
        for win in cases.values():
            for dtype in dtypes:
                kwargs = dict(win=win, seed=0, **extra)
                if dtype is not None:
                    kwargs["dtype"] = dtype
                test = example(**kwargs)(test)
        return test
    return decorate


def random_input(win, dtype, rng, *, ties=False):
    """x: (N, C, H, W). ``ties``: small integers, so many windows hold equal maxima."""
    if ties:
        return rng.integers(-2, 3, size=win.x_shape).astype(dtype)
    return rng.standard_normal(win.x_shape).astype(dtype)


def padded_windows(x, win, fill):
    """All windows as a view: (N, C, OH, OW, KH, KW), padding filled with ``fill``. Plain NumPy."""
    xp = np.pad(x, ((0, 0), (0, 0), (win.ph, win.ph), (win.pw, win.pw)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(xp, (win.kh, win.kw), axis=(2, 3))
    return view[:, :, ::win.sh, ::win.sw][:, :, :win.oh, :win.ow]


# --------------------------------------------------------------------------------------------
# The strategy reaches every hard case the issue names (a test of the test data).
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, condition", [
    ("stride > kernel with rows left over", lambda w: w.sh > w.kh and w.rows_left_over),
    ("overlapping windows that do not tile", lambda w: w.sh < w.kh and w.sw < w.kw and w.rows_left_over),
    ("non-square kernel with padding on both axes", lambda w: w.kh != w.kw and w.ph > 0 and w.pw > 0),
    ("padding at the pooling limit 2P = K", lambda w: 2 * w.ph == w.kh and w.kh > 1),
])
def test_pooling_strategy_reaches(name, condition):
    found = find(windows(pooling=True), condition)
    assert condition(found), name


def test_im2col_strategy_reaches_padding_beyond_half_the_kernel():
    found = find(windows(pooling=False), lambda w: 2 * w.ph > w.kh and 2 * w.pw > w.kw)
    assert 2 * found.ph > found.kh


# --------------------------------------------------------------------------------------------
# im2col / col2im
# --------------------------------------------------------------------------------------------

@given(win=windows(pooling=False), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(IM2COL_EDGE_CASES)
def test_im2col_matches_reference_exactly(win, dtype, seed):
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng)
    cols = K.im2col(x, *win.args)
    expected = K.im2col_reference(x, *win.args)
    assert cols.shape == (win.c * win.kh * win.kw, win.n * win.oh * win.ow)
    assert cols.dtype == x.dtype
    np.testing.assert_array_equal(cols, expected)
    # The layout the docstring promises, checked entry by entry on a random sample:
    # cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 in padding)
    for _ in range(20):
        n, c, i, j = (int(rng.integers(0, s)) for s in (win.n, win.c, win.kh, win.kw))
        oh, ow = int(rng.integers(0, win.oh)), int(rng.integers(0, win.ow))
        ih, iw = oh * win.sh - win.ph + i, ow * win.sw - win.pw + j
        inside = 0 <= ih < win.h and 0 <= iw < win.w
        want = x[n, c, ih, iw] if inside else 0.0
        assert cols[(c * win.kh + i) * win.kw + j, (n * win.oh + oh) * win.ow + ow] == want


@given(win=windows(pooling=False), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(IM2COL_EDGE_CASES)
def test_col2im_matches_reference(win, dtype, seed):
    rng = np.random.default_rng(seed)
    cols = rng.standard_normal((win.c * win.kh * win.kw, win.n * win.oh * win.ow)).astype(dtype)
    shape = (win.n, win.c, win.h, win.w)
    x = K.col2im(cols, *shape, *win.args)
    expected = K.col2im_reference(cols, *shape, *win.args)
    assert x.shape == shape and x.dtype == cols.dtype
    # Each pixel is a sum of at most max_overlap column entries.
    abs_sum = K.col2im_reference(np.abs(cols).astype(np.float64), *shape, *win.args)
    assert_close_reduction(x, expected, win.max_overlap, dtype, abs_sum, name="col2im")


@given(win=windows(pooling=False), seed=SEEDS)
@with_edge_cases(IM2COL_EDGE_CASES, dtypes=(None,))
def test_col2im_is_the_adjoint_of_im2col(win, seed):
    """<im2col(x), c> = <x, col2im(c)> in float64, for random x and c."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(win.x_shape)
    c = rng.standard_normal((win.c * win.kh * win.kw, win.n * win.oh * win.ow))
    lhs = float(np.sum(K.im2col(x, *win.args) * c))
    rhs = float(np.sum(x * K.col2im(c, *win.x_shape, *win.args)))
    # Both are sums of the same products x[p]*c[q] (padding contributes exact zeros): at most
    # c.size products on the left; on the right col2im's partial sums (max_overlap deep) then x.size.
    abs_sum = float(np.sum(K.im2col(np.abs(x), *win.args) * np.abs(c)))
    n_terms = c.size + win.max_overlap
    assert abs(lhs - rhs) <= reduction_atol(n_terms, np.float64, abs_sum), (lhs, rhs)


# Channel-major twins (Conv2D's fast path): the same cols rows, read from (C, H, W, N) memory, with
# the columns in (oh, ow, n) order (images fastest) instead of (n, oh, ow).
needs_cm = pytest.mark.skipif(not hasattr(K, "im2col_cm"), reason="no channel-major kernels in tinycnn.kernels")


def images_fastest(cols, win):
    """(K, N*OH*OW) columns in (n, oh, ow) order -> (K, OH*OW*N) in (oh, ow, n) order."""
    return cols.reshape(-1, win.n, win.oh, win.ow).transpose(0, 2, 3, 1).reshape(cols.shape[0], -1)


def images_slowest(cols, win):
    """The inverse of images_fastest."""
    return cols.reshape(-1, win.oh, win.ow, win.n).transpose(0, 3, 1, 2).reshape(cols.shape[0], -1)


@needs_cm
@given(win=windows(pooling=False), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(IM2COL_EDGE_CASES)
def test_im2col_cm_matches_reference_exactly(win, dtype, seed):
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng)
    xs = np.ascontiguousarray(x.transpose(1, 2, 3, 0))                 # (C, H, W, N)
    shape = (win.c * win.kh * win.kw, win.n * win.oh * win.ow)
    out = np.full(shape, np.nan, dtype=dtype)                           # every entry must be written
    cols = K.im2col_cm(xs, *win.args, out)
    assert np.shares_memory(cols, out) and cols.shape == shape and cols.dtype == x.dtype
    np.testing.assert_array_equal(cols, K.im2col_cm_reference(xs, *win.args, np.empty_like(out)))
    # the NCHW kernel's matrix, its columns reordered
    np.testing.assert_array_equal(cols, images_fastest(K.im2col_reference(x, *win.args), win))


@needs_cm
@given(win=windows(pooling=False), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(IM2COL_EDGE_CASES)
def test_col2im_cm_matches_reference(win, dtype, seed):
    rng = np.random.default_rng(seed)
    cols = rng.standard_normal((win.c * win.kh * win.kw, win.n * win.oh * win.ow)).astype(dtype)
    args = (win.c, win.n, win.h, win.w)
    xs = K.col2im_cm(cols, *args, *win.args)
    assert xs.shape == (win.c, win.h, win.w, win.n) and xs.dtype == cols.dtype
    abs_sum = K.col2im_cm_reference(np.abs(cols).astype(np.float64), *args, *win.args)
    assert_close_reduction(xs, K.col2im_cm_reference(cols, *args, *win.args), win.max_overlap, dtype,
                           abs_sum, name="col2im_cm")
    assert_close_reduction(xs.transpose(3, 0, 1, 2), K.col2im(images_slowest(cols, win), *win.x_shape, *win.args),
                           win.max_overlap, dtype, abs_sum.transpose(3, 0, 1, 2), name="col2im_cm vs col2im")


@needs_cm
@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS, ties=st.booleans(),
       specials=st.sampled_from(["none", "nan", "-inf"]))
@with_edge_cases(EDGE_CASES, ties=True, specials="nan")
def test_maxpool_cm_matches_the_nchw_kernels(win, dtype, seed, ties, specials):
    """Max pooling on (C, H, W, N) memory: exactly the NCHW kernel's values and winners (ties, NaN,
    -inf included), and its backward within the reduction bound."""
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng, ties=ties)
    if specials != "none":
        x[rng.random(x.shape) < 0.2] = np.nan if specials == "nan" else -np.inf
    xs = np.ascontiguousarray(x.transpose(1, 2, 3, 0))                 # (C, H, W, N)
    y, argmax = K.maxpool2d_forward_cm(xs, *win.args)
    y_ref, argmax_ref = K.maxpool2d_forward(x, *win.args)
    assert y.shape == (win.c, win.oh, win.ow, win.n) and argmax.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref.transpose(1, 2, 3, 0))
    np.testing.assert_array_equal(argmax, argmax_ref.transpose(1, 2, 3, 0))
    y_r, argmax_r = K.maxpool2d_forward_cm_reference(xs, *win.args)
    np.testing.assert_array_equal(y, y_r)
    np.testing.assert_array_equal(argmax, argmax_r)
    g = rng.standard_normal(y.shape).astype(dtype)                     # (C, OH, OW, N)
    grad = K.maxpool2d_backward_cm(g, argmax, win.h, win.w)
    assert grad.shape == (win.c, win.h, win.w, win.n)
    expected = K.maxpool2d_backward_cm_reference(g, argmax, win.h, win.w)
    abs_sum = K.maxpool2d_backward_cm_reference(np.abs(g).astype(np.float64), argmax, win.h, win.w)
    assert_close_reduction(grad, expected, win.max_overlap, dtype, abs_sum, name="maxpool_cm backward")


# Every fast kernel must sit beside a reference with the same signature and have a property here.
PROPERTY_TESTED = {"im2col", "col2im", "im2col_cm", "col2im_cm", "maxpool2d_forward", "maxpool2d_backward",
                   "maxpool2d_forward_cm", "maxpool2d_backward_cm", "avgpool2d_forward", "avgpool2d_backward",
                   "matmul",   # matmul: test_fast_kernels.py::test_split_matmul_matches_reference
                   "bn_stats", "bn_normalize", "bn_backward_sums", "bn_backward_dx", "bn_sums", "bn_sqdev",
                   "gelu_forward", "gelu_backward"}
PROPERTY_TESTED |= {"im2col_cm_pixels"}   # test_fast_kernels.py, the whole columns cut exactly
PROPERTY_TESTED |= {"winograd_input", "winograd_output"}   # tests/test_winograd.py, kernels vs references
# tests/test_depthwise.py, kernels vs references
PROPERTY_TESTED |= {"depthwise_forward", "depthwise_backward_input", "depthwise_backward_weight"}


def test_every_kernel_has_a_reference_twin_and_a_property_test():
    fast = [name for name in K.__all__ if isinstance(getattr(K, name), numba.core.dispatcher.Dispatcher)]
    assert {"im2col", "col2im", "maxpool2d_forward", "avgpool2d_backward"} <= set(fast)
    for name in fast:
        assert f"{name}_reference" in K.__all__, f"kernel {name} has no {name}_reference beside it"
        kernel_args = list(inspect.signature(getattr(K, name).py_func).parameters)
        reference_args = list(inspect.signature(getattr(K, f"{name}_reference")).parameters)
        assert kernel_args == reference_args, f"{name}{kernel_args} vs {name}_reference{reference_args}"
        assert name in PROPERTY_TESTED, f"kernel {name} has no property test in tests/test_kernels.py"


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------

@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS, ties=st.booleans())
@with_edge_cases(EDGE_CASES, ties=True)
def test_maxpool_forward_matches_reference_exactly(win, dtype, seed, ties):
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng, ties=ties)
    y, argmax = K.maxpool2d_forward(x, *win.args)
    y_ref, argmax_ref = K.maxpool2d_forward_reference(x, *win.args)
    assert y.shape == win.y_shape and y.dtype == x.dtype and argmax.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    # Independently of the reference: y is the max over the (-inf padded) window ...
    np.testing.assert_array_equal(y, padded_windows(x, win, -np.inf).max(axis=(-2, -1)))
    # ... and argmax points at a real pixel inside that window holding that value.
    ih, iw = np.divmod(argmax, win.w)                      # winner's row and column
    oh = np.arange(win.oh)[:, None] * win.sh - win.ph
    ow = np.arange(win.ow)[None, :] * win.sw - win.pw
    assert np.all((ih >= np.maximum(oh, 0)) & (ih < oh + win.kh) & (ih < win.h))
    assert np.all((iw >= np.maximum(ow, 0)) & (iw < ow + win.kw) & (iw < win.w))
    picked = np.take_along_axis(x.reshape(win.n, win.c, -1), argmax.reshape(win.n, win.c, -1), axis=2)
    np.testing.assert_array_equal(picked.reshape(y.shape), y)


@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS, ties=st.booleans())
@with_edge_cases(EDGE_CASES, ties=True)
def test_maxpool_backward_matches_reference(win, dtype, seed, ties):
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng, ties=ties)
    _, argmax = K.maxpool2d_forward_reference(x, *win.args)
    g = rng.standard_normal(win.y_shape).astype(dtype)        # random upstream gradient
    grad = K.maxpool2d_backward(g, argmax, win.h, win.w)
    expected = K.maxpool2d_backward_reference(g, argmax, win.h, win.w)
    assert grad.shape == win.x_shape and grad.dtype == g.dtype
    # A pixel collects the gradient of every window it wins: at most max_overlap terms.
    abs_sum = K.maxpool2d_backward_reference(np.abs(g).astype(np.float64), argmax, win.h, win.w)
    assert_close_reduction(grad, expected, win.max_overlap, dtype, abs_sum, name="maxpool backward")


@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS, n_nan=st.integers(1, 3))
@with_edge_cases(EDGE_CASES, n_nan=2)
def test_maxpool_nan_propagates(win, dtype, seed, n_nan):
    """A NaN anywhere in a window makes that window's output NaN and its argmax a NaN pixel."""
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=min(n_nan, flat.size), replace=False)] = np.nan
    y, argmax = K.maxpool2d_forward(x, *win.args)
    y_ref, argmax_ref = K.maxpool2d_forward_reference(x, *win.args)
    np.testing.assert_array_equal(y, y_ref)                  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(argmax, argmax_ref)
    has_nan = np.isnan(padded_windows(x, win, -np.inf)).any(axis=(-2, -1))   # (N, C, OH, OW)
    np.testing.assert_array_equal(np.isnan(y), has_nan)
    picked = np.take_along_axis(x.reshape(win.n, win.c, -1), argmax.reshape(win.n, win.c, -1), axis=2)
    assert np.isnan(picked.reshape(y.shape)[has_nan]).all()
    clean = padded_windows(np.where(np.isnan(x), -np.inf, x), win, -np.inf).max(axis=(-2, -1))
    np.testing.assert_array_equal(y[~has_nan], clean[~has_nan])


# --------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------

@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(EDGE_CASES)
def test_avgpool_forward_matches_reference(win, dtype, seed):
    rng = np.random.default_rng(seed)
    x = random_input(win, dtype, rng)
    y = K.avgpool2d_forward(x, *win.args)
    expected = K.avgpool2d_forward_reference(x, *win.args)
    assert y.shape == win.y_shape and y.dtype == x.dtype
    # A sum of KH*KW terms, then one division: n = KH*KW + 1; S = the mean of |x| (padding counts).
    abs_mean = K.avgpool2d_forward_reference(np.abs(x).astype(np.float64), *win.args)
    n = win.kh * win.kw + 1
    assert_close_reduction(y, expected, n, dtype, abs_mean, name="avgpool forward")
    # Independently of the reference: the zero-padded window mean, in float64.
    exact = padded_windows(x.astype(np.float64), win, 0.0).mean(axis=(-2, -1))
    assert_close_reduction(y, exact, n, dtype, abs_mean, name="avgpool forward vs window mean")


@given(win=windows(pooling=True), dtype=DTYPES, seed=SEEDS)
@with_edge_cases(EDGE_CASES)
def test_avgpool_backward_matches_reference(win, dtype, seed):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(win.y_shape).astype(dtype)        # random upstream gradient
    grad = K.avgpool2d_backward(g, win.h, win.w, *win.args)
    expected = K.avgpool2d_backward_reference(g, win.h, win.w, *win.args)
    assert grad.shape == win.x_shape and grad.dtype == g.dtype
    # Each pixel sums g / (KH*KW) over at most max_overlap windows: one division, then the sum.
    abs_sum = K.avgpool2d_backward_reference(np.abs(g).astype(np.float64), win.h, win.w, *win.args)
    assert_close_reduction(grad, expected, win.max_overlap + 1, dtype, abs_sum, name="avgpool backward")


# --------------------------------------------------------------------------------------------
# Without the JIT: every kernel still runs as plain Python (what a learner steps through).
# --------------------------------------------------------------------------------------------

_NO_JIT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import numba
    sys.path.insert(0, sys.argv[1])                 # tests/: for the tolerance table
    from tolerances import assert_close_reduction
    from tinycnn import kernels as K

    assert numba.config.DISABLE_JIT, "NUMBA_DISABLE_JIT was not picked up"
    names = [name for name in K.__all__ if name + "_reference" in K.__all__]     # every fast kernel
    for name in names:
        f = getattr(K, name)
        assert not isinstance(f, numba.core.dispatcher.Dispatcher), f"{name} is still compiled"

    rng = np.random.default_rng(7)
    shape = (2, 3, 7, 6)
    args = (3, 2, 2, 3, 1, 1)                       # kh, kw, sh, sw, ph, pw: OH = 4, OW = 2, overlap 2
    x = rng.standard_normal(shape)
    f64 = np.float64
    cols = K.im2col(x, *args)
    np.testing.assert_array_equal(cols, K.im2col_reference(x, *args))
    c = rng.standard_normal(cols.shape)
    assert_close_reduction(K.col2im(c, *shape, *args), K.col2im_reference(c, *shape, *args), 2, f64,
                           K.col2im_reference(np.abs(c), *shape, *args), name="col2im")
    y, am = K.maxpool2d_forward(x, *args)
    y_ref, am_ref = K.maxpool2d_forward_reference(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(am, am_ref)
    g = rng.standard_normal(y.shape)
    assert_close_reduction(K.maxpool2d_backward(g, am, 7, 6), K.maxpool2d_backward_reference(g, am, 7, 6),
                           2, f64, K.maxpool2d_backward_reference(np.abs(g), am, 7, 6), name="maxpool bwd")
    assert_close_reduction(K.avgpool2d_forward(x, *args), K.avgpool2d_forward_reference(x, *args),
                           7, f64, K.avgpool2d_forward_reference(np.abs(x), *args), name="avgpool fwd")
    assert_close_reduction(K.avgpool2d_backward(g, 7, 6, *args), K.avgpool2d_backward_reference(g, 7, 6, *args),
                           3, f64, K.avgpool2d_backward_reference(np.abs(g), 7, 6, *args), name="avgpool bwd")
    if hasattr(K, "im2col_cm"):
        xs = np.ascontiguousarray(x.transpose(1, 2, 3, 0))
        oh, ow = (7 + 2 * args[4] - args[0]) // args[2] + 1, (6 + 2 * args[5] - args[1]) // args[3] + 1
        reordered = cols.reshape(cols.shape[0], 2, oh, ow).transpose(0, 2, 3, 1).reshape(cols.shape[0], -1)
        np.testing.assert_array_equal(K.im2col_cm(xs, *args, np.empty_like(cols)), reordered)
        assert_close_reduction(K.col2im_cm(c, 3, 2, 7, 6, *args), K.col2im_cm_reference(c, 3, 2, 7, 6, *args),
                               2, f64, K.col2im_cm_reference(np.abs(c), 3, 2, 7, 6, *args), name="col2im_cm")
    print("NO-JIT OK", len(names))
""")


def test_kernels_run_without_the_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", _NO_JIT_SCRIPT, tests_dir], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "NO-JIT OK" in done.stdout and int(done.stdout.split()[-1]) >= 6, done.stdout


# --------------------------------------------------------------------------------------------
# Batch norm on channel-major rows (C, M)
# --------------------------------------------------------------------------------------------

@given(c=st.integers(1, 5), m=st.integers(1, 300), dtype=DTYPES, seed=SEEDS, act=st.sampled_from([0, 1, 2]),
       affine=st.booleans(), batch_stats=st.booleans())
def test_batchnorm_kernels_match_their_references(c, m, dtype, seed, act, affine, batch_stats):
    """Sums within two roundings of an m-term sum (float64 accumulators: u_64); the elementwise passes
    do the same operations in the same order as their references: bitwise (a fused GELU's y and
    slope too). act: 0 none, 1 a fused ReLU, 2 a fused GELU."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((c, m)) * 2 + rng.standard_normal((c, 1)) * 5).astype(dtype)
    g = rng.standard_normal((c, m)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    zero = np.dtype(dtype).type(0)
    mean, var = K.bn_stats(x)
    mean_r, var_r = K.bn_stats_reference(x)
    abs_x = np.abs(x).astype(np.float64)
    assert_close_reduction(K.bn_sums(x), K.bn_sums_reference(x), m, np.float64, abs_x.sum(axis=1), "row sums")
    sq = (np.abs(x - mean_r[:, None]) ** 2).sum(axis=1)
    assert_close_reduction(K.bn_sqdev(x, mean_r), K.bn_sqdev_reference(x, mean_r), m + 3, np.float64, sq + 1e-300,
                           "squared deviations")
    assert_close_reduction(mean, mean_r, m, np.float64, np.abs(x).astype(np.float64).mean(axis=1), "mean")
    dev = np.abs(x - mean_r[:, None])
    assert_close_reduction(var, var_r, m + 3, np.float64, (dev * dev + 2 * dev * 1e-12).mean(axis=1) + 1e-300,
                           "var")
    invstd = 1.0 / np.sqrt(var_r + 1e-5)
    outs = [np.empty((c, m), dtype) for _ in range(6)]
    K.bn_normalize(x, mean_r, invstd, gamma, beta, affine, act, zero, outs[0], outs[1], outs[4])
    K.bn_normalize_reference(x, mean_r, invstd, gamma, beta, affine, act, zero, outs[2], outs[3], outs[5])
    np.testing.assert_array_equal(outs[0], outs[2])
    np.testing.assert_array_equal(outs[1], outs[3])
    x_hat, y, slope = outs[2], outs[3], outs[5]
    if act == 2:
        np.testing.assert_array_equal(outs[4], slope)
    sums = K.bn_backward_sums(g, x_hat, y, slope, act, zero)
    sums_r = K.bn_backward_sums_reference(g, x_hat, y, slope, act, zero)
    gm = np.where(y > 0, g, 0) if act == 1 else g * slope if act == 2 else g
    assert_close_reduction(sums[0], sums_r[0], m, np.float64, np.abs(gm).astype(np.float64).sum(axis=1), "sum g")
    assert_close_reduction(sums[1], sums_r[1], m, np.float64,
                           np.abs(gm * x_hat).astype(np.float64).sum(axis=1), "sum g x_hat")
    coef = rng.uniform(0.1, 1, c).astype(dtype)
    sg, sgx = sums_r[0].astype(dtype), sums_r[1].astype(dtype)
    gx, gx_r = np.empty((c, m), dtype), np.empty((c, m), dtype)
    K.bn_backward_dx(g, x_hat, y, slope, act, zero, coef, sg, sgx, np.dtype(dtype).type(m), batch_stats, gx)
    K.bn_backward_dx_reference(g, x_hat, y, slope, act, zero, coef, sg, sgx, np.dtype(dtype).type(m), batch_stats,
                               gx_r)
    np.testing.assert_array_equal(gx, gx_r)


# --------------------------------------------------------------------------------------------
# GELU (exact, erf form) on flat memory
# --------------------------------------------------------------------------------------------

@given(size=st.integers(0, 300), dtype=DTYPES, seed=SEEDS, scale=st.sampled_from([1.0, 4.0, 12.0, 40.0]),
       specials=st.lists(st.sampled_from([np.nan, 0.0, -0.0, np.inf, -np.inf]), max_size=6))
def test_gelu_kernels_match_their_references(size, dtype, seed, scale, specials):
    """The same float64 operations in the same order as the NumPy references: bitwise, NaN, +-inf and
    the far tails included (scale 40: exp(-x^2/2) underflows)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(size) * scale).astype(dtype)
    for v in specials[:size]:
        x[rng.integers(size)] = v
    g = rng.standard_normal(size).astype(dtype)
    y, slope = K.gelu_forward(x, np.empty(size, dtype), np.empty(size, dtype))
    y_r, slope_r = K.gelu_forward_reference(x, np.empty(size, dtype), np.empty(size, dtype))
    assert y.dtype == slope.dtype == dtype
    np.testing.assert_array_equal(y, y_r)
    np.testing.assert_array_equal(slope, slope_r)
    gx = K.gelu_backward(slope_r, g, np.empty(size, dtype))
    np.testing.assert_array_equal(gx, K.gelu_backward_reference(slope_r, g, np.empty(size, dtype)))
