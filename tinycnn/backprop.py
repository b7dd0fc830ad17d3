"""The backward walk through a stack of layers, shared by ``Sequential.backward`` and ``fit``.

    grad = dL/d(output);  for each layer, last to first:  grad = layer.backward(grad)

Each ``layer.backward`` writes its parameters' ``.grad`` and returns the gradient for the layer
before it. The last value, dL/d(input), is needed to check gradients or to compute a saliency map,
but never to train: with ``input_grad=False`` the walk stops as early as it can, as PyTorch skips the
gradient of an input that does not require grad:

* layers in front of the first layer with parameters are not run backward at all;
* that layer is asked for its parameters' gradients only when it can skip the rest
  (``can_skip_input_grad``: Conv2D and Dense), else it runs in full and its result is dropped.

For the seed CNN this saves the first convolution's (27 x 32) @ (32 x N*900) product and its col2im,
≈ 2 ms of a ≈ 25 ms training step at batch 64 (benchmarks/NOTES.md).
"""
from __future__ import annotations


def first_trainable(layers) -> int | None:
    """Index of the first layer that has parameters, or None if no layer has any."""
    for i, layer in enumerate(layers):
        if hasattr(layer, "parameters") and layer.parameters():
            return i
    return None


def backward_through(layers, grad_y, input_grad: bool = True):
    """Run ``layers`` backward from ``grad_y``; return dL/d(input), or None with ``input_grad=False``."""
    if input_grad:
        for layer in reversed(layers):
            grad_y = layer.backward(grad_y)
        return grad_y
    first = first_trainable(layers)
    if first is None:                                  # no parameters anywhere: nothing to compute
        return None
    for layer in reversed(layers[first + 1:]):
        grad_y = layer.backward(grad_y)
    if getattr(layers[first], "can_skip_input_grad", False):
        layers[first].backward(grad_y, input_grad=False)
    else:
        layers[first].backward(grad_y)
    return None
