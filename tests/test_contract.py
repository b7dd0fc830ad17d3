"""An outside reviewer's check of the public contract (shared/DESIGN.md).

Written from the contract text alone: every configuration is drawn here (hypothesis or a seeded
Generator), independently of the other test files, and PyTorch is the oracle. Tolerances come from
tests/tolerances.py (float64 vs torch: 1e-10 relative of the tensor's max magnitude; float32: the
2 * gamma_n * S reduction bound; trajectories: 1e-9 relative).

Sections: exports; constructors and shapes; dtypes end to end; Parameter and grad overwrite;
layers vs torch on drawn shapes (Conv2D, MaxPool2D, AvgPool2D, Dense, activations, Flatten, loss);
Sequential (call, parameters, state_dict keys, strict loading, torch interop both ways, whole-model
gradients); SGD / Adam trajectories vs torch.optim; initialisation statistics; train/eval; the
Keras-style front end (fused trailing softmax, eval mode in evaluate/predict); the seed's shape bug;
named errors on bad input.

Run: python -m pytest tests/test_contract.py -q
"""
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tests.tolerances import TORCH_F64_REL_TOL, TRAJECTORY_F64_REL_TOL, assert_close_reduction, assert_rel_close

F64 = np.float64
F32 = np.float32
FALSE_ALARM = 1e-9   # chance that a correct initialiser fails one statistical check


# ----------------------------------------------------------------------------------------------
# Helpers: one architecture description, built both in tinycnn and in torch.
# ----------------------------------------------------------------------------------------------
# A spec is a list of tuples:
#   ("conv", cin, cout, k, s, p, bias)  ("dense", fin, fout, bias)  ("maxpool", k, s, p)
#   ("avgpool", k, s, p)  ("bn", c)  ("dropout", p)  ("relu",) ("sigmoid",) ("tanh",) ("flatten",)
# k, s, p are ints or (h, w) pairs; s None = the pool default.

def _tc_layer(item, dtype, rng):
    kind, *a = item
    if kind == "conv":
        cin, cout, k, s, p, bias = a
        return tc.Conv2D(cin, cout, k, s, p, bias, dtype=dtype, rng=rng)
    if kind == "dense":
        fin, fout, bias = a
        return tc.Dense(fin, fout, bias, dtype=dtype, rng=rng)
    if kind == "maxpool":
        k, s, p = a
        return tc.MaxPool2D(k) if s is None and p == 0 else tc.MaxPool2D(k, s, p)
    if kind == "avgpool":
        k, s, p = a
        return tc.AvgPool2D(k) if s is None and p == 0 else tc.AvgPool2D(k, s, p)
    if kind == "bn":
        return tc.BatchNorm2D(a[0], dtype=dtype)
    if kind == "dropout":
        return tc.Dropout(a[0], rng=rng)
    return {"relu": tc.ReLU, "sigmoid": tc.Sigmoid, "tanh": tc.Tanh, "flatten": tc.Flatten}[kind]()


def _torch_layer(torch, item):
    nn = torch.nn
    kind, *a = item
    if kind == "conv":
        cin, cout, k, s, p, bias = a
        return nn.Conv2d(cin, cout, k, s, p, bias=bias)
    if kind == "dense":
        return nn.Linear(a[0], a[1], bias=a[2])
    if kind == "maxpool":
        return nn.MaxPool2d(a[0], a[1], a[2])
    if kind == "avgpool":
        return nn.AvgPool2d(a[0], a[1], a[2])
    if kind == "bn":
        return nn.BatchNorm2d(a[0])
    if kind == "dropout":
        return nn.Dropout(a[0])
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "flatten": nn.Flatten}[kind]()


def build_tc(spec, dtype=F64, seed=0):
    rng = np.random.default_rng(seed)
    return tc.Sequential(*[_tc_layer(item, dtype, rng) for item in spec])


