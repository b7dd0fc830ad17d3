"""The speedrun recipe (tinycnn.speedrun): what it sets up, and that each claim in its docstring holds.

- the parameter groups: batch-norm shifts at 64x the rate and 1/64 the weight decay, the classifier
  with the head scale folded in, every parameter in exactly one group;
- folding the head scale s into the classifier's weights (lr s^2, weight decay / s^2) takes the
  same SGD steps as the scaled layer (checked against a direct simulation of both in float64);
- prepare: whitening from the data (frozen, deterministic for a seed), identity filters, frozen
  batch-norm scales, and --without undoing each;
- the Lookahead schedule's alpha and the final slow weights; the whitening bias frozen after N epochs;
- `tinycnn train --recipe speedrun` end to end on the embedded data (seconds), and its refusals.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import speedrun, zoo
from tinycnn.layers import BatchNorm2D, Conv2D, Dense


def _net(seed=0, widths=(8, 16, 16)):
    return zoo.build("airbench", (3, 32, 32), 10, np.random.default_rng(seed), widths=widths)


def _images(n=64, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def test_param_groups_rates_and_membership():
    model = _net()
    recipe = speedrun.Speedrun()
    groups = speedrun.param_groups(model, lr=0.5, weight_decay=1e-3, recipe=recipe)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())          # each exactly once
    norms = [x for x in model.layers if isinstance(x, BatchNorm2D)]
    assert {id(bn.bias) for bn in norms} == {id(p) for p in groups[0]["params"]}
    assert groups[0]["lr"] == pytest.approx(0.5 * 64) and groups[0]["weight_decay"] == pytest.approx(1e-3 / 64)
    assert groups[1]["params"] == [model.layers[-1].weight]
    assert groups[1]["lr"] == pytest.approx(0.5 / 81) and groups[1]["weight_decay"] == pytest.approx(1e-3 * 81)
    plain = speedrun.param_groups(model, 0.5, 1e-3, speedrun.Speedrun(without=frozenset({"bias-lr"})))
    assert plain[0]["lr"] == pytest.approx(0.5) and plain[0]["weight_decay"] == pytest.approx(1e-3)


def test_folded_head_scale_takes_the_same_sgd_steps():
    """y = s W h trained with (lr, wd) against y = W' h, W' = s W, trained with (lr s^2, wd / s^2):
    after every step W' = s W (float64; Nesterov momentum, coupled weight decay)."""
    rng = np.random.default_rng(3)
    s, lr, wd, steps = 1 / 9, 0.3, 5e-3, 6
    w0 = rng.standard_normal((4, 5))
    a = Dense(5, 4, bias=False, dtype=np.float64, rng=rng)
    b = Dense(5, 4, bias=False, dtype=np.float64, rng=rng)
    a.weight.data[...] = w0
    b.weight.data[...] = s * w0
    opt_a = tc.SGD([a.weight], lr=lr, momentum=0.85, nesterov=True, weight_decay=wd)
    opt_b = tc.SGD([b.weight], lr=lr * s * s, momentum=0.85, nesterov=True, weight_decay=wd / (s * s))
    loss_a, loss_b = tc.SoftmaxCrossEntropy(label_smoothing=0.2), tc.SoftmaxCrossEntropy(label_smoothing=0.2)
    for _ in range(steps):
        h = rng.standard_normal((7, 5))
        y = rng.integers(0, 4, 7)
        loss_a(s * a.forward(h), y)
        a.backward(s * loss_a.backward())                  # d/dW of the loss of s * W h
        loss_b(b.forward(h), y)
        b.backward(loss_b.backward())
        opt_a.step()
        opt_b.step()
        np.testing.assert_allclose(b.weight.data, s * a.weight.data, rtol=1e-12, atol=1e-14)


