"""Blocks pass: thin convolutions run in cache-sized blocks of output pixels (``ops/conv_blocks.py``).

What it changes: ``cfg.conv_blocks`` of a Conv2D's op, for layers whose kernel is larger than 1x1
(a 1x1 layer needs no im2col) and whose weight matrix, O x C*KH*KW numbers, is at most
``MAX_WEIGHT_BYTES``: every block's product reads all of it again, so a large weight matrix would
be read as many times as there are blocks, where the one product of the unblocked path reads it
once. The op still checks at every call whether blocks pay there (``conv_blocks.pays``: columns at
least ``MIN_BLOCKS`` blocks long, and one thread: in a lane, or with one thread in all). Backward
follows the path forward took.

Why: im2col's columns are C*KH*KW times the input; for a thin layer they are tens of MB, written by
im2col and read back by the product from memory. In blocks of about 1 MB they are read while still
in the core's cache. Measured (benchmarks/PERFORMANCE.md, 'Thin convolutions in cache-sized blocks';
``python -m benchmarks.conv_blocks``): resnet20's 16 -> 16 layers twice as fast, the 128 -> 128
layers of 16 x 16 maps about 10 % faster, a 128 -> 256 layer (1.15 MB of weights) no faster: hence
the limit of 640 KB.
"""
from __future__ import annotations

from ...layers import Conv2D
from ..ops.conv import ConvOp

MAX_WEIGHT_BYTES = 640 * 1024   # O * C*KH*KW numbers at most (16 -> 16 3x3: 9 KB; 128 -> 128: 576 KB)


def chosen(layer) -> bool:
    """Whether the pass gives ``layer`` the blocked path (the per-call checks aside)."""
    kh, kw = layer.kernel_size
    weight_bytes = layer.weight.data.size * layer.weight.data.itemsize
    return type(layer) is Conv2D and kh * kw > 1 and weight_bytes <= MAX_WEIGHT_BYTES


def apply(graph) -> None:
    for node in graph.nodes:
        if node.kind == "layer" and isinstance(node.op, ConvOp) and chosen(node.layer):
            node.op.cfg.conv_blocks = True
            node.notes.append("in cache-sized blocks of output pixels when on one thread")
