"""BatchNorm2D: PyTorch's BatchNorm2d, proven three ways, plus its running statistics and state_dict.

* finite differences in float64 (relative error < FD_REL_TOL) on the input, weight and bias, in
  training mode (batch statistics: the full gradient through mean and variance), in evaluation mode
  (running statistics: the affine map) and without running statistics; the adjoint identity for each
  tensor. The many forward calls of a gradient check update the running statistics; the training
  output does not depend on them (``test_training_output_ignores_running_statistics`` proves it), and
  the checks restore them before every forward anyway.
* torch as oracle over several training steps and then in evaluation mode: output, input gradient,
  weight and bias gradients, running_mean, running_var, num_batches_tracked. float64 within
  TORCH_F64_REL_TOL (and within the derived bound); float32 within the bounds derived in
  tests/tolerances.py (``batchnorm_atol``, ``batchnorm_running_atol``).
* hypothesis shapes: batch 1-4, channels 1-6, H, W 1-5 (non-square), more than one value per
  channel where batch statistics are used; random weight, bias and upstream gradients.

One value of M = N*H*W per channel needs care in finite differences: with M = 2 the normalised pair is
(+-1, -+1) up to eps, so y hardly depends on x (the gradient is of order eps / var, below the
differences' noise); those shapes are checked with eps = 1, where the dependence is of order one.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import adjoint_check, check_layer
from tolerances import (ADJOINT_REL_TOL, FD_REL_TOL, TORCH_F64_REL_TOL, assert_rel_close, assert_within,
                        batchnorm_atol, batchnorm_running_atol)

SEEDS = st.integers(0, 2**32 - 1)




def shapes(min_values: int = 2):
    """(N, C, H, W) with at least ``min_values`` values per channel (N*H*W)."""
    s = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))
    return s.filter(lambda t: t[0] * t[2] * t[3] >= min_values)


# Exactly two values per channel: (N, H, W) in {(2, 1, 1), (1, 2, 1), (1, 1, 2)}.
TWO_VALUE_SHAPES = st.tuples(st.sampled_from([(2, 1, 1), (1, 2, 1), (1, 1, 2)]), st.integers(1, 6)).map(
    lambda t: (t[0][0], t[1], t[0][1], t[0][2]))


def _input(rng, shape):
    """Per-channel offsets and scales, so normalising does real work."""
    c = shape[1]
    offset = rng.uniform(-3, 3, (1, c, 1, 1))
    scale = rng.uniform(0.3, 3, (1, c, 1, 1))
    return offset + scale * rng.standard_normal(shape)


def _layer(rng, c, dtype=np.float64, **kw):
    layer = tc.BatchNorm2D(c, dtype=dtype, **kw)
    if layer.affine:                                       # random, not the ones / zeros defaults
        layer.weight.data[...] = rng.uniform(0.5, 2, c) * rng.choice([-1, 1], c)
        layer.bias.data[...] = rng.standard_normal(c)
    return layer


def _restore_buffers(layer):
    """A before_forward that puts the running statistics back to their current values."""
    saved = {k: v.copy() for k, v in layer.named_buffers().items()}

    def restore():
        for k, v in layer.named_buffers().items():
            v[...] = saved[k]
    return restore


class _ConditionedUpstream:
    """Stands in for the Generator handed to ``check_layer``: its upstream gradient u is Gaussian,
    redrawn until every gradient under test is at least KAPPA of its typical size.

    Why: a relative error means nothing for a gradient that is by chance almost 0. A single-channel
    bias gradient sum(u) over five values is below 1e-3 about once in 400 draws, while the central
    differences carry ~1e-10 of rounding noise: the 1e-7 bar then fails a correct layer (measured:
    1 such failure in 2000 random configurations). For u ~ N(0, I), E ||J^T u||^2 = ||J||_F^2, so
    requiring ||J^T u|| >= KAPPA ||J||_F with KAPPA = 0.1 redraws a few per cent of the u's. J^T u
    and ||J||_F come from the test's own float64 formulas (module docstring of tinycnn.layers.batchnorm,
    re-derived here), not from the layer.
    """

    KAPPA = 0.1

    def __init__(self, rng, layer, x):
        self._rng, self._x = rng, x
        self._affine = layer.affine
        self._batch = layer.training or not layer.track_running_stats
        if self._batch:
            mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        else:
            mu, var = layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)
        gam = layer.weight.data if layer.affine else np.ones_like(mu)
        sigma = np.sqrt(var + layer.eps)
        self._x_hat = (x - mu.reshape(1, -1, 1, 1)) / sigma.reshape(1, -1, 1, 1)
        self._k = (gam / sigma).reshape(1, -1, 1, 1)                        # gamma / sigma per channel
        m = x.shape[0] * x.shape[2] * x.shape[3]
        if self._batch:
            # J_x per channel: (gamma/sigma) P, P = I - e e^T - a a^T, e = 1/sqrt(M), a = x_hat/sqrt(M),
            # e^T a = 0, r = |a|^2 = var/(var + eps): ||P||_F^2 = M - 1 - 2r + r^2.
            r = var / (var + layer.eps)
            frob_x = np.sqrt(np.sum((gam / sigma) ** 2 * (m - 1 - 2 * r + r * r)))
        else:
            frob_x = np.sqrt(np.sum((gam / sigma) ** 2 * m))
        self._frob = {"x": frob_x, "weight": np.sqrt(np.sum(self._x_hat ** 2)), "bias": np.sqrt(x.size)}

    def _jt(self, u):
        """J^T u for x, weight, bias (the gradients a correct layer returns for upstream u)."""
        ax = (0, 2, 3)
        if self._batch:
            gx = self._k * (u - u.mean(axis=ax, keepdims=True)
                            - self._x_hat * (u * self._x_hat).mean(axis=ax, keepdims=True))
        else:
            gx = self._k * u
        out = {"x": gx}
        if self._affine:
            out.update(weight=(u * self._x_hat).sum(axis=ax), bias=u.sum(axis=ax))
        return out

    def standard_normal(self, size=None):
        while True:
            u = self._rng.standard_normal(size)
            if size != self._x.shape or all(np.linalg.norm(g) >= self.KAPPA * self._frob[name]
                                            for name, g in self._jt(u).items()):
                return u


def _prove_gradients(layer, x, rng):
    """Finite differences (upstream gradient conditioned as above) and the adjoint identity, for x and
    every parameter. The adjoint's draws need no conditioning: over 6000 random checks its relative
    error stayed below 2e-8 (its differences perturb all of x at once, so their noise is smaller)."""
    restore = _restore_buffers(layer)
    report = check_layer(layer, x, rng=_ConditionedUpstream(rng, layer, x), tol=FD_REL_TOL,
                         before_forward=restore)
    assert report.ok, report.table()
    for wrt in ["x", *dict(layer.named_parameters())]:
        lhs, rhs, rel = adjoint_check(layer, x, rng=rng, before_forward=restore, wrt=wrt)
        assert rel < ADJOINT_REL_TOL, f"adjoint {wrt}: <Jv, u> = {lhs!r}, <v, J^T u> = {rhs!r} ({rel:.2e})"


# -- finite differences and the adjoint identity, float64 -------------------------------------------

MODES = st.sampled_from([("train", True), ("train", False), ("eval", False)])   # (mode, track_running_stats)


@given(shape=shapes(min_values=3), mode=MODES, affine=st.booleans(), seed=SEEDS)
def test_finite_differences_batch_statistics(shape, mode, affine, seed):
    """Training mode, and evaluation without running statistics: the full batch-norm gradient."""
    rng = np.random.default_rng(seed)
    (which, track) = mode
    layer = _layer(rng, shape[1], affine=affine, track_running_stats=track)
    layer.train(which == "train")
    _prove_gradients(layer, _input(rng, shape), rng)


@given(shape=TWO_VALUE_SHAPES, affine=st.booleans(), seed=SEEDS)
def test_finite_differences_two_values_per_channel(shape, affine, seed):
    """M = 2, with eps = 1 and the pair's half-difference d of order one (values offset + N(0, 0.5^2)):
    x_hat = +-d / sqrt(d^2 + 1), whose slope 1 / (d^2 + 1)^1.5 then stays well above the differences'
    noise (see the module docstring)."""
    rng = np.random.default_rng(seed)
    layer = _layer(rng, shape[1], eps=1.0, affine=affine)
    x = rng.uniform(-3, 3, (1, shape[1], 1, 1)) + 0.5 * rng.standard_normal(shape)
    _prove_gradients(layer, x, rng)


@given(shape=shapes(min_values=1), affine=st.booleans(), seed=SEEDS)
def test_finite_differences_running_statistics(shape, affine, seed):
    """Evaluation mode: the affine map with the running statistics (one value per channel allowed)."""
    rng = np.random.default_rng(seed)
    layer = _layer(rng, shape[1], affine=affine)
    layer.running_mean[...] = rng.standard_normal(shape[1])
    layer.running_var[...] = rng.uniform(0.2, 3, shape[1])
    layer.eval()
    _prove_gradients(layer, _input(rng, shape), rng)


@given(shape=shapes(min_values=2), seed=SEEDS)
def test_training_output_ignores_running_statistics(shape, seed):
    """Why the gradient checks may call forward many times: in training mode the output and the
    gradients do not depend on the running statistics the earlier calls changed."""
    rng = np.random.default_rng(seed)
    a = _layer(rng, shape[1])
    b = tc.BatchNorm2D(shape[1], dtype=np.float64)
    b.weight.data[...], b.bias.data[...] = a.weight.data, a.bias.data
    b.running_mean[...] = 100 * rng.standard_normal(shape[1])
    b.running_var[...] = rng.uniform(0.01, 100, shape[1])
    b.num_batches_tracked[...] = 12345
    x, g = _input(rng, shape), rng.standard_normal(shape)
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_array_equal(a.backward(g), b.backward(g))
    np.testing.assert_array_equal(a.weight.grad, b.weight.grad)
    np.testing.assert_array_equal(a.bias.grad, b.bias.grad)


# -- torch as oracle --------------------------------------------------------------------------------

STEPS = 3


def _torch_layer(torch, ours, dtype):
    theirs = torch.nn.BatchNorm2d(ours.num_features, eps=ours.eps, momentum=ours.momentum, affine=ours.affine,
                                  track_running_stats=ours.track_running_stats)
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    if ours.affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(ours.weight.data))
            theirs.bias.copy_(torch.from_numpy(ours.bias.data))
    return theirs


def _both(torch, ours, theirs, x, g):
    """One forward and backward on each side; returns {name: (ours, theirs)}."""
    out = {}
    y = ours(x)
    dx = ours.backward(g)
    xt = torch.from_numpy(x).requires_grad_(True)
    if theirs.affine:
        theirs.weight.grad = theirs.bias.grad = None
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g))
    out["y"] = (y, yt.detach().numpy())
    out["dx"] = (dx, xt.grad.numpy())
    if ours.affine:
        out["dweight"] = (ours.weight.grad, theirs.weight.grad.numpy())
        out["dbias"] = (ours.bias.grad, theirs.bias.grad.numpy())
    return out


def _judge(results, bounds, dtype, context, *, relative: bool):
    for name, (a, b) in results.items():
        assert a.dtype == dtype, f"{context} {name}: dtype {a.dtype}, expected {np.dtype(dtype)}"
        assert_within(a, b, bounds[name], f"{context} {name}")
        if relative:
            assert_rel_close(a, b, TORCH_F64_REL_TOL, f"{context} {name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shapes(min_values=2), affine=st.booleans(), track=st.booleans(),
       momentum=st.sampled_from([0.1, None, 0.5, 0.0, 1.0]), eps=st.sampled_from([1e-5, 1e-3]), seed=SEEDS)
def test_torch_oracle_training_steps_then_eval(torch, dtype, shape, affine, track, momentum, eps, seed):
    rng = np.random.default_rng(seed)
    ours = _layer(rng, shape[1], dtype=dtype, affine=affine, track_running_stats=track, momentum=momentum,
                  eps=eps)
    theirs = _torch_layer(torch, ours, dtype)
    m = shape[0] * shape[2] * shape[3]
    # float64: also max-norm relative 1e-10 where the output is not pure cancellation (M >= 3; see
    # the module docstring for M = 2, where the derived bound alone applies).
    relative = dtype == np.float64 and m >= 3
    weight = ours.weight.data if affine else None
    bias = ours.bias.data if affine else None
    batches = []
    for step in range(STEPS):
        x = _input(rng, shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        batches.append(x)
        results = _both(torch, ours, theirs, x, g)
        _judge(results, batchnorm_atol(x, g, weight, bias, eps, dtype), dtype, f"train step {step}",
               relative=relative)
    if track:
        err_mean, err_var = batchnorm_running_atol(batches, momentum, dtype)
        assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == STEPS
        for name, bound in [("running_mean", err_mean), ("running_var", err_var)]:
            a, b = getattr(ours, name), getattr(theirs, name).numpy()
            assert a.dtype == dtype
            assert_within(a, b, bound, name)
            if dtype == np.float64:
                assert_rel_close(a, b, TORCH_F64_REL_TOL, name)
    # Evaluation mode. float32: torch gets tinycnn's running statistics (the bound assumes both sides
    # normalise with the same ones; their own gap was just checked). float64: each keeps its own.
    ours.eval()
    theirs.eval()
    if track and dtype == np.float32:
        theirs.running_mean.copy_(torch.from_numpy(ours.running_mean))
        theirs.running_var.copy_(torch.from_numpy(ours.running_var))
    x = _input(rng, shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    results = _both(torch, ours, theirs, x, g)
    running = (ours.running_mean, ours.running_var) if track else None
    bounds = batchnorm_atol(x, g, weight, bias, eps, dtype, running=running)
    if track and dtype == np.float64:       # each side's own statistics: allow their (tiny) gap too
        bounds = {k: bounds[k] + np.abs(theirs_k).max() * TORCH_F64_REL_TOL for k, (_, theirs_k) in results.items()}
    _judge(results, bounds, dtype, "eval", relative=dtype == np.float64 and (track or m >= 3))
    if track:
        assert int(ours.num_batches_tracked) == STEPS        # evaluation does not count


def test_eval_with_one_value_per_channel_matches_torch(torch):
    """Running statistics need no batch statistics: a single image of 1x1 works in eval mode, as in torch."""
    rng = np.random.default_rng(0)
    ours = _layer(rng, 3)
    ours.running_mean[...] = [0.5, -1.0, 2.0]
    ours.running_var[...] = [0.25, 4.0, 1.0]
    theirs = _torch_layer(torch, ours, np.float64)
    theirs.running_mean.copy_(torch.from_numpy(ours.running_mean))
    theirs.running_var.copy_(torch.from_numpy(ours.running_var))
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((1, 3, 1, 1))
    expected = (ours.weight.data * (x[0, :, 0, 0] - ours.running_mean) / np.sqrt(ours.running_var + 1e-5)
                + ours.bias.data)                                          # the formula, by hand
    np.testing.assert_allclose(ours(x)[0, :, 0, 0], expected, rtol=1e-14)
    assert_rel_close(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), TORCH_F64_REL_TOL, "eval y")


# -- running statistics by hand ---------------------------------------------------------------------

def test_running_statistics_formulas_by_hand():
    """momentum 0.1: exponential average with the UNBIASED variance; momentum None: the plain average
    of the batch means and unbiased variances; evaluation changes nothing."""
    rng = np.random.default_rng(4)
    xs = [_input(rng, (2, 3, 2, 3)) for _ in range(4)]
    means = [x.mean(axis=(0, 2, 3)) for x in xs]
    unbiased = [x.transpose(1, 0, 2, 3).reshape(3, -1).var(axis=1, ddof=1) for x in xs]

    ema = tc.BatchNorm2D(3, momentum=0.1, dtype=np.float64)
    cumulative = tc.BatchNorm2D(3, momentum=None, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    for x, mu, var in zip(xs, means, unbiased):
        ema(x)
        cumulative(x)
        rm, rv = 0.9 * rm + 0.1 * mu, 0.9 * rv + 0.1 * var
    np.testing.assert_allclose(ema.running_mean, rm, rtol=1e-13)
    np.testing.assert_allclose(ema.running_var, rv, rtol=1e-13)
    np.testing.assert_allclose(cumulative.running_mean, np.mean(means, axis=0), rtol=1e-13)
    np.testing.assert_allclose(cumulative.running_var, np.mean(unbiased, axis=0), rtol=1e-13)
    assert int(ema.num_batches_tracked) == 4

    before = {k: v.copy() for k, v in ema.named_buffers().items()}
    ema.eval()
    ema(xs[0])
    for k, v in ema.named_buffers().items():
        np.testing.assert_array_equal(v, before[k])


def test_buffers_are_updated_in_place():
    """state_dict loading and checkpoints hold references to the buffers: they must stay the same arrays."""
    layer = tc.BatchNorm2D(2)
    refs = [id(v) for v in layer.named_buffers().values()]
    layer(np.random.default_rng(0).standard_normal((2, 2, 3, 3)).astype(np.float32))
    assert [id(v) for v in layer.named_buffers().values()] == refs
    assert int(layer.num_batches_tracked) == 1


# -- state_dict: torch.nn.Sequential's keys, order, shapes, and a round trip ------------------------

@pytest.mark.parametrize("affine, track", [(True, True), (False, True), (True, False), (False, False)])
def test_state_dict_keys_match_torch_sequential(torch, affine, track):
    rng = np.random.default_rng(1)
    ours = tc.Sequential(tc.Conv2D(3, 4, 3, rng=rng), tc.BatchNorm2D(4, affine=affine, track_running_stats=track),
                         tc.ReLU())
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                 torch.nn.BatchNorm2d(4, affine=affine, track_running_stats=track), torch.nn.ReLU())
    ref = theirs.state_dict()
    state = ours.state_dict()
    assert list(state) == list(ref)                        # same keys, same order
    for k, v in ref.items():
        assert state[k].shape == tuple(v.shape), k
        assert state[k].dtype == v.numpy().dtype, (k, state[k].dtype, v.dtype)   # int64 counter, float32 rest


def test_state_dict_round_trip_through_torch(torch):
    """Train on each side, load into the other (strict), and the evaluation outputs agree."""
    rng = np.random.default_rng(2)
    ours = tc.Sequential(tc.Conv2D(2, 3, 3, dtype=np.float64, rng=rng), tc.BatchNorm2D(3, dtype=np.float64))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3)).double()
    for _ in range(3):                                     # move the running statistics away from 0 / 1
        x = _input(rng, (4, 2, 6, 5))
        ours(x)
        theirs(torch.from_numpy(x))
    x = _input(rng, (2, 2, 6, 5))
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()}, strict=True)
    ours.eval()
    theirs.eval()
    assert_rel_close(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), TORCH_F64_REL_TOL, "ours -> torch")
    theirs.train()
    theirs(torch.from_numpy(_input(rng, (4, 2, 6, 5))))     # torch moves on; bring it back to ours
    theirs.eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(ours[1].num_batches_tracked) == 4
    assert_rel_close(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), TORCH_F64_REL_TOL, "torch -> ours")


# -- modes, layouts and errors ----------------------------------------------------------------------

def test_sequential_train_and_eval_switch_the_layer():
    rng = np.random.default_rng(3)
    model = tc.Sequential(tc.BatchNorm2D(2, dtype=np.float64), tc.ReLU())
    x = _input(rng, (3, 2, 4, 4))
    y_train = model(x)
    model.eval()
    assert model[0].training is False
    y_eval = model(x)
    assert not np.allclose(y_train, y_eval)                # running stats (after one step) != batch stats
    model.train()
    np.testing.assert_array_equal(model(x), y_train)


def test_non_contiguous_input_gives_the_contiguous_result():
    rng = np.random.default_rng(4)
    x = _input(rng, (3, 2, 4, 5))
    layer = tc.BatchNorm2D(2, dtype=np.float64)
    y = layer(x)
    for variant in (np.asfortranarray(x), x[::-1][::-1], np.ascontiguousarray(x[:, :, :, ::-1])[:, :, :, ::-1]):
        np.testing.assert_array_equal(layer(variant), y)


def test_error_messages(torch):
    layer = tc.BatchNorm2D(3)
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3, .*\): expected 3 channels, got 4 "
                                         r"\(input shape \(N, C, H, W\) = \(2, 4, 5, 5\)\)"):
        layer(np.zeros((2, 4, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3, .*\): expected a 4-D input \(N, C, H, W\), "
                                         r"got 3-D input of shape \(3, 5, 5\)"):
        layer(np.zeros((3, 5, 5), dtype=np.float32))
    with pytest.raises(TypeError, match=r"BatchNorm2D\(3, .*\): input dtype is int64"):
        layer(np.zeros((2, 3, 2, 2), dtype=np.int64))
    single = r"Expected more than 1 value per channel when training, got input of shape \(1, 3, 1, 1\): " \
             r"N\*H\*W = 1\*1\*1 = 1 value per channel"
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3, .*\): " + single):
        layer(np.ones((1, 3, 1, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.BatchNorm2d(3)(torch.ones(1, 3, 1, 1))    # torch's own wording, for comparison
    assert int(layer.num_batches_tracked) == 0              # nothing changed by the failed calls
    no_stats = tc.BatchNorm2D(3, track_running_stats=False).eval()   # batch statistics in eval too
    with pytest.raises(ValueError, match=single):
        no_stats(np.ones((1, 3, 1, 1), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"BatchNorm2D\(3, .*\): backward\(\) called before forward\(\)"):
        tc.BatchNorm2D(3).backward(np.ones((2, 3, 2, 2)))
    layer(np.ones((2, 3, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"backward got grad_y of shape \(2, 3, 2, 1\).*\(2, 3, 2, 2\)"):
        layer.backward(np.ones((2, 3, 2, 1)))


def test_shape_inference_names_the_channel_mismatch():
    with pytest.raises(ValueError, match=r"BatchNorm2D\(5, .*\): expected 5 channels, got 4"):
        tc.Sequential(tc.Conv2D(3, 4, 3), tc.BatchNorm2D(5), input_shape=(3, 8, 8))
    tc.Sequential(tc.Conv2D(3, 4, 3), tc.BatchNorm2D(4), tc.Dropout(0.2), tc.Tanh(), input_shape=(3, 8, 7))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_features": 0}, r"BatchNorm2D: num_features must be a positive integer, got 0"),
    ({"num_features": 3, "eps": -1e-5}, r"BatchNorm2D: eps must be a finite number >= 0, got -1e-05"),
    ({"num_features": 3, "momentum": 1.5}, r"BatchNorm2D: momentum must be None .* or a number in \[0, 1\], got 1.5"),
    ({"num_features": 3, "dtype": np.int32}, r"BatchNorm2D: dtype must be float32 or float64, got int32"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        tc.BatchNorm2D(**kwargs)


def test_defaults_and_exports():
    layer = tc.BatchNorm2D(4)
    assert "BatchNorm2D" in tc.__all__
    assert layer.weight.data.dtype == np.float32 and layer.weight.data.shape == (4,)
    np.testing.assert_array_equal(layer.weight.data, np.ones(4))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(4))
    np.testing.assert_array_equal(layer.running_mean, np.zeros(4))
    np.testing.assert_array_equal(layer.running_var, np.ones(4))
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert len(layer.parameters()) == 2



# -- measurement (not a test): python tests/test_batchnorm.py [configurations] ----------------------

def _measure(n_configs: int = 300) -> None:
    """Largest float64 relative error and largest |diff| / derived bound, per tensor, over random
    configurations (3 training steps, then evaluation), tinycnn against torch."""
    import torch
    torch.set_num_threads(1)
    worst: dict = {}
    cfg_rng = np.random.default_rng(2024)
    for k in range(n_configs):
        n, c, h, w = (int(v) for v in cfg_rng.integers([1, 1, 1, 1], [5, 7, 6, 6]))
        if n * h * w < 3:
            continue
        for dtype in (np.float64, np.float32):
            rng = np.random.default_rng(k)
            ours = _layer(rng, c, dtype=dtype, momentum=[0.1, None][k % 2])
            theirs = _torch_layer(torch, ours, dtype)
            batches = []
            for step in range(STEPS + 1):
                if step == STEPS:
                    bounds = batchnorm_running_atol(batches, ours.momentum, dtype)
                    for name, bound in zip(("running_mean", "running_var"), bounds):
                        a = getattr(ours, name).astype(np.float64)
                        b = getattr(theirs, name).numpy().astype(np.float64)
                        key = (np.dtype(dtype).name, "train", name)
                        old = worst.get(key, (0.0, 0.0))
                        worst[key] = (max(old[0], float(np.abs(a - b).max() / np.abs(b).max())),
                                      max(old[1], float((np.abs(a - b) / (bound + np.finfo(dtype).tiny)).max())))
                    ours.eval()
                    theirs.eval()
                    theirs.running_mean.copy_(torch.from_numpy(ours.running_mean))
                    theirs.running_var.copy_(torch.from_numpy(ours.running_var))
                x = _input(rng, (n, c, h, w)).astype(dtype)
                g = rng.standard_normal(x.shape).astype(dtype)
                batches.append(x)
                results = _both(torch, ours, theirs, x, g)
                running = (ours.running_mean, ours.running_var) if step == STEPS else None
                bounds = batchnorm_atol(x, g, ours.weight.data, ours.bias.data, ours.eps, dtype, running=running)
                phase = "eval" if step == STEPS else "train"
                for name, (a, b) in results.items():
                    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                    key = (np.dtype(dtype).name, phase, name)
                    ratio = float((np.abs(a - b) / (bounds[name] + np.finfo(dtype).tiny)).max())
                    rel = float(np.abs(a - b).max() / np.abs(b).max())
                    old = worst.get(key, (0.0, 0.0))
                    worst[key] = (max(old[0], rel), max(old[1], ratio))
    print(f"{'dtype':<8}{'phase':<7}{'tensor':<9}{'max rel err':>13}{'max |diff|/bound':>18}")
    for (dt, phase, name), (rel, ratio) in sorted(worst.items()):
        print(f"{dt:<8}{phase:<7}{name:<9}{rel:>13.2e}{ratio:>18.2e}")


if __name__ == "__main__":
    _measure(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