def test_prepare_sets_whitening_identity_and_frozen_scales():
    model = _net()
    x = _images()
    speedrun.prepare(model, x, np.random.default_rng(5), speedrun.Speedrun(whiten_images=32))
    whiten = model.layers[0]
    assert not whiten.weight.requires_grad and whiten.bias.requires_grad
    again = _net()
    speedrun.prepare(again, x, np.random.default_rng(5), speedrun.Speedrun(whiten_images=32))
    np.testing.assert_array_equal(again.layers[0].weight.data, whiten.weight.data)   # deterministic for a seed
    # the filters come in pairs v, -v (airbench's 2 * C * 2 * 2 = 24 filters)
    np.testing.assert_array_equal(whiten.weight.data[12:], -whiten.weight.data[:12])
    for conv in [x for x in model.layers[1:] if isinstance(x, Conv2D)]:
        w = conv.weight.data
        m = min(w.shape[0], w.shape[1])
        eye = np.zeros_like(w[:m])
        eye[np.arange(m), np.arange(m), 1, 1] = 1
        np.testing.assert_array_equal(w[:m], eye)
    assert all(not bn.weight.requires_grad and bn.bias.requires_grad
               for bn in model.layers if isinstance(bn, BatchNorm2D))


def test_prepare_without_each_technique():
    x = _images()
    reference = _net()
    model = _net()
    speedrun.prepare(model, x, np.random.default_rng(5),
                     speedrun.Speedrun(without=frozenset({"whitening", "identity-init", "frozen-bn-scale"})))
    np.testing.assert_array_equal(model.layers[0].weight.data, reference.layers[0].weight.data)
    assert model.layers[0].weight.requires_grad
    np.testing.assert_array_equal(model.layers[2].weight.data, reference.layers[2].weight.data)
    assert all(bn.weight.requires_grad for bn in model.layers if isinstance(bn, BatchNorm2D))
    with pytest.raises(ValueError, match="unknown technique"):
        speedrun.Speedrun(without=frozenset({"whitenning"}))


def test_lookahead_schedule_alpha_and_final_slow_weights():
    p = tc.Parameter(np.zeros(3))
    la = tc.Lookahead(tc.SGD([p], lr=1.0), k=5, alpha=1.0)
    cb = speedrun.LookaheadSchedule(la, total_steps=20)
    for t in range(1, 21):
        cb.on_train_batch_begin(t - 1)
        assert la.alpha == pytest.approx(1 - 0.95 ** 5 * (t / 20) ** 3)
        p.grad = -np.ones(3)                                 # every step moves the weights by +1
        la.step()
    p.data += 0.5                                            # fast weights drift away from the slow ones
    cb.on_train_end()
    np.testing.assert_array_equal(p.data, la.slow_weights[0])


def test_freeze_after_epochs():
    p = tc.Parameter(np.zeros(2))
    cb = speedrun.FreezeAfter([p], epochs=3)
    cb.set_params({"epochs": 5, "steps": 10})               # as fit does, before the first epoch
    for epoch in range(3):
        cb.on_epoch_begin(epoch)
        assert p.requires_grad
    cb.on_epoch_begin(3)
    assert not p.requires_grad


def _train(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "tinycnn", "train", "--dataset", "embedded", "--model", "airbench",
                           "--widths", "8,16,16", "--subset", "300", "--epochs", "2", "--batch-size", "64",
                           "--out", str(tmp_path / "run"), "--quiet", *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_speedrun_smoke(tmp_path):
    """The recipe end to end in seconds (embedded digits, tiny widths): it trains, tests with TTA and records it."""
    r = _train(tmp_path)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert '"recipe": "speedrun"' in text and '"tta": "flip-translate"' in text and '"flip": "alternate"' in text
    model, _ = zoo.load_model(tmp_path / "run" / "checkpoint.npz")
    assert model.layers[2].out_channels == 8


@pytest.mark.parametrize("args, message", [
    (("--model", "lenet"), "--recipe speedrun trains --model airbench"),
    (("--without", "lookahed"), "unknown technique"),
    (("--optimizer", "adam"), "uses SGD"),
    (("--widths", "8,16"), "three positive integers"),
])
def test_cli_speedrun_refusals(tmp_path, args, message):
    r = _train(tmp_path, "--recipe", "speedrun", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
