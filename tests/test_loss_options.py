"""SoftmaxCrossEntropy's torch options: weight, ignore_index, reduction, label_smoothing, (N, K, d1, ...).

For every combination (hypothesis over shapes including N = 0, class-index and probability targets,
weights with zeros, an ignore_index inside and outside the class range, each reduction, smoothing
from 0 to 1):

* torch.nn.functional.cross_entropy as oracle for the loss and for the gradient under a random
  upstream gradient (a scalar, or one per element for reduction='none'): float64 within
  TORCH_F64_REL_TOL (1e-10, max-norm relative), float32 within a first-order bound derived like
  tests/tolerances.py's softmax_ce_atol (see ``float32_bounds``);
* float64 central finite differences of the loss, independent of torch;
* by-hand values for the rules that are easy to get wrong: the weighted-mean denominator (the
  target classes' weights, unchanged by smoothing), smoothing with weights, ignored targets, empty
  batches (a NaN mean, as torch's), and every bad argument refused with a clear error.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tolerances import (FD_REL_TOL, NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32, TORCH_EXP_ULPS_F32, TORCH_F64_REL_TOL,
                        TORCH_LOG_ULPS_F32, _softmax_ce_error, assert_rel_close, gamma)


@st.composite
def cases(draw):
    n = draw(st.integers(0, 5))
    k = draw(st.integers(1, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    kind = draw(st.sampled_from(["int", "prob"]))
    weighted = draw(st.booleans())
    ignore = draw(st.sampled_from(["none", "in-range", "negative"])) if kind == "int" else "none"
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = draw(st.sampled_from([0.0, 0.1, 0.37, 1.0]))
    scale = draw(st.sampled_from([1.0, 5.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, k=k, extra=extra, kind=kind, weighted=weighted, ignore=ignore, reduction=reduction,
                smoothing=smoothing, scale=scale, seed=seed)


def make_inputs(case, dtype):
    """(logits, labels, loss kwargs, upstream gradient) for a case, all in ``dtype``."""
    rng = np.random.default_rng(case["seed"])
    n, k, extra = case["n"], case["k"], case["extra"]
    z = (case["scale"] * rng.standard_normal((n, k, *extra))).astype(dtype)
    kwargs = dict(reduction=case["reduction"], label_smoothing=case["smoothing"])
    if case["weighted"]:
        w = rng.uniform(0.1, 3.0, k)
        w[rng.random(k) < 0.25] = 0.0                        # some classes weigh nothing
        kwargs["weight"] = w.astype(dtype)
    if case["kind"] == "int":
        labels = rng.integers(0, k, (n, *extra))
        if case["ignore"] != "none":
            ii = int(rng.integers(0, k)) if case["ignore"] == "in-range" else -1
            kwargs["ignore_index"] = ii
            labels[rng.random(labels.shape) < 0.3] = ii
    else:
        t = rng.random((n, k, *extra)) ** 2
        if rng.random() < 0.5:
            t /= np.maximum(t.sum(axis=1, keepdims=True), 1e-300)  # distributions; else unnormalised >= 0
        labels = t.astype(dtype)
    if case["reduction"] == "none":
        g = rng.standard_normal((n, *extra)).astype(dtype)      # random upstream, never ones
    else:
        g = float(rng.standard_normal())
    return z, labels, kwargs, g


def run_torch(torch, z, labels, kwargs, g):
    tz = torch.tensor(z, requires_grad=True)
    tkw = dict(kwargs)
    if "weight" in tkw:
        tkw["weight"] = torch.tensor(tkw["weight"])
    loss = torch.nn.functional.cross_entropy(tz, torch.tensor(labels), **tkw)
    loss.backward(torch.tensor(g, dtype=tz.dtype) if not isinstance(g, np.ndarray) else torch.tensor(g))
    return loss.detach().numpy(), tz.grad.numpy()


def run_ours(z, labels, kwargs, g):
    fn = tc.SoftmaxCrossEntropy(**kwargs)
    loss = fn(z, labels)
    return loss, fn.backward(g)


def _compare_with_nans(name, ours, theirs, rel):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} vs torch {theirs.shape}"
    assert np.array_equal(np.isnan(ours), np.isnan(theirs)), f"{name}: NaN pattern differs: {ours} vs {theirs}"
    assert np.array_equal(np.isinf(ours), np.isinf(theirs)), f"{name}: inf pattern differs"
    keep = np.isfinite(theirs)
    assert_rel_close(ours[keep], theirs[keep], rel, name)


@settings(deadline=None)
@given(case=cases())
def test_matches_torch_float64(torch, case):
    z, labels, kwargs, g = make_inputs(case, np.float64)
    loss, grad = run_ours(z, labels, kwargs, g)
    tloss, tgrad = run_torch(torch, z, labels, kwargs, g)
    if kwargs["reduction"] != "none":
        assert isinstance(loss, float), f"reduction {kwargs['reduction']!r} returned {type(loss).__name__}"
    else:
        assert loss.shape == (case["n"], *case["extra"]) and loss.dtype == np.float64
    assert grad.shape == z.shape and grad.dtype == np.float64
    _compare_with_nans(f"loss {case}", loss, tloss, TORCH_F64_REL_TOL)
    _compare_with_nans(f"grad {case}", grad, tgrad, TORCH_F64_REL_TOL)


# ----------------------------------------------------------------------------------------------
# float32: a derived bound
# ----------------------------------------------------------------------------------------------

def target_matrix(z, labels, kwargs):
    """The exact per-element targets t (M, K) (module docstring of tinycnn.losses), in float64,
    the rows z (M, K) and the denominator D of the mean; ignored rows have t = 0."""
    k = z.shape[1]
    rows = np.moveaxis(np.asarray(z, np.float64), 1, -1).reshape(-1, k)
    w = np.ones(k) if "weight" not in kwargs else np.asarray(kwargs["weight"], np.float64)
    e = kwargs.get("label_smoothing", 0.0)
    if labels.dtype.kind in "iu":
        y = labels.reshape(-1)
        ok = y != kwargs.get("ignore_index", -100)
        q = np.zeros_like(rows)
        q[np.arange(len(y))[ok], y[ok]] = 1.0
        q = (1 - e) * q + e / k
        q[~ok] = 0.0
        d = float(w[y[ok]].sum())
    else:
        q = (1 - e) * np.moveaxis(np.asarray(labels, np.float64), 1, -1).reshape(-1, k) + e / k
        d = float(rows.shape[0])
    return rows, q * w, d


def float32_bounds(z, labels, kwargs, g):
    """Bounds on |ours - torch| for the loss and (elementwise) the gradient, float32.

    Each side's error is the base analysis of ``_softmax_ce_error`` (tests/tolerances.py: the
    log-softmax, the weighted sum, p * sum t - t) applied to the actual targets t, rescaled from its
    1/n to this reduction's 1/D, plus what the options add, first order, per side:
      t = w * ((1 - e) onehot + e/K) and torch's separate nll / smoothing terms and their
      combination (1 - e) a + (e/K) b: at most 6 roundings per entry of t, so 6 u |t| on t, giving
      6 u sum |t log p| / D on the loss and 6 u |c| / D (p sum|t| + |t|) on the gradient;
      D = a sum of M weights: relative gamma_M, on the loss and on the gradient.
    The two sides' bounds add (NumPy's exp/log ulps for tinycnn, ATen's for torch).
    """
    u = float(np.finfo(np.float32).eps)
    rows, t, d = target_matrix(z, labels, kwargs)
    m, k = rows.shape
    reduction = kwargs["reduction"]
    p = np.exp(rows - rows.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    logp = np.log(np.maximum(p, 1e-300))
    tl = np.abs(t * logp).sum(axis=1)                         # (M,)
    ta = p * np.abs(t).sum(axis=1, keepdims=True) + np.abs(t)  # (M, K)

    def side(exp_ulps, log_ulps):
        if reduction == "none":
            gs = np.asarray(g, np.float64).reshape(-1)
            loss_err = np.zeros(m)
            grad_err = np.zeros((m, k))
            for i in range(m):
                le, ge = _softmax_ce_error(rows[i:i + 1], t[i:i + 1], gs[i], exp_ulps, log_ulps, np.float32)
                loss_err[i] = le + 6 * u * tl[i]
                grad_err[i] = ge[0] + 6 * u * abs(gs[i]) * ta[i]
            return loss_err.reshape(labels.shape[:1] + labels.shape[2:] if labels.dtype.kind == "f"
                                    else labels.shape), grad_err
        dd = d if reduction == "mean" else 1.0
        le, ge = _softmax_ce_error(rows, t, g * m / dd, exp_ulps, log_ulps, np.float32)
        loss_val = tl.sum() / dd
        loss_err = le * m / dd + 6 * u * loss_val + gamma(m, np.float32) * loss_val
        grad_err = ge + (abs(g) / dd) * 6 * u * ta + gamma(m, np.float32) * (abs(g) / dd) * ta
        return loss_err, grad_err

    a_loss, a_grad = side(NUMPY_EXP_ULPS_F32, NUMPY_LOG_ULPS_F32)
    b_loss, b_grad = side(TORCH_EXP_ULPS_F32, TORCH_LOG_ULPS_F32)
    grad = (a_grad + b_grad).reshape(z.shape[:1] + z.shape[2:] + (k,))
    return a_loss + b_loss, np.moveaxis(grad, -1, 1)


@settings(deadline=None)
@given(case=cases())
def test_matches_torch_float32_within_derived_bound(torch, case):
    z, labels, kwargs, g = make_inputs(case, np.float32)
    _, _, d = target_matrix(z, labels, kwargs)
    if kwargs["reduction"] == "mean" and d == 0:
        return                                             # NaN mean: covered in float64 and by hand
    loss, grad = run_ours(z, labels, kwargs, g)
    tloss, tgrad = run_torch(torch, z, labels, kwargs, g)
    assert grad.dtype == np.float32
    if z.size == 0:                                        # nothing computed: equal exactly
        assert np.array_equal(np.asarray(loss), tloss) and grad.shape == tgrad.shape
        return
    loss_bound, grad_bound = float32_bounds(z, labels, kwargs, g)
    tiny = float(np.finfo(np.float32).tiny)
    for name, ours, theirs, bound in [("loss", loss, tloss, loss_bound), ("grad", grad, tgrad, grad_bound)]:
        diff = np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64))
        excess = diff - (np.asarray(bound) + tiny)
        assert excess.size == 0 or excess.max() <= 0, (
            f"{name} {case} NOT OK: |diff| {diff.max():.3e} exceeds the derived bound (worst excess {excess.max():.3e})")


# ----------------------------------------------------------------------------------------------
# finite differences (float64, independent of torch)
# ----------------------------------------------------------------------------------------------

@settings(deadline=None, max_examples=40)
@given(case=cases())
def test_gradient_matches_finite_differences(case):
    z, labels, kwargs, g = make_inputs(case, np.float64)
    if z.size == 0:
        return
    fn = tc.SoftmaxCrossEntropy(**kwargs)

    def f(zz):
        out = fn(zz, labels)
        return float(np.sum(np.asarray(out) * g)) if kwargs["reduction"] == "none" else g * out

    base = f(z)
    if not math.isfinite(base):
        return                                            # a NaN mean (nothing counts): see the by-hand tests
    grad = fn.backward(g)
    h = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        num[i] = (f(zp) - f(zm)) / (2 * h)
    err = np.linalg.norm(grad - num) / max(np.linalg.norm(grad), np.linalg.norm(num), 1e-12)
    assert err < FD_REL_TOL or np.linalg.norm(grad - num) < 1e-9, f"{case}: relative error {err:.2e}"


# ----------------------------------------------------------------------------------------------
# by hand
# ----------------------------------------------------------------------------------------------

def _logp(z):
    z = np.asarray(z, np.float64)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_weighted_mean_divides_by_the_target_classes_weights():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]])
    y = np.array([0, 2, 2])
    w = np.array([2.0, 5.0, 0.5])
    lp = _logp(z)
    per = -np.array([w[0] * lp[0, 0], w[2] * lp[1, 2], w[2] * lp[2, 2]])
    assert tc.SoftmaxCrossEntropy(weight=w)(z, y) == pytest.approx(per.sum() / (2.0 + 0.5 + 0.5), rel=1e-14)
    assert tc.SoftmaxCrossEntropy(weight=w, reduction="sum")(z, y) == pytest.approx(per.sum(), rel=1e-14)
    np.testing.assert_allclose(tc.SoftmaxCrossEntropy(weight=w, reduction="none")(z, y), per, rtol=1e-14)


def test_label_smoothing_with_weights_keeps_the_denominator():
    z = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    y = np.array([1, 0])
    w = np.array([2.0, 5.0, 0.5])
    e = 0.3
    lp = _logp(z)
    per = [(1 - e) * w[yi] * -lp[i, yi] + (e / 3) * -(w * lp[i]).sum() for i, yi in enumerate(y)]
    got = tc.SoftmaxCrossEntropy(weight=w, label_smoothing=e)(z, y)
    assert got == pytest.approx(sum(per) / (w[1] + w[0]), rel=1e-14)     # D = w_y summed, not sum of t


def test_ignored_targets_count_nowhere():
    z = np.random.default_rng(0).standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    fn = tc.SoftmaxCrossEntropy(ignore_index=2, label_smoothing=0.2)
    loss = fn(z, y)
    g = fn.backward()
    kept = tc.SoftmaxCrossEntropy(label_smoothing=0.2)
    assert loss == pytest.approx(kept(z[[0, 2]], y[[0, 2]]), rel=1e-14)
    np.testing.assert_array_equal(g[[1, 3]], 0.0)
    np.testing.assert_allclose(g[[0, 2]], kept.backward(), rtol=1e-14)


def test_all_ignored_and_empty_batches_are_torchs(torch):
    fn = tc.SoftmaxCrossEntropy()
    assert math.isnan(fn(np.zeros((0, 4)), np.zeros(0, np.int64)))             # mean of nothing: NaN (torch)
    assert fn.backward().shape == (0, 4)
    assert math.isnan(tc.SoftmaxCrossEntropy()(np.zeros((0, 4)), np.zeros((0, 4))))
    assert tc.SoftmaxCrossEntropy(reduction="sum")(np.zeros((0, 4)), np.zeros(0, np.int64)) == 0.0
    none = tc.SoftmaxCrossEntropy(reduction="none")
    assert none(np.zeros((0, 4, 2)), np.zeros((0, 2), np.int64)).shape == (0, 2)
    assert none.backward().shape == (0, 4, 2)
    z = np.random.default_rng(1).standard_normal((3, 4))
    fn = tc.SoftmaxCrossEntropy(label_smoothing=0.1)
    assert math.isnan(fn(z, np.full(3, -100)))
    np.testing.assert_array_equal(fn.backward(), np.zeros((3, 4)))         # torch: zeros, not NaN
    tz = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(tz, torch.full((3,), -100), label_smoothing=0.1).backward()
    np.testing.assert_array_equal(tz.grad.numpy(), np.zeros((3, 4)))


def test_spatial_logits_equal_the_flattened_rows():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    fn, flat = tc.SoftmaxCrossEntropy(weight=[1.0, 2.0, 3.0]), tc.SoftmaxCrossEntropy(weight=[1.0, 2.0, 3.0])
    rows = np.moveaxis(z, 1, -1).reshape(-1, 3)
    assert fn(z, y) == pytest.approx(flat(rows, y.reshape(-1)), rel=1e-13)
    np.testing.assert_allclose(np.moveaxis(fn.backward(), 1, -1).reshape(-1, 3), flat.backward(), rtol=1e-12)


def test_reduction_none_backward_default_and_shape_check():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((3, 4, 2)), rng.integers(0, 4, (3, 2))
    fn = tc.SoftmaxCrossEntropy(reduction="none")
    fn(z, y)
    summed = tc.SoftmaxCrossEntropy(reduction="sum")
    summed(z, y)
    np.testing.assert_allclose(fn.backward(), summed.backward(), rtol=1e-15)   # default: gradient of the sum
    np.testing.assert_allclose(fn.backward(2.0), 2 * summed.backward(), rtol=1e-15)
    with pytest.raises(ValueError, match=r"backward got grad of shape \(3,\), but the losses have shape \(3, 2\)"):
        fn.backward(np.ones(3))
    mean = tc.SoftmaxCrossEntropy()
    mean(z, y)
    with pytest.raises(TypeError, match=r"backward takes the upstream gradient of the scalar loss \(a number\)"):
        mean.backward(np.ones(3))


def test_default_contract_is_unchanged():
    z = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
    fn = tc.SoftmaxCrossEntropy()
    assert repr(fn) == "SoftmaxCrossEntropy()"
    loss = fn(z, np.array([0, 1, 2, 1, 0]))
    assert isinstance(loss, float)
    g = fn.backward()
    assert g.shape == (5, 3) and g.dtype == np.float32


BAD = [
    (dict(weight=[1.0, float("nan")]), ValueError, r"SoftmaxCrossEntropy: class weights must be finite and >= 0, got weight\[1\] = .*nan"),
    (dict(weight=[1.0, -2.0]), ValueError, r"class weights must be finite and >= 0, got weight\[1\] = .*-2"),
    (dict(weight=[[1.0, 2.0]]), TypeError, r"weight must be a 1-D array of K class weights.*shape \(1, 2\)"),
    (dict(weight=["a", "b"]), TypeError, r"weight must be a 1-D array of K class weights.*dtype"),
    (dict(ignore_index=1.5), TypeError, r"ignore_index must be an integer, got 1.5"),
    (dict(ignore_index=True), TypeError, r"ignore_index must be an integer, got True"),
    (dict(reduction="avg"), ValueError, r"reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (dict(label_smoothing=1.5), ValueError, r"label_smoothing must be a number in \[0, 1\], got 1.5"),
    (dict(label_smoothing=float("nan")), ValueError, r"label_smoothing must be a number in \[0, 1\], got nan"),
    (dict(label_smoothing="0.1"), TypeError, r"label_smoothing must be a number in \[0, 1\], got '0.1'"),
]


@pytest.mark.parametrize("kwargs, err, match", BAD)
def test_bad_arguments_are_refused(kwargs, err, match):
    with pytest.raises(err, match=match):
        tc.SoftmaxCrossEntropy(**kwargs)


def test_bad_forward_inputs_are_named():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy\(weight=\[1, 2\]\): 2 class weights but the logits have K = 3"):
        tc.SoftmaxCrossEntropy(weight=[1.0, 2.0])(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"ignore_index=0 applies to class indices only"):
        tc.SoftmaxCrossEntropy(ignore_index=0)(z, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"label 5 at index 1 is out of range for 3 classes \(valid: 0..2, or ignore_index=-1\)"):
        tc.SoftmaxCrossEntropy(ignore_index=-1)(z, np.array([-1, 5]))
    with pytest.raises(ValueError, match=r"label 7 at index \(1, 0\) is out of range"):
        tc.SoftmaxCrossEntropy()(np.zeros((2, 3, 2)), np.array([[0, 1], [7, 2]]))
    with pytest.raises(ValueError, match=r"integer labels must have shape \(2, 4\) \(the logits' shape without the class axis 1\), got \(2, 3\)"):
        tc.SoftmaxCrossEntropy()(np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"have no classes \(K = 0\)"):
        tc.SoftmaxCrossEntropy()(np.zeros((2, 0)), np.zeros(2, np.int64))
