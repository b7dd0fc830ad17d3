"""Layout pass: activations between fast ops stay channel-major.

What it changes: ``cfg.channel_major`` on every op that can hand on a channel-major view (Conv2D,
depthwise Conv2D, BatchNorm2D); MaxPool2D and ReLU keep whatever layout they receive. Without this pass every op
copies its output (and its input gradient) back into C order; with it, Conv2D's product is already
the next layer's input and im2col/col2im/pooling move runs of N contiguous numbers
(``tinycnn.fast.layout`` says why; measured in benchmarks/PERFORMANCE.md, 'Channel-major layout').

Values never depend on the layout, only speed does: any op (and any plain layer) accepts any layout.
"""
from __future__ import annotations

from ..ops.batchnorm import BatchNormOp
from ..ops.conv import ConvOp
from ..ops.depthwise import DepthwiseConvOp


def apply(graph) -> None:
    for node in graph.nodes:
        if isinstance(node.op, (ConvOp, DepthwiseConvOp, BatchNormOp)):
            node.op.cfg.channel_major = True
            node.notes.append("channel-major")