def build_torch(torch, spec):
    return torch.nn.Sequential(*[_torch_layer(torch, item) for item in spec]).double()


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def random_spec(rng, with_dropout=True, with_bn=True):
    """A random, shape-consistent CNN spec and its input shape (C, H, W)."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    in_shape = (c, h, w)
    spec = []
    for _ in range(int(rng.integers(1, 3))):
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        if _out(h, kh, sh, ph) < 1 or _out(w, kw, sw, pw) < 1:
            continue
        cout = int(rng.integers(1, 5))
        k = kh if kh == kw and rng.random() < 0.5 else (kh, kw)
        s = sh if sh == sw and rng.random() < 0.5 else (sh, sw)
        p = ph if ph == pw and rng.random() < 0.5 else (ph, pw)
        spec.append(("conv", c, cout, k, s, p, bool(rng.random() < 0.8)))
        c, h, w = cout, _out(h, kh, sh, ph), _out(w, kw, sw, pw)
        if with_bn and rng.random() < 0.5:
            spec.append(("bn", c))
        spec.append((["relu", "sigmoid", "tanh"][int(rng.integers(3))],))
        if min(h, w) >= 2 and rng.random() < 0.7:
            k = 2
            spec.append(("maxpool" if rng.random() < 0.5 else "avgpool", k, None, 0))
            h, w = _out(h, k, k, 0), _out(w, k, k, 0)
        if with_dropout and rng.random() < 0.3:
            spec.append(("dropout", 0.25))
    spec.append(("flatten",))
    f = c * h * w
    hidden = int(rng.integers(2, 7))
    spec.append(("dense", f, hidden, True))
    spec.append((["relu", "sigmoid", "tanh"][int(rng.integers(3))],))
    if with_dropout and rng.random() < 0.5:
        spec.append(("dropout", 0.5))
    spec.append(("dense", hidden, int(rng.integers(2, 6)), bool(rng.random() < 0.7)))
    return spec, in_shape


def t2n(t):
    return t.detach().cpu().numpy()


def tc_to_torch_state(torch, sd):
    return {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}


# ----------------------------------------------------------------------------------------------
# Exports and constructors
# ----------------------------------------------------------------------------------------------
CONTRACT_NAMES = ["Parameter", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten", "Dense",
                  "SoftmaxCrossEntropy", "Sequential", "SGD", "Adam",
                  # train/eval modes
                  "Dropout", "BatchNorm2D", "Tanh", "History"]


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_import_exposes_contract_name(name):
    assert hasattr(tc, name), f"tinycnn does not export {name}"


def test_conv2d_every_argument_form():
    rng = np.random.default_rng(1)
    positional = tc.Conv2D(3, 5, (2, 4), (1, 3), (1, 2), False, dtype=F64, rng=rng)
    assert positional.weight.data.shape == (5, 3, 2, 4)
    assert positional.weight.data.dtype == F64
    assert len(positional.parameters()) == 1
    keyword = tc.Conv2D(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=1, bias=True,
                        dtype=F32, rng=np.random.default_rng(2))
    assert keyword.weight.data.shape == (4, 2, 3, 3)
    assert keyword.bias.data.shape == (4,)
    assert keyword.weight.data.dtype == F32 and keyword.bias.data.dtype == F32
    assert len(keyword.parameters()) == 2
    default = tc.Conv2D(1, 2, 3)   # rng=None works
    assert default.weight.data.dtype == F32
    assert isinstance(default.weight, tc.Parameter)
    assert isinstance(default.bias, tc.Parameter)
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 9))
    y = positional.forward(x)
    # H: (7 + 2 - 2) // 1 + 1 = 8, W: (9 + 4 - 4) // 3 + 1 = 4
    assert y.shape == (2, 5, 8, 4)


def test_dense_every_argument_form():
    d = tc.Dense(in_features=7, out_features=3, bias=False, dtype=F64, rng=np.random.default_rng(0))
    assert d.weight.data.shape == (3, 7) and d.weight.data.dtype == F64
    assert len(d.parameters()) == 1
    x = np.random.default_rng(1).standard_normal((4, 7))
    np.testing.assert_allclose(d.forward(x), x @ d.weight.data.T, rtol=1e-13)
    d2 = tc.Dense(7, 3)
    assert d2.weight.data.shape == (3, 7) and d2.bias.data.shape == (3,)
    assert d2.weight.data.dtype == F32 and d2.bias.data.dtype == F32


@pytest.mark.parametrize("cls", ["MaxPool2D", "AvgPool2D"])
def test_pool_stride_defaults_to_kernel(cls, torch):
    x = np.random.default_rng(5).standard_normal((2, 3, 11, 10))
    layer = getattr(tc, cls)((3, 2))
    y = layer.forward(x)
    f = torch.nn.functional.max_pool2d if cls == "MaxPool2D" else torch.nn.functional.avg_pool2d
    ref = t2n(f(torch.from_numpy(x), (3, 2)))
    assert y.shape == ref.shape == (2, 3, 3, 5)
    np.testing.assert_allclose(y, ref, rtol=1e-14, atol=0)
    # int form and keyword form
    assert getattr(tc, cls)(kernel_size=2, stride=None, padding=0).forward(x).shape == (2, 3, 5, 5)
    assert getattr(tc, cls)(2, 1, 1).forward(x).shape == (2, 3, 12, 11)


def test_avgpool_counts_zero_padding():
    x = np.ones((1, 1, 2, 2))
    y = tc.AvgPool2D(2, 1, 1).forward(x)
    # corners see one real 1 of four window cells: 1/4; edges two: 1/2; centre four: 1
    expected = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-15)


# ----------------------------------------------------------------------------------------------
# Dtypes end to end
# ----------------------------------------------------------------------------------------------
def _every_layer(dtype):
    rng = np.random.default_rng(0)
    kw = {} if dtype is None else {"dtype": dtype}
    return [tc.Conv2D(2, 3, 3, padding=1, rng=rng, **kw), tc.BatchNorm2D(3, **kw), tc.ReLU(),
            tc.MaxPool2D(2), tc.Sigmoid(), tc.AvgPool2D(2, 1, 1), tc.Tanh(), tc.Dropout(0.3, rng=rng),
            tc.Flatten(), tc.Dense(3 * 5 * 5, 4, rng=rng, **kw)]


@pytest.mark.parametrize("dtype", [F32, F64])
def test_dtype_end_to_end(dtype):
    layers = _every_layer(None if dtype == F32 else dtype)   # float32 is the default
    model = tc.Sequential(*layers)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 8, 8)).astype(dtype)
    h = x
    for layer in layers:
        h_new = layer.forward(h)
        assert h_new.dtype == dtype, f"{type(layer).__name__} forward gave {h_new.dtype} for {np.dtype(dtype)}"
        h = h_new
    logits = model(x)
    assert logits.dtype == dtype
    loss_fn = tc.SoftmaxCrossEntropy()
    loss = loss_fn.forward(logits, rng.integers(0, 4, 3))
    assert type(loss) is float
    g = loss_fn.backward()
    assert g.dtype == dtype and g.shape == (3, 4)
    gx = model.backward(g)
    assert gx.dtype == dtype and gx.shape == x.shape
    for p in model.parameters():
        assert p.data.dtype == dtype and p.grad.dtype == dtype and p.grad.shape == p.data.shape
    for opt in (tc.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
                tc.Adam(model.parameters(), weight_decay=1e-3)):
        opt.step()
        for p in model.parameters():
            assert p.data.dtype == dtype, f"{type(opt).__name__}.step changed a parameter to {p.data.dtype}"
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert np.asarray(v).dtype == dtype, f"state_dict[{k!r}] is {np.asarray(v).dtype}"


# ----------------------------------------------------------------------------------------------
# Parameter: zeros before backward, overwritten (not accumulated) by every backward
# ----------------------------------------------------------------------------------------------
def _layers_with_params():
    rng = np.random.default_rng(2)
    return [(tc.Conv2D(2, 3, (2, 3), stride=(2, 1), padding=(1, 0), dtype=F64, rng=rng), (2, 2, 5, 6)),
            (tc.Dense(6, 4, dtype=F64, rng=rng), (3, 6)),
            (tc.BatchNorm2D(2, dtype=F64), (3, 2, 4, 5))]


@pytest.mark.parametrize("index", range(3))
def test_parameter_grad_zero_then_overwritten(index):
    layer, shape = _layers_with_params()[index]
    params = layer.parameters()
    assert params and all(isinstance(p, tc.Parameter) for p in params)
    for p in params:
        assert p.grad.shape == p.data.shape and not p.grad.any(), "grad must be zeros before any backward"
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    y = layer.forward(x)
    layer.backward(rng.standard_normal(y.shape))
    first = [p.grad.copy() for p in params]
    y = layer.forward(x)
    layer.backward(rng.standard_normal(y.shape))
    second = [p.grad.copy() for p in params]
    g2 = rng.standard_normal(y.shape)
    layer.forward(x)
    layer.backward(g2)
    third = [p.grad.copy() for p in params]
    layer.forward(x)
    layer.backward(g2)    # the same upstream gradient again must give the same grads, not double them
    for a, b in zip(third, [p.grad for p in params]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(first, second))


# ----------------------------------------------------------------------------------------------
# Layers vs torch on drawn shapes (float64: 1e-10 relative; float32: derived reduction bound)
# ----------------------------------------------------------------------------------------------
LAYOUTS = ["C", "F", "reversed", "strided"]


def with_layout(a, layout):
    """The same values as ``a`` in another memory layout (a user's arrays are not always C-contiguous)."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "reversed":   # negative strides on the last axis
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if layout == "strided":    # a view into every other element of a larger array
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return a


@st.composite
def conv_config(draw):
    n, cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))   # torch's conv allows padding >= kernel too
    h = draw(st.integers(max(1, kh - 2 * ph), kh - 2 * ph + 7))
    w = draw(st.integers(max(1, kw - 2 * pw), kw - 2 * pw + 7))
    as_int = draw(st.booleans())
    form = lambda a, b: a if (as_int and a == b) else (a, b)
    return dict(n=n, cin=cin, cout=cout, k=form(kh, kw), s=form(sh, sw), p=form(ph, pw), h=h, w=w,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31)), layout=draw(st.sampled_from(LAYOUTS)))


