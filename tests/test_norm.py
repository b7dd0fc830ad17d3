"""BatchNorm1D, LayerNorm, GroupNorm: finite differences, the adjoint test, torch as oracle (float64 1e-10
for outputs, every gradient and the running statistics over several steps; float32 within the batch-norm
bounds of tests/tolerances.py), hypothesis over shapes, group counts and options, empty batches, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import check_layer
from layer_oracle import assert_all_close_f64, run_both
from tolerances import (FD_REL_TOL, TORCH_F64_REL_TOL, assert_rel_close, assert_within, batchnorm_atol,
                        batchnorm_running_atol, gamma)

F64, F32 = np.float64, np.float32


def randomise(layer, rng):
    """Weights away from their 1 / 0 start, so a swapped weight and bias would show."""
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    return layer


# -- BatchNorm1D -------------------------------------------------------------------------------------

@st.composite
def bn1d_configs(draw):
    # n >= 3: with M = 2 values per channel x_hat = +-1 whatever x, the gradient is O(eps) and below the
    # finite differences' resolution (see tinycnn.gradcheck)
    return dict(n=draw(st.integers(3, 5)), c=draw(st.integers(1, 4)), length=draw(st.sampled_from([None, 1, 3])),
                momentum=draw(st.sampled_from([0.1, 0.5, None])), affine=draw(st.booleans()),
                track=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)))


def bn1d_input(rng, cfg, dtype=F64):
    shape = (cfg["n"], cfg["c"]) if cfg["length"] is None else (cfg["n"], cfg["c"], cfg["length"])
    return (rng.standard_normal(shape) * 2 + rng.uniform(-3, 3)).astype(dtype)


@given(cfg=bn1d_configs(), training=st.booleans())
def test_batchnorm1d_finite_differences_and_adjoint(cfg, training):
    rng = np.random.default_rng(cfg["seed"])
    layer = randomise(tc.BatchNorm1D(cfg["c"], momentum=cfg["momentum"], affine=cfg["affine"],
                                     track_running_stats=cfg["track"], dtype=F64), rng)
    layer.train(training)
    if cfg["track"]:
        layer.running_mean[...] = rng.standard_normal(cfg["c"])
        layer.running_var[...] = rng.uniform(0.5, 2, cfg["c"])
    report = check_layer(layer, bn1d_input(rng, cfg), rng=rng, tol=FD_REL_TOL, adjoint=True)
    assert report.ok, report.table()


@given(cfg=bn1d_configs())
def test_batchnorm1d_matches_torch_over_training_steps_then_eval(torch, cfg):
    """Three training steps (outputs, every gradient, the running statistics after each), then eval."""
    rng = np.random.default_rng(cfg["seed"])
    layer = randomise(tc.BatchNorm1D(cfg["c"], momentum=cfg["momentum"], affine=cfg["affine"],
                                     track_running_stats=cfg["track"], dtype=F64), rng)
    module = torch.nn.BatchNorm1d(cfg["c"], momentum=cfg["momentum"], affine=cfg["affine"],
                                  track_running_stats=cfg["track"]).double()
    for _ in range(3):
        x = bn1d_input(rng, cfg)
        pairs = run_both(torch, layer, module, x, rng)
        with torch.no_grad():                     # torch's own running statistics carried forward
            for name, b in dict(module.named_buffers()).items():
                dict(layer.named_buffers())[name][...] = b.numpy()
        pairs.pop("num_batches_tracked", None)
        assert_all_close_f64(pairs)
    if cfg["track"]:
        assert int(layer.num_batches_tracked) == 3
    layer.eval()
    assert_all_close_f64(run_both(torch, layer, module, bn1d_input(rng, cfg), rng))


@given(cfg=bn1d_configs())
def test_batchnorm1d_running_statistics_follow_torch_without_help(torch, cfg):
    """The running statistics accumulated by tinycnn alone, against torch's, after four steps."""
    rng = np.random.default_rng(cfg["seed"])
    layer = tc.BatchNorm1D(cfg["c"], momentum=cfg["momentum"], dtype=F64)
    module = torch.nn.BatchNorm1d(cfg["c"], momentum=cfg["momentum"]).double()
    for _ in range(4):
        x = bn1d_input(rng, cfg)
        layer.forward(x)
        module(torch.tensor(x))
    for name, b in module.named_buffers():
        assert_rel_close(dict(layer.named_buffers())[name], b.numpy(), TORCH_F64_REL_TOL, name)


