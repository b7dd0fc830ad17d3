"""Bad input, non-finite values, memory layouts and state_dict strictness.

* Every bad input gets an error naming the layer and the user's numbers (matched with
  ``pytest.raises(..., match=...)``), never a silent wrong result and never a raw Numba traceback.
* NaN and inf propagate where they should (forward of each layer, its gradients, and the loss) rather
  than being hidden; the expected positions are worked out here from the window geometry.
* Non-contiguous, Fortran-ordered and negative-stride inputs (and upstream gradients) give bit-for-bit
  the result of the same values in C order, forward and backward.
* ``Sequential.state_dict()`` keys and shapes equal torch.nn.Sequential's for the same architecture;
  ``load_state_dict`` is strict and changes nothing when it refuses.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc

F32 = np.float32


def conv(*args, **kw):
    kw.setdefault("rng", np.random.default_rng(0))
    return tc.Conv2D(*args, **kw)


def dense(*args, **kw):
    kw.setdefault("rng", np.random.default_rng(0))
    return tc.Dense(*args, **kw)


def esc(text):
    return re.escape(text)


# ----------------------------------------------------------------------------------------------
# Error messages.
# ----------------------------------------------------------------------------------------------

BAD_FORWARD = {
    # wrong number of dimensions
    # (a 3-D (C, H, W) input is one unbatched image, as in torch: tests/test_conv_pool_options.py)
    "conv 2-D input": (lambda: conv(3, 4, 3)(np.zeros((8, 8), F32)), ValueError,
                       r"Conv2D\(3, 4.*expected a 4-D input \(N, C, H, W\), got 2-D input of shape \(8, 8\)"),
    "maxpool 5-D input": (lambda: tc.MaxPool2D(2)(np.zeros((1, 2, 3, 8, 8), F32)), ValueError,
                          r"MaxPool2D\(.*expected a 4-D input \(N, C, H, W\), "
                          r"got 5-D input of shape \(1, 2, 3, 8, 8\)"),
    "avgpool 2-D input": (lambda: tc.AvgPool2D(2)(np.zeros((8, 8), F32)), ValueError,
                          r"AvgPool2D\(.*expected a 4-D input.*got 2-D input of shape \(8, 8\)"),
    "dense 4-D input": (lambda: dense(10, 4)(np.zeros((2, 10, 1, 1), F32)), ValueError,
                        r"Dense\(10, 4\): expected a 2-D input \(N, in_features\), "
                        r"got 4-D input of shape \(2, 10, 1, 1\)"),
    "flatten 1-D input": (lambda: tc.Flatten()(np.zeros(5, F32)), ValueError,
                          r"Flatten\(\): expected input \(N, \.\.\.\) with at least 2 dimensions, got shape \(5,\)"),
    "loss 1-D logits": (lambda: tc.SoftmaxCrossEntropy()(np.zeros(5, F32), np.array([1])), ValueError,
                        r"SoftmaxCrossEntropy\(\): expected logits of shape \(N, K\), got shape \(5,\)"),
    # wrong channel count
    "conv channels": (lambda: conv(3, 4, 3)(np.zeros((2, 5, 8, 8), F32)), ValueError,
                      r"Conv2D\(3, 4.*expected 3 input channels, got 5"),
    # kernel larger than the padded input: the output-size formula with the user's numbers
    "conv kernel > padded height": (lambda: conv(3, 4, (5, 3), padding=(1, 0))(np.zeros((2, 3, 2, 8), F32)), ValueError,
                                    esc("kernel height 5 is larger than the padded input height 2 + 2*1 = 4; ")
                                    + esc("output height = (in + 2*padding - kernel) // stride + 1 "
                                          "= (2 + 2*1 - 5) // 1 + 1 = 0")),
    "conv kernel > padded width": (lambda: conv(1, 1, (1, 4), stride=(1, 3))(np.zeros((1, 1, 5, 3), F32)), ValueError,
                                   esc("kernel width 4 is larger than the padded input width 3 + 2*0 = 3; ")
                                   + esc("output width = (in + 2*padding - kernel) // stride + 1 "
                                         "= (3 + 2*0 - 4) // 3 + 1 = 0")),
    "maxpool kernel > input": (lambda: tc.MaxPool2D(5)(np.zeros((1, 1, 3, 8), F32)), ValueError,
                               r"MaxPool2D\(kernel_size=\(5, 5\).*" + esc("(3 + 2*0 - 5) // 5 + 1 = 0")),
    "avgpool kernel > input": (lambda: tc.AvgPool2D((2, 6), padding=(0, 1))(np.zeros((1, 1, 3, 3), F32)), ValueError,
                               r"AvgPool2D\(.*kernel width 6.*" + esc("(3 + 2*1 - 6) // 6 + 1 = 0")),
    # Dense input size mismatch
    "dense features": (lambda: dense(10, 4)(np.zeros((2, 12), F32)), ValueError,
                       r"Dense\(10, 4\): expected 10 input features, got 12"),
    # integer, boolean, object, complex input arrays
    "conv int input": (lambda: conv(3, 4, 3)(np.zeros((2, 3, 8, 8), np.int64)), TypeError,
                       r"Conv2D\(3, 4.*input dtype is int64, but a floating array is needed"),
    "conv uint8 input": (lambda: conv(3, 4, 3)(np.zeros((2, 3, 8, 8), np.uint8)), TypeError,
                         r"Conv2D\(3, 4.*input dtype is uint8.*x\.astype\(np\.float32\) / 255"),
    "maxpool object input": (lambda: tc.MaxPool2D(2)(np.zeros((1, 1, 4, 4), object)), TypeError,
                             r"MaxPool2D\(.*input dtype is object, but a floating array is needed"),
    "avgpool bool input": (lambda: tc.AvgPool2D(2)(np.zeros((1, 1, 4, 4), bool)), TypeError,
                           r"AvgPool2D\(.*input dtype is bool"),
    "maxpool float16 input": (lambda: tc.MaxPool2D(2)(np.zeros((1, 1, 4, 4), np.float16)), TypeError,
                              r"MaxPool2D\(.*input dtype is float16; pooling runs in float32 or float64"),
    "avgpool longdouble input": (lambda: tc.AvgPool2D(2)(np.zeros((1, 1, 4, 4), np.longdouble)), TypeError,
                                 r"AvgPool2D\(.*input dtype is float128; pooling runs in float32 or float64"),
    "relu int input": (lambda: tc.ReLU()(np.zeros(3, np.int32)), TypeError, r"ReLU\(\): input dtype is int32"),
    "sigmoid object input": (lambda: tc.Sigmoid()(np.array([0.5, None])), TypeError,
                             r"Sigmoid\(\): input dtype is object"),
    "flatten int input": (lambda: tc.Flatten()(np.zeros((2, 3), np.int16)), TypeError,
                          r"Flatten\(\): input dtype is int16"),
    "dense complex input": (lambda: dense(3, 2)(np.zeros((2, 3), complex)), TypeError,
                            r"Dense\(3, 2\): input dtype is complex128"),
    "loss int logits": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), np.int64), np.array([0, 1, 2])), TypeError,
                        r"SoftmaxCrossEntropy\(\): logits dtype is int64, but a floating array is needed"),
    # labels out of range, negative, not integers; batch sizes that differ
    "label too large": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array([0, 5, 1])), ValueError,
                        esc("SoftmaxCrossEntropy(): label 5 at index 1 is out of range for 5 classes (valid: 0..4)")),
    "label negative": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array([0, 1, -2])), ValueError,
                       esc("SoftmaxCrossEntropy(): label -2 at index 2 is out of range for 5 classes (valid: 0..4)")),
    "label float 1-D": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array([0.0, 1.0, 2.0])), TypeError,
                        r"SoftmaxCrossEntropy\(\): labels are 1-D float64; "
                        r"pass class indices as an integer array.*\(N, 5\)"),
    "label bool": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array([True, False, True])), TypeError,
                   r"SoftmaxCrossEntropy\(\): labels must be integer class indices.*got dtype bool"),
    "label strings": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array(["0", "1", "2"])), TypeError,
                      r"SoftmaxCrossEntropy\(\): labels must be integer class indices.*got dtype <U1"),
    "label 2-D integers": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.zeros((3, 1), np.int64)),
                           ValueError,
                           r"SoftmaxCrossEntropy\(\): integer labels must be 1-D \(N,\), got shape \(3, 1\)"),
    "negative probabilities": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((2, 2), F32),
                                                                np.array([[1.5, -0.5], [0.5, 0.5]])),
                               ValueError, r"SoftmaxCrossEntropy\(\): probability labels must be >= 0"),
    "batch sizes differ (int)": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.array([0, 1])), ValueError,
                                 r"SoftmaxCrossEntropy\(\): logits hold 3 samples but labels hold 2"),
    "batch sizes differ (prob)": (lambda: tc.SoftmaxCrossEntropy()(np.zeros((3, 5), F32), np.full((2, 5), 0.2)),
                                  ValueError,
                                  esc("SoftmaxCrossEntropy(): probability labels must have the logits' shape (3, 5), "
                                      "got (2, 5)")),
}

BAD_CONSTRUCTION = {
    "conv stride 0": (lambda: tc.Conv2D(3, 4, 3, stride=0), ValueError, esc("Conv2D: stride must be >= 1, got (0, 0)")),
    "conv stride -1 (pair)": (lambda: tc.Conv2D(3, 4, 3, stride=(1, -1)), ValueError,
                              esc("Conv2D: stride must be >= 1, got (1, -1)")),
    "conv kernel 0": (lambda: tc.Conv2D(3, 4, (3, 0)), ValueError, esc("Conv2D: kernel_size must be >= 1, got (3, 0)")),
    "conv kernel -2": (lambda: tc.Conv2D(3, 4, -2), ValueError, esc("Conv2D: kernel_size must be >= 1, got (-2, -2)")),
    "conv padding -1": (lambda: tc.Conv2D(3, 4, 3, padding=-1), ValueError,
                        esc("Conv2D: padding must be >= 0, got (-1, -1)")),
    "conv kernel 2.5": (lambda: tc.Conv2D(3, 4, 2.5), TypeError,
                        esc("Conv2D: kernel_size must be an int or an (h, w) pair, got 2.5")),
    "conv 0 channels": (lambda: tc.Conv2D(0, 4, 3), ValueError,
                        esc("Conv2D: in_channels must be a positive integer, got 0")),
    "maxpool kernel 0": (lambda: tc.MaxPool2D(0), ValueError, esc("MaxPool2D: kernel_size must be >= 1, got (0, 0)")),
    "maxpool stride 0": (lambda: tc.MaxPool2D(2, stride=0), ValueError,
                         esc("MaxPool2D: stride must be >= 1, got (0, 0)")),
    "avgpool stride -3": (lambda: tc.AvgPool2D(2, stride=(2, -3)), ValueError,
                          esc("AvgPool2D: stride must be >= 1, got (2, -3)")),
    # pooling padding over half the kernel
    "maxpool padding > k/2": (lambda: tc.MaxPool2D(3, padding=2), ValueError,
                              r"MaxPool2D\(kernel_size=\(3, 3\).*padding 2 is more than half the kernel height 3; "
                              + esc("padding must satisfy 2*padding <= kernel_size (here 2*2 = 4 > 3)")),
    "avgpool padding > k/2 (width)": (lambda: tc.AvgPool2D((4, 3), padding=(2, 2)), ValueError,
                                      r"AvgPool2D\(kernel_size=\(4, 3\).*"
                                      r"padding 2 is more than half the kernel width 3"),
    "dense 0 features": (lambda: tc.Dense(0, 3), ValueError,
                         esc("Dense: in_features must be a positive integer, got 0")),
    "dense float16 dtype": (lambda: tc.Dense(3, 2, dtype=np.float16), TypeError,
                            esc("Dense: dtype must be float32 or float64, got float16")),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_bad_forward_input_is_named(case):
    call, exc, match = BAD_FORWARD[case]
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTION), ids=list(BAD_CONSTRUCTION))
def test_bad_layer_arguments_are_named(case):
    call, exc, match = BAD_CONSTRUCTION[case]
    with pytest.raises(exc, match=match):
        call()


def every_layer():
    """(layer, input) pairs covering every layer type."""
    x4 = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(F32)
    return [
        (conv(3, 4, 3), x4), (tc.MaxPool2D(2), x4), (tc.AvgPool2D(3, 2, 1), x4), (tc.ReLU(), x4),
        (tc.Sigmoid(), x4), (tc.Flatten(), x4), (dense(6, 2), x4[:, 0, 0]),
    ]


@pytest.mark.parametrize("index", range(7))
def test_backward_before_forward_and_bad_grads(index):
    layer, x = every_layer()[index]
    name = re.escape(repr(layer))
    with pytest.raises(RuntimeError, match=name + r": backward\(\) called before forward\(\)"):
        layer.backward(np.zeros(3, F32))
    y = layer.forward(x)
    wrong = y.shape[:-1] + (y.shape[-1] + 1,)
    with pytest.raises(ValueError, match=name + esc(f": backward got grad_y of shape {wrong}, but forward produced "
                                                      f"an output of shape {y.shape}")):
        layer.backward(np.zeros(wrong, F32))
    for dtype in (np.int64, bool, object):
        with pytest.raises(TypeError, match=name + f": backward got grad_y of dtype {np.dtype(dtype)}, but a floating"):
            layer.backward(np.zeros(y.shape, dtype))
    if isinstance(layer, (tc.MaxPool2D, tc.AvgPool2D)):
        with pytest.raises(TypeError, match=name + ": grad_y dtype is float16; pooling runs in float32 or float64"):
            layer.backward(np.zeros(y.shape, np.float16))


def test_loss_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"SoftmaxCrossEntropy\(\): backward\(\) called before forward\(\)"):
        tc.SoftmaxCrossEntropy().backward()


def test_sequential_backward_before_forward_names_the_layer():
    model = tc.Sequential(dense(3, 2), tc.ReLU())
    with pytest.raises(RuntimeError, match=r"ReLU\(\): backward\(\) called before forward\(\)"):
        model.backward(np.zeros((2, 2), F32))


# ----------------------------------------------------------------------------------------------
# NaN and inf propagate.
# ----------------------------------------------------------------------------------------------

def touched_outputs(h, w, kh, kw, sh, sw, ph, pw, r, c):
    """(OH, OW) bool: output windows that contain input pixel (r, c). Worked out from the geometry."""
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    rows = np.array([0 <= r - (i * sh - ph) < kh for i in range(oh)])
    cols = np.array([0 <= c - (j * sw - pw) < kw for j in range(ow)])
    return rows[:, None] & cols[None, :]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_conv_propagates_non_finite(bad, dtype):
    rng = np.random.default_rng(1)
    layer = tc.Conv2D(3, 4, (3, 2), stride=(2, 1), padding=(1, 1), dtype=dtype, rng=rng)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    x[1, 2, 3, 4] = bad
    y = layer.forward(x)
    hit = touched_outputs(7, 6, 3, 2, 2, 1, 1, 1, 3, 4)                  # (OH, OW)
    expected = np.zeros(y.shape, bool)
    expected[1, :] = hit                                                  # every output channel of image 1
    is_bad = np.isnan(y) if np.isnan(bad) else np.isinf(y)
    assert np.array_equal(~np.isfinite(y), expected) and np.array_equal(is_bad, expected)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)
    assert np.isfinite(dx).all()                     # dx = col2im(W^T g) does not involve x
    # dW[o, 2, i, j] sums g * x over windows; those placing the bad pixel at offset (i, j) are non-finite
    bad_w = ~np.isfinite(layer.weight.grad)
    assert bad_w[:, 2].any() and not bad_w[:, :2].any()
    assert np.isfinite(layer.bias.grad).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_pooling_propagates_non_finite(bad):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 7, 6))
    x[0, 1, 2, 3] = bad
    hit = touched_outputs(7, 6, 3, 3, 2, 2, 1, 1, 2, 3)
    y = tc.MaxPool2D(3, 2, 1).forward(x)
    assert np.isfinite(y[0, 0]).all()
    if bad == -np.inf:
        assert np.isfinite(y).all()                  # -inf never wins a window holding a finite value
    else:
        check = np.isnan if np.isnan(bad) else np.isposinf
        assert np.array_equal(check(y[0, 1]), hit) and np.isfinite(y[0, 1][~hit]).all()
    pool = tc.AvgPool2D(3, 2, 1)
    y = pool.forward(x)
    check = np.isnan if np.isnan(bad) else np.isinf
    assert np.array_equal(check(y[0, 1]), hit) and np.isfinite(y[0, 1][~hit]).all() and np.isfinite(y[0, 0]).all()


def test_maxpool_nan_wins_its_window_and_gets_the_gradient():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    pool = tc.MaxPool2D(2)
    y = pool.forward(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.array_equal(y[0, 0].ravel()[1:], [7.0, 13.0, 15.0])
    dx = pool.backward(np.array([[[[2.0, 3.0], [5.0, 7.0]]]]))
    assert dx[0, 0, 0, 1] == 2.0 and dx[0, 0, 0, 0] == 0.0


def test_activations_and_dense_propagate_non_finite():
    x = np.array([[np.nan, np.inf, -np.inf, 1.0]])
    relu = tc.ReLU()
    assert np.array_equal(relu.forward(x), np.array([[np.nan, np.inf, 0.0, 1.0]]), equal_nan=True)
    assert np.array_equal(relu.backward(np.full((1, 4), 3.0)), [[0.0, 3.0, 0.0, 3.0]])   # documented: NaN gets 0
    sig = tc.Sigmoid()
    y = sig.forward(x)
    assert np.isnan(y[0, 0]) and y[0, 1] == 1.0 and y[0, 2] == 0.0
    assert np.isnan(sig.backward(np.ones((1, 4)))[0, 0])
    layer = tc.Dense(4, 3, dtype=np.float64, rng=np.random.default_rng(0))
    xs = np.random.default_rng(1).standard_normal((3, 4))
    xs[1, 2] = np.nan
    y = layer.forward(xs)
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2]]).all()
    layer.backward(np.random.default_rng(2).standard_normal((3, 3)))
    assert np.isnan(layer.weight.grad[:, 2]).all() and np.isfinite(layer.weight.grad[:, [0, 1, 3]]).all()
    flat = tc.Flatten()
    assert np.isnan(flat.forward(np.full((1, 2, 2), np.nan))).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_loss_propagates_non_finite():
    z = np.random.default_rng(3).standard_normal((3, 4))
    z_nan = z.copy()
    z_nan[1, 2] = np.nan
    loss_fn = tc.SoftmaxCrossEntropy()
    assert np.isnan(loss_fn(z_nan, np.array([0, 1, 2])))
    g = loss_fn.backward()
    assert np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()
    z_inf = z.copy()
    z_inf[0, 3] = np.inf                                  # an infinite logit: the softmax is undefined
    assert np.isnan(loss_fn(z_inf, np.array([0, 1, 2])))
    z_minf = z.copy()
    z_minf[0, 3] = -np.inf
    assert np.isfinite(loss_fn(z_minf, np.array([0, 1, 2])))          # probability 0 for a wrong class: fine
    assert loss_fn(z_minf, np.array([3, 1, 2])) == np.inf             # probability 0 for the true class
    t = np.full((3, 4), 0.25)
    t[2, 0] = np.nan
    assert np.isnan(loss_fn(z, t))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_matches_torch(torch):
    """The non-finite pattern of every output and gradient equals torch's on the same input."""
    F = torch.nn.functional
    rng = np.random.default_rng(4)
    for bad in (np.nan, np.inf, -np.inf):
        x = rng.standard_normal((2, 3, 7, 6))
        x[0, 1, 5, 0] = bad
        layer = tc.Conv2D(3, 2, 3, stride=2, padding=1, dtype=np.float64, rng=rng)
        y = layer.forward(x)
        g = rng.standard_normal(y.shape)
        dx = layer.backward(g)
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(layer.weight.data, requires_grad=True)
        ty = F.conv2d(tx, tw, torch.tensor(layer.bias.data), stride=2, padding=1)
        ty.backward(torch.tensor(g))
        for ours, theirs in ((y, ty), (dx, tx.grad), (layer.weight.grad, tw.grad)):
            theirs = theirs.detach().numpy()
            assert np.array_equal(np.isnan(ours), np.isnan(theirs)) and np.array_equal(np.isinf(ours), np.isinf(theirs))
        z = rng.standard_normal((3, 4))
        z[0, 3], labels = bad, np.array([0, 1, 2])
        loss_fn = tc.SoftmaxCrossEntropy()
        loss, g = loss_fn(z, labels), loss_fn.backward()
        tz = torch.tensor(z, requires_grad=True)
        tloss = F.cross_entropy(tz, torch.tensor(labels))
        tloss.backward()
        assert (np.array_equal(loss, tloss.item(), equal_nan=True)
                or abs(loss - tloss.item()) <= 1e-12 * abs(loss)), (bad, loss, tloss.item())
        assert np.allclose(g, tz.grad.numpy(), rtol=1e-12, atol=0, equal_nan=True), (bad, g, tz.grad)
        for pool, tpool in ((tc.MaxPool2D(3, 2, 1), lambda t: F.max_pool2d(t, 3, 2, 1)),
                            (tc.AvgPool2D(3, 2, 1), lambda t: F.avg_pool2d(t, 3, 2, 1))):
            y = pool.forward(x)
            assert np.array_equal(y, tpool(torch.tensor(x)).numpy(), equal_nan=True)


