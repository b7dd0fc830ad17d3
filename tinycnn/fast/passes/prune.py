"""Prune pass: backward computes no gradient nobody reads.

Training needs the parameters' gradients, never the input's (as PyTorch skips the gradient of an
input that does not require grad). A value *requires grad* when it is the input and the caller
asked for the input gradient, or when it is written by a node that has parameters or reads a value
that requires grad. Then, in backward:

* a node none of whose inputs requires grad is asked for its parameters' gradients only
  (``backward(g, input_grad=False)``: Conv2D and Dense then skip their input-gradient product and
  col2im; a plain layer computes it anyway and it is dropped);
* a node with no parameters and no input that requires grad is not run backward at all.

Frozen parameters (``requires_grad`` False on the ``Parameter``) count as no parameters here: a node
whose parameters are all frozen and whose input requires no grad (a frozen first convolution) is not
run backward at all. The ops themselves skip the gradient of a frozen parameter where it is a
product of its own (Conv2D's weight gradient), and the plan writes no ``.grad`` to a frozen
parameter (as torch leaves a frozen parameter's ``.grad`` alone).

For the seed CNN this saves the first convolution's (27 x 32) @ (32 x N*900) product and its col2im
(benchmarks/PERFORMANCE.md, 'Skipping the first layer's input gradient').
"""
from __future__ import annotations

from ..ops.base import trainable


def _has_params(node) -> bool:
    return node.kind == "layer" and any(trainable(p) for p in node.layer.parameters())


def frozen_key(graph) -> tuple:
    """Which parameters are frozen, node by node: the backward steps depend on it, so a plan that
    caches them keys them by this (a parameter may be frozen or thawed between steps)."""
    return tuple(tuple(not trainable(p) for p in node.layer.parameters()) if node.kind == "layer" else ()
                 for node in graph.nodes)


def backward_steps(graph, input_grad: bool) -> list:
    """[(node index, needs input gradient)] in the order backward runs them (reverse topological),
    nodes with nothing to compute left out."""
    requires = {0: bool(input_grad)}
    for node in graph.nodes:
        requires[node.output] = _has_params(node) or any(requires.get(v, False) for v in node.inputs)
    steps = []
    for i in reversed(range(len(graph.nodes))):
        node = graph.nodes[i]
        need_input = any(requires.get(v, False) for v in node.inputs)
        if need_input or _has_params(node):
            steps.append((i, need_input))
    return steps


def apply(graph) -> None:
    """Marks the nodes whose input gradient training never needs (for describe())."""
    for i, need in backward_steps(graph, input_grad=False):
        if not need:
            graph.nodes[i].notes.append("no input gradient in training")