def _as_nchw(a):
    """(N, C) or (N, C, L) -> (N, C, L, 1): the batch-norm bounds of tests/tolerances.py take NCHW."""
    a = np.asarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1, 1)


@given(cfg=bn1d_configs(), training=st.booleans())
def test_batchnorm1d_float32_within_the_batchnorm_bounds(torch, cfg, training):
    """BatchNorm1D is BatchNorm2D on (N, C, L, 1): the same groups, the same formulas, so the bounds
    ``batchnorm_atol`` / ``batchnorm_running_atol`` derive (two sides of a float32 two-pass batch norm)
    apply; tinycnn's side is float64 rounded once, well inside one side's share. Training starts from
    running statistics (0, 1), as those bounds assume; evaluation uses random ones."""
    rng = np.random.default_rng(cfg["seed"])
    layer = randomise(tc.BatchNorm1D(cfg["c"], affine=cfg["affine"], dtype=F32), rng)
    module = torch.nn.BatchNorm1d(cfg["c"], affine=cfg["affine"])
    running = None
    if not training:
        layer.running_mean[...] = rng.standard_normal(cfg["c"])
        layer.running_var[...] = rng.uniform(0.5, 2, cfg["c"])
        running = (layer.running_mean.copy(), layer.running_var.copy())
    layer.train(training)
    x = bn1d_input(rng, cfg, F32)
    u = rng.standard_normal(x.shape).astype(F32)
    pairs = run_both(torch, layer, module, x, rng, u=u)
    w = layer.weight.data if cfg["affine"] else None
    b = layer.bias.data if cfg["affine"] else None
    bounds = batchnorm_atol(_as_nchw(x), _as_nchw(u), w, b, layer.eps, F32, running=running)
    assert_within(_as_nchw(pairs["y"][0]), _as_nchw(pairs["y"][1]), bounds["y"], "y")
    assert_within(_as_nchw(pairs["grad x"][0]), _as_nchw(pairs["grad x"][1]), bounds["dx"], "grad x")
    if cfg["affine"]:
        assert_within(*pairs["grad weight"], bounds["dweight"], "grad weight")
        assert_within(*pairs["grad bias"], bounds["dbias"], "grad bias")
    if training:
        bm, bv = batchnorm_running_atol([_as_nchw(x)], 0.1, F32)
        assert_within(*pairs["running_mean"], bm, "running_mean")
        assert_within(*pairs["running_var"], bv, "running_var")


# -- LayerNorm and GroupNorm -------------------------------------------------------------------------

