"""Numba kernels, each beside a plain reference with the same signature.

A kernel knows nothing of layers: it takes arrays and integers and returns arrays.
Every ``*_reference`` function is the specification; the fast kernel of the same name without the
suffix must agree with it (``tests/test_kernels.py`` checks that on shapes drawn by hypothesis).
"""
from .im2col import col2im, col2im_reference, conv_output_size, im2col, im2col_reference
from .im2col_cm import col2im_cm, col2im_cm_reference, im2col_cm, im2col_cm_reference
from .pool import (
    avgpool2d_backward,
    avgpool2d_backward_reference,
    avgpool2d_forward,
    avgpool2d_forward_reference,
    maxpool2d_backward,
    maxpool2d_backward_reference,
    maxpool2d_forward,
    maxpool2d_forward_reference,
)

__all__ = [
    "conv_output_size",
    "im2col", "im2col_reference", "col2im", "col2im_reference",
    "im2col_cm", "im2col_cm_reference", "col2im_cm", "col2im_cm_reference",
    "maxpool2d_forward", "maxpool2d_forward_reference",
    "maxpool2d_backward", "maxpool2d_backward_reference",
    "avgpool2d_forward", "avgpool2d_forward_reference",
    "avgpool2d_backward", "avgpool2d_backward_reference",
]