# ----------------------------------------------------------------------------------------------
# Memory layouts: the same values in any layout give bit-for-bit the same result.
# ----------------------------------------------------------------------------------------------

def layouts(a):
    """The values of ``a`` as: a strided view, Fortran order, negative strides, permuted strides."""
    big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
    every_other = tuple(slice(None, None, 2) for _ in a.shape)
    big[every_other] = a
    flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])[(slice(None, None, -1),) * a.ndim]
    permuted = np.ascontiguousarray(np.moveaxis(a, 0, -1))
    permuted = np.moveaxis(permuted, -1, 0)
    out = {"strided": big[every_other], "fortran": np.asfortranarray(a), "negative": flipped, "permuted": permuted}
    for name, v in out.items():
        assert np.array_equal(v, a), name
    assert not out["strided"].flags.c_contiguous and out["negative"].strides[0] < 0
    return out


def run_layer(make, x, g):
    layer = make()
    y = layer.forward(x)
    dx = layer.backward(g)
    return y, dx, [p.grad for p in layer.parameters()]


def assert_layouts_agree(make, x, g_of):
    y0, dx0, grads0 = run_layer(make, np.ascontiguousarray(x), g := g_of(make().forward(x).shape))
    xs, gs = layouts(x), layouts(g)
    cases = ([(xname, xv, "C", g) for xname, xv in xs.items()] + [("C", x, gname, gv) for gname, gv in gs.items()]
             + [("fortran", xs["fortran"], "negative", gs["negative"])])
    for xname, xv, gname, gv in cases:
            y, dx, grads = run_layer(make, xv, gv)
            where = f"{make()!r} with x {xname}, grad_y {gname}"
            assert np.array_equal(y, y0), f"{where}: forward differs by {np.abs(y - y0).max():.3e}"
            assert np.array_equal(dx, dx0), f"{where}: grad_x differs by {np.abs(dx - dx0).max():.3e}"
            for p, p0 in zip(grads, grads0):
                assert np.array_equal(p, p0), f"{where}: a parameter gradient differs by {np.abs(p - p0).max():.3e}"