@st.composite
def layernorm_configs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    k = draw(st.integers(1, len(shape) - 1))
    return dict(shape=shape, normalized=shape[len(shape) - k:], affine=draw(st.booleans()),
                bias=draw(st.booleans()), eps=draw(st.sampled_from([1e-5, 0.1])), seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def groupnorm_configs(draw):
    groups = draw(st.integers(1, 4))
    per_group = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    n = draw(st.integers(1, 3))
    if n * per_group * int(np.prod(spatial)) == 1:       # refused by torch and tinycnn alike (tested below)
        n = 2
    return dict(groups=groups, channels=groups * per_group, n=n, spatial=spatial,
                affine=draw(st.booleans()), eps=draw(st.sampled_from([1e-5, 0.1])), seed=draw(st.integers(0, 2**32 - 1)))


def layernorm_pair(torch, cfg, dtype=F64):
    layer = tc.LayerNorm(cfg["normalized"], eps=cfg["eps"], elementwise_affine=cfg["affine"], bias=cfg["bias"],
                         dtype=dtype)
    module = torch.nn.LayerNorm(cfg["normalized"], eps=cfg["eps"], elementwise_affine=cfg["affine"], bias=cfg["bias"])
    return layer, (module.double() if dtype == F64 else module)


def groupnorm_pair(torch, cfg, dtype=F64):
    layer = tc.GroupNorm(cfg["groups"], cfg["channels"], eps=cfg["eps"], affine=cfg["affine"], dtype=dtype)
    module = torch.nn.GroupNorm(cfg["groups"], cfg["channels"], eps=cfg["eps"], affine=cfg["affine"])
    return layer, (module.double() if dtype == F64 else module)


def groupnorm_input(rng, cfg, dtype=F64):
    return (rng.standard_normal((cfg["n"], cfg["channels"], *cfg["spatial"])) * 2 + 1).astype(dtype)


@given(cfg=layernorm_configs())
def test_layernorm_finite_differences_and_adjoint(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = randomise(tc.LayerNorm(cfg["normalized"], eps=cfg["eps"], elementwise_affine=cfg["affine"],
                                   bias=cfg["bias"], dtype=F64), rng)
    report = check_layer(layer, rng.standard_normal(cfg["shape"]) * 2, rng=rng, tol=FD_REL_TOL, adjoint=True)
    # one or two values per group: x_hat = 0 or +-1 whatever x, the input gradient is O(eps) (zero for
    # one value), below the finite differences' resolution: then only its absolute size is checked
    assert report.ok or (np.prod(cfg["normalized"]) <= 2 and all(r.max_abs_diff < 1e-8 for r in report.rows)), \
        report.table()


@given(cfg=layernorm_configs())
def test_layernorm_matches_torch(torch, cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer, module = layernorm_pair(torch, cfg)
    randomise(layer, rng)
    pairs = run_both(torch, layer, module, rng.standard_normal(cfg["shape"]) * 2 + 1, rng)
    _compare(pairs, single=np.prod(cfg["normalized"]) == 1)


def _compare(pairs, single: bool):
    """float64, 1e-10 relative; with one value per group x_hat is 0 exactly, and whatever depends on it
    (y - bias, dx, dweight) is rounding noise of size ~1e-15 on torch's side: compared in absolute terms."""
    if not single:
        assert_all_close_f64(pairs)
        return
    for name, (ours, theirs) in pairs.items():
        assert np.shape(ours) == np.shape(theirs), name
        assert np.abs(np.asarray(ours, F64) - theirs).max(initial=0) <= TORCH_F64_REL_TOL * max(
            1.0, np.abs(theirs).max(initial=0)), name


@given(cfg=groupnorm_configs())
def test_groupnorm_finite_differences_and_adjoint(cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer = randomise(tc.GroupNorm(cfg["groups"], cfg["channels"], eps=cfg["eps"], affine=cfg["affine"],
                                   dtype=F64), rng)
    report = check_layer(layer, groupnorm_input(rng, cfg), rng=rng, tol=FD_REL_TOL, adjoint=True)
    group_size = cfg["channels"] // cfg["groups"] * int(np.prod(cfg["spatial"]))
    # one or two values per group: see the LayerNorm test above
    assert report.ok or (group_size <= 2 and all(r.max_abs_diff < 1e-8 for r in report.rows)), report.table()


@given(cfg=groupnorm_configs())
def test_groupnorm_matches_torch(torch, cfg):
    rng = np.random.default_rng(cfg["seed"])
    layer, module = groupnorm_pair(torch, cfg)
    randomise(layer, rng)
    pairs = run_both(torch, layer, module, groupnorm_input(rng, cfg), rng)
    _compare(pairs, single=cfg["channels"] // cfg["groups"] * int(np.prod(cfg["spatial"])) == 1)


def affine_norm_f32_bounds(x, g, w, b, eps, group_shape, param_axes_of):
    """Elementwise bounds on |tinycnn - torch| in float32 for a normalisation with an elementwise affine.

    x, g: the input and upstream gradient in the layer's layout; ``group_shape``: the reshape
    (1, groups, M, 1) that puts each group's M values along axis 2 (the batch-norm layout, a view of
    the same C-order values); w, b: the affine arrays broadcast to x's shape (None: no affine);
    ``param_axes_of``: the axes of x a parameter gradient sums over.

    ``batchnorm_atol`` (weight 1, bias 0) bounds the two sides' x_hat gap (its "y", e_hat) and the dx
    gap for an exact a = w g (its "dx"). On top, per side (u = float32 epsilon):
      y = w x_hat + b:         |w| e_hat + 2u (|w x_hat| + |b|)            (product and sum, two sides)
      a = w g rounded:         relative u, through dx = (a - mean a - x_hat mean(a x_hat)) / sigma:
                               (u |a| + mean(u |a|) + |x_hat| mean(u |a x_hat|)) / sigma, two sides
      dweight = sum g x_hat:   sum |g| e_hat + 2 gamma_{n+1} sum |g x_hat|
      dbias = sum g:           2 gamma_n sum |g|
    """
    u = float(np.finfo(F32).eps)
    x64, g64 = np.asarray(x, F64), np.asarray(g, F64)
    w64 = np.ones_like(x64) if w is None else np.broadcast_to(np.asarray(w, F64), x64.shape)
    b64 = np.zeros_like(x64) if b is None else np.broadcast_to(np.asarray(b, F64), x64.shape)
    xg, ag = x64.reshape(group_shape), (w64 * g64).reshape(group_shape)
    base = batchnorm_atol(xg, ag, None, None, eps, F32)
    mu = xg.mean(axis=2, keepdims=True)
    sigma = np.sqrt(((xg - mu) ** 2).mean(axis=2, keepdims=True) + eps)
    xh = (xg - mu) / sigma
    e_hat = base["y"].reshape(x64.shape)
    xh_x = xh.reshape(x64.shape)
    a_err = (u * np.abs(ag) + (u * np.abs(ag)).mean(axis=2, keepdims=True)
             + np.abs(xh) * (u * np.abs(ag * xh)).mean(axis=2, keepdims=True)) / sigma
    n = int(np.prod([x64.shape[k] for k in param_axes_of]))
    return {"y": np.abs(w64) * e_hat + 4 * u * (np.abs(w64 * xh_x) + np.abs(b64)),
            "dx": base["dx"].reshape(x64.shape) + 2 * a_err.reshape(x64.shape),
            "dweight": (np.abs(g64) * e_hat).sum(axis=param_axes_of)
            + 2 * gamma(n + 1, F32) * np.abs(g64 * xh_x).sum(axis=param_axes_of),
            "dbias": 2 * gamma(n, F32) * np.abs(g64).sum(axis=param_axes_of)}


def _check_f32(pairs, bounds, affine, has_bias):
    assert pairs["y"][0].dtype == F32
    assert_within(*pairs["y"], bounds["y"], "y")
    assert_within(*pairs["grad x"], bounds["dx"], "grad x")
    if affine:
        assert_within(*pairs["grad weight"], bounds["dweight"], "grad weight")
    if has_bias:
        assert_within(*pairs["grad bias"], bounds["dbias"], "grad bias")


@given(cfg=layernorm_configs())
def test_layernorm_float32_within_derived_bounds(torch, cfg):
    """LayerNorm is batch norm whose channels are the leading indices and whose M values are each
    group's D = prod(normalized_shape), plus an elementwise affine: ``affine_norm_f32_bounds``."""
    if np.prod(cfg["normalized"]) == 1:
        return                                     # one value per group: x_hat is rounding noise (see above)
    rng = np.random.default_rng(cfg["seed"])
    layer, module = layernorm_pair(torch, cfg, F32)
    randomise(layer, rng)
    x = (rng.standard_normal(cfg["shape"]) * 2 + 1).astype(F32)
    u = rng.standard_normal(cfg["shape"]).astype(F32)
    pairs = run_both(torch, layer, module, x, rng, u=u)
    k = len(cfg["normalized"])
    lead = cfg["shape"][:len(cfg["shape"]) - k]
    w = layer.weight.data if layer.weight is not None else None
    b = layer.bias.data if layer.bias is not None else None
    bounds = affine_norm_f32_bounds(x, u, w, b, cfg["eps"], (1, int(np.prod(lead)), -1, 1),
                                    tuple(range(len(lead))))
    _check_f32(pairs, bounds, layer.weight is not None, layer.bias is not None)


@given(cfg=groupnorm_configs())
def test_groupnorm_float32_within_derived_bounds(torch, cfg):
    """GroupNorm is batch norm over (1, N*G, C/G * prod(*), 1), each (sample, group) a channel, plus a
    per-channel affine: ``affine_norm_f32_bounds``."""
    if cfg["channels"] // cfg["groups"] * int(np.prod(cfg["spatial"])) == 1:
        return
    rng = np.random.default_rng(cfg["seed"])
    layer, module = groupnorm_pair(torch, cfg, F32)
    randomise(layer, rng)
    x = groupnorm_input(rng, cfg, F32)
    u = rng.standard_normal(x.shape).astype(F32)
    pairs = run_both(torch, layer, module, x, rng, u=u)
    per_channel = (1, -1) + (1,) * len(cfg["spatial"])
    w = layer.weight.data.reshape(per_channel) if cfg["affine"] else None
    b = layer.bias.data.reshape(per_channel) if cfg["affine"] else None
    not_c = tuple(k for k in range(x.ndim) if k != 1)
    bounds = affine_norm_f32_bounds(x, u, w, b, cfg["eps"], (1, cfg["n"] * cfg["groups"], -1, 1), not_c)
    _check_f32(pairs, bounds, cfg["affine"], cfg["affine"])


# -- empty batches, errors ---------------------------------------------------------------------------

def test_empty_batches_keep_torch_shapes_and_torch_counts_the_batch(torch):
    cases = [(tc.BatchNorm1D(3), torch.nn.BatchNorm1d(3), (0, 3)),
             (tc.BatchNorm1D(3), torch.nn.BatchNorm1d(3), (0, 3, 4)),
             (tc.LayerNorm(4), torch.nn.LayerNorm(4), (0, 4)),
             (tc.LayerNorm((3, 2)), torch.nn.LayerNorm((3, 2)), (0, 3, 2)),
             (tc.GroupNorm(1, 3), torch.nn.GroupNorm(1, 3), (0, 3, 2)),
             (tc.GroupNorm(3, 3), torch.nn.GroupNorm(3, 3), (0, 3))]
    for layer, module, shape in cases:
        y = layer.forward(np.zeros(shape, dtype=F32))
        xt = torch.zeros(shape, requires_grad=True)
        yt = module(xt)
        assert y.shape == tuple(yt.shape) == shape, layer
        gx = layer.backward(np.zeros(shape, dtype=F32))
        yt.sum().backward()
        assert gx.shape == tuple(xt.grad.shape), layer
        for name, p in dict(layer.named_parameters()).items():
            np.testing.assert_array_equal(p.grad, dict(module.named_parameters())[name].grad.numpy())
        for name, b in dict(layer.named_buffers()).items():
            np.testing.assert_array_equal(b, dict(module.named_buffers())[name].numpy())   # counted, unchanged


def test_bad_arguments_and_inputs_name_the_layer_and_numbers():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels must be divisible by num_groups, got "
                                         r"num_channels = 6, num_groups = 4 \(6 % 4 = 2\)"):
        tc.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm: num_groups must be a positive integer, got 0"):
        tc.GroupNorm(0, 6)
    with pytest.raises(ValueError, match=r"GroupNorm\(2, 6, eps=1e-05\): expected an input \(N, 6, \*\) .* got "
                                         r"shape \(2, 4, 3\)"):
        tc.GroupNorm(2, 6).forward(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"GroupNorm\(3, 3, eps=1e-05\): Expected more than 1 value per channel "
                                         r"when training, got input of shape \(1, 3\)"):
        tc.GroupNorm(3, 3).forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"LayerNorm: eps must be a finite number >= 0, got -1"):
        tc.LayerNorm(3, eps=-1)
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\), eps=1e-05\): the trailing dimensions of the input "
                                         r"shape \(2, 4, 3\) must be normalized_shape \(3, 4\)"):
        tc.LayerNorm((3, 4)).forward(np.zeros((2, 4, 3)))
    with pytest.raises(tc.ShapeError, match=r"trailing dimensions of the per-sample shape \(5,\) must be "
                                            r"normalized_shape \(4,\)"):
        tc.Sequential(tc.LayerNorm(4), input_shape=(5,))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(3, .*\): expected a 2-D \(N, C\) or 3-D \(N, C, L\) input, "
                                         r"got 4-D"):
        tc.BatchNorm1D(3).forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(3, .*\): expected 3 channels, got 2"):
        tc.BatchNorm1D(3).forward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when training, got input of "
                                         r"shape \(1, 3\)"):
        tc.BatchNorm1D(3).forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"BatchNorm1D: momentum must be None .* got 2"):
        tc.BatchNorm1D(3, momentum=2)
    with pytest.raises(TypeError, match=r"LayerNorm\(.*\): input dtype is int64"):
        tc.LayerNorm(3).forward(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match=r"BatchNorm1D: dtype must be float32 or float64, got float16"):
        tc.BatchNorm1D(3, dtype=np.float16)
