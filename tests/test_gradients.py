"""Every layer's backward pass, proven without an oracle.

float64, for every layer and every tensor (input and each parameter):
* central finite differences (``tinycnn.gradcheck.check_layer``, h = 1e-6): norm-wise relative
  error < FD_REL_TOL = 1e-7, with a random upstream gradient;
* the adjoint test <J v, u> = <v, J^T u> (``adjoint_check``) with random u and v: relative difference
  (to the Cauchy-Schwarz scale, see its docstring) < ADJOINT_REL_TOL = 1e-7.
Inputs stay away from kinks: ReLU sees |x| >= 1e-3 (>> h * |v| ~ 5e-6), max pooling sees values that
all differ by 1e-2 (a permuted spaced grid), so no step can change a window's winner.

float32, for every layer: the float32 layer's forward and backward against the float64 layer with the
same (float32) weights and inputs, within the bound derived for that computation (tolerances.py:
``2 * gamma_n * S`` for sums, the documented exp accuracy for sigmoid and softmax cross-entropy,
bit equality where no arithmetic happens).

Shapes come from ``window_shapes.windows`` (batch 1-4, channels 1-6, non-square kernels 1-5,
stride 1-3, padding 0..K-1 / 2P <= K, rows left over) plus the hand-picked edge cases.
"""
import numba
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tolerances import (
    ADJOINT_REL_TOL,
    FD_REL_TOL,
    NUMPY_EXP_ULPS_F32,
    NUMPY_LOG_ULPS_F32,
    _softmax_ce_error,
    reduction_atol,
)
from window_shapes import EDGE_CASES, IM2COL_EDGE_CASES, windows

import tinycnn as tc
from tinycnn.gradcheck import adjoint_check, away_from_zero, check_layer, check_loss, distinct_values

F32, F64 = np.float32, np.float64
EPS32, EPS64 = float(np.finfo(F32).eps), float(np.finfo(F64).eps)
SEEDS = st.integers(0, 2**32 - 1)
# Per-sample shapes for the elementwise layers: 1 to 4 axes (batch first).
SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Finite differences call a forward pass thousands of times on tiny arrays; there, starting the
    parallel kernels' threads costs far more than the work (10x on a busy 2-core machine). One thread
    gives the same results (every kernel's threads write disjoint outputs); tests/test_kernels.py
    runs the kernels with all threads."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


# tests/measure_gradient_errors.py sets this to a dict to collect the achieved errors:
# (layer, check, tensor) -> largest value seen. The assertions are the same either way.
RECORD = None


def record(layer, check, tensor, value):
    if RECORD is not None:
        key = (layer, check, tensor)
        RECORD[key] = max(RECORD.get(key, 0.0), float(value))


def assert_within(layer, tensor, a32, a64, bound):
    """|a32 - a64| <= bound elementwise (a derived float32 bound), with a readable failure."""
    diff = np.abs(np.asarray(a32, dtype=F64) - np.asarray(a64, dtype=F64))
    bound = np.broadcast_to(np.asarray(bound, dtype=F64) + np.finfo(F32).tiny, diff.shape)
    ratio = diff / bound
    scale = float(np.abs(a64).max()) if np.size(a64) else 0.0
    record(layer, "float32 |diff| / bound", tensor, ratio.max(initial=0.0))
    record(layer, "float32 max|diff| / max|ref|", tensor, diff.max(initial=0.0) / scale if scale else 0.0)
    if ratio.size and ratio.max() > 1:
        i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        raise AssertionError(f"{layer} {tensor} NOT OK: |float32 - float64| = {diff[i]:.3e} at "
                             f"{tuple(int(k) for k in i)} exceeds the derived bound {bound[i]:.3e} "
                             f"({ratio[i]:.2f} x); max diff {diff.max():.3e}")


def assert_within_reduction(layer, tensor, a32, a64, n, abs_sum):
    """The sum bound of tolerances.py: 2 * gamma_n(float32) * S."""
    assert_within(layer, tensor, a32, a64, reduction_atol(n, F32, abs_sum))


def with_windows(cases, **extra):
    """Also run a property on every hand-picked Window."""
    def decorate(test):
        for win in cases.values():
            test = example(win=win, seed=0, **extra)(test)
        return test
    return decorate


# --------------------------------------------------------------------------------------------
# The float64 proof: finite differences and the adjoint identity, for every tensor.
# --------------------------------------------------------------------------------------------

def prove_layer(layer, x, rng, before_forward=None):
    """Finite differences on the input and every parameter, then the adjoint test on each of them."""
    report = check_layer(layer, x, rng=rng, tol=FD_REL_TOL, before_forward=before_forward)
    name = type(layer).__name__
    for row in report.rows:
        record(name, "float64 finite differences", row.tensor, row.rel_error)
    assert report.ok, "\n" + report.table()
    assert [r.tensor for r in report.rows] == ["grad x"] + [f"grad {n}" for n in dict(layer.named_parameters())]
    for wrt in ["x", *dict(layer.named_parameters())]:
        lhs, rhs, rel = adjoint_check(layer, x, rng=rng, wrt=wrt, before_forward=before_forward)
        record(name, "float64 adjoint", f"wrt {wrt}", rel)
        assert rel < ADJOINT_REL_TOL, (f"{layer!r} adjoint wrt {wrt}: <Jv,u> = {lhs!r}, <v,J^T u> = {rhs!r}, "
                                       f"rel {rel:.2e}")
    return report


@given(win=windows(pooling=False, extra=3), out_channels=st.integers(1, 6), bias=st.booleans(), seed=SEEDS)
@with_windows(IM2COL_EDGE_CASES, out_channels=3, bias=True)
@example(win=EDGE_CASES["overlap_non_tiling_padded"], out_channels=2, bias=False, seed=1)
def test_conv2d_gradients(win, out_channels, bias, seed):
    rng = np.random.default_rng(seed)
    layer = tc.Conv2D(win.c, out_channels, (win.kh, win.kw), stride=(win.sh, win.sw),
                      padding=(win.ph, win.pw), bias=bias, dtype=F64, rng=rng)
    report = prove_layer(layer, rng.standard_normal(win.x_shape), rng)
    assert len(report.rows) == (3 if bias else 2)


@given(win=windows(pooling=True, extra=3), seed=SEEDS)
@with_windows(EDGE_CASES)
def test_maxpool2d_gradients(win, seed):
    rng = np.random.default_rng(seed)
    x = distinct_values(win.x_shape, rng, spacing=1e-2)
    assert x.size == 1 or np.diff(np.sort(x.ravel())).min() >= 1e-2 * (1 - 1e-12)   # no ties anywhere
    prove_layer(tc.MaxPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw)), x, rng)


