"""Winograd pass: 3x3, stride-1 convolutions with enough channels run Winograd F(2x2, 3x3).

What it changes: ``cfg.winograd`` of a Conv2D's op (``ops/winograd.py``; the algorithm and its float
error bound: ``tinycnn/kernels/winograd.py``). Per 2 x 2 output tile and channel pair the products
do 16 multiplications instead of im2col's 36, so the convolution's matrix multiplies shrink 2.25x
(less at odd map sizes, whose last tile row and column are half wasted); the transforms add a pass
over the input (writing 16 numbers per 4 output pixels and channel, against im2col's 9 per pixel:
less memory written, not more) and one over the 16 products.

The rule, and why:

* the layer: a plain ``Conv2D`` with kernel 3x3, stride 1, groups 1, dilation 1, zero padding 0 or
  1 (``ops.winograd.applies``: what the kernels compute);
* in_channels and out_channels >= ``MIN_CHANNELS`` (16): the saving is in the products, whose work
  is O * C per output pixel while the transforms' is about 4 (C + O) additions and moves; with few
  channels (an RGB first layer: C = 3) the products are small, bound by memory rather than by
  multiplications, and the transforms' passes would cost more than the multiplications saved;
* output height and width >= ``ops.winograd.MIN_OUTPUT_SIZE`` (6), checked per call by the op (the
  map size is known only then): below it the tile overhang of odd sizes eats the saving (3 x 3
  outputs: 0.79 of im2col's multiplications) and the products are too short to run at BLAS speed.

These thresholds are an estimate from operation counts, not from measurements.

**Off by default.** Measured against im2col on this project's 2-core machine (a busy one: another
training run shared the cores; paired, interleaved calls in one process), the Winograd path was
*slower*: an airbench 64/128/128 training step at batch 512 took 1.35x as long (inference 1.37x),
a resnet20 training step at batch 128 1.12x (benchmarks/PERFORMANCE.md, 'Winograd F(2x2, 3x3)').
Its 16 products have the layer's C as their inner dimension where im2col's one product has 9C, and
OpenBLAS runs the short products far below its peak; the transforms' passes come on top. So the
pass marks layers only when asked: ``TINYCNN_WINOGRAD=1`` in the environment, or
``tinycnn.fast.set_winograd_enabled(True)`` before compiling. When it is off, plans do not list it.
"""
from __future__ import annotations

import os

from ...layers import Conv2D
from ..ops import winograd as wino
from ..ops.conv import ConvOp

MIN_CHANNELS = 16           # in_channels and out_channels at least

_ENABLED = os.environ.get("TINYCNN_WINOGRAD", "0") == "1"


def set_enabled(on: bool) -> bool:
    """Let the pass mark layers (True) or not (False, the default) in plans compiled from now on;
    returns the old setting. ``TINYCNN_WINOGRAD=1`` in the environment starts with it on."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(on)
    return old


def enabled() -> bool:
    return _ENABLED


def chosen(layer) -> bool:
    """Whether the pass gives ``layer`` the Winograd path (the per-call output-size check aside)."""
    return (type(layer) is Conv2D and wino.applies(layer)
            and layer.in_channels >= MIN_CHANNELS and layer.out_channels >= MIN_CHANNELS)


def apply(graph) -> None:
    if not _ENABLED:
        return
    for node in graph.nodes:
        if node.kind == "layer" and isinstance(node.op, ConvOp) and chosen(node.layer):
            node.op.cfg.winograd = True
            node.notes.append(f"winograd F(2x2, 3x3) when the output is >= {wino.MIN_OUTPUT_SIZE} x "
                              f"{wino.MIN_OUTPUT_SIZE}")
