"""PyTorch as the oracle: every layer's forward pass and every gradient against torch.nn.functional.

For each layer and dtype a hypothesis-drawn configuration is run through tinycnn and through torch on
the same data, with a random upstream gradient (never all ones), and every output is compared:

* float64: max-norm relative error below TORCH_F64_REL_TOL (1e-10) for every tensor;
* float32: elementwise |tinycnn - torch| <= 2 * gamma_n * S, where n is the reduction length of that
  tensor and S the same operation run (in float64) on the absolute values of its operands
  (tests/tolerances.py derives the bound); elementwise transcendental ops (sigmoid, softmax
  cross-entropy) use the bounds derived there from the libraries' documented exp/log accuracy;
* operations without arithmetic (ReLU, Flatten, the max-pool forward pass) must match bit for bit.

Max-pool inputs are a random permutation of distinct values, so no window holds a tie (ties are the
subject of the subgradient tests, not of this one).

``run_<layer>(torch, cfg, dtype)`` functions return the compared tensors; tests/measure_oracle_errors.py
reuses them to measure the achieved errors over many configurations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tolerances import TORCH_F64_REL_TOL, reduction_atol, sigmoid_backward_atol, sigmoid_forward_atol, softmax_ce_atol
from window_shapes import EDGE_CASES, Window, windows

import tinycnn as tc

DTYPES = [np.float64, np.float32]
SEEDS = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------------------------
# What one comparison holds, and how it is judged.
# ----------------------------------------------------------------------------------------------

@dataclass
class Compared:
    """One tensor computed by both sides. ``atol`` is the float32 bound (None: must be bit-equal)."""
    name: str
    ours: np.ndarray
    theirs: np.ndarray
    atol: np.ndarray | float | None


def max_rel_error(c: Compared) -> float:
    """max |ours - theirs| / max |theirs| (0 when both are all zero)."""
    ours = np.asarray(c.ours, dtype=np.float64)
    theirs = np.asarray(c.theirs, dtype=np.float64)
    diff = float(np.abs(ours - theirs).max()) if theirs.size else 0.0
    scale = float(np.abs(theirs).max()) if theirs.size else 0.0
    return diff / scale if scale > 0 else diff


def bound_ratio(c: Compared) -> float:
    """max over elements of |ours - theirs| / bound (<= 1 passes); 0 for bit-equal comparisons."""
    if c.atol is None:
        return 0.0 if np.array_equal(c.ours, c.theirs) else np.inf
    diff = np.abs(np.asarray(c.ours, np.float64) - np.asarray(c.theirs, np.float64))
    bound = np.broadcast_to(np.asarray(c.atol, np.float64), diff.shape) + np.finfo(np.float32).tiny
    return float((diff / bound).max()) if diff.size else 0.0


def check(results: list[Compared], dtype, context: str = ""):
    """Assert every comparison passes for ``dtype``; the message names the tensor, the size, where."""
    for c in results:
        assert np.shape(c.ours) == np.shape(c.theirs), (f"{c.name}: shape {np.shape(c.ours)} vs torch "
                                                        f"{np.shape(c.theirs)}")
        assert np.asarray(c.ours).dtype == np.dtype(dtype), (f"{c.name}: dtype {np.asarray(c.ours).dtype}, "
                                                             f"expected {np.dtype(dtype)}")
        ours = np.asarray(c.ours, np.float64)
        theirs = np.asarray(c.theirs, np.float64)
        diff = np.abs(ours - theirs)
        if c.atol is None:                                  # no arithmetic: bit-equal
            if not np.array_equal(ours, theirs):
                i = np.unravel_index(int(np.argmax(diff)), diff.shape)
                raise AssertionError(f"{context} {c.name} NOT OK: must equal torch exactly; max diff "
                                     f"{diff.max():.3e} at {tuple(int(k) for k in i)}")
        elif np.dtype(dtype) == np.float64:
            scale = float(np.abs(theirs).max()) if theirs.size else 0.0
            if diff.size and diff.max() > TORCH_F64_REL_TOL * scale:
                i = np.unravel_index(int(np.argmax(diff)), diff.shape)
                raise AssertionError(f"{context} {c.name} NOT OK (float64): max diff {diff.max():.3e} at "
                                     f"{tuple(int(k) for k in i)} > {TORCH_F64_REL_TOL:.0e} * max|torch| "
                                     f"= {TORCH_F64_REL_TOL * scale:.3e}")
        else:
            bound = np.broadcast_to(np.asarray(c.atol, np.float64), diff.shape) + np.finfo(np.float32).tiny
            excess = diff - bound
            if diff.size and excess.max() > 0:
                i = np.unravel_index(int(np.argmax(excess)), diff.shape)
                raise AssertionError(f"{context} {c.name} NOT OK (float32): |diff| {diff[i]:.3e} at "
                                     f"{tuple(int(k) for k in i)} exceeds the derived bound {bound[i]:.3e}; "
                                     f"max diff {diff.max():.3e}")


# ----------------------------------------------------------------------------------------------
# Running both sides.
# ----------------------------------------------------------------------------------------------

def _t(torch, a, grad=False):
    return torch.tensor(np.ascontiguousarray(a), requires_grad=grad)


def _np(tensor):
    return tensor.detach().numpy().copy()


def _abs_run(torch, fn, arrays: dict, g):
    """Run ``fn`` in float64 on |arrays| with upstream |g|: S for the forward output and every grad."""
    ts = {k: _t(torch, np.abs(np.asarray(v, np.float64)), grad=True) for k, v in arrays.items()}
    y = fn(**ts)
    y.backward(_t(torch, np.abs(np.asarray(g, np.float64))))
    return _np(y), {k: _np(t.grad) for k, t in ts.items()}


def distinct_values(rng, shape, dtype):
    """Distinct values in [-2, 2), at least 4/size apart: no ties in any max-pool window."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * (4.0 / size)).reshape(shape).astype(dtype)


