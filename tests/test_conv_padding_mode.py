"""Conv2D's ``padding_mode`` ('zeros', 'reflect', 'replicate', 'circular'; torch's names and semantics).

Proof:

* the padding (``tinycnn.layers.padding.pad``) equals torch's ``F.pad`` bit for bit (it only copies);
  its fold ``pad_backward`` is its adjoint (<pad(x), g> = <x, pad_backward(g)>) and equals torch's
  gradient of ``F.pad`` within 2 gamma_n S, n the most copies one pixel can have;
* by hand on a row of three pixels, for each mode;
* the layer, over configurations drawn by hypothesis (every mode; int, pair, 'same' with odd and even
  kernels, 'valid'; stride, dilation, groups; unbatched input; inputs as small as each mode allows):
  torch's ``nn.Conv2d(..., padding_mode=...)`` as the oracle for the forward and every gradient in
  float64 (max-norm relative 1e-10) and float32 (2 gamma_n S against torch in float64), float64
  finite differences and the adjoint test;
* the limits (reflect: padding < size, circular: padding <= size): refused exactly where torch refuses;
* the executor runs such a conv with the plain op and matches torch; save/load keeps the mode; the
  ONNX exporter refuses it by name; ``to_torch_module`` carries it.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from tolerances import (
    ADJOINT_REL_TOL,
    FD_REL_TOL,
    TORCH_F64_REL_TOL,
    assert_close_reduction,
    assert_rel_close,
    reduction_atol,
)

import tinycnn as tc
from tinycnn import fast
from tinycnn.fast.ops import ConvOp, PlainOp, make_op
from tinycnn.gradcheck import adjoint_check, check_layer
from tinycnn.layers.padding import pad, pad_backward

F32, F64 = np.float32, np.float64
SEEDS = st.integers(0, 2**32 - 1)
COPYING = ["reflect", "replicate", "circular"]
MODES = ["zeros", *COPYING]


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Tiny arrays, many calls (finite differences): one thread."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def least_size(mode: str, before: int, after: int) -> int:
    """The smallest input length torch pads with ``mode`` (reflect: padding < size; circular: <= size)."""
    if mode == "reflect":
        return max(before, after) + 1
    if mode == "circular":
        return max(before, after, 1)
    return 1


def same_amounts(k: int, d: int) -> tuple[int, int]:
    """torch's 'same' rule, written out independently of the layer: total d*(k-1), the odd pixel after."""
    total = d * (k - 1)
    return total // 2, total - total // 2


# ----------------------------------------------------------------------------------------------
# The padding and its fold
# ----------------------------------------------------------------------------------------------

@st.composite
def pad_cases(draw):
    mode = draw(st.sampled_from(COPYING))
    amounts = tuple((draw(st.integers(0, 4)), draw(st.integers(0, 4))) for _ in range(2))
    hw = tuple(draw(st.integers(least_size(mode, a, b), least_size(mode, a, b) + 3)) for a, b in amounts)
    return mode, amounts, (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *hw)


def torch_pad_args(amounts):
    (top, bottom), (left, right) = amounts
    return (left, right, top, bottom)                 # F.pad: last axis first


@given(case=pad_cases(), seed=SEEDS)
def test_pad_and_its_fold_against_torch_and_the_adjoint_identity(case, seed, torch):
    mode, amounts, shape = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.pad(xt, torch_pad_args(amounts), mode=mode)
    p = pad(x, amounts, mode)
    np.testing.assert_array_equal(p, yt.detach().numpy())           # copies only: bit for bit
    g = rng.standard_normal(p.shape)
    yt.backward(torch.tensor(g))
    dx = pad_backward(g, amounts, mode)
    (top, bottom), (left, right) = amounts
    n = (1 + top + bottom) * (1 + left + right)                      # the most copies of one pixel
    assert_close_reduction(dx, xt.grad.numpy(), n, F64, pad_backward(np.abs(g), amounts, mode), name="fold")
    lhs, rhs = float(np.sum(p * g)), float(np.sum(x * dx))
    assert abs(lhs - rhs) <= reduction_atol(g.size, F64, float(np.sum(np.abs(p * g))))


