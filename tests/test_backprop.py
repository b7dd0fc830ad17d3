"""``Sequential.backward(g, input_grad=False)`` (the executor's prune pass): the parameters' gradients
are exactly those of the full backward, nothing is returned, and the work that only produces the input
gradient is skipped."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn import fast
from tinycnn.fast.passes import prune


def _net(rng, first, dtype):
    def conv(*a, **k):
        return tc.Conv2D(*a, **k, dtype=dtype, rng=rng)

    def dense(*a):
        return tc.Dense(*a, dtype=dtype, rng=rng)

    layers = {
        "conv": [conv(3, 4, 3, padding=1), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten(), dense(4 * 4 * 4, 5)],
        # parameterless layers in front: they must not run backward at all
        "relu_first": [tc.ReLU(), conv(3, 4, 3), tc.Flatten(), dense(4 * 6 * 6, 5)],
        # a first trainable layer that cannot skip its input gradient
        "bn_first": [tc.BatchNorm2D(3, dtype=dtype), conv(3, 4, 3), tc.Flatten(), dense(4 * 6 * 6, 5)],
        "dense": [tc.Flatten(), dense(3 * 8 * 8, 5)],
    }[first]
    return tc.Sequential(*layers)


@pytest.mark.parametrize("first", ["conv", "relu_first", "bn_first", "dense"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parameter_gradients_identical_without_input_grad(first, dtype):
    rng = np.random.default_rng(7)
    model = _net(rng, first, dtype)
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    g = rng.standard_normal((2, 5)).astype(dtype)          # random upstream gradient, not ones
    model.forward(x)
    dx = model.backward(g)
    assert dx.shape == x.shape
    full = [p.grad.copy() for p in model.parameters()]
    model.forward(x)
    assert model.backward(g, input_grad=False) is None
    skipped = [p.grad for p in model.parameters()]
    assert len(full) == len(skipped)
    for a, b in zip(full, skipped):
        np.testing.assert_array_equal(a, b)                # same operations, same order: bitwise


class _Spy(tc.ReLU):
    calls = 0

    def backward(self, grad_y):
        type(self).calls += 1
        return super().backward(grad_y)


def test_layers_in_front_of_the_first_parameters_are_not_run():
    rng = np.random.default_rng(0)
    model = tc.Sequential(_Spy(), tc.Conv2D(3, 2, 3, rng=rng), _Spy(), tc.Flatten(), tc.Dense(2 * 6 * 6, 3, rng=rng))
    model.forward(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    _Spy.calls = 0
    model.backward(rng.standard_normal((2, 3)).astype(np.float32), input_grad=False)
    assert _Spy.calls == 1                                 # the ReLU after the conv, not the one before


def test_first_layer_skips_its_input_gradient(monkeypatch):
    """Conv2D with input_grad=False must not run col2im (the input gradient's only consumer)."""
    from tinycnn import kernels
    rng = np.random.default_rng(1)
    conv = tc.Conv2D(3, 4, 3, rng=rng)
    plan = fast.compile([conv])
    plan.forward(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    called = []
    monkeypatch.setattr(kernels, "col2im_cm", lambda *a, **k: called.append(1))
    assert plan.backward(rng.standard_normal((2, 4, 4, 4)).astype(np.float32), input_grad=False) is None
    assert called == []
    assert conv.weight.grad.shape == (4, 3, 3, 3) and conv.bias.grad.shape == (4,)


def test_no_parameters_means_nothing_to_do():
    assert prune.backward_steps(fast.compile([tc.ReLU(), tc.Flatten()]).graph, input_grad=False) == []
    model = tc.Sequential(tc.ReLU(), tc.Flatten())
    x = np.ones((2, 3), np.float32)
    model.forward(x)
    assert model.backward(x, input_grad=False) is None
