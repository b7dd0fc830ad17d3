"""The subgradient rules, written down and tested on their own.

Where a layer is not differentiable the backward pass still has to return something; tinycnn's
choices are PyTorch's:

1. ReLU'(0) = 0. An input that is exactly 0 (or -0.0) passes no gradient.
2. Max pooling with a tie: the whole gradient of a window goes to ONE element, the FIRST maximum of
   the window in row-major order (scan rows top to bottom, each row left to right; a later value
   replaces the current maximum only if it is strictly greater, or NaN). Padding never wins. A pixel
   that wins several overlapping windows collects the sum of their gradients.
3. Average pooling counts padded zeros: every window divides by KH*KW, also at the border
   (torch's count_include_pad=True), and its gradient g / (KH*KW) reaches only the real pixels.

Expected values here are worked out by hand or from the rule itself (a NumPy argmax over each
window, which returns the first maximum), never taken from tinycnn; torch's indices and gradients
are a second witness.
"""
import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from window_shapes import EDGE_CASES, windows

import tinycnn as tc

TWO_BY_TWO = EDGE_CASES["two_by_two_stride_two"]            # max pooling's unrolled fast path

SEEDS = st.integers(0, 2**32 - 1)
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Tiny arrays: one thread avoids the parallel kernels' start-up cost (results are identical)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def dyadic_gradient(rng, shape, dtype):
    """Random upstream gradient with values k/16, |k| <= 1024, k != 0: sums of a few of them are exact
    in float32 and float64, so routed gradients can be compared with ==."""
    k = rng.integers(1, 1025, size=shape) * rng.choice([-1, 1], size=shape)
    return (k / 16).astype(dtype)


# --------------------------------------------------------------------------------------------
# 1. ReLU'(0) = 0
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_gradient_at_zero_is_zero_by_hand(dtype):
    x = np.array([[-1.5, -0.0, 0.0, 2.0, 0.0, 3.5]], dtype=dtype)
    g = np.array([[0.25, -0.5, 0.75, -1.25, 1.5, 2.5]], dtype=dtype)
    relu = tc.ReLU()
    y = relu.forward(x)
    np.testing.assert_array_equal(y, np.array([[0, 0, 0, 2, 0, 3.5]], dtype=dtype))
    grad = relu.backward(g)
    np.testing.assert_array_equal(grad, np.array([[0, 0, 0, -1.25, 0, 2.5]], dtype=dtype))
    assert grad.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), seed=SEEDS)
def test_relu_passes_gradient_only_where_x_is_positive(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-2.0, -0.0, 0.0, 0.0, 1.5]), size=shape).astype(dtype)   # many exact zeros
    g = dyadic_gradient(rng, shape, dtype)
    relu = tc.ReLU()
    relu.forward(x)
    grad = relu.backward(g)
    assert np.all(grad[x == 0] == 0)                     # ReLU'(0) = 0, for +0.0 and -0.0
    np.testing.assert_array_equal(grad[x > 0], g[x > 0])
    assert np.all(grad[x < 0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_subgradient_agrees_with_torch(torch, dtype):
    rng = np.random.default_rng(3)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 2.0]), size=(3, 7)).astype(dtype)
    g = dyadic_gradient(rng, x.shape, dtype)
    relu = tc.ReLU()
    relu.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).backward(torch.tensor(g))
    np.testing.assert_array_equal(relu.backward(g), xt.grad.numpy())


# --------------------------------------------------------------------------------------------
# 2. Max pooling: the first maximum in row-major order takes the whole gradient
# --------------------------------------------------------------------------------------------