@given(conv_config())
def test_conv2d_matches_torch_float64(torch, cfg):
    F = torch.nn.functional
    rng = np.random.default_rng(cfg["seed"])
    layer = tc.Conv2D(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["p"], cfg["bias"], dtype=F64, rng=rng)
    kh, kw = _pair(cfg["k"])
    assert layer.weight.data.shape == (cfg["cout"], cfg["cin"], kh, kw)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"]))
    x_user = with_layout(x.copy(), cfg["layout"])
    y = layer.forward(x_user)
    np.testing.assert_array_equal(x_user, x)   # the input is not modified
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(layer.weight.data.copy()).requires_grad_()
    bt = torch.from_numpy(layer.bias.data.copy()).requires_grad_() if cfg["bias"] else None
    yt = F.conv2d(xt, wt, bt, stride=cfg["s"], padding=cfg["p"])
    assert y.dtype == F64
    assert_rel_close(y, t2n(yt), TORCH_F64_REL_TOL, "conv y")
    g = rng.standard_normal(y.shape)
    g_user = with_layout(g.copy(), cfg["layout"])
    gx = layer.backward(g_user)
    np.testing.assert_array_equal(g_user, g)   # nor is the upstream gradient
    yt.backward(torch.from_numpy(g))
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, "conv grad_x")
    assert_rel_close(layer.weight.grad, t2n(wt.grad), TORCH_F64_REL_TOL, "conv grad_w")
    if cfg["bias"]:
        assert_rel_close(layer.bias.grad, t2n(bt.grad), TORCH_F64_REL_TOL, "conv grad_b")
    else:
        assert len(layer.parameters()) == 1


@given(conv_config())
def test_conv2d_matches_torch_float32(torch, cfg):
    F = torch.nn.functional
    rng = np.random.default_rng(cfg["seed"])
    layer = tc.Conv2D(cfg["cin"], cfg["cout"], cfg["k"], cfg["s"], cfg["p"], cfg["bias"], rng=rng)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])).astype(F32)
    y = layer.forward(x)
    assert y.dtype == F32
    w, b = layer.weight.data, (layer.bias.data if cfg["bias"] else None)
    kh, kw = _pair(cfg["k"])
    n_red = cfg["cin"] * kh * kw + 1
    yt = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b),
                  stride=cfg["s"], padding=cfg["p"])
    s_abs = t2n(F.conv2d(torch.from_numpy(np.abs(x).astype(F64)), torch.from_numpy(np.abs(w).astype(F64)),
                         None if b is None else torch.from_numpy(np.abs(b).astype(F64)),
                         stride=cfg["s"], padding=cfg["p"]))
    assert_close_reduction(y, t2n(yt), n_red, F32, s_abs, "conv y float32")
    g = rng.standard_normal(y.shape).astype(F32)
    gx = layer.backward(g)
    assert gx.dtype == F32 and layer.weight.grad.dtype == F32


@st.composite
def pool_config(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    default_stride = draw(st.booleans())
    sh, sw = (kh, kw) if default_stride else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), kh - 2 * ph + 8))
    w = draw(st.integers(max(1, kw - 2 * pw), kw - 2 * pw + 8))
    as_int = draw(st.booleans())
    form = lambda a, b: a if (as_int and a == b) else (a, b)
    return dict(n=n, c=c, k=form(kh, kw), s=None if default_stride else form(sh, sw), p=form(ph, pw),
                h=h, w=w, seed=draw(st.integers(0, 2**31)), layout=draw(st.sampled_from(LAYOUTS)))


@pytest.mark.parametrize("cls", ["MaxPool2D", "AvgPool2D"])
@given(cfg=pool_config())
def test_pool_matches_torch_float64(torch, cls, cfg):
    F = torch.nn.functional
    rng = np.random.default_rng(cfg["seed"])
    layer = getattr(tc, cls)(cfg["k"], cfg["s"], cfg["p"])
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))   # continuous: no ties
    x_user = with_layout(x.copy(), cfg["layout"])
    y = layer.forward(x_user)
    np.testing.assert_array_equal(x_user, x)
    xt = torch.from_numpy(x).requires_grad_()
    f = F.max_pool2d if cls == "MaxPool2D" else F.avg_pool2d
    yt = f(xt, cfg["k"], cfg["s"], cfg["p"])
    assert_rel_close(y, t2n(yt), TORCH_F64_REL_TOL, f"{cls} y")
    g = rng.standard_normal(y.shape)
    gx = layer.backward(with_layout(g, cfg["layout"]))
    yt.backward(torch.from_numpy(g))
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, f"{cls} grad_x")
    # float32 in, float32 out
    x32 = x.astype(F32)
    y32 = getattr(tc, cls)(cfg["k"], cfg["s"], cfg["p"]).forward(x32)
    assert y32.dtype == F32