def test_the_pad_strategy_reaches_the_limits():
    """Pads as large as torch allows: reflect by size - 1, circular by the whole size."""
    assert find(pad_cases(), lambda c: c[0] == "reflect" and c[1][1][0] == c[2][3] - 1 > 0)
    assert find(pad_cases(), lambda c: c[0] == "circular" and c[1][0][1] == c[2][2] > 0)


@pytest.mark.parametrize("mode, padded, grad", [
    # x = [1, 2, 3] padded by 2 before and 1 after; grad of the padded row = [10, 20, 30, 40, 50, 60]
    ("reflect", [3, 2, 1, 2, 3, 2], [30, 20 + 40 + 60, 10 + 50]),
    ("replicate", [1, 1, 1, 2, 3, 3], [10 + 20 + 30, 40, 50 + 60]),
    ("circular", [2, 3, 1, 2, 3, 1], [30 + 60, 10 + 40, 20 + 50]),
])
def test_padding_a_row_by_hand(mode, padded, grad):
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    amounts = ((0, 0), (2, 1))
    np.testing.assert_array_equal(pad(x, amounts, mode).ravel(), padded)
    g = np.array([10.0, 20, 30, 40, 50, 60]).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(pad_backward(g, amounts, mode).ravel(), grad)


def test_a_reflect_padded_1x1_conv_is_the_padded_image():
    """Weight 1, bias 0, 1x1 kernel: the output is the padded input (by hand, on a 2x3 image)."""
    layer = tc.Conv2D(1, 1, 1, padding=1, padding_mode="reflect", bias=False, dtype=F64)
    layer.weight.data[...] = 1
    x = np.array([[1.0, 2, 3], [4, 5, 6]]).reshape(1, 1, 2, 3)
    want = [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5], [2, 1, 2, 3, 2]]
    np.testing.assert_array_equal(layer(x)[0, 0], want)


# ----------------------------------------------------------------------------------------------
# The layer against torch, finite differences and the adjoint test
# ----------------------------------------------------------------------------------------------

@st.composite
def conv_configs(draw):
    mode = draw(st.sampled_from(MODES))
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    stride = (1, 1) if kind == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if kind == "int":
        padding = draw(st.integers(0, 3))
        amounts = ((padding, padding), (padding, padding))
    elif kind == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        amounts = ((padding[0],) * 2, (padding[1],) * 2)
    elif kind == "same":
        padding, amounts = "same", (same_amounts(k[0], d[0]), same_amounts(k[1], d[1]))
    else:
        padding, amounts = "valid", ((0, 0), (0, 0))
    hw = []
    for kk, dd, (a, b) in zip(k, d, amounts):
        least = max(dd * (kk - 1) + 1 - a - b, least_size(mode, a, b))   # the kernel fits; torch pads it
        hw.append(draw(st.integers(least, least + 3)))
    return dict(mode=mode, in_channels=groups * cg, out_channels=groups * og, kernel_size=k, stride=stride,
                padding=padding, dilation=d, groups=groups, bias=draw(st.booleans()), n=draw(st.integers(1, 2)),
                hw=tuple(hw), unbatched=draw(st.booleans()), amounts=amounts)


def conv_layer(cfg, dtype, rng):
    return tc.Conv2D(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], stride=cfg["stride"],
                     padding=cfg["padding"], bias=cfg["bias"], dilation=cfg["dilation"], groups=cfg["groups"],
                     padding_mode=cfg["mode"], dtype=dtype, rng=rng)


def conv_input(cfg, rng):
    c = cfg["in_channels"]
    return rng.standard_normal((c, *cfg["hw"]) if cfg["unbatched"] else (cfg["n"], c, *cfg["hw"]))


def test_the_conv_strategy_reaches_the_hard_cases():
    assert find(conv_configs(), lambda c: c["mode"] == "reflect" and c["padding"] == "same"
                and any(a != b for a, b in c["amounts"]))
    assert find(conv_configs(), lambda c: c["mode"] == "reflect" and c["hw"][0] == max(c["amounts"][0]) + 1 > 1)
    assert find(conv_configs(), lambda c: c["mode"] == "circular" and c["hw"][1] == max(c["amounts"][1]) > 0)
    assert find(conv_configs(), lambda c: c["mode"] == "replicate" and c["groups"] > 1 and c["stride"][0] > 1
                and c["dilation"][0] > 1 and c["amounts"][0][0] > 0)
    assert find(conv_configs(), lambda c: c["mode"] != "zeros" and c["unbatched"])