@given(dtype=st.sampled_from([np.float32, np.float64]), n=st.integers(1, 3), c=st.integers(1, 3),
       h=st.integers(4, 7), w=st.integers(4, 7), seed=st.integers(0, 2**32 - 1))
def test_layouts_give_identical_results_for_every_layer(dtype, n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)

    def g_of(shape):
        return rng.standard_normal(shape).astype(dtype)

    makers = [
        lambda: tc.Conv2D(c, 3, (3, 2), stride=(2, 1), padding=(1, 1), dtype=dtype, rng=np.random.default_rng(seed)),
        lambda: tc.MaxPool2D(3, 2, 1), lambda: tc.AvgPool2D((3, 2), 1, (1, 0)),
        tc.ReLU, tc.Sigmoid, tc.Flatten, tc.Tanh, tc.Softmax,
        lambda: tc.BatchNorm2D(c, dtype=dtype), lambda: tc.Dropout(0.3, rng=np.random.default_rng(seed)),
    ]
    for make in makers:
        assert_layouts_agree(make, x, g_of)
    x2 = rng.standard_normal((n * 8, c * w * 9)).astype(dtype)       # big enough for blocked BLAS paths
    assert_layouts_agree(lambda: tc.Dense(c * w * 9, 33, dtype=dtype, rng=np.random.default_rng(seed)), x2, g_of)