@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), st.booleans(), st.integers(0, 2**31))
def test_dense_matches_torch_float64(torch, n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Dense(fin, fout, bias, dtype=F64, rng=rng)
    x = rng.standard_normal((n, fin))
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(layer.weight.data.copy()).requires_grad_()
    bt = torch.from_numpy(layer.bias.data.copy()).requires_grad_() if bias else None
    yt = torch.nn.functional.linear(xt, wt, bt)
    y = layer.forward(x)
    assert_rel_close(y, t2n(yt), TORCH_F64_REL_TOL, "dense y")
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    yt.backward(torch.from_numpy(g))
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, "dense grad_x")
    assert_rel_close(layer.weight.grad, t2n(wt.grad), TORCH_F64_REL_TOL, "dense grad_w")
    if bias:
        assert_rel_close(layer.bias.grad, t2n(bt.grad), TORCH_F64_REL_TOL, "dense grad_b")


@pytest.mark.parametrize("name", ["ReLU", "Sigmoid", "Tanh", "Flatten"])
@given(shape=st.lists(st.integers(1, 5), min_size=4, max_size=4), seed=st.integers(0, 2**31))
def test_parameterless_layers_match_torch_float64(torch, name, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    layer = getattr(tc, name)()
    xt = torch.from_numpy(x).requires_grad_()
    yt = {"ReLU": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh,
          "Flatten": lambda t: torch.flatten(t, 1)}[name](xt)
    y = layer.forward(x)
    assert layer.parameters() == []
    assert_rel_close(y, t2n(yt), TORCH_F64_REL_TOL, f"{name} y")
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)
    yt.backward(torch.from_numpy(g))
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, f"{name} grad_x")


@given(st.integers(1, 6), st.integers(2, 8), st.booleans(), st.floats(0.1, 20), st.integers(0, 2**31),
       st.sampled_from([np.int64, np.int32, np.uint8]))
def test_softmax_cross_entropy_matches_torch(torch, n, k, int_labels, scale, seed, label_dtype):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k)) * scale
    if int_labels:
        labels = rng.integers(0, k, n).astype(label_dtype)   # e.g. MNIST's labels are uint8
        target_t = torch.from_numpy(labels.astype(np.int64))
    else:
        labels = rng.dirichlet(np.ones(k), n)
        target_t = torch.from_numpy(labels)
    loss_fn = tc.SoftmaxCrossEntropy()
    loss = loss_fn.forward(z, labels)
    assert type(loss) is float
    zt = torch.from_numpy(z).requires_grad_()
    lt = torch.nn.functional.cross_entropy(zt, target_t)
    assert_rel_close(np.array(loss), t2n(lt), TORCH_F64_REL_TOL, "loss")
    g = loss_fn.backward()
    lt.backward()
    assert g.shape == (n, k)
    # Each entry is (p_i - t_i) / n with |p_i|, |t_i| <= 1: for a confident row it is a tiny difference
    # of two numbers near 1, so two correct float64 implementations can differ by a few ulps of 1
    # (seen: 1.1e-16 on an entry of 4e-7). Allowance: 8 u / n on top of the relative check.
    expected = t2n(zt.grad)
    atol = TORCH_F64_REL_TOL * float(np.abs(expected).max()) + 8 * np.finfo(np.float64).eps / n
    diff = np.abs(g - expected)
    assert diff.max() <= atol, (f"grad_logits NOT OK: max diff {diff.max():.3e} at "
                                f"{np.unravel_index(int(np.argmax(diff)), diff.shape)}, allowed {atol:.3e}")
    # the call form is the forward
    assert loss_fn(z, labels) == loss


# ----------------------------------------------------------------------------------------------
# Sequential
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_sequential_state_dict_keys_equal_torch_and_interop(torch, seed):
    rng = np.random.default_rng(100 + seed)
    spec, in_shape = random_spec(rng)
    model = build_tc(spec, F64, seed)
    ref = build_torch(torch, spec)
    sd = model.state_dict()
    assert list(sd.keys()) == list(ref.state_dict().keys()), spec
    for k, v in ref.state_dict().items():
        assert np.asarray(sd[k]).shape == tuple(v.shape), k
    assert isinstance(sd, dict) and all(isinstance(v, np.ndarray) for v in sd.values())
    assert [p.data.shape for p in model.parameters()] == [tuple(p.shape) for p in ref.parameters()]
    x = rng.standard_normal((3, *in_shape))
    xt = torch.from_numpy(x)

    # torch -> tinycnn: give torch random weights AND random running statistics, eval mode
    with torch.no_grad():
        for name, buf in ref.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.from_numpy(rng.standard_normal(buf.shape)))
            elif name.endswith("running_var"):
                buf.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, buf.shape)))
            elif name.endswith("num_batches_tracked"):
                buf.fill_(int(rng.integers(1, 50)))
        for p in ref.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape) * 0.5))
    model.load_state_dict({k: t2n(v) for k, v in ref.state_dict().items()})
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(np.asarray(model.state_dict()[k]), t2n(v), err_msg=k)
    model.eval()
    ref.eval()
    y = model(x)
    np.testing.assert_array_equal(y, model.forward(x))
    assert_rel_close(y, t2n(ref(xt)), TORCH_F64_REL_TOL, "torch->tinycnn eval output")

    # tinycnn -> torch: a fresh tinycnn model's weights into a fresh torch model
    model2 = build_tc(spec, F64, seed + 1000)
    ref2 = build_torch(torch, spec)
    ref2.load_state_dict(tc_to_torch_state(torch, model2.state_dict()), strict=True)
    model2.eval()
    ref2.eval()
    assert_rel_close(model2(x), t2n(ref2(xt)), TORCH_F64_REL_TOL, "tinycnn->torch eval output")