def pool_once(layer, x, g):
    y = layer.forward(x)
    return y, layer.backward(g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_all_equal_window_sends_gradient_to_top_left(dtype):
    x = np.full((1, 1, 2, 2), 7.0, dtype=dtype)
    y, grad = pool_once(tc.MaxPool2D(2), x, np.array([[[[3.0]]]], dtype=dtype))
    assert y[0, 0, 0, 0] == 7
    np.testing.assert_array_equal(grad[0, 0], np.array([[3, 0], [0, 0]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_tie_goes_to_the_earlier_row_before_the_earlier_column(dtype):
    # The two 5s tie: (0, 1) comes before (1, 0) in row-major order, although its column is later.
    x = np.array([[[[1, 5], [5, 2]]]], dtype=dtype)
    _, grad = pool_once(tc.MaxPool2D(2), x, np.array([[[[-2.5]]]], dtype=dtype))
    np.testing.assert_array_equal(grad[0, 0], np.array([[0, -2.5], [0, 0]], dtype=dtype))
    # A strictly greater later value still wins.
    x = np.array([[[[5, 1], [1, 6]]]], dtype=dtype)
    _, grad = pool_once(tc.MaxPool2D(2), x, np.array([[[[1.5]]]], dtype=dtype))
    np.testing.assert_array_equal(grad[0, 0], np.array([[0, 0], [0, 1.5]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_maxpool_padding_never_wins_even_against_minus_infinity(dtype):
    # Window 2x2, stride 2, padding 1 on a 2x2 input of -inf: each window holds one real pixel.
    x = np.full((1, 1, 2, 2), -np.inf, dtype=dtype)
    g = np.array([[[[1.0, 2.0], [4.0, 8.0]]]], dtype=dtype)
    y, grad = pool_once(tc.MaxPool2D(2, stride=2, padding=1), x, g)
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(grad[0, 0], np.array([[1, 2], [4, 8]], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_overlapping_windows_sharing_one_winner_accumulate(dtype):
    # 3x3 input, window 2x2, stride 1: the four windows all contain the centre, which is the maximum.
    x = np.array([[[[1, 2, 3], [4, 9, 5], [6, 7, 8]]]], dtype=dtype)
    g = np.array([[[[0.5, -1.25], [2.0, 4.75]]]], dtype=dtype)
    y, grad = pool_once(tc.MaxPool2D(2, stride=1), x, g)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 9, dtype=dtype))
    want = np.zeros((3, 3), dtype=dtype)
    want[1, 1] = 0.5 - 1.25 + 2.0 + 4.75
    np.testing.assert_array_equal(grad[0, 0], want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_overlapping_windows_of_a_constant_input_each_pick_their_own_top_left(dtype):
    # All values tie: every window's first element is its own top-left, so no pixel is shared.
    x = np.zeros((1, 1, 3, 3), dtype=dtype)
    g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=dtype)
    _, grad = pool_once(tc.MaxPool2D(2, stride=1), x, g)
    np.testing.assert_array_equal(grad[0, 0], np.array([[1, 2, 0], [3, 4, 0], [0, 0, 0]], dtype=dtype))


def first_max_rule(x, win):
    """The rule, written independently of tinycnn: (argmax, grad routing) from NumPy's argmax, which
    returns the first maximum of each flattened (row-major) window. Padding is -inf and the window's
    real pixels are scanned only, so padding never wins."""
    n, c, h, w = x.shape
    argmax = np.empty((n, c, win.oh, win.ow), dtype=np.int64)
    for oh in range(win.oh):
        for ow in range(win.ow):
            h0, w0 = oh * win.sh - win.ph, ow * win.sw - win.pw
            rows = np.arange(max(h0, 0), min(h0 + win.kh, h))
            cols = np.arange(max(w0, 0), min(w0 + win.kw, w))
            patch = x[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].reshape(n, c, -1)
            k = np.argmax(patch, axis=2)                  # first maximum, row-major
            argmax[:, :, oh, ow] = rows[k // len(cols)] * w + cols[k % len(cols)]
    return argmax


def route(g, argmax, h, w):
    """grad_x from the rule: every window's gradient added to its winner. g, argmax: (N, C, OH, OW)."""
    n, c = g.shape[:2]
    out = np.zeros((n, c, h * w), dtype=g.dtype)
    for b in range(n):
        for ch in range(c):
            np.add.at(out[b, ch], argmax[b, ch].ravel(), g[b, ch].ravel())
    return out.reshape(n, c, h, w)


@pytest.mark.parametrize("dtype", DTYPES)
@given(win=windows(pooling=True), seed=SEEDS)
@example(win=TWO_BY_TWO, seed=0)
@example(win=TWO_BY_TWO, seed=1)
def test_maxpool_tie_rule_on_tie_heavy_inputs(dtype, win, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, size=win.x_shape).astype(dtype)          # 3 values: ties everywhere
    g = dyadic_gradient(rng, win.y_shape, dtype)
    layer = tc.MaxPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    _, grad = pool_once(layer, x, g)
    argmax = first_max_rule(x, win)
    np.testing.assert_array_equal(layer._cache.argmax, argmax)
    np.testing.assert_array_equal(grad, route(g, argmax, win.h, win.w))


@pytest.mark.parametrize("dtype", DTYPES)
@given(win=windows(pooling=True), special=st.booleans(), seed=SEEDS)
@example(win=TWO_BY_TWO, special=False, seed=0)
@example(win=TWO_BY_TWO, special=True, seed=1)
def test_maxpool_ties_agree_with_torch(torch, dtype, win, special, seed):
    """torch's CPU max_pool2d scans the same way: same indices, same gradient. ``special`` adds -inf
    and NaN (a NaN wins its window: the last NaN in row-major order, as in torch)."""
    rng = np.random.default_rng(seed)
    values = np.array([-1.0, 0.0, 1.0, -np.inf, np.nan] if special else [-1.0, 0.0, 1.0])
    x = rng.choice(values, size=win.x_shape).astype(dtype)
    g = dyadic_gradient(rng, win.y_shape, dtype)
    layer = tc.MaxPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    y, grad = pool_once(layer, x, g)
    xt = torch.tensor(x, requires_grad=True)
    yt, idx = torch.nn.functional.max_pool2d(xt, (win.kh, win.kw), (win.sh, win.sw), (win.ph, win.pw),
                                             return_indices=True)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(layer._cache.argmax, idx.numpy())
    np.testing.assert_array_equal(y, yt.detach().numpy())             # NaN positions match too
    np.testing.assert_array_equal(grad, xt.grad.numpy())


# --------------------------------------------------------------------------------------------
# 3. Average pooling counts padded zeros
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_with_padding_divides_by_the_full_window_by_hand(dtype):
    # 2x2 ones, window 2x2, stride 1, padding 1: 3x3 windows holding 1, 2 or 4 real pixels.
    x = np.ones((1, 1, 2, 2), dtype=dtype)
    g = np.array([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], dtype=dtype)
    layer = tc.AvgPool2D(2, stride=1, padding=1)
    y, grad = pool_once(layer, x, g)
    np.testing.assert_array_equal(y[0, 0], np.array([[0.25, 0.5, 0.25], [0.5, 1, 0.5], [0.25, 0.5, 0.25]],
                                                    dtype=dtype))
    # Pixel (i, j) of the input lies in windows (i..i+1, j..j+1); each gives g / 4.
    want = np.array([[(1 + 2 + 4 + 5) / 4, (2 + 3 + 5 + 6) / 4],
                     [(4 + 5 + 7 + 8) / 4, (5 + 6 + 8 + 9) / 4]], dtype=dtype)
    np.testing.assert_array_equal(grad[0, 0], want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_avgpool_border_window_is_not_renormalised(dtype):
    # 3x3 window, padding 1, stride 2 on a 3x3 input of 9s: the corner window holds 4 real pixels
    # out of 9, so it averages to 4*9/9 = 4, not 9.
    x = np.full((1, 1, 3, 3), 9.0, dtype=dtype)
    y, _ = pool_once(tc.AvgPool2D(3, stride=2, padding=1), x, np.ones((1, 1, 2, 2), dtype=dtype) * 0.5)
    np.testing.assert_array_equal(y[0, 0], np.full((2, 2), 4.0, dtype=dtype))


@given(win=windows(pooling=True), seed=SEEDS)
def test_avgpool_counts_zeros_like_torch(torch, win, seed):
    """count_include_pad=True in torch: the same forward and gradient (float64, relative 1e-10)."""
    from tolerances import TORCH_F64_REL_TOL, assert_rel_close
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(win.x_shape)
    g = rng.standard_normal(win.y_shape)
    layer = tc.AvgPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    y, grad = pool_once(layer, x, g)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt, (win.kh, win.kw), (win.sh, win.sw), (win.ph, win.pw),
                                        count_include_pad=True)
    yt.backward(torch.tensor(g))
    assert_rel_close(y, yt.detach().numpy(), TORCH_F64_REL_TOL, name="avgpool forward")
    assert_rel_close(grad, xt.grad.numpy(), TORCH_F64_REL_TOL, name="avgpool grad x")