LARGER = {   # shapes where summation order matters (long reductions, blocked BLAS and pairwise sums)
    "conv": (lambda dt: tc.Conv2D(8, 16, 3, padding=1, dtype=dt, rng=np.random.default_rng(0)), (8, 8, 12, 12)),
    "dense": (lambda dt: tc.Dense(300, 40, dtype=dt, rng=np.random.default_rng(0)), (64, 300)),
    "softmax 2-D": (lambda dt: tc.Softmax(), (64, 300)),
    "softmax 4-D": (lambda dt: tc.Softmax(), (4, 100, 3, 3)),
    "batchnorm": (lambda dt: tc.BatchNorm2D(3, dtype=dt), (8, 3, 9, 9)),
    "avgpool": (lambda dt: tc.AvgPool2D(5, 2, 2), (4, 3, 20, 20)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(LARGER))
def test_layouts_give_identical_results_on_larger_inputs(case, dtype):
    make, shape = LARGER[case]
    rng = np.random.default_rng(5)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    assert_layouts_agree(lambda: make(dtype), x, lambda s: rng.standard_normal(s).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n, k", [(64, 1000), (256, 10), (3, 300)])
def test_layouts_give_identical_loss(dtype, n, k):
    rng = np.random.default_rng(n + k)
    z = (3 * rng.standard_normal((n, k))).astype(dtype)
    for labels in (rng.integers(0, k, n), rng.random((n, k)).astype(dtype)):
        ref = tc.SoftmaxCrossEntropy()
        loss0, g0 = ref(z, labels), ref.backward(0.7)
        for zname, zv in layouts(z).items():
            for lname, lv in layouts(labels).items():
                fn = tc.SoftmaxCrossEntropy()
                loss, g = fn(zv, lv), fn.backward(0.7)
                assert loss == loss0, f"loss with logits {zname}, labels {lname}: {loss!r} != {loss0!r}"
                assert np.array_equal(g, g0), (
                    f"grad with logits {zname}, labels {lname}: differs by {np.abs(g - g0).max():.3e}")


# ----------------------------------------------------------------------------------------------
# state_dict: torch's keys and shapes; strict, all-or-nothing loading.
# ----------------------------------------------------------------------------------------------

def both_models(torch):
    rng = np.random.default_rng(0)
    ours = tc.Sequential(
        tc.Conv2D(3, 8, (3, 5), padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(8, 4, 1, bias=False, rng=rng), tc.Sigmoid(), tc.AvgPool2D(2),
        tc.Flatten(), tc.Dense(4 * 4 * 3, 7, rng=rng), tc.ReLU(), tc.Dense(7, 5, bias=False, rng=rng),
    )
    nn = torch.nn
    theirs = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 4, 1, bias=False), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 3, 7), nn.ReLU(), nn.Linear(7, 5, bias=False),
    )
    return ours, theirs