@pytest.mark.parametrize("seed", range(6))
def test_sequential_train_mode_gradients_match_torch(torch, seed):
    """Whole model, training mode (batch norm on batch statistics), no dropout: every gradient."""
    rng = np.random.default_rng(200 + seed)
    spec, in_shape = random_spec(rng, with_dropout=False)
    model = build_tc(spec, F64, seed)
    ref = build_torch(torch, spec)
    ref.load_state_dict(tc_to_torch_state(torch, model.state_dict()))
    model.train()
    ref.train()
    # A conv bias straight before a batch norm has an exactly zero gradient (batch norm removes the
    # channel mean): both sides hold rounding noise there, so it is checked against zero, relative to
    # S = sum |dL/d conv output| over the (N, H, W) positions the bias gradient sums.
    outputs = {}
    zero_bias = {f"{i}.bias" for i, item in enumerate(spec)
                 if item[0] == "conv" and item[6] and i + 1 < len(spec) and spec[i + 1][0] == "bn"}

    def keep(i):
        def hook(module, args, out):
            out.retain_grad()
            outputs[i] = out
        return hook

    for name in zero_bias:
        i = int(name.split(".")[0])
        ref[i].register_forward_hook(keep(i))
    x = rng.standard_normal((4, *in_shape))
    labels = rng.integers(0, spec[-1][2], 4)
    loss_fn = tc.SoftmaxCrossEntropy()
    loss = loss_fn(model(x), labels)
    xt = torch.from_numpy(x).requires_grad_()
    lt = torch.nn.functional.cross_entropy(ref(xt), torch.from_numpy(labels))
    lt.backward()
    gx = model.backward(loss_fn.backward())
    assert_rel_close(np.array(loss), t2n(lt), TORCH_F64_REL_TOL, "model loss")
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, "model grad_x")
    for (name, pt), p in zip(ref.named_parameters(), model.parameters()):
        if name in zero_bias:
            s_abs = t2n(outputs[int(name.split(".")[0])].grad.abs().sum(dim=(0, 2, 3)))
            assert (np.abs(p.grad) <= TORCH_F64_REL_TOL * s_abs).all(), f"grad of {name}: {p.grad} vs S {s_abs}"
        else:
            assert_rel_close(p.grad, t2n(pt.grad), TORCH_F64_REL_TOL, f"grad of {name}")
    for k, v in ref.state_dict().items():   # running statistics after one training forward
        assert_rel_close(np.asarray(model.state_dict()[k]), t2n(v), TORCH_F64_REL_TOL, k)


def _bn_model():
    rng = np.random.default_rng(0)
    return tc.Sequential(tc.Conv2D(2, 3, 3, dtype=F64, rng=rng), tc.BatchNorm2D(3, dtype=F64), tc.ReLU(),
                         tc.Dropout(0.5, rng=rng), tc.Flatten(), tc.Dense(12, 2, dtype=F64, rng=rng))


def test_batchnorm_state_dict_keys(torch):
    model = _bn_model()
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                              torch.nn.Dropout(0.5), torch.nn.Flatten(), torch.nn.Linear(12, 2))
    assert list(model.state_dict()) == list(ref.state_dict())
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= set(model.state_dict())


def test_load_state_dict_is_strict():
    model = _bn_model()
    good = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    missing = dict(good)
    del missing["5.bias"]
    with pytest.raises(Exception, match=re.escape("5.bias")):
        model.load_state_dict(missing)
    extra = dict(good)
    extra["7.weight"] = np.zeros((2, 2))
    with pytest.raises(Exception, match=re.escape("7.weight")):
        model.load_state_dict(extra)
    bad_shape = dict(good)
    bad_shape["0.weight"] = np.zeros((3, 2, 2, 3))
    with pytest.raises(Exception, match=re.escape("0.weight")) as info:
        model.load_state_dict(bad_shape)
    assert re.search(r"3, 2, 2, 3", str(info.value)) and re.search(r"3, 2, 3, 3", str(info.value)), \
        f"message should show both shapes: {info.value}"
    bad_bn = dict(good)
    bad_bn["1.running_var"] = np.ones(4)
    with pytest.raises(Exception, match=re.escape("1.running_var")):
        model.load_state_dict(bad_bn)
    for k, v in model.state_dict().items():   # a refused load writes nothing
        np.testing.assert_array_equal(np.asarray(v), before[k], err_msg=k)
    # a correct dict loads and the values are copies, not views into the caller's arrays
    new = {k: (np.asarray(v) + 1 if not k.endswith("num_batches_tracked") else np.asarray(v))
           for k, v in good.items()}
    model.load_state_dict(new)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], good["0.weight"] + 1)


def test_sequential_call_and_parameters():
    rng = np.random.default_rng(4)
    layers = [tc.Conv2D(1, 2, 2, dtype=F64, rng=rng), tc.Sigmoid(), tc.Flatten(),
              tc.Dense(2 * 4 * 4, 3, bias=False, dtype=F64, rng=rng)]
    model = tc.Sequential(*layers)
    ids = [id(p) for p in model.parameters()]
    assert ids == [id(layers[0].weight), id(layers[0].bias), id(layers[3].weight)]
    x = rng.standard_normal((2, 1, 5, 5))
    np.testing.assert_array_equal(model(x), model.forward(x))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight"]


# ----------------------------------------------------------------------------------------------
# Optimizers vs torch.optim over 20 steps on a small CNN (float64, 1e-9 relative)
# ----------------------------------------------------------------------------------------------
OPT_SPEC = [("conv", 2, 3, 3, 1, 1, False), ("bn", 3), ("relu",), ("maxpool", 2, None, 0),
            ("conv", 3, 4, (2, 3), (1, 2), 0, True), ("tanh",), ("flatten",), ("dense", 12, 5, True)]
OPT_INPUT = (2, 9, 7)


def _draw_opt_config(rng, kind):
    if kind == "sgd":
        momentum = float(rng.choice([0.0, rng.uniform(0.1, 0.99)]))
        nesterov = bool(momentum > 0 and rng.random() < 0.5)
        dampening = 0.0 if nesterov or rng.random() < 0.4 else float(rng.uniform(0, 0.9))
        return dict(lr=float(rng.uniform(0.01, 0.3)), momentum=momentum, dampening=dampening,
                    weight_decay=float(rng.choice([0.0, rng.uniform(1e-4, 0.1)])), nesterov=nesterov)
    return dict(lr=float(rng.uniform(1e-3, 3e-2)),
                betas=(float(rng.uniform(0.5, 0.95)), float(rng.uniform(0.9, 0.9999))),
                eps=float(10.0 ** rng.uniform(-10, -3)), weight_decay=float(rng.choice([0.0, rng.uniform(1e-4, 0.1)])))