@given(win=windows(pooling=True, extra=3), seed=SEEDS)
@with_windows(EDGE_CASES)
def test_avgpool2d_gradients(win, seed):
    rng = np.random.default_rng(seed)
    layer = tc.AvgPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    prove_layer(layer, rng.standard_normal(win.x_shape), rng)


@given(shape=SHAPES, seed=SEEDS)
def test_relu_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(shape, rng, margin=1e-3)
    assert np.abs(x).min() >= 1e-3                    # the kink at 0 is out of every step's reach
    prove_layer(tc.ReLU(), x, rng)


@given(shape=SHAPES, scale=st.sampled_from([0.5, 2.0, 5.0]), seed=SEEDS)
def test_sigmoid_gradients(shape, scale, seed):
    """Finite differences resolve a derivative only well above their own error, ~eps * |L| / h ~ 1e-10
    (L = sum(y * u)); in the saturated tails sigmoid' < 1e-9, below that. So |x| <= 5 here
    (sigmoid' >= 6.6e-3); the tails are covered by the float32-vs-float64 and torch comparisons."""
    rng = np.random.default_rng(seed)
    prove_layer(tc.Sigmoid(), scale * rng.uniform(-1, 1, size=shape), rng)


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=5).map(tuple), seed=SEEDS)
def test_flatten_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    prove_layer(tc.Flatten(), rng.standard_normal(shape), rng)