def torch_grads(torch, cfg, x, w, b, g):
    """(y, dx, dw, db) from torch's own nn.Conv2d with the configuration's padding_mode, in float64."""
    conv = torch.nn.Conv2d(cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"], stride=cfg["stride"],
                           padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                           bias=b is not None, padding_mode=cfg["mode"]).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(w))
        if b is not None:
            conv.bias.copy_(torch.tensor(b))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = conv(xt)
    y.backward(torch.tensor(g, dtype=torch.float64))
    return (y.detach().numpy(), xt.grad.numpy(), conv.weight.grad.numpy(),
            None if b is None else conv.bias.grad.numpy())


@given(cfg=conv_configs(), seed=SEEDS)
def test_conv_with_padding_mode_matches_torch_float64_and_float32(cfg, seed, torch):
    rng = np.random.default_rng(seed)
    layer = conv_layer(cfg, F64, rng)
    x = conv_input(cfg, rng)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    b = None if layer.bias is None else layer.bias.data
    ty, tdx, tdw, tdb = torch_grads(torch, cfg, x, layer.weight.data, b, g)
    assert y.shape == ty.shape and dx.shape == x.shape
    assert_rel_close(y, ty, TORCH_F64_REL_TOL, "forward")
    assert_rel_close(dx, tdx, TORCH_F64_REL_TOL, "grad x")
    assert_rel_close(layer.weight.grad, tdw, TORCH_F64_REL_TOL, "grad weight")
    if b is not None:
        assert_rel_close(layer.bias.grad, tdb, TORCH_F64_REL_TOL, "grad bias")

    # float32: the float32 layer against torch in float64 on the same float32 values, within 2 gamma_n S,
    # S the same computation on |operands|
    l32 = conv_layer(cfg, F32, rng)
    x32, g32 = x.astype(F32), g.astype(F32)
    y32 = l32(x32)
    dx32 = l32.backward(g32)
    w, b = l32.weight.data.astype(F64), None if l32.bias is None else l32.bias.data.astype(F64)
    ey, edx, edw, edb = torch_grads(torch, cfg, x32.astype(F64), w, b, g32.astype(F64))
    sy, _, sdw, _ = torch_grads(torch, cfg, np.abs(x32).astype(F64), np.abs(w), None if b is None else np.abs(b),
                                np.abs(g32).astype(F64))
    _, sdx, _, _ = torch_grads(torch, cfg, x32.astype(F64), np.abs(w), None, np.abs(g32).astype(F64))
    (kh, kw), ((pt, pb), (pl, pr)) = cfg["kernel_size"], cfg["amounts"]
    cg, og = cfg["in_channels"] // cfg["groups"], cfg["out_channels"] // cfg["groups"]
    copies = (1 + pt + pb) * (1 + pl + pr)                # a pixel's copies in the padded input, at most
    m = int(np.prod(y32.shape)) // cfg["out_channels"]    # N*OH*OW
    assert_close_reduction(y32, ey, cg * kh * kw + 1, F32, sy, name="float32 forward")
    assert_close_reduction(dx32, edx, og * kh * kw * copies, F32, sdx, name="float32 grad x")
    assert_close_reduction(l32.weight.grad, edw, m, F32, sdw, name="float32 grad weight")
    if b is not None:
        axes = (0, 2, 3) if g32.ndim == 4 else (1, 2)
        assert_close_reduction(l32.bias.grad, edb, m, F32, np.abs(g32).astype(F64).sum(axis=axes),
                               name="float32 grad bias")