FIXED_OPT_CASES = [("sgd", dict(lr=0.1)), ("sgd", dict(lr=0.05, momentum=0.9)),
                   ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=0.01)),
                   ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=5e-3)),
                   ("adam", dict()), ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05))]
DRAWN_OPT_CASES = [(kind, _draw_opt_config(np.random.default_rng(300 + i), kind))
                   for i, kind in enumerate(["sgd", "adam"] * 3)]


SGD_ORDER = ["lr", "momentum", "dampening", "weight_decay", "nesterov"]   # the contract's positional order
ADAM_ORDER = ["lr", "betas", "eps", "weight_decay"]


@pytest.mark.parametrize("kind,cfg", FIXED_OPT_CASES + DRAWN_OPT_CASES)
def test_optimizer_trajectory_matches_torch(torch, kind, cfg):
    model = build_tc(OPT_SPEC, F64, 7)
    ref = build_torch(torch, OPT_SPEC)
    ref.load_state_dict(tc_to_torch_state(torch, model.state_dict()))
    positional = cfg in [c for _, c in DRAWN_OPT_CASES]
    if kind == "sgd":
        args = [cfg[k] for k in SGD_ORDER] if positional else []
        opt = tc.SGD(model.parameters(), *args, **({} if positional else cfg))
        topt = torch.optim.SGD(ref.parameters(), **cfg)
    else:
        args = [cfg[k] for k in ADAM_ORDER] if positional else []
        opt = tc.Adam(model.parameters(), *args, **({} if positional else cfg))
        topt = torch.optim.Adam(ref.parameters(), **cfg)
    loss_fn = tc.SoftmaxCrossEntropy()
    rng = np.random.default_rng(11)
    for step in range(20):
        x = rng.standard_normal((4, *OPT_INPUT))
        y = rng.integers(0, 5, 4)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        lt = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        lt.backward()
        topt.step()
        assert_rel_close(np.array(loss), t2n(lt), TRAJECTORY_F64_REL_TOL, f"{kind} {cfg} loss at step {step}")
    for (name, pt), p in zip(ref.named_parameters(), model.parameters()):
        assert_rel_close(p.data, t2n(pt), TRAJECTORY_F64_REL_TOL, f"{kind} {cfg} final {name}")


def test_zero_grad_zeroes():
    model = build_tc(OPT_SPEC, F64, 1)
    opt = tc.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    loss_fn = tc.SoftmaxCrossEntropy()
    loss_fn(model(rng.standard_normal((2, *OPT_INPUT))), np.array([0, 1]))
    model.backward(loss_fn.backward())
    assert any(p.grad.any() for p in model.parameters())
    opt.zero_grad()
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.data.shape and not p.grad.any()


def test_sgd_rejects_nesterov_without_momentum_like_torch(torch):
    p = tc.Parameter(np.zeros(3)) if _parameter_takes_array() else tc.Dense(2, 2).weight
    for bad in (dict(momentum=0.0, nesterov=True), dict(momentum=0.9, dampening=0.1, nesterov=True)):
        with pytest.raises(ValueError):
            torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1, **bad)
        with pytest.raises(ValueError, match="(?i)nesterov"):
            tc.SGD([p], lr=0.1, **bad)


def _parameter_takes_array():
    try:
        tc.Parameter(np.zeros(3))
        return True
    except TypeError:
        return False


# ----------------------------------------------------------------------------------------------
# Initialisation: PyTorch's default (Kaiming-uniform with a = sqrt(5)) is U(-b, b), b = 1/sqrt(fan_in),
# for weight and bias alike. Derived checks, each with false-alarm probability <= 1e-9:
#   support: every |w| <= b (certain for a correct initialiser);
#   extent: max |w| / b >= 1 - t with P(all n draws inside (1 - t) b) = (1 - t)^n <= alpha,
#           so t = 1 - alpha^(1/n);
#   shape:  DKW inequality P(sup |F_n - F| > e) <= 2 exp(-2 n e^2), e = sqrt(ln(2 / alpha) / (2 n)),
#           on w / b against U(-1, 1).
# ----------------------------------------------------------------------------------------------
def _check_uniform(values, bound, name):
    u = np.sort(np.asarray(values, dtype=F64).ravel() / bound)
    n = u.size
    assert np.abs(u).max() <= 1.0 + 1e-6, f"{name}: |value| / bound = {np.abs(u).max():.4f} > 1"
    t = 1 - FALSE_ALARM ** (1 / n)
    assert np.abs(u).max() >= 1 - t, f"{name}: max |value| / bound = {np.abs(u).max():.4f} < {1 - t:.4f}"
    cdf = (u + 1) / 2
    i = np.arange(1, n + 1)
    d = max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n))
    e = math.sqrt(math.log(2 / FALSE_ALARM) / (2 * n))
    assert d <= e, f"{name}: Kolmogorov distance to U(-b, b) {d:.4f} > DKW bound {e:.4f} (n = {n})"


@pytest.mark.parametrize("dtype", [F32, F64])
def test_initialisation_distribution_like_torch(dtype):
    rng = np.random.default_rng(12)
    conv = tc.Conv2D(16, 40, (3, 5), dtype=dtype, rng=rng)           # fan_in = 240
    _check_uniform(conv.weight.data, 1 / math.sqrt(16 * 3 * 5), "Conv2D weight")
    conv_b = tc.Conv2D(5, 3000, (2, 3), dtype=dtype, rng=rng)        # fan_in = 30, 3000 biases
    _check_uniform(conv_b.bias.data, 1 / math.sqrt(30), "Conv2D bias")
    dense = tc.Dense(300, 2000, dtype=dtype, rng=rng)                 # fan_in = 300
    _check_uniform(dense.weight.data, 1 / math.sqrt(300), "Dense weight")
    _check_uniform(dense.bias.data, 1 / math.sqrt(300), "Dense bias")


