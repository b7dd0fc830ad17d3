"""Learning-rate range test on small synthetic problems: restores the model, stops on divergence,
and suggests a rate that actually trains."""
import functools
import sys

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.lr_finder import lr_range_test

F64 = np.float64


def blobs(seed=0, n=512, d=10, k=3):
    """k Gaussian blobs in d dimensions: x (n, d), y (n,)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 1.5
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(size=(n, d)), y


def mlp(seed):
    rng = np.random.default_rng(seed)
    return tc.Sequential(tc.Dense(10, 32, dtype=F64, rng=rng), tc.ReLU(), tc.Dense(32, 3, dtype=F64, rng=rng))


def full_loss(model, x, y):
    return tc.SoftmaxCrossEntropy()(model(x), y)


def sgd_train(model, x, y, lr, steps, seed):
    opt, loss_fn, rng = tc.SGD(model.parameters(), lr=lr), tc.SoftmaxCrossEntropy(), np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(x), 64, replace=False)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx])
        model.backward(loss_fn.backward())
        opt.step()


@pytest.mark.parametrize("seed", range(5))
def test_suggestion_trains_well_and_sits_below_divergence(seed):
    x, y = blobs(seed)
    res = lr_range_test(mlp(seed), tc.SoftmaxCrossEntropy(), x, y, optimizer_factory=tc.SGD,
                        rng=np.random.default_rng(seed), end_lr=100.0)
    # this network diverges with plain SGD well before lr = 100 (measured on seeds 0-9: at 4 to 26)
    assert res.stopped_early and res.stop_reason == "diverged", res.stop_reason
    diverged_at = res.lrs[-1]
    assert 1e-7 < res.suggestion < diverged_at / 3, (res.suggestion, diverged_at)
    # "sane" = it works: 100 SGD steps at the suggested rate more than halve the loss, and do far
    # better than a rate 1000 times smaller
    start = full_loss(mlp(seed), x, y)
    good, slow = mlp(seed), mlp(seed)
    sgd_train(good, x, y, res.suggestion, 100, seed)
    sgd_train(slow, x, y, res.suggestion / 1000, 100, seed)
    assert full_loss(good, x, y) < 0.5 * start
    assert full_loss(good, x, y) < 0.5 * full_loss(slow, x, y)


def test_stops_at_the_first_divergent_point():
    x, y = blobs(0)
    res = lr_range_test(mlp(0), tc.SoftmaxCrossEntropy(), x, y, optimizer_factory=tc.SGD,
                        rng=np.random.default_rng(0), end_lr=100.0, diverge_factor=4.0)
    n = len(res.lrs)
    assert res.stop_reason == "diverged" and n < 200 and len(res.losses) == len(res.raw_losses) == n
    running_min = np.minimum.accumulate(res.losses)
    assert res.losses[-1] > 4.0 * running_min[-1]                  # the stopping point diverged ...
    assert np.all(res.losses[:-1] <= 4.0 * running_min[:-1])       # ... and none before it did
    # the rates tried are the start of the exponential sweep 1e-7 -> 100 over 200 steps
    np.testing.assert_allclose(res.lrs, 1e-7 * (1e9) ** (np.arange(n) / 199), rtol=1e-12)


def test_sweep_without_divergence_completes():
    # a linear softmax model on these blobs does not blow up by lr = 10 (its loss stays bounded)
    x, y = blobs(0)
    model = tc.Sequential(tc.Dense(10, 3, dtype=F64, rng=np.random.default_rng(0)))
    res = lr_range_test(model, tc.SoftmaxCrossEntropy(), x, y, optimizer_factory=tc.SGD,
                        rng=np.random.default_rng(0), num_steps=120)
    assert not res.stopped_early and res.stop_reason == "completed" and len(res.lrs) == 120
    assert res.lrs[-1] == pytest.approx(10.0, rel=1e-12)


class NaNAfter:
    """A loss that turns NaN on its k-th call (0-based), to exercise the non-finite stop."""

    def __init__(self, k):
        self.k, self.calls, self.inner = k, 0, tc.SoftmaxCrossEntropy()

    def __call__(self, logits, labels):
        self.calls += 1
        value = self.inner(logits, labels)
        return float("nan") if self.calls > self.k else value

    def backward(self):
        return self.inner.backward()


def test_stops_on_a_non_finite_loss():
    x, y = blobs(0)
    res = lr_range_test(mlp(0), NaNAfter(25), x, y, optimizer_factory=tc.SGD, rng=np.random.default_rng(0))
    assert res.stop_reason == "non-finite loss" and len(res.lrs) == 26
    assert np.isnan(res.raw_losses[-1]) and np.all(np.isfinite(res.losses[:-1]))


class RecordingSGD(tc.SGD):
    """SGD that keeps a copy of its first parameter after each step (to see the weights did move)."""
    instances = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingSGD.instances.append(self)
        self.moved = None

    def step(self):
        super().step()
        self.moved = self.params[0].data.copy()


def bn_dropout_model(seed):
    """x: (N, 2, 3, 3) -> BatchNorm2D -> Flatten 18 -> Dropout -> Dense 3 (no Numba kernels: quick)."""
    rng = np.random.default_rng(seed)
    return tc.Sequential(tc.BatchNorm2D(2, dtype=F64), tc.Flatten(),
                         tc.Dropout(0.2, rng=np.random.default_rng(5)), tc.Dense(18, 3, dtype=F64, rng=rng))


def test_restores_weights_buffers_mode_and_dropout_generator():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2, 3, 3))
    y = rng.integers(0, 3, 256)
    model = bn_dropout_model(0).eval()
    before = model.state_dict()
    dropout_state = model[2].rng.bit_generator.state
    RecordingSGD.instances.clear()
    res = lr_range_test(model, tc.SoftmaxCrossEntropy(), x, y,
                        optimizer_factory=functools.partial(RecordingSGD, momentum=0.9),
                        rng=np.random.default_rng(1), num_steps=40, batch_size=32)
    [opt] = RecordingSGD.instances
    assert len(res.lrs) > 5 and not np.array_equal(opt.moved, before["0.weight"])      # it did train
    after = model.state_dict()
    for k in before:
        assert np.array_equal(after[k], before[k]), k                                  # incl. running stats
    assert int(after["0.num_batches_tracked"]) == 0
    assert not model.training and not any(layer.training for layer in model)
    assert model[2].rng.bit_generator.state == dropout_state


def test_restores_the_model_when_the_loss_raises():
    x, y = blobs(0)
    model = mlp(0)
    before = model.state_dict()

    class Boom(NaNAfter):
        def __call__(self, logits, labels):
            if self.calls == 10:
                raise RuntimeError("loss exploded in user code")
            return super().__call__(logits, labels)

    with pytest.raises(RuntimeError, match="loss exploded in user code"):
        lr_range_test(model, Boom(10 ** 9), x, y, optimizer_factory=tc.SGD, rng=np.random.default_rng(0))
    for k, v in model.state_dict().items():
        assert np.array_equal(v, before[k]), k


def test_same_seeds_same_result():
    x, y = blobs(0)
    runs = [lr_range_test(mlp(0), tc.SoftmaxCrossEntropy(), x, y, optimizer_factory=tc.Adam,
                          rng=np.random.default_rng(3), num_steps=60) for _ in range(2)]
    assert np.array_equal(runs[0].raw_losses, runs[1].raw_losses) and runs[0].suggestion == runs[1].suggestion


def test_plot_writes_a_png_and_explains_a_missing_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    x, y = blobs(0)
    res = lr_range_test(mlp(0), tc.SoftmaxCrossEntropy(), x, y, optimizer_factory=tc.SGD,
                        rng=np.random.default_rng(0), num_steps=60)
    res.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        res.plot(tmp_path / "again.png")


def test_bad_arguments_are_named():
    x, y = blobs(0)
    args = (mlp(0), tc.SoftmaxCrossEntropy(), x, y)
    with pytest.raises(ValueError, match="need 0 < start_lr < end_lr < inf, got start_lr=1.0, end_lr=0.1"):
        lr_range_test(*args, optimizer_factory=tc.SGD, rng=np.random.default_rng(0), start_lr=1.0, end_lr=0.1)
    with pytest.raises(TypeError, match="rng must be a np.random.Generator"):
        lr_range_test(*args, optimizer_factory=tc.SGD, rng=0)
    with pytest.raises(ValueError, match="x holds 512 samples and y 3"):
        lr_range_test(mlp(0), tc.SoftmaxCrossEntropy(), x, y[:3], optimizer_factory=tc.SGD,
                      rng=np.random.default_rng(0))


def test_suggestion_ignores_dips_after_the_minimum():
    """A steep dip in the rising part after the minimum is noise: the suggestion must come from the
    falling part before it (here the steepest fall is at index 40 by construction)."""
    from tinycnn.lr_finder import _steepest_descent
    lrs = np.logspace(-6, 0, 100)
    s = np.full(100, 2.0)
    s[20:60] = 2.0 - np.cumsum(np.r_[np.full(20, 0.01), 0.2, np.full(19, 0.01)])   # falls, fastest near 40
    s[60:] = s[59] + np.linspace(0.1, 3.0, 40)                                      # rises ...
    s[80:83] -= 1.2                       # ... with a dip steeper than any fall, still above the minimum
    got = _steepest_descent(lrs, s)
    assert lrs[35] <= got <= lrs[45], (got, lrs[35], lrs[45])
