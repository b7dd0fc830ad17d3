"""Checks for the exercises of tutorial 3 (your first CNN)."""
from __future__ import annotations

import numpy as np

import tinycnn as tc
from tinycnn import data

from . import exercise

# The stack the exercises talk about, per sample (C, H, W) = (1, 28, 28) in.
STACK = [("conv", 8, 5, 1, 0), ("pool", 2), ("conv", 16, 3, 1, 1), ("pool", 2), ("conv", 32, 3, 2, 1)]


def build_stack(stack=STACK, in_channels=1, rng=None):
    """tc layers for a list like STACK: ("conv", out_channels, kernel, stride, padding) or ("pool", k)."""
    rng = rng or np.random.default_rng(0)
    layers, c = [], in_channels
    for spec in stack:
        if spec[0] == "conv":
            _, o, k, s, p = spec
            layers += [tc.Conv2D(c, o, k, stride=s, padding=p, rng=rng), tc.ReLU()]
            c = o
        else:
            layers.append(tc.MaxPool2D(spec[1]))
    return layers


@exercise("3.1 (predict the shapes)")
def check_shapes(predict_shapes) -> list[str]:
    """predict_shapes(stack, input_shape) -> list of (C, H, W) after each conv and each pool of ``stack``."""
    problems = []
    for stack, shape in [(STACK, (1, 28, 28)), (STACK[:3], (1, 32, 32)),
                         ([("conv", 4, 3, 2, 0), ("pool", 3), ("conv", 6, 2, 1, 1)], (1, 31, 29))]:
        x = np.zeros((1, *shape), dtype=np.float32)
        expected = []
        for layer in build_stack(stack, shape[0]):
            x = layer(x)
            if not isinstance(layer, tc.ReLU):
                expected.append(tuple(x.shape[1:]))
        got = [tuple(int(d) for d in s) for s in predict_shapes(stack, shape)]
        if got != expected:
            problems.append(f"input {shape}, stack {stack}: you say {got}, the layers give {expected}")
    return problems


@exercise("3.2 (parameters and multiply-adds of a convolution)")
def check_conv_cost(conv_cost) -> list[str]:
    """conv_cost(c_in, c_out, k, h_out, w_out) -> (parameters, multiply-adds per image), bias included in
    the parameters (not in the multiply-adds), as Sequential.summary() counts them."""
    problems = []
    for c, o, k, hw in [(1, 8, 5, 28), (32, 64, 3, 16), (3, 16, 1, 7)]:
        model = tc.Sequential(tc.Conv2D(c, o, k, padding=(k - 1) // 2, rng=np.random.default_rng(0)),
                              input_shape=(c, hw, hw))
        text = model.summary(print_fn=None)
        row = next(line for line in text.splitlines() if "Conv2D(" in line)
        numbers = [int(t.replace(",", "")) for t in row.split() if t.replace(",", "").isdigit()]
        params, macs = sum(p.data.size for p in model.parameters()), o * hw * hw * c * k * k
        if f"{params:,}" not in row or f"{macs:,}" not in row:
            problems.append(f"(the check's own counts disagree with summary(): {row}, {numbers})")
        got = tuple(int(v) for v in conv_cost(c, o, k, hw, hw))
        if got != (params, macs):
            problems.append(f"Conv2D({c}, {o}, {k}) on {hw}x{hw} out: you say {got}, summary() says "
                            f"({params}, {macs})")
    return problems


def _train_small(lr, steps=60, seed=0):
    """A tiny dense network on 512 embedded MNIST digits, `steps` SGD steps of batch 64: the losses."""
    ds = data.load("embedded")
    x = (ds.x_train[:512].reshape(512, -1).astype(np.float32) / 255.0 - 0.13) / 0.31     # (512, 784)
    y = ds.y_train[:512]
    rng = np.random.default_rng(seed)
    model = tc.Sequential(tc.Dense(784, 32, rng=rng), tc.ReLU(), tc.Dense(32, 10, rng=rng))
    opt, loss_fn, losses = tc.SGD(model.parameters(), lr=lr), tc.SoftmaxCrossEntropy(), []
    for _ in range(steps):
        batch = rng.integers(0, 512, 64)
        losses.append(float(loss_fn(model(x[batch]), y[batch])))
        if not np.isfinite(losses[-1]):
            break
        for p in model.parameters():
            p.grad[...] = 0
        model.backward(loss_fn.backward())
        opt.step()
    return losses


@exercise("3.3 (choose a learning rate)")
def check_learning_rate(choice) -> list[str]:
    """choice = (good_lr, too_small_lr, too_large_lr) for plain SGD on the small network of
    ``_train_small``: the good one must bring the mean loss of the last 10 steps below 0.8, the small one
    must leave it above 1.5, the large one (larger than the good one) must leave it above 2.0, hardly
    better than guessing (ln 10 = 2.30), or make it non-finite."""
    if choice is None or any(v is None for v in choice):
        raise NotImplementedError
    good, small, large = (float(v) for v in choice)
    problems = []
    if not small < good < large:
        problems.append(f"the rates should be ordered too small < good < too large, got {small:g}, {good:g}, {large:g}")
    for name, lr, ok, want in [
            ("good", good, lambda ls: np.mean(ls[-10:]) < 0.8, "mean loss of the last 10 steps below 0.8"),
            ("too small", small, lambda ls: np.mean(ls[-10:]) > 1.5, "mean loss of the last 10 steps above 1.5"),
            ("too large", large, lambda ls: not np.isfinite(ls[-1]) or np.mean(ls[-10:]) > 2.0,
             "mean loss of the last 10 steps above 2.0, or non-finite")]:
        losses = _train_small(lr)
        if not ok(losses):
            problems.append(f"{name} rate {lr:g}: wanted {want}; the losses went {losses[0]:.2f} -> "
                            f"{np.mean(losses[-10:]):.2f} (mean of the last 10)")
    return problems