def test_initialisation_reproducible_with_seed():
    def make(seed):
        rng = np.random.default_rng(seed)
        return tc.Sequential(tc.Conv2D(3, 4, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(4 * 4 * 4, 2, rng=rng))
    a, b, c = make(5).state_dict(), make(5).state_dict(), make(6).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # the two layers drawn from one generator differ from each other's seeds
    d1 = tc.Dense(10, 10, rng=np.random.default_rng(9))
    d2 = tc.Dense(10, 10, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(d1.weight.data, d2.weight.data)
    np.testing.assert_array_equal(d1.bias.data, d2.bias.data)


# ----------------------------------------------------------------------------------------------
# train() / eval()
# ----------------------------------------------------------------------------------------------
def test_dropout_edge_probabilities_like_torch():
    x = np.random.default_rng(0).standard_normal((4, 5))
    for p, expected in [(0.0, x), (1.0, np.zeros_like(x))]:   # torch: identity / all zeros
        layer = tc.Dropout(p, rng=np.random.default_rng(1))
        layer.train()
        y = layer.forward(x)
        np.testing.assert_array_equal(y, expected)
        assert np.isfinite(layer.backward(np.ones_like(x) * 0.5)).all()


def test_train_eval_modes_dropout():
    p = 0.4
    model = tc.Sequential(tc.Dropout(p, rng=np.random.default_rng(0)))
    x = np.random.default_rng(1).uniform(1, 2, (50, 40))
    model.eval()
    np.testing.assert_array_equal(model(x), x)
    model.train()
    y = model(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    # keep rate: Hoeffding, false alarm 1e-9
    assert abs(kept.mean() - (1 - p)) < math.sqrt(math.log(2 / FALSE_ALARM) / (2 * x.size))
    g = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_allclose(model.backward(g), np.where(kept, g / (1 - p), 0.0), rtol=1e-15)


@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-3, "momentum": 0.3}, {"momentum": None}])
def test_train_eval_modes_batchnorm_match_torch(torch, kwargs):
    rng = np.random.default_rng(3)
    bn = tc.BatchNorm2D(3, dtype=F64, **kwargs)
    ref = torch.nn.BatchNorm2d(3, **kwargs).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(rng.uniform(0.5, 2, 3)))
        ref.bias.copy_(torch.from_numpy(rng.standard_normal(3)))
    model = tc.Sequential(bn)
    model.load_state_dict({"0." + k: t2n(v) for k, v in ref.state_dict().items()})
    model.train()
    for _ in range(4):
        x = rng.standard_normal((5, 3, 4, 6)) * 2 + 1
        assert_rel_close(model(x), t2n(ref(torch.from_numpy(x))), TORCH_F64_REL_TOL, "bn train y")
    for k, v in ref.state_dict().items():
        assert_rel_close(np.asarray(model.state_dict()["0." + k]), t2n(v), TORCH_F64_REL_TOL, k)
    model.eval()
    ref.eval()
    x = rng.standard_normal((2, 3, 4, 6))
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    assert_rel_close(model(x), t2n(yt), TORCH_F64_REL_TOL, "bn eval y")
    g = rng.standard_normal(x.shape)
    gx = model.backward(g)            # backward in eval mode: through the running statistics
    yt.backward(torch.from_numpy(g))
    assert_rel_close(gx, t2n(xt.grad), TORCH_F64_REL_TOL, "bn eval grad_x")
    assert_rel_close(bn.parameters()[0].grad, t2n(ref.weight.grad), TORCH_F64_REL_TOL, "bn eval grad weight")
    assert_rel_close(bn.parameters()[1].grad, t2n(ref.bias.grad), TORCH_F64_REL_TOL, "bn eval grad bias")
    before = {k: np.asarray(v).copy() for k, v in model.state_dict().items()}
    model(x)
    for k, v in model.state_dict().items():    # eval does not update the running statistics
        np.testing.assert_array_equal(v, before[k], err_msg=k)