@given(n=st.integers(1, 4), fin=st.integers(1, 24), fout=st.integers(1, 12), bias=st.booleans(), seed=SEEDS)
def test_dense_gradients(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    report = prove_layer(tc.Dense(fin, fout, bias=bias, dtype=F64, rng=rng), rng.standard_normal((n, fin)), rng)
    assert len(report.rows) == (3 if bias else 2)


def random_targets(kind, n, k, rng):
    """Integer labels (N,), probability rows (N, K) summing to 1, or non-negative rows that do not."""
    if kind == "int":
        return rng.integers(0, k, size=n)
    if kind == "prob":
        return rng.dirichlet(np.ones(k), size=n)
    return rng.uniform(0, 2, size=(n, k))


@given(n=st.integers(1, 6), k=st.integers(1, 10), kind=st.sampled_from(["int", "prob", "unnormalized"]),
       scale=st.sampled_from([0.5, 1.0, 2.0]), seed=SEEDS)
def test_softmax_cross_entropy_gradients(n, k, kind, scale, seed):
    """Resolution of the finite differences: the loss goes through log(sum exp(z - max z)), whose
    intermediates are O(1 + |z|), so each evaluation is off by ~eps * (1 + |z|) and a difference
    quotient by ~eps * (1 + |z|) / h per entry. A confidently right row has p - t ~ exp(-margin): at
    |z| ~ 10 the gradient sinks below that resolution (found by the thorough profile: rel 8e-5 at
    n=1, k=2, |z| ~ 7), a conditioning limit of the check, not a bug. So |z| <= 2 here (every
    |p - t| >= 0.018 for one-hot targets, ||grad|| >= 0.01) and h = 1e-5, near the optimal central
    step eps**(1/3) for O(1) functions: rounding ~1e-11 + truncation h**2/6 * (third derivative)
    ~2e-12 per entry, below 1e-7 * 0.01 / sqrt(60 entries). Saturated logits are covered by the
    float32-vs-float64 test below and the torch oracle."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.uniform(-1, 1, size=(n, k))
    labels = random_targets(kind, n, k, rng)
    loss = tc.SoftmaxCrossEntropy()
    report = check_loss(loss, logits, labels, h=1e-5, tol=FD_REL_TOL)
    record("SoftmaxCrossEntropy", "float64 finite differences", f"grad logits ({kind})", report.rows[0].rel_error)
    assert report.ok, "\n" + report.table()
    # Adjoint test for a scalar output: J = dloss/dlogits, so <J v, c> = <v, J^T c> = <v, backward(c)>
    # with a random direction v and a random upstream scalar c (this also checks backward's scaling).
    h = 1e-6
    v = rng.standard_normal(logits.shape)
    c = float(rng.standard_normal())
    jv = (loss.forward(logits + h * v, labels) - loss.forward(logits - h * v, labels)) / (2 * h)
    loss.forward(logits, labels)
    jtc = loss.backward(c)
    lhs, rhs = jv * c, float(np.sum(v * jtc))
    scale_cs = max(abs(jv * c), np.linalg.norm(v) * np.linalg.norm(jtc))
    record("SoftmaxCrossEntropy", "float64 adjoint", f"wrt logits ({kind})",
           abs(lhs - rhs) / scale_cs if scale_cs > 0 else 0.0)           # K = 1: both sides are 0
    assert abs(lhs - rhs) <= ADJOINT_REL_TOL * scale_cs, (lhs, rhs)


# --------------------------------------------------------------------------------------------
# float32 against float64: same weights, same inputs, the derived bound.
# --------------------------------------------------------------------------------------------

def twin_layers(make):
    """(float32 layer, float64 layer with the float32 layer's weights, float64 layer with |weights|)."""
    l32, l64, labs = make(F32), make(F64), make(F64)
    for name, p in l32.named_parameters():
        dict(l64.named_parameters())[name].data[...] = p.data
        dict(labs.named_parameters())[name].data[...] = np.abs(p.data)
    return l32, l64, labs


def run_twins(l32, l64, labs, x32, g32):
    """Forward and backward in both dtypes, and the float64 run on |x|, |w|, |g| that gives each
    tensor's S (the sum of the absolute values of the terms its sums add up)."""
    x64, g64 = x32.astype(F64), g32.astype(F64)
    out = {"y": (l32.forward(x32), l64.forward(x64), labs.forward(np.abs(x64)))}
    out["grad x"] = (l32.backward(g32), l64.backward(g64), labs.backward(np.abs(g64)))
    for name in dict(l32.named_parameters()):
        out[f"grad {name}"] = tuple(dict(layer.named_parameters())[name].grad for layer in (l32, l64, labs))
    for name, (a32, _, _) in out.items():
        assert a32.dtype == F32, f"{l32!r}: {name} came out {a32.dtype}, not float32"
    return out


def assert_bitwise(layer, out):
    for name, (a32, a64, _) in out.items():
        np.testing.assert_array_equal(a32, a64.astype(F32), err_msg=f"{layer} {name}")
        record(layer, "float32 max|diff| / max|ref|", name, 0.0)


@given(win=windows(pooling=False), out_channels=st.integers(1, 6), bias=st.booleans(), seed=SEEDS)
@with_windows(IM2COL_EDGE_CASES, out_channels=4, bias=True)
def test_conv2d_float32_matches_float64(win, out_channels, bias, seed):
    rng = np.random.default_rng(seed)
    kernel, stride, pad = (win.kh, win.kw), (win.sh, win.sw), (win.ph, win.pw)
    weights_rng_seed = int(rng.integers(2**32))
    make = lambda dtype: tc.Conv2D(win.c, out_channels, kernel, stride=stride, padding=pad, bias=bias,
                                   dtype=dtype, rng=np.random.default_rng(weights_rng_seed))
    out = run_twins(*twin_layers(make), rng.standard_normal(win.x_shape).astype(F32),
                    rng.standard_normal((win.n, out_channels, win.oh, win.ow)).astype(F32))
    windows_total = win.n * win.oh * win.ow
    n_terms = {"y": win.c * win.kh * win.kw + 1,                 # one dot product, then + bias
               "grad x": out_channels + win.max_overlap,          # w^T g (O terms), then col2im's sum
               "grad weight": windows_total, "grad bias": windows_total}
    for name, (a32, a64, s) in out.items():
        assert_within_reduction("Conv2D", name, a32, a64, n_terms[name], s)


@given(n=st.integers(1, 4), fin=st.integers(1, 40), fout=st.integers(1, 12), bias=st.booleans(), seed=SEEDS)
def test_dense_float32_matches_float64(n, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    weights_seed = int(rng.integers(2**32))
    make = lambda dtype: tc.Dense(fin, fout, bias=bias, dtype=dtype, rng=np.random.default_rng(weights_seed))
    out = run_twins(*twin_layers(make), rng.standard_normal((n, fin)).astype(F32),
                    rng.standard_normal((n, fout)).astype(F32))
    n_terms = {"y": fin + 1, "grad x": fout, "grad weight": n, "grad bias": n}
    for name, (a32, a64, s) in out.items():
        assert_within_reduction("Dense", name, a32, a64, n_terms[name], s)


@given(win=windows(pooling=True), seed=SEEDS)
@with_windows(EDGE_CASES)
def test_maxpool2d_float32_matches_float64(win, seed):
    rng = np.random.default_rng(seed)
    make = lambda dtype: tc.MaxPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    l32, l64, labs = twin_layers(make)
    g32 = rng.standard_normal(win.y_shape).astype(F32)
    out = run_twins(l32, l64, labs, rng.standard_normal(win.x_shape).astype(F32), g32)
    np.testing.assert_array_equal(out["y"][0], out["y"][1].astype(F32))     # a max does no arithmetic
    record("MaxPool2D", "float32 max|diff| / max|ref|", "y", 0.0)
    np.testing.assert_array_equal(l32._cache.argmax, l64._cache.argmax)     # the same winners
    # S: |g| routed by x's winners (the |x| run picks other winners, so it is not used here).
    s = l64.backward(np.abs(g32).astype(F64))
    assert_within_reduction("MaxPool2D", "grad x", out["grad x"][0], out["grad x"][1], win.max_overlap, s)


@given(win=windows(pooling=True), seed=SEEDS)
@with_windows(EDGE_CASES)
def test_avgpool2d_float32_matches_float64(win, seed):
    rng = np.random.default_rng(seed)
    make = lambda dtype: tc.AvgPool2D((win.kh, win.kw), stride=(win.sh, win.sw), padding=(win.ph, win.pw))
    out = run_twins(*twin_layers(make), rng.standard_normal(win.x_shape).astype(F32),
                    rng.standard_normal(win.y_shape).astype(F32))
    n_terms = {"y": win.kh * win.kw + 1,                  # the window's sum, then / (KH*KW)
               "grad x": win.max_overlap + 1}             # g / (KH*KW), summed over the windows
    for name, (a32, a64, s) in out.items():
        assert_within_reduction("AvgPool2D", name, a32, a64, n_terms[name], s)


@given(shape=SHAPES, seed=SEEDS)
def test_relu_float32_matches_float64_bitwise(shape, seed):
    rng = np.random.default_rng(seed)
    x32 = rng.standard_normal(shape).astype(F32)
    x32.reshape(-1)[:: 3] = 0                              # exact zeros: the subgradient point too
    out = run_twins(*twin_layers(lambda dtype: tc.ReLU()), x32, rng.standard_normal(shape).astype(F32))
    assert_bitwise("ReLU", out)                            # max(x, 0) and a mask: no rounding at all


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=5).map(tuple), seed=SEEDS)
def test_flatten_float32_matches_float64_bitwise(shape, seed):
    rng = np.random.default_rng(seed)
    n_out = (shape[0], int(np.prod(shape[1:])))
    out = run_twins(*twin_layers(lambda dtype: tc.Flatten()), rng.standard_normal(shape).astype(F32),
                    rng.standard_normal(n_out).astype(F32))
    assert_bitwise("Flatten", out)


def assert_numpy_exp_accuracy(a32):
    """The assumption the sigmoid bound rests on (tolerances.py: NumPy's float32 exp within
    NUMPY_EXP_ULPS_F32 ulps), checked on the arguments actually used."""
    got = np.exp(a32).astype(F64)
    exact = np.exp(a32.astype(F64))
    err = np.abs(got - exact)
    assert np.all(err <= NUMPY_EXP_ULPS_F32 * EPS32 * exact + np.finfo(F32).tiny), (
        f"NumPy's float32 exp is off by {float((err / exact).max() / EPS32):.2f} ulp here, more than the "
        f"{NUMPY_EXP_ULPS_F32} the bound assumes: the bound, not the layer, is what fails")


@given(shape=SHAPES, scale=st.sampled_from([0.5, 3.0, 12.0]), seed=SEEDS)
def test_sigmoid_float32_matches_float64(shape, scale, seed):
    """Bound, per dtype (u = eps of the dtype, E = the exp's accuracy in ulps, s = sigmoid(x)):
    forward  y = 1/(1+e) or e/(1+e) with e = exp(-|x|): the exp's relative error enters damped by
             1/(1+e) <= 1, plus two correctly rounded operations: |dy| <= (E + 1) u s;
    backward g*(1-y)*y: y's error moves (1-y)*y by at most (E + 1) u s (|d/dy (1-y)y| <= 1), plus three
             roundings: |d grad| <= (E + 1) u |g| s + 1.5 u |g s (1-s)|.
    The float32 and float64 errors add (the float64 one is ~1e-9 of it)."""
    rng = np.random.default_rng(seed)
    x32 = (scale * rng.standard_normal(shape)).astype(F32)
    g32 = rng.standard_normal(shape).astype(F32)
    assert_numpy_exp_accuracy(-np.abs(x32))
    out = run_twins(*twin_layers(lambda dtype: tc.Sigmoid()), x32, g32)
    y64 = out["y"][1]                                      # s, to ~1e-16 relative
    units = (NUMPY_EXP_ULPS_F32 + 1) * (EPS32 + EPS64)     # the float64 side: same E assumed, u64
    y_bound = units * y64
    g = np.abs(g32.astype(F64))
    grad_bound = units * g * y64 + 1.5 * (EPS32 + EPS64) * g * y64 * (1 - y64)
    for name, bound in (("y", y_bound), ("grad x", grad_bound)):
        assert_within("Sigmoid", name, out[name][0], out[name][1], bound)


@given(n=st.integers(1, 6), k=st.integers(1, 12), kind=st.sampled_from(["int", "prob", "unnormalized"]),
       scale=st.sampled_from([0.5, 3.0, 10.0]), seed=SEEDS)
def test_softmax_cross_entropy_float32_matches_float64(n, k, kind, scale, seed):
    """Bound: the first-order error bound of tolerances._softmax_ce_error for each dtype (NumPy's
    documented exp/log accuracy), added."""
    rng = np.random.default_rng(seed)
    z32 = (scale * rng.standard_normal((n, k))).astype(F32)
    labels = random_targets(kind, n, k, rng)
    if kind != "int":
        labels = labels.astype(F32)                        # the float32 run sees exactly these targets
    c = float(np.float32(rng.standard_normal()))           # random upstream scalar
    loss32, loss64 = tc.SoftmaxCrossEntropy(), tc.SoftmaxCrossEntropy()
    v32 = loss32.forward(z32, labels)
    v64 = loss64.forward(z32.astype(F64), labels if kind == "int" else labels.astype(F64))
    g32, g64 = loss32.backward(c), loss64.backward(c)
    assert g32.dtype == F32
    t = np.zeros((n, k)) if kind == "int" else labels.astype(F64)
    if kind == "int":
        t[np.arange(n), labels] = 1
    e32 = _softmax_ce_error(z32, t, c, NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32, F32)
    e64 = _softmax_ce_error(z32, t, c, NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32, F64)
    assert_within("SoftmaxCrossEntropy", f"loss ({kind})", v32, v64, e32[0] + e64[0])
    assert_within("SoftmaxCrossEntropy", f"grad logits ({kind})", g32, g64, e32[1] + e64[1])