def run_conv(torch, win: Window, o: int, bias: bool, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    F = torch.nn.functional
    layer = tc.Conv2D(win.c, o, (win.kh, win.kw), (win.sh, win.sw), (win.ph, win.pw), bias=bias,
                      dtype=dtype, rng=rng)
    x = rng.standard_normal(win.x_shape).astype(dtype)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)                    # random upstream gradient
    dx = layer.backward(g)
    stride, padding = (win.sh, win.sw), (win.ph, win.pw)

    def conv(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    arrays = {"x": x, "w": layer.weight.data}
    if bias:
        arrays["b"] = layer.bias.data
    ts = {k: _t(torch, v, grad=True) for k, v in arrays.items()}
    ty = conv(**ts)
    ty.backward(_t(torch, g))
    s_y, s_grads = _abs_run(torch, conv, arrays, g)
    fan = win.c * win.kh * win.kw                   # terms in each output sum
    out_terms = y.shape[0] * y.shape[2] * y.shape[3]  # N*OH*OW: terms in each weight / bias gradient
    results = [
        Compared("y", y, _np(ty), reduction_atol(fan + bias, dtype, s_y)),
        Compared("grad_x", dx, _np(ts["x"].grad), reduction_atol(o * win.kh * win.kw, dtype, s_grads["x"])),
        Compared("grad_weight", layer.weight.grad, _np(ts["w"].grad), reduction_atol(out_terms, dtype, s_grads["w"])),
    ]
    if bias:
        results.append(Compared("grad_bias", layer.bias.grad, _np(ts["b"].grad),
                                reduction_atol(out_terms, dtype, s_grads["b"])))
    return results


def run_maxpool(torch, win: Window, default_stride: bool, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    F = torch.nn.functional
    stride = None if default_stride else (win.sh, win.sw)
    kernel, padding = (win.kh, win.kw), (win.ph, win.pw)
    layer = tc.MaxPool2D(kernel, stride, padding)
    x = distinct_values(rng, win.x_shape, dtype)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)

    def pool(x):
        return F.max_pool2d(x, kernel, stride=stride if stride else kernel, padding=padding)

    tx = _t(torch, x, grad=True)
    ty = pool(tx)
    ty.backward(_t(torch, g))
    _, s_grads = _abs_run(torch, pool, {"x": x}, g)
    sh, sw = stride if stride else kernel
    overlap = -(-win.kh // sh) * -(-win.kw // sw)        # windows one pixel can win in
    return [Compared("y", y, _np(ty), None),
            Compared("grad_x", dx, _np(tx.grad), reduction_atol(overlap, dtype, s_grads["x"]))]


def run_avgpool(torch, win: Window, default_stride: bool, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    F = torch.nn.functional
    stride = None if default_stride else (win.sh, win.sw)
    kernel, padding = (win.kh, win.kw), (win.ph, win.pw)
    layer = tc.AvgPool2D(kernel, stride, padding)
    x = rng.standard_normal(win.x_shape).astype(dtype)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)

    def pool(x):   # PyTorch's defaults: count_include_pad=True, ceil_mode=False
        return F.avg_pool2d(x, kernel, stride=stride if stride else kernel, padding=padding)

    tx = _t(torch, x, grad=True)
    ty = pool(tx)
    ty.backward(_t(torch, g))
    s_y, s_grads = _abs_run(torch, pool, {"x": x}, g)
    sh, sw = stride if stride else kernel
    overlap = -(-win.kh // sh) * -(-win.kw // sw)
    return [Compared("y", y, _np(ty), reduction_atol(win.kh * win.kw + 1, dtype, s_y)),    # sum, then divide
            Compared("grad_x", dx, _np(tx.grad), reduction_atol(overlap + 1, dtype, s_grads["x"]))]


def run_relu(torch, shape, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.2] = 0                 # exact zeros: ReLU'(0) = 0 on both sides
    layer = tc.ReLU()
    y = layer.forward(x)
    g = rng.standard_normal(shape).astype(dtype)
    dx = layer.backward(g)
    tx = _t(torch, x, grad=True)
    ty = torch.nn.functional.relu(tx)
    ty.backward(_t(torch, g))
    return [Compared("y", y, _np(ty), None), Compared("grad_x", dx, _np(tx.grad), None)]


def run_sigmoid(torch, shape, scale: float, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal(shape)).astype(dtype)
    layer = tc.Sigmoid()
    y = layer.forward(x)
    g = rng.standard_normal(shape).astype(dtype)
    dx = layer.backward(g)
    tx = _t(torch, x, grad=True)
    ty = torch.sigmoid(tx)
    ty.backward(_t(torch, g))
    return [Compared("y", y, _np(ty), sigmoid_forward_atol(x, dtype)),
            Compared("grad_x", dx, _np(tx.grad), sigmoid_backward_atol(x, g, dtype))]


def run_flatten(torch, shape, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    layer = tc.Flatten()
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)
    tx = _t(torch, x, grad=True)
    ty = torch.nn.Flatten()(tx)
    ty.backward(_t(torch, g))
    return [Compared("y", y, _np(ty), None), Compared("grad_x", dx, _np(tx.grad), None)]


def run_dense(torch, n: int, fin: int, fout: int, bias: bool, seed: int, dtype) -> list[Compared]:
    rng = np.random.default_rng(seed)
    layer = tc.Dense(fin, fout, bias=bias, dtype=dtype, rng=rng)
    x = rng.standard_normal((n, fin)).astype(dtype)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(dtype)
    dx = layer.backward(g)

    def linear(x, w, b=None):
        return torch.nn.functional.linear(x, w, b)

    arrays = {"x": x, "w": layer.weight.data}
    if bias:
        arrays["b"] = layer.bias.data
    ts = {k: _t(torch, v, grad=True) for k, v in arrays.items()}
    ty = linear(**ts)
    ty.backward(_t(torch, g))
    s_y, s_grads = _abs_run(torch, linear, arrays, g)
    results = [
        Compared("y", y, _np(ty), reduction_atol(fin + bias, dtype, s_y)),
        Compared("grad_x", dx, _np(ts["x"].grad), reduction_atol(fout, dtype, s_grads["x"])),
        Compared("grad_weight", layer.weight.grad, _np(ts["w"].grad), reduction_atol(n, dtype, s_grads["w"])),
    ]
    if bias:
        results.append(Compared("grad_bias", layer.bias.grad, _np(ts["b"].grad),
                                reduction_atol(n, dtype, s_grads["b"])))
    return results


def run_softmax_ce(torch, n: int, k: int, targets: str, scale: float, seed: int, dtype) -> list[Compared]:
    """targets: "int" (class indices), "prob" (rows summing to 1) or "unnormalized" (rows >= 0)."""
    rng = np.random.default_rng(seed)
    z = (scale * rng.standard_normal((n, k))).astype(dtype)
    if targets == "int":
        labels = rng.integers(0, k, n)
        t = np.eye(k)[labels]
    else:
        t = rng.random((n, k)) ** 2
        if targets == "prob":
            t /= t.sum(axis=1, keepdims=True)
        labels = t = t.astype(dtype)
    c = float(rng.standard_normal())                    # random upstream gradient of the scalar loss
    loss_fn = tc.SoftmaxCrossEntropy()
    loss = loss_fn.forward(z, labels)
    dz = loss_fn.backward(c)
    tz = _t(torch, z, grad=True)
    tlabels = torch.tensor(labels)
    tloss = torch.nn.functional.cross_entropy(tz, tlabels)
    tloss.backward(torch.tensor(c, dtype=tz.dtype))
    loss_atol, grad_atol = softmax_ce_atol(z, t, c, dtype)
    assert isinstance(loss, float), f"SoftmaxCrossEntropy.forward returned {type(loss)}, not float"
    return [Compared("loss", np.asarray(loss, dtype=dtype), np.asarray(tloss.item(), dtype=dtype), loss_atol),
            Compared("grad_logits", dz, _np(tz.grad), grad_atol)]


# ----------------------------------------------------------------------------------------------
# The properties.
# ----------------------------------------------------------------------------------------------

EDGE = list(EDGE_CASES.values())
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(win=windows(pooling=False), o=st.integers(1, 6), bias=st.booleans(), seed=SEEDS)
@example(win=EDGE[0], o=2, bias=True, seed=0)
@example(win=EDGE[1], o=3, bias=False, seed=1)
@example(win=EDGE[2], o=1, bias=True, seed=2)
@example(win=EDGE[3], o=5, bias=False, seed=3)
def test_conv2d_matches_torch(torch, dtype, win, o, bias, seed):
    check(run_conv(torch, win, o, bias, seed, dtype), dtype, f"Conv2D {win} out={o} bias={bias}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(win=windows(pooling=True), default_stride=st.booleans(), seed=SEEDS)
@example(win=EDGE[0], default_stride=False, seed=0)
@example(win=EDGE[1], default_stride=False, seed=1)
@example(win=EDGE[2], default_stride=True, seed=2)
def test_maxpool2d_matches_torch(torch, dtype, win, default_stride, seed):
    check(run_maxpool(torch, win, default_stride, seed, dtype), dtype, f"MaxPool2D {win}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(win=windows(pooling=True), default_stride=st.booleans(), seed=SEEDS)
@example(win=EDGE[0], default_stride=False, seed=0)
@example(win=EDGE[1], default_stride=False, seed=1)
@example(win=EDGE[2], default_stride=True, seed=2)
def test_avgpool2d_matches_torch(torch, dtype, win, default_stride, seed):
    check(run_avgpool(torch, win, default_stride, seed, dtype), dtype, f"AvgPool2D {win}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(shape=shapes, seed=SEEDS)
def test_relu_matches_torch(torch, dtype, shape, seed):
    check(run_relu(torch, shape, seed, dtype), dtype, f"ReLU {shape}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(shape=shapes, scale=st.sampled_from([0.5, 3.0, 12.0]), seed=SEEDS)
def test_sigmoid_matches_torch(torch, dtype, shape, scale, seed):
    check(run_sigmoid(torch, shape, scale, seed, dtype), dtype, f"Sigmoid {shape} scale={scale}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple), seed=SEEDS)
def test_flatten_matches_torch(torch, dtype, shape, seed):
    check(run_flatten(torch, shape, seed, dtype), dtype, f"Flatten {shape}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(n=st.integers(1, 4), fin=st.integers(1, 40), fout=st.integers(1, 12), bias=st.booleans(), seed=SEEDS)
def test_dense_matches_torch(torch, dtype, n, fin, fout, bias, seed):
    check(run_dense(torch, n, fin, fout, bias, seed, dtype), dtype, f"Dense {fin}->{fout} N={n} bias={bias}:")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@given(n=st.integers(1, 6), k=st.integers(1, 12), targets=st.sampled_from(["int", "prob", "unnormalized"]),
       scale=st.sampled_from([0.1, 1.0, 10.0, 50.0]), seed=SEEDS)
def test_softmax_cross_entropy_matches_torch(torch, dtype, n, k, targets, scale, seed):
    check(run_softmax_ce(torch, n, k, targets, scale, seed, dtype), dtype,
          f"SoftmaxCrossEntropy N={n} K={k} targets={targets} scale={scale}:")


def test_bounds_are_not_vacuous(torch):
    """The checks must catch a real error: a forward output off by 1e-4 (float32) or 1e-9 (float64)
    relative to its largest element fails."""
    for dtype, rel in ((np.float32, 1e-4), (np.float64, 1e-9)):
        y = run_conv(torch, EDGE[1], 3, True, 7, dtype)[0]
        check([y], dtype)
        broken = Compared("y", y.ours + dtype(rel) * np.abs(y.ours).max(), y.theirs, y.atol)
        with pytest.raises(AssertionError, match="y NOT OK"):
            check([broken], dtype)