# ----------------------------------------------------------------------------------------------
# Keras-style front end
# ----------------------------------------------------------------------------------------------
def _toy_problem(n=160, seed=0):
    """Class 1: a bright blob in the top half of an 8x8 image; class 0: in the bottom half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 1, 8, 8)).astype(F32) * 0.3
    for i in range(n):
        r = int(rng.integers(0, 3)) + (0 if y[i] == 1 else 5)
        c = int(rng.integers(0, 7))
        x[i, 0, r:r + 2, c:c + 2] += 2.0
    return x, y


def _keras_model(seed=0):
    rng = np.random.default_rng(seed)
    return tc.Sequential(tc.Conv2D(1, 4, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten(),
                         tc.Dense(4 * 4 * 4, 2, rng=rng), input_shape=(1, 8, 8))


def test_keras_front_end(capsys):
    x, y = _toy_problem()
    model = _keras_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=16, validation_split=0.25, shuffle=True, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "", f"fit(verbose=0) printed: {captured.out[:200]!r}"
    assert isinstance(hist, tc.History)
    assert len(hist.history["loss"]) == 15 and len(hist.history["val_loss"]) == 15
    assert len(hist.history["accuracy"]) == 15 and len(hist.history["val_accuracy"]) == 15   # Keras's names
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    result = model.evaluate(x, y, verbose=0)
    # Keras returns [loss, accuracy] (or, with return_dict=True, a dict); either form is accepted here
    if isinstance(result, dict):
        loss, acc = result["loss"], result["accuracy"]
    else:
        loss, acc = result[0], result[1]
    assert acc > 0.9, f"accuracy {acc} on a separable toy problem"
    probs = model.predict(x)
    assert probs.shape == (len(x), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert (probs >= 0).all()
    # evaluate's loss is the mean cross-entropy of predict's probabilities
    assert abs(loss - float(-np.log(probs[np.arange(len(y)), y]).mean())) < 1e-4 * max(1.0, loss)
    capsys.readouterr()
    model.summary()
    out = capsys.readouterr().out
    assert "Conv2D" in out and "Dense" in out and str(4 * 1 * 3 * 3 + 4) in out and str(64 * 2 + 2) in out
    assert re.search(r"4\D{1,3}8\D{1,3}8", out) and re.search(r"4\D{1,3}4\D{1,3}4", out), out   # output shapes
    assert str(4 * 9 + 4 + 64 * 2 + 2) in out, out                                                 # total parameters


def test_keras_front_end_optimizer_object_and_categorical():
    x, y = _toy_problem(seed=1)
    onehot = np.eye(2, dtype=F32)[y]
    model = _keras_model(1)
    model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1, momentum=0.9),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x[:120], onehot[:120], epochs=10, batch_size=20,
                     validation_data=(x[120:], onehot[120:]), verbose=0)
    assert len(hist.history["val_loss"]) == 10
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    # the PyTorch-style loop keeps working beside it
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=0.01)
    opt.zero_grad()
    loss = loss_fn(model(x[:8]), y[:8])
    model.backward(loss_fn.backward())
    opt.step()
    assert np.isfinite(loss)


def test_keras_sgd_string_optimizer():
    x, y = _toy_problem(seed=2)
    model = _keras_model(2)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert len(hist.history["loss"]) == 2 and all(np.isfinite(hist.history["loss"]))


# ----------------------------------------------------------------------------------------------
# The seed's shape bug: Linear(128, 10) after three padded 3x3 convs on 32x32 gets 131072 features
# ----------------------------------------------------------------------------------------------
def test_seed_shape_bug_rejected_at_build_time():
    with pytest.raises(Exception) as info:
        tc.Sequential(tc.Conv2D(3, 32, 3, padding=1), tc.ReLU(),
                      tc.Conv2D(32, 64, 3, padding=1), tc.ReLU(),
                      tc.Conv2D(64, 128, 3, padding=1), tc.ReLU(),
                      tc.Flatten(), tc.Dense(128, 10), input_shape=(3, 32, 32))
    msg = str(info.value)
    assert "Dense" in msg, msg
    assert "128" in msg and "131072" in msg, msg
    assert re.search(r"128\D{1,4}32\D{1,4}32", msg), f"should say where 131072 comes from: {msg}"


def test_shape_bug_found_at_first_forward_without_input_shape():
    model = tc.Sequential(tc.Conv2D(2, 3, 3, padding=1), tc.Flatten(), tc.Dense(10, 2))
    with pytest.raises(Exception) as info:
        model(np.zeros((1, 2, 4, 4), dtype=F32))
    msg = str(info.value)
    assert "Dense" in msg and "10" in msg and "48" in msg, msg


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the layer and the user's numbers
# ----------------------------------------------------------------------------------------------
BAD_INPUT = [
    (lambda: tc.Conv2D(4, 2, 3).forward(np.zeros((2, 3, 6, 6), F32)), r"Conv2D.*4.*3"),
    (lambda: tc.Conv2D(3, 2, (7, 2)).forward(np.zeros((1, 3, 5, 5), F32)), r"Conv2D.*7.*5"),
    (lambda: tc.Conv2D(3, 2, 3).forward(np.zeros((5, 5), F32)), r"Conv2D.*(2-D|4-D|ndim|dimension)"),
    (lambda: tc.Conv2D(3, 2, 3, stride=0), r"Conv2D.*stride"),
    (lambda: tc.MaxPool2D(3, padding=2), r"MaxPool2D.*padding"),
    (lambda: tc.AvgPool2D((2, 4), padding=(1, 3)), r"AvgPool2D.*padding"),
    (lambda: tc.Dense(6, 2).forward(np.zeros((2, 5), F32)), r"Dense.*6.*5|Dense.*5.*6"),
    (lambda: tc.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3])), r"3"),
    (lambda: tc.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([-1, 0])), r"-1"),
    (lambda: tc.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 1, 2])), r"2.*3|3.*2"),
]


@pytest.mark.parametrize("index", range(len(BAD_INPUT)))
def test_bad_input_named_errors(index):
    call, pattern = BAD_INPUT[index]
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_float32_model_stays_float32_after_loading_float64_weights():
    model = tc.Sequential(tc.Conv2D(1, 2, 3), tc.BatchNorm2D(2), tc.Flatten(), tc.Dense(8, 2))
    sd = {k: (np.asarray(v, dtype=F64) if np.asarray(v).dtype.kind == "f" else v)
          for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    assert all(p.data.dtype == F32 for p in model.parameters())
    assert model(np.zeros((1, 1, 4, 4), F32)).dtype == F32


def test_keras_trailing_softmax_is_fused_not_applied_twice():
    """A trailing softmax layer is fused into the loss; predict gives probabilities once."""
    x, y = _toy_problem(n=64, seed=3)
    plain, with_softmax = _keras_model(4), _keras_model(4)
    with_softmax = tc.Sequential(*with_softmax.layers, tc.Softmax(), input_shape=(1, 8, 8))
    for m in (plain, with_softmax):
        m.compile(optimizer=tc.SGD(m.parameters(), lr=0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # same weights (same seed), so the same loss and the same probabilities if softmax is applied once
    np.testing.assert_allclose(with_softmax.predict(x), plain.predict(x), rtol=1e-6, atol=1e-7)
    r1, r2 = plain.evaluate(x, y, verbose=0), with_softmax.evaluate(x, y, verbose=0)
    l1 = r1["loss"] if isinstance(r1, dict) else r1[0]
    l2 = r2["loss"] if isinstance(r2, dict) else r2[0]
    assert abs(l1 - l2) <= 1e-5 * l1
    h1 = plain.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    h2 = with_softmax.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-5)


def test_keras_evaluate_and_predict_run_in_eval_mode():
    x, y = _toy_problem(n=64, seed=5)
    rng = np.random.default_rng(6)
    model = tc.Sequential(tc.Conv2D(1, 3, 3, rng=rng), tc.BatchNorm2D(3), tc.ReLU(), tc.Dropout(0.5, rng=rng),
                          tc.Flatten(), tc.Dense(3 * 6 * 6, 2, rng=rng), input_shape=(1, 8, 8))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    state = {k: np.asarray(v).copy() for k, v in model.state_dict().items()}
    p1, p2 = model.predict(x), model.predict(x)
    np.testing.assert_array_equal(p1, p2)              # no dropout at prediction time
    e1, e2 = model.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0)
    assert e1 == e2
    for k, v in model.state_dict().items():            # nor running-statistic updates
        np.testing.assert_array_equal(v, state[k], err_msg=k)