@given(cfg=conv_configs(), seed=SEEDS)
def test_conv_with_padding_mode_finite_differences_and_adjoint(cfg, seed):
    rng = np.random.default_rng(seed)
    layer, x = conv_layer(cfg, F64, rng), conv_input(cfg, rng)
    report = check_layer(layer, x, rng=rng, tol=FD_REL_TOL)
    assert report.ok, report.table()
    for wrt in ["x", *dict(layer.named_parameters())]:
        lhs, rhs, rel = adjoint_check(layer, x, rng=rng, wrt=wrt)
        assert rel < ADJOINT_REL_TOL, (wrt, lhs, rhs, rel)


# ----------------------------------------------------------------------------------------------
# Limits and bad arguments
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", COPYING)
def test_the_size_limits_are_torchs(mode, torch):
    """For every padding 0..4 on inputs 1..4 wide: tinycnn refuses exactly where torch refuses."""
    for size in range(1, 5):
        for p in range(0, 5):
            x = np.zeros((1, 1, 3, size))
            theirs = torch.nn.Conv2d(1, 1, (1, 1), padding=(0, p), padding_mode=mode).double()
            try:
                theirs(torch.from_numpy(x))
                torch_ok = True
            except RuntimeError:
                torch_ok = False
            ours = tc.Conv2D(1, 1, 1, padding=(0, p), padding_mode=mode, dtype=F64)
            if torch_ok:
                assert ours(x).shape == (1, 1, 3, size + 2 * p)
            else:
                with pytest.raises(ValueError, match=rf"padding_mode='{mode}' needs .* got padding \({p}, {p}\) "
                                                     rf"for input width {size}"):
                    ours(x)
                with pytest.raises(ValueError, match=f"padding_mode='{mode}'"):
                    ours.output_shape((1, 3, size))        # shape inference refuses it as well


def test_a_reflect_padding_too_large_is_refused_naming_the_layer():
    layer = tc.Conv2D(1, 2, 3, padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"Conv2D\(1, 2, .*padding_mode='reflect'\): padding_mode='reflect' needs "
                                         r"each padding of the input height to be less than that size \(as in "
                                         r"torch\), got padding \(3, 3\) for input height 3"):
        layer(np.zeros((1, 1, 3, 5), F32))
    with pytest.raises(ValueError, match="input height 3"):
        tc.Sequential(layer, input_shape=(1, 3, 5))


@pytest.mark.parametrize("bad", ["zero", "Reflect", "constant", None, 0])
def test_an_unknown_padding_mode_is_refused_with_the_four_names(bad):
    with pytest.raises(ValueError, match=r"Conv2D: padding_mode must be one of 'zeros', 'reflect', 'replicate', "
                                         r"'circular', got padding_mode="):
        tc.Conv2D(1, 1, 3, padding_mode=bad)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("groups", [1, 2])
def test_an_empty_batch_gives_torchs_shapes(mode, groups, torch):
    """The layer itself (not only the executor) on N = 0, grouped or not."""
    layer = tc.Conv2D(2, 4, 3, stride=2, padding=1, padding_mode=mode, groups=groups, dtype=F64)
    theirs = torch.nn.Conv2d(2, 4, 3, stride=2, padding=1, padding_mode=mode, groups=groups).double()
    x = np.zeros((0, 2, 5, 4))
    y = layer(x)
    assert y.shape == tuple(theirs(torch.from_numpy(x)).shape) == (0, 4, 3, 2)
    assert layer.backward(np.zeros(y.shape)).shape == x.shape
    assert not layer.weight.grad.any()


def test_repr_shows_a_padding_mode_other_than_zeros():
    assert "padding_mode" not in repr(tc.Conv2D(1, 1, 3, padding=1))
    assert repr(tc.Conv2D(1, 1, 3, padding=1, padding_mode="circular")).endswith(", padding_mode='circular')")


# ----------------------------------------------------------------------------------------------
# The executor, saving, export and interop
# ----------------------------------------------------------------------------------------------

class _Node:
    kind = "layer"

    def __init__(self, layer):
        self.layer = layer


@pytest.mark.parametrize("mode", MODES)
def test_the_executor_uses_the_fast_op_only_for_zero_padding(mode):
    op = make_op(_Node(tc.Conv2D(2, 2, 3, padding=1, padding_mode=mode)))
    assert type(op) is (ConvOp if mode == "zeros" else PlainOp)


