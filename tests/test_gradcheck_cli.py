"""The gradient checker a learner uses: ``tinycnn gradcheck`` and ``tinycnn.gradcheck``.

The command must pass on the real layers, print a table a learner can read, honour ``--seed`` and
``--only``, and exit non-zero when something is wrong. The checker must be able to fail: layers with
a deliberately broken backward (a transposed weight gradient, a flipped kernel, a dropped term, the
wrong max-pool winner, a forgotten bias gradient) are reported NOT OK on the right tensor.
"""
import re

import numba
import numpy as np
import pytest

import tinycnn as tc
from tinycnn import cli, kernels
from tinycnn.commands import gradcheck as command
from tinycnn.gradcheck import (adjoint_check, check_layer, check_loss, compare, distinct_values,
                               numerical_gradient)

CORE_LAYERS = ["Conv2D", "Conv2D(bias=False)", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten",
               "Dense", "Dense(bias=False)", "SoftmaxCrossEntropy(labels)", "SoftmaxCrossEntropy(probabilities)"]
ROW = re.compile(r"^  (grad [\w.]+|adjoint [\w.]+)\s+(\(.*?\))\s+(\S+)\s+(\S+)\s+(\(.*?\))\s+(OK|NOT OK)$")


@pytest.fixture(autouse=True)
def one_numba_thread():
    """Tiny arrays, thousands of forward calls: one thread avoids the parallel start-up cost."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def run_command(capsys, *args):
    code = cli.main(["gradcheck", *args])
    return code, capsys.readouterr().out


def table_rows(out):
    return [m.groups() for line in out.splitlines() if (m := ROW.match(line))]


# --------------------------------------------------------------------------------------------
# The command on the real layers
# --------------------------------------------------------------------------------------------

def test_command_checks_every_layer_and_passes(capsys):
    code, out = run_command(capsys, "--seed", "0")
    assert code == 0, out
    for name in CORE_LAYERS:
        assert re.search(rf"^\[\d+/\d+\] {re.escape(name)}  \(", out, re.M), f"{name} missing:\n{out}"
    assert "NOT OK" not in out
    header = r"^  tensor +shape +max\|diff\|  rel\. error  worst at          status$"   # wider for long names
    assert len(re.findall(header, out, re.M)) == len(command.CASES)
    rows = table_rows(out)
    tensors = {r[0] for r in rows}
    assert {"grad x", "grad weight", "grad bias", "grad logits", "adjoint x", "adjoint weight",
            "adjoint bias"} <= tensors
    for tensor, _, max_diff, rel, _, status in rows:
        assert status == "OK" and float(rel) < 1e-7 and float(max_diff) >= 0, (tensor, rel)
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"gradcheck summary: OK: all {len(rows)} checks in {len(command.CASES)} layers pass")


def strip_timings(out):
    return re.sub(r"\(\d+\.\d+ s\)", "", out)


def test_command_is_reproducible_and_honours_the_seed(capsys):
    _, first = run_command(capsys, "--seed", "5", "--only", "Conv2D", "--only", "MaxPool2D")
    _, again = run_command(capsys, "--seed", "5", "--only", "Conv2D", "--only", "MaxPool2D")
    _, other = run_command(capsys, "--seed", "6", "--only", "Conv2D", "--only", "MaxPool2D")
    assert strip_timings(first) == strip_timings(again)
    assert strip_timings(first) != strip_timings(other)


def test_command_only_runs_the_named_layers(capsys):
    code, out = run_command(capsys, "--only", "ReLU", "--only", "Dense(bias=False)")
    assert code == 0
    assert re.findall(r"^\[\d/2\] (.*?)  \(", out, re.M) == ["ReLU", "Dense(bias=False)"]
    assert "checks in 2 layers pass" in out


def test_command_rejects_an_unknown_layer(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gradcheck", "--only", "Conv3D"])
    assert "invalid choice: 'Conv3D'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Broken layers: the checker must say NOT OK, on the right tensor
# --------------------------------------------------------------------------------------------

class TransposedWeightGradDense(tc.Dense):
    """dW = x^T g instead of g^T x: the right shape only when in == out, which is what hides it."""

    def backward(self, grad_y):
        grad_x = super().backward(grad_y)
        self.weight.grad = self.weight.grad.T.copy()
        return grad_x


class ForgetsBiasDense(tc.Dense):
    def backward(self, grad_y):
        grad_x = super().backward(grad_y)
        self.bias.grad = np.zeros_like(self.bias.data)
        return grad_x


class FlippedKernelConv2D(tc.Conv2D):
    """grad x through the flipped kernel (convolution instead of cross-correlation)."""

    def backward(self, grad_y):
        super().backward(grad_y)                      # weight and bias gradients stay right
        n, c, h, w = self._cache.x_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        g2d = np.asarray(grad_y).transpose(1, 0, 2, 3).reshape(self.out_channels, -1)
        w2d = self.weight.data[:, :, ::-1, ::-1].reshape(self.out_channels, -1)
        return kernels.col2im(np.ascontiguousarray(w2d.T @ g2d), n, c, h, w, kh, kw, sh, sw, ph, pw)


class DropsTermSigmoid(tc.Sigmoid):
    """dy/dx = y instead of y * (1 - y)."""

    def backward(self, grad_y):
        return np.asarray(grad_y) * self._cache.y


class TopLeftMaxPool2D(tc.MaxPool2D):
    """Routes every window's gradient to the window's first real pixel, not to its maximum."""

    def backward(self, grad_y):
        n, c, h, w = self._cache.x_shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        oh, ow = self._cache.argmax.shape[2:]
        rows = np.maximum(np.arange(oh) * sh - ph, 0)[:, None]
        cols = np.maximum(np.arange(ow) * sw - pw, 0)[None, :]
        wrong = np.broadcast_to(rows * w + cols, self._cache.argmax.shape).astype(np.int64)
        return kernels.maxpool2d_backward(np.ascontiguousarray(grad_y), np.ascontiguousarray(wrong), h, w)


class ForgetsTargetSumLoss(tc.SoftmaxCrossEntropy):
    """(p - t) / N: right only when every row of t sums to 1."""

    def backward(self, grad=1.0):
        p, t = self._cache.probs, self._cache.targets
        return (p - t) * (grad / p.shape[0])


def statuses(report):
    return {r.tensor: r.ok for r in report.rows}


@pytest.mark.parametrize("make, x_shape, broken", [
    (lambda rng: TransposedWeightGradDense(4, 4, dtype=np.float64, rng=rng), (3, 4), "grad weight"),
    (lambda rng: ForgetsBiasDense(3, 5, dtype=np.float64, rng=rng), (2, 3), "grad bias"),
    (lambda rng: FlippedKernelConv2D(2, 3, (2, 3), stride=(2, 1), padding=1, dtype=np.float64, rng=rng),
     (2, 2, 5, 4), "grad x"),
    (lambda rng: DropsTermSigmoid(), (3, 4), "grad x"),
])
def test_check_layer_reports_a_broken_backward(make, x_shape, broken):
    rng = np.random.default_rng(11)
    layer = make(rng)
    report = check_layer(layer, rng.standard_normal(x_shape), rng=rng, adjoint=True)
    assert not report.ok
    status = statuses(report)
    assert status[broken] is False and status[broken.replace("grad", "adjoint")] is False
    assert all(ok for tensor, ok in status.items() if tensor.split()[1] != broken.split()[1]), status
    row = next(line for line in report.table().splitlines() if line.startswith(f"  {broken} "))
    assert row.endswith("NOT OK")


def test_check_layer_reports_the_wrong_max_pool_winner():
    rng = np.random.default_rng(12)
    layer = TopLeftMaxPool2D(3, stride=2, padding=1)
    report = check_layer(layer, distinct_values((2, 2, 5, 6), rng), rng=rng)
    assert statuses(report) == {"grad x": False}
    assert report.rows[0].rel_error > 0.1                 # not a rounding matter: order 1


def test_check_loss_reports_a_dropped_term_for_unnormalised_targets():
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((3, 4))
    targets = rng.uniform(0, 2, size=(3, 4))              # rows do not sum to 1
    assert check_loss(tc.SoftmaxCrossEntropy(), logits, targets).ok
    assert not check_loss(ForgetsTargetSumLoss(), logits, targets).ok


def test_adjoint_check_separates_right_from_wrong():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((5, 4))
    right = tc.Dense(4, 4, dtype=np.float64, rng=np.random.default_rng(1))
    wrong = TransposedWeightGradDense(4, 4, dtype=np.float64, rng=np.random.default_rng(1))
    assert adjoint_check(right, x, rng=rng, wrt="weight")[2] < 1e-9
    assert adjoint_check(wrong, x, rng=rng, wrt="weight")[2] > 1e-3
    with pytest.raises(ValueError, match=r"wrt='gamma' is neither 'x' nor one of its parameters \['weight', 'bias'\]"):
        adjoint_check(right, x, rng=rng, wrt="gamma")


def test_command_exits_non_zero_when_a_layer_is_broken(capsys, monkeypatch):
    monkeypatch.setitem(command.CASES, "DropsTermSigmoid",
                        lambda rng: command.LayerCase(DropsTermSigmoid(), rng.standard_normal((2, 3))))
    code, out = run_command(capsys, "--only", "ReLU", "--only", "DropsTermSigmoid")
    assert code == 1
    rows = table_rows(out)
    assert [r[5] for r in rows] == ["OK", "OK", "NOT OK", "NOT OK"]        # ReLU's two rows, then these
    assert out.strip().splitlines()[-1] == ("gradcheck summary: NOT OK: 2 of 4 checks in 2 layers failed: "
                                            "DropsTermSigmoid grad x, DropsTermSigmoid adjoint x")


# --------------------------------------------------------------------------------------------
# The checker's own pieces
# --------------------------------------------------------------------------------------------

def test_numerical_gradient_works_on_a_strided_view_and_restores_it():
    rng = np.random.default_rng(15)
    base = rng.standard_normal((4, 6))
    view = base[:, ::2]                                   # not contiguous: reshape(-1) would copy
    before = base.copy()
    grad = numerical_gradient(lambda: float(np.sum(view ** 3)), view)
    np.testing.assert_allclose(grad, 3 * view ** 2, rtol=1e-8)   # central differences: O(h^2) = 1e-12
    np.testing.assert_array_equal(base, before)


def test_compare_marks_shape_mismatch_and_nan_as_not_ok():
    assert not compare("grad x", np.zeros((2, 3)), np.zeros((3, 2)), 1e-7).ok
    assert not compare("grad x", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), 1e-7).ok
    row = compare("grad x", np.array([1.0, 2.0]), np.array([1.0, 2.5]), 1e-7)
    assert not row.ok and row.worst_index == (1,) and row.max_abs_diff == 0.5


def test_check_layer_refuses_float32_parameters():
    layer = tc.Dense(3, 2, rng=np.random.default_rng(0))          # float32 by default
    with pytest.raises(TypeError, match=r"gradcheck Dense\(3, 2\): finite differences need float64"):
        check_layer(layer, np.zeros((1, 3)), rng=np.random.default_rng(0))


def test_check_layer_refuses_a_float32_input_even_for_a_float64_layer():
    import numpy as np
    import pytest

    import tinycnn as tc
    from tinycnn.gradcheck import adjoint_check, check_layer

    rng = np.random.default_rng(0)
    layer = tc.Dense(3, 2, dtype=np.float64, rng=rng)
    x32 = rng.standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(TypeError, match="input dtype float32"):
        check_layer(layer, x32, rng=rng)
    with pytest.raises(TypeError, match="input dtype float32"):
        adjoint_check(layer, x32, rng=rng)