def test_state_dict_keys_and_shapes_equal_torch(torch):
    ours, theirs = both_models(torch)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    assert [v.shape for v in sd.values()] == [tuple(v.shape) for v in tsd.values()]
    # ... and the weights move over, giving torch's output for torch's weights
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 14)).astype(F32)
    y = ours(x)
    ty = theirs(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(y, ty, rtol=1e-4, atol=1e-5)      # order-of-magnitude check; exactness is test_torch_oracle's
    ours2, _ = both_models(torch)
    ours2.load_state_dict({k: v.detach().numpy() for k, v in tsd.items()})
    assert all(np.array_equal(a, tsd[k].numpy()) for k, a in ours2.state_dict().items())


def test_state_dict_is_a_copy():
    model = tc.Sequential(tc.Dense(3, 2, rng=np.random.default_rng(0)))
    sd = model.state_dict()
    sd["0.weight"][...] = 42
    assert not (model.state_dict()["0.weight"] == 42).any()


def small_model():
    rng = np.random.default_rng(0)
    return tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(8, 3, rng=rng))


def other_state():
    """A complete, valid state that differs from small_model()'s in every value."""
    return {k: v + 1 for k, v in small_model().state_dict().items()}


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("3.bias"), r"missing keys \['3\.bias'\]"),
    (lambda d: d.update({"5.weight": np.zeros(2)}), r"unexpected keys \['5\.weight'\]"),
    (lambda d: d.update({"3.weight": np.zeros((8, 3))}), esc("shape mismatch: 3.weight: model (3, 8) vs given (8, 3)")),
    (lambda d: d.update({"0.bias": np.zeros((2, 1))}), esc("0.bias: model (2,) vs given (2, 1)")),
    (lambda d: (d.pop("0.weight"), d.update({"weight": np.zeros((2, 1, 3, 3))})),
     r"missing keys \['0\.weight'\].*unexpected keys \['weight'\]"),
    (lambda d: d.update({"3.bias": np.array(["a", "b", "c"])}), r"3\.bias.*<U1"),
    (lambda d: d.update({"3.bias": np.array([1.0, None, 2.0], dtype=object)}), r"3\.bias.*object"),
])
def test_load_state_dict_is_strict_and_changes_nothing_on_error(mutate, match):
    model = small_model()
    before = model.state_dict()
    state = other_state()
    mutate(state)
    with pytest.raises((ValueError, TypeError), match=r"Sequential\.load_state_dict: .*" + match):
        model.load_state_dict(state)
    after = model.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before), "a refused load changed the model"


def test_load_state_dict_loads_in_place_and_casts_to_the_model_dtype():
    model = small_model()
    params = [p.data for p in model.parameters()]
    state = {k: v.astype(np.float64) for k, v in other_state().items()}
    model.load_state_dict(state)
    for p, data, (k, v) in zip(model.parameters(), params, state.items()):
        assert p.data is data and p.data.dtype == np.float32      # optimizers keep their references
        assert np.array_equal(p.data, v.astype(np.float32)), k