def test_a_network_with_every_padding_mode_matches_torch_through_the_executor(torch):
    """Forward, input gradient and every weight gradient (float64), the executor with all its passes and
    the plain plan, against the same torch network."""
    nn = torch.nn
    rng = np.random.default_rng(5)
    layers = [tc.Conv2D(2, 4, 3, padding=1, padding_mode="reflect", dtype=F64, rng=rng), tc.ReLU(),
              tc.Conv2D(4, 4, (2, 3), padding="same", padding_mode="circular", groups=2, dtype=F64, rng=rng),
              tc.Conv2D(4, 3, 3, stride=2, padding=2, padding_mode="replicate", dilation=2, dtype=F64, rng=rng),
              tc.ReLU(), tc.Conv2D(3, 3, 3, padding=1, dtype=F64, rng=rng), tc.Flatten(),
              tc.Dense(3 * 5 * 4, 2, dtype=F64, rng=rng)]
    theirs = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                           nn.Conv2d(4, 4, (2, 3), padding="same", padding_mode="circular", groups=2),
                           nn.Conv2d(4, 3, 3, stride=2, padding=2, padding_mode="replicate", dilation=2),
                           nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.Flatten(), nn.Linear(60, 2)).double()
    model = tc.Sequential(*layers)
    with torch.no_grad():
        for k, v in theirs.state_dict().items():
            v.copy_(torch.from_numpy(model.state_dict()[k]))
    x = rng.standard_normal((2, 2, 10, 8))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g))
    for plain in (True, False):
        plan = fast.compile(layers, plain=plain)
        assert_rel_close(np.array(plan.forward(x)), yt.detach().numpy(), TORCH_F64_REL_TOL, f"forward ({plain})")
        assert_rel_close(np.array(plan.backward(g)), xt.grad.numpy(), TORCH_F64_REL_TOL, f"grad x ({plain})")
        grads = {k: p.grad for k, p in model.named_parameters()}
        for k, p in theirs.named_parameters():
            assert_rel_close(grads[k], p.grad.numpy(), TORCH_F64_REL_TOL, f"grad {k} ({plain})")


def test_save_and_load_keep_the_padding_mode(tmp_path):
    rng = np.random.default_rng(3)
    model = tc.Sequential(tc.Conv2D(2, 3, 3, padding=1, padding_mode="reflect", rng=rng),
                          tc.Conv2D(3, 2, 2, padding="same", padding_mode="circular", rng=rng), input_shape=(2, 5, 6))
    tc.save_model(model, tmp_path / "m.tinycnn")
    back = tc.load_model(tmp_path / "m.tinycnn")
    assert [b.padding_mode for b in back.layers] == ["reflect", "circular"]
    x = rng.standard_normal((2, 2, 5, 6)).astype(F32)
    np.testing.assert_array_equal(back(x), model(x))


def test_the_onnx_exporter_refuses_a_copying_padding_mode_by_name():
    from tinycnn import export
    from tinycnn.export import ExportError
    model = tc.Sequential(tc.Conv2D(1, 1, 3, padding=1, padding_mode="replicate"), input_shape=(1, 4, 4))
    with pytest.raises(ExportError, match=r"layer 0 \(Conv2D\(.*\)\) cannot be exported: padding_mode 'replicate'"):
        export.build_onnx(model)


def test_to_torch_module_carries_the_padding_mode(torch):
    from tinycnn.interop import to_torch_module
    rng = np.random.default_rng(6)
    model = tc.Sequential(tc.Conv2D(1, 2, 3, padding=1, padding_mode="circular", dtype=F64, rng=rng),
                          tc.Conv2D(2, 2, 3, padding=2, padding_mode="reflect", dtype=F64, rng=rng))
    theirs = to_torch_module(model)
    assert [m.padding_mode for m in theirs] == ["circular", "reflect"]
    x = rng.standard_normal((1, 1, 5, 5))
    with torch.no_grad():
        assert_rel_close(model(x), theirs(torch.from_numpy(x)).numpy(), TORCH_F64_REL_TOL, "to_torch forward")
