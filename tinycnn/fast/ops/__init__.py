"""The executor's ops: one per layer kind that has a fast version, and ``PlainOp`` for every other
layer (a user's too), which runs the layer's own code.

    make_op(node) -> Op        by the layer's exact type: a subclass may compute something else,
                               so it runs its own (plain) code
"""
from __future__ import annotations

from ...layers import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from .base import Op, OpConfig, PlainOp
from .batchnorm import BatchNormOp
from .conv import ConvOp
from .dense import DenseOp, FlattenOp
from .join import AddOp, ConcatOp
from .pool import AvgPoolOp, MaxPoolOp
from .relu import ReLUOp

FAST_OPS = {Conv2D: ConvOp, MaxPool2D: MaxPoolOp, ReLU: ReLUOp, Dense: DenseOp, Flatten: FlattenOp,
            BatchNorm2D: BatchNormOp, AvgPool2D: AvgPoolOp}


def make_op(node) -> Op:
    if node.kind == "add":
        return AddOp(None)
    if node.kind == "concat":
        return ConcatOp(node.layer)
    return FAST_OPS.get(type(node.layer), PlainOp)(node.layer)


__all__ = ["Op", "OpConfig", "PlainOp", "make_op", "FAST_OPS"]
