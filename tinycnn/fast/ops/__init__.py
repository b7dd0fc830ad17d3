"""The executor's ops: one per layer kind that has a fast version, and ``PlainOp`` for every other
layer (a user's too), which runs the layer's own code.

    make_op(node) -> Op        by the layer's exact type: a subclass may compute something else,
                               so it runs its own (plain) code; and only for the configurations
                               the fast op implements (``implements``), else PlainOp

The fast ops implement Conv2D with groups 1, dilation 1 and symmetric zero padding (numbers,
'valid', or 'same' with odd kernels) (ConvOp), depthwise Conv2D (groups == in_channels, any
multiplier out_channels // in_channels, with the same padding and dilation rules: DepthwiseConvOp),
MaxPool2D without dilation or ceil_mode, AvgPool2D without ceil_mode, with count_include_pad and
without divisor_override, GELU in its exact (erf) form. A layer kind may have several fast ops
(``MORE_OPS``): the first that implements the configuration runs it. Every other configuration
(grouped convolution with 1 < groups < in_channels, dilation, ...) runs the layer's plain code:
correct everywhere, fast where it was fast.
"""
from __future__ import annotations

from ...layers import GELU, AvgPool2D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
from .base import Op, OpConfig, PlainOp
from .batchnorm import BatchNormOp
from .conv import ConvOp
from .dense import DenseOp, FlattenOp
from .depthwise import DepthwiseConvOp
from .dropout import DropoutOp
from .gelu import GELUOp
from .join import AddOp, ConcatOp
from .pool import AvgPoolOp, MaxPoolOp
from .relu import ReLUOp

FAST_OPS = {Conv2D: ConvOp, MaxPool2D: MaxPoolOp, ReLU: ReLUOp, Dense: DenseOp, Flatten: FlattenOp,
            BatchNorm2D: BatchNormOp, AvgPool2D: AvgPoolOp, Dropout: DropoutOp, GELU: GELUOp}
MORE_OPS = {Conv2D: (DepthwiseConvOp,)}     # tried in order after FAST_OPS's op


def _conv_is_plain_geometry(layer) -> bool:
    """groups 1, dilation 1, the same padding before and after on each axis (numbers, 'valid', or
    'same' with an odd kernel)."""
    (top, bottom), (left, right) = layer.padding_amounts
    return (getattr(layer, "groups", 1) == 1 and tuple(getattr(layer, "dilation", (1, 1))) == (1, 1)
            and top == bottom and left == right and getattr(layer, "padding_mode", "zeros") == "zeros")


def _conv_is_depthwise(layer) -> bool:
    """groups == in_channels > 1 (one input channel per group, out_channels = multiplier * groups),
    dilation 1, symmetric zero padding (ConvOp's geometry)."""
    (top, bottom), (left, right) = layer.padding_amounts
    groups = getattr(layer, "groups", 1)
    return (groups > 1 and groups == layer.in_channels and tuple(getattr(layer, "dilation", (1, 1))) == (1, 1)
            and top == bottom and left == right and getattr(layer, "padding_mode", "zeros") == "zeros")


def _maxpool_is_plain_geometry(layer) -> bool:
    return tuple(getattr(layer, "dilation", (1, 1))) == (1, 1) and not getattr(layer, "ceil_mode", False)


def _avgpool_is_plain_geometry(layer) -> bool:
    return (not getattr(layer, "ceil_mode", False) and getattr(layer, "count_include_pad", True)
            and getattr(layer, "divisor_override", None) is None)


def _gelu_is_exact(layer) -> bool:
    return getattr(layer, "approximate", "none") == "none"


IMPLEMENTS = {ConvOp: _conv_is_plain_geometry, MaxPoolOp: _maxpool_is_plain_geometry,
              AvgPoolOp: _avgpool_is_plain_geometry, GELUOp: _gelu_is_exact,
              DepthwiseConvOp: _conv_is_depthwise}


def implements(op_class, layer) -> bool:
    """Whether ``op_class`` computes ``layer``'s configuration (ops without a rule take every one)."""
    rule = IMPLEMENTS.get(op_class)
    return rule is None or rule(layer)


def make_op(node) -> Op:
    if node.kind == "add":
        return AddOp(None)
    if node.kind == "concat":
        return ConcatOp(node.layer)
    kind = type(node.layer)
    for op_class in (FAST_OPS.get(kind, PlainOp), *MORE_OPS.get(kind, ())):
        if implements(op_class, node.layer):
            return op_class(node.layer)
    return PlainOp(node.layer)


__all__ = ["Op", "OpConfig", "PlainOp", "make_op", "FAST_OPS", "MORE_OPS", "implements"]
