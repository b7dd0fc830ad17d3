"""Frozen parameters in the executor (``requires_grad`` False on a ``Parameter``).

The executor computes no gradient for a frozen parameter where that saves work (Conv2D's weight
gradient is a product of its own), writes no ``.grad`` to it, and skips a node in backward when its
parameters are all frozen and its input requires no gradient. The trainable parameters' gradients
and the input gradient are those of the plain layers (float64, relative 1e-10).
"""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from tolerances import TORCH_F64_REL_TOL, assert_rel_close

import tinycnn as tc
from tinycnn import fast

SEEDS = st.integers(0, 2**31 - 1)
SENTINEL = 123.0


def _net(rng, bias):
    dt = np.float64
    return [tc.Conv2D(2, 3, 2, bias=bias, dtype=dt, rng=rng), tc.GELU(),
            tc.Conv2D(3, 4, 3, padding=1, dtype=dt, rng=rng), tc.BatchNorm2D(4, dtype=dt),
            tc.ReLU(), tc.Flatten(), tc.Dense(4 * 5 * 5, 3, dtype=dt, rng=rng)]


def _grads(layers):
    return {f"{i}.{k}": p.grad.copy() for i, layer in enumerate(layers) for k, p in layer.named_parameters()}


def _frozen(layers, which):
    """Freeze the named parameters ("0.weight", ...); return them."""
    out = []
    for i, layer in enumerate(layers):
        for k, p in layer.named_parameters():
            if f"{i}.{k}" in which:
                p.requires_grad = False
                out.append(f"{i}.{k}")
    return out


@given(seed=SEEDS, n=st.integers(1, 4), bias=st.booleans(), input_grad=st.booleans(),
       which=st.sets(st.sampled_from(["0.weight", "0.bias", "2.weight", "3.weight", "6.bias"]), min_size=1))
def test_frozen_parameters_get_no_gradient_and_the_rest_are_plain(seed, n, bias, input_grad, which):
    rng = np.random.default_rng(seed)
    layers = _net(rng, bias)
    frozen = _frozen(layers, which)
    x = rng.standard_normal((n, 2, 6, 6))
    g = rng.standard_normal((n, 3))
    plain = fast.compile(layers, plain=True)
    plain.forward(x)
    dx0 = plain.backward(g)
    grads0 = _grads(layers)
    for layer in layers:
        for p in layer.parameters():
            p.grad[...] = SENTINEL
    plan = fast.compile(layers)
    plan.forward(x)
    dx1 = plan.backward(g, input_grad)
    grads1 = _grads(layers)
    if input_grad:
        assert_rel_close(dx1, dx0, TORCH_F64_REL_TOL, "input gradient")
    for key in frozen:
        assert (grads1[key] == SENTINEL).all(), f"{key} is frozen but its .grad was written"
    # the trainable gradients as one vector (the conv bias in front of the batch norm has an exactly
    # zero gradient: rounding noise on both sides, which no per-tensor relative bound can compare)
    keys = [k for k in grads0 if k not in frozen]
    if keys:
        assert_rel_close(np.concatenate([grads1[k].ravel() for k in keys]),
                         np.concatenate([grads0[k].ravel() for k in keys]), TORCH_F64_REL_TOL, "trainable gradients")


def test_a_frozen_first_layer_runs_no_backward_and_a_thawed_one_does_again():
    rng = np.random.default_rng(0)
    layers = _net(rng, bias=True)
    x = rng.standard_normal((2, 2, 6, 6))
    g = rng.standard_normal((2, 3))
    plan = fast.compile(layers)
    _frozen(layers, {"0.weight", "0.bias"})
    plan.forward(x)
    plan.backward(g, input_grad=False)
    ran = [i for i, _ in plan._backward_steps(False)]
    assert 0 not in ran and 1 not in ran                  # the conv and the GELU behind it: nothing to compute
    assert 2 in ran
    for p in layers[0].parameters():
        p.requires_grad = True                            # thawed between steps
    plan.forward(x)
    plan.backward(g, input_grad=False)
    assert 0 in [i for i, _ in plan._backward_steps(False)]
    plain = fast.compile(layers, plain=True)
    plain.forward(x)
    plain.backward(g)
    want = layers[0].weight.grad.copy()
    plan.forward(x)
    plan.backward(g, input_grad=False)
    assert_rel_close(layers[0].weight.grad, want, TORCH_F64_REL_TOL, "thawed weight gradient")


def test_a_frozen_conv_weight_skips_its_product(monkeypatch):
    """The weight-gradient product is the only product with ``cols`` on the left: count them."""
    rng = np.random.default_rng(1)
    layers = _net(rng, bias=True)
    _frozen(layers, {"0.weight"})
    plan = fast.compile(layers, [p for p in fast.PASSES if p != "lanes"])
    op = plan.graph.nodes[0].op
    calls = []
    original = type(op).matmul

    def counting(self, a, b, out):
        calls.append(self is op)
        return original(self, a, b, out)

    monkeypatch.setattr(type(op), "matmul", counting)
    plan.forward(rng.standard_normal((2, 2, 6, 6)))
    calls.clear()
    plan.backward(rng.standard_normal((2, 3)), input_grad=False)
    assert calls.count(True) == 0                         # frozen weight, no input gradient: no product at all
    assert set(plan.graph.nodes[0].op.grads) == {"bias"}
