"""AdaptiveAvgPool2D and AdaptiveMaxPool2D: torch's bin rule (overlapping bins, outputs larger than the
input, None entries), finite differences, the adjoint test, torch as oracle (float64 1e-10, float32
reduction bound, max bit-equal), the tie and NaN rule, empty batches and bad arguments."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import check_layer, distinct_values
from tinycnn.layers.adaptive_pool import bin_edges
from layer_oracle import assert_all_close_f64, run_both
from tolerances import FD_REL_TOL, assert_close_reduction

F64, F32 = np.float64, np.float32


@st.composite
def configs(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    oh = draw(st.one_of(st.integers(1, 10), st.none()))
    ow = draw(st.one_of(st.integers(1, 10), st.none()))
    size = draw(st.sampled_from(["pair", "int"]))
    output_size = (oh, ow) if size == "pair" else (oh if oh is not None else 3)
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), h=h, w=w, output_size=output_size,
                seed=draw(st.integers(0, 2**32 - 1)))


def test_bin_edges_are_torchs_rule_by_hand():
    # H = 5 into 3 bins: [0, 2), [1, 4), [3, 5): overlapping by one row each
    assert bin_edges(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert bin_edges(4, 2) == [(0, 2), (2, 4)]                  # divides: pooling with k = s = 2
    assert bin_edges(2, 5) == [(0, 1), (0, 1), (0, 2), (1, 2), (1, 2)]   # larger output: repeats rows
    assert bin_edges(7, 1) == [(0, 7)]                          # global


@pytest.mark.parametrize("kind", ["avg", "max"])
@given(cfg=configs())
def test_finite_differences_and_adjoint(kind, cfg):
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
    if kind == "avg":
        layer, x = tc.AdaptiveAvgPool2D(cfg["output_size"]), rng.standard_normal(shape)
    else:                                            # distinct values: no tie within reach of h
        layer, x = tc.AdaptiveMaxPool2D(cfg["output_size"]), distinct_values(shape, rng)
    report = check_layer(layer, x, rng=rng, tol=FD_REL_TOL, adjoint=True)
    assert report.ok, report.table()


@pytest.mark.parametrize("kind", ["avg", "max"])
@given(cfg=configs())
def test_torch_oracle_float64(torch, kind, cfg):
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
    if kind == "avg":
        layer, module = tc.AdaptiveAvgPool2D(cfg["output_size"]), torch.nn.AdaptiveAvgPool2d(cfg["output_size"])
        x = rng.standard_normal(shape)
    else:
        layer, module = tc.AdaptiveMaxPool2D(cfg["output_size"]), torch.nn.AdaptiveMaxPool2d(cfg["output_size"])
        x = distinct_values(shape, rng)
    pairs = run_both(torch, layer, module, x, rng)
    assert pairs["y"][0].shape == pairs["y"][1].shape
    assert_all_close_f64(pairs)


@given(cfg=configs())
def test_float32_avg_within_reduction_bound_and_max_bit_equal(torch, cfg):
    """avg: each output is a sum of A_b terms times 1/A_b (A_b + 1 roundings), each input gradient a sum
    of at most (bins covering it) terms g/A_b: bounded by 2 gamma_{n} S with n = the largest bin area + 1
    and S = the same pooling of |x| (resp. the backward of |g|). max: no arithmetic, bit-equal."""
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
    x = rng.standard_normal(shape).astype(F32)
    layer = tc.AdaptiveAvgPool2D(cfg["output_size"])
    layer.forward(x)                                 # for its bins
    rows, cols = layer._cache.rows, layer._cache.cols
    area = max(r1 - r0 for r0, r1 in rows) * max(c1 - c0 for c0, c1 in cols)
    ref = tc.AdaptiveAvgPool2D(cfg["output_size"])
    s_y = ref.forward(np.abs(x).astype(F64))
    g = rng.standard_normal(s_y.shape)
    pairs = run_both(torch, layer, torch.nn.AdaptiveAvgPool2d(cfg["output_size"]), x, rng, u=g.astype(F32))
    s_dx = ref.backward(np.abs(g.astype(F32)).astype(F64))
    overlap = max(sum(1 for r0, r1 in rows if r0 <= i < r1) for i in range(cfg["h"])) * \
        max(sum(1 for c0, c1 in cols if c0 <= j < c1) for j in range(cfg["w"]))
    assert_close_reduction(*pairs["y"], area + 1, F32, s_y, "y")
    assert_close_reduction(*pairs["grad x"], 2 * overlap, F32, s_dx, "grad x")
    xm = distinct_values(shape, rng).astype(F32)
    pairs = run_both(torch, tc.AdaptiveMaxPool2D(cfg["output_size"]), torch.nn.AdaptiveMaxPool2d(cfg["output_size"]),
                     xm, rng)
    for name, (ours, theirs) in pairs.items():
        np.testing.assert_array_equal(ours, theirs, err_msg=name)


def test_max_ties_go_to_the_first_maximum_and_nan_to_the_last_nan_as_torch(torch):
    x = np.zeros((1, 3, 4, 5))
    x[0, 1, 1, 1] = x[0, 1, 2, 3] = 5.0                      # a tie inside overlapping bins
    x[0, 2, 0, 1] = x[0, 2, 3, 4] = np.nan                   # two NaNs in the global bin
    x[0, 2, 1, 1] = 9.0
    for out in ((3, 2), 1, (2, 4)):
        layer, module = tc.AdaptiveMaxPool2D(out), torch.nn.AdaptiveMaxPool2d(out)
        y = layer.forward(x)
        g = np.random.default_rng(0).standard_normal(y.shape)
        gx = layer.backward(g)
        xt = torch.tensor(x, requires_grad=True)
        yt = module(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_array_equal(y, yt.detach().numpy())
        np.testing.assert_array_equal(gx, xt.grad.numpy())
    layer = tc.AdaptiveMaxPool2D(1)
    layer.forward(x)
    layer.backward(np.ones((1, 3, 1, 1)))
    assert layer._cache.winners[0, 0, 0, 0] == 0                    # all zeros: the first
    assert layer._cache.winners[0, 1, 0, 0] == 1 * 5 + 1            # the first 5.0
    assert layer._cache.winners[0, 2, 0, 0] == 3 * 5 + 4            # the last NaN


def test_global_average_pooling_is_the_mean_of_each_map():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    y = tc.AdaptiveAvgPool2D(1).forward(x)
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(y[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-15)
    model = tc.Sequential(tc.AdaptiveAvgPool2D(1), tc.Flatten(), input_shape=(3, 4, 5))
    assert model.build((3, 4, 5))[-1].out_shape == (3,)


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_empty_batch_keeps_torch_shapes(torch, kind):
    layer = tc.AdaptiveAvgPool2D((2, 3)) if kind == "avg" else tc.AdaptiveMaxPool2D((2, 3))
    module = torch.nn.AdaptiveAvgPool2d((2, 3)) if kind == "avg" else torch.nn.AdaptiveMaxPool2d((2, 3))
    y = layer.forward(np.zeros((0, 3, 5, 5)))
    assert y.shape == tuple(module(torch.zeros(0, 3, 5, 5)).shape) == (0, 3, 2, 3)
    assert layer.backward(np.zeros((0, 3, 2, 3))).shape == (0, 3, 5, 5)


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D: output_size entries must be positive integers or "
                                         r"None, got \(0, 2\)"):
        tc.AdaptiveAvgPool2D((0, 2))
    with pytest.raises(TypeError, match=r"AdaptiveMaxPool2D: output_size must be an int or an \(OH, OW\) pair"):
        tc.AdaptiveMaxPool2D((1, 2, 3))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D\(output_size=2\): expected a 4-D input"):
        tc.AdaptiveAvgPool2D(2).forward(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D\(output_size=2\): needs a non-empty map, got H = 0"):
        tc.AdaptiveAvgPool2D(2).forward(np.zeros((1, 3, 0, 4)))
    with pytest.raises(tc.ShapeError, match=r"AdaptiveMaxPool2D\(output_size=\(2, None\)\).*expects a \(C, H, W\)"):
        tc.Sequential(tc.AdaptiveMaxPool2D((2, None)), input_shape=(12,))
