"""Fusion pass: fewer passes over memory, same numbers.

What it changes, node by node:

* ``Conv2D`` with a bias: ``cfg.bias_in_gemm`` (the bias becomes one more row of the product; see
  ``ops/conv.py``). Saves one pass over the output and one over its gradient.
* ``BatchNorm2D`` followed by ``ReLU`` (the ReLU the batch norm's only reader): the ReLU node is
  removed and the batch norm's op applies it as it writes y (``cfg.fuse_relu``). Saves the ReLU's
  pass, its mask and its output array, forward and backward. Likewise ``BatchNorm2D`` followed by an
  exact ``GELU`` (``cfg.fuse_gelu``: the GELU's output array and its pass; its slope array stays).
* a graph's "add" (a residual join) followed by ``ReLU`` (its only reader: a residual block's post
  ReLU): the ReLU node is removed and the add applies it (``cfg.fuse_relu`` of ``AddOp``). Saves
  two passes over the activation (the add's copy and the ReLU's own) and the ReLU's output array.
* ``ReLU`` followed by ``MaxPool2D`` (the pool the ReLU's only reader): the two run as MaxPool2D ->
  ReLU, the ReLU then on the pooled map, KH*KW times smaller. Bitwise the same outputs and gradients:
  max and ReLU only pick values and ReLU is non-decreasing, so max(relu(x)) = relu(max(x)); where a
  window's maximum m is > 0 both orders pick the same first winner and pass g to it, and where
  m <= 0 (or NaN) both send exactly 0.0 to a pixel that is <= 0 (or NaN), which no other window can
  route a nonzero gradient to either (``tests/test_fast_equals_plain.py`` checks the bits on inputs
  full of ties, zeros, NaN and -inf).

Exact types only: a subclass of ReLU may compute something else.
Measured: benchmarks/PERFORMANCE.md, 'Bias inside the matrix multiply', 'ReLU/MaxPool reordering',
'Batch norm in the executor', 'GELU in the executor'.
"""
from __future__ import annotations

from ...layers import GELU, BatchNorm2D, Conv2D, MaxPool2D, ReLU
from ..ops import MaxPoolOp
from ..ops.batchnorm import BatchNormOp
from ..ops.conv import ConvOp
from ..ops.join import AddOp


def _only_reader(graph, i) -> int | None:
    """Index of the one node reading node i's output, or None (several readers, or the output)."""
    out = graph.nodes[i].output
    readers = graph.consumers(out)
    if len(readers) != 1 or out == graph.output:
        return None
    return readers[0]


def _absorb(graph, node, fused) -> None:
    """``fused`` (already removed from the graph) now runs inside ``node``: its readers read node."""
    for other in graph.nodes:
        other.inputs = [node.output if v == fused.output else v for v in other.inputs]
    if graph.output == fused.output:
        graph.output = node.output


def _fusable_activation(node) -> str | None:
    """'relu' or 'gelu' when the node is an exact ReLU or an exact (erf) GELU, else None."""
    if node.kind != "layer":
        return None
    if type(node.layer) is ReLU:
        return "relu"
    if type(node.layer) is GELU and node.layer.approximate == "none":
        return "gelu"
    return None


def apply(graph) -> None:
    # bias inside the product (ConvOp's: the depthwise op has no product, its kernel starts each
    # output row from the bias)
    for node in graph.nodes:
        if (node.kind == "layer" and type(node.layer) is Conv2D and node.layer.bias is not None
                and isinstance(node.op, ConvOp)):
            node.op.cfg.bias_in_gemm = True
            node.notes.append("bias in the product")
    # BatchNorm2D -> ReLU or exact GELU: the activation runs inside the batch norm
    i = 0
    while i < len(graph.nodes):
        node = graph.nodes[i]
        j = None
        if node.kind == "layer" and type(node.layer) is BatchNorm2D and isinstance(node.op, BatchNormOp):
            j = _only_reader(graph, i)
        act = _fusable_activation(graph.nodes[j]) if j is not None else None
        if act is not None:
            fused = graph.nodes.pop(j)
            _absorb(graph, node, fused)
            setattr(node.op.cfg, f"fuse_{act}", True)
            node.notes.append(f"{type(fused.layer).__name__} fused")
        i += 1
    # a residual join followed by ReLU: the ReLU runs inside the add
    i = 0
    while i < len(graph.nodes):
        node = graph.nodes[i]
        j = _only_reader(graph, i) if node.kind == "add" and isinstance(node.op, AddOp) else None
        if j is not None and _fusable_activation(graph.nodes[j]) == "relu":
            _absorb(graph, node, graph.nodes.pop(j))
            node.op.cfg.fuse_relu = True
            node.notes.append("ReLU fused")
        i += 1
    # ReLU -> MaxPool2D runs as MaxPool2D -> ReLU
    i = 0
    while i < len(graph.nodes) - 1:
        a = graph.nodes[i]
        j = _only_reader(graph, i) if a.kind == "layer" and type(a.layer) is ReLU else None
        b = graph.nodes[j] if j is not None else None
        # (only a pool the fast op runs: with dilation a window can hold no pixel, and there
        # relu(max) = 0 but max(relu) = -inf)
        if (b is not None and j == i + 1 and b.kind == "layer" and type(b.layer) is MaxPool2D
                and isinstance(b.op, MaxPoolOp)):
            x, mid, out = a.inputs[0], a.output, b.output
            b.inputs, b.output = [x], mid                              # pool reads x, writes mid
            a.inputs, a.output = [mid], out                            # relu reads mid, writes out
            graph.nodes[i], graph.nodes[i + 1] = b, a
            b.notes.append("runs before the ReLU")
            i += 2
        else:
            i += 1
