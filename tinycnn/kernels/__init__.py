"""Numba kernels, each beside a plain reference with the same signature.

A kernel knows nothing of layers: it takes arrays and integers and returns arrays.
Every ``*_reference`` function is the specification; the fast kernel of the same name without the
suffix must agree with it (``tests/test_kernels.py`` checks that on shapes drawn by hypothesis).
"""
import os

import numba

# Threading layer. Numba's default on this kind of install is OpenMP, whose idle threads spin-wait
# after each parallel kernel; OpenBLAS's threads spin-wait too. On a machine with few cores the two
# pools then take turns stealing each other's cores: a seed-CNN training step at batch 4 went from
# 3 ms (one thread) to 540 ms (two threads) on the 2-core benchmark machine under load, and the
# quiet-machine kernels ran up to 12x slower after a matrix multiply. With Numba's own "workqueue"
# layer neither happened (benchmarks/PERFORMANCE.md, 'Numba threading layer', has both measurements).
# It is chosen here unless the user picked a layer with NUMBA_THREADING_LAYER, and it only takes
# effect if no parallel Numba code has run yet in this process. Caveat (Numba's): workqueue does not
# allow parallel kernels to be launched from several Python threads at once; set
# NUMBA_THREADING_LAYER=omp (or tbb) for that.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

from .._jit import launch
from .batchnorm import (
    bn_backward_dx,
    bn_backward_dx_reference,
    bn_backward_sums,
    bn_backward_sums_reference,
    bn_normalize,
    bn_normalize_reference,
    bn_sqdev,
    bn_sqdev_reference,
    bn_stats,
    bn_stats_reference,
    bn_sums,
    bn_sums_reference,
)
from .depthwise import (
    depthwise_backward_input,
    depthwise_backward_input_reference,
    depthwise_backward_weight,
    depthwise_backward_weight_reference,
    depthwise_forward,
    depthwise_forward_reference,
)
from .gelu import gelu_backward, gelu_backward_reference, gelu_forward, gelu_forward_reference
from .gemm import matmul, matmul_batched, matmul_batched_reference, matmul_reference
from .im2col import col2im, col2im_reference, conv_output_size, im2col, im2col_reference
from .im2col_cm import (
    col2im_cm,
    col2im_cm_reference,
    im2col_cm,
    im2col_cm_pixels,
    im2col_cm_pixels_reference,
    im2col_cm_reference,
)
from .pool import (
    avgpool2d_backward,
    avgpool2d_backward_reference,
    avgpool2d_forward,
    avgpool2d_forward_reference,
    maxpool2d_backward,
    maxpool2d_backward_cm,
    maxpool2d_backward_cm_reference,
    maxpool2d_backward_reference,
    maxpool2d_forward,
    maxpool2d_forward_cm,
    maxpool2d_forward_cm_reference,
    maxpool2d_forward_reference,
    pool_output_size,
)
from .winograd import (
    winograd_filter,
    winograd_filter_reference,
    winograd_input,
    winograd_input_reference,
    winograd_output,
    winograd_output_reference,
)

__all__ = [
    "launch", "conv_output_size", "pool_output_size",
    "im2col", "im2col_reference", "col2im", "col2im_reference",
    "im2col_cm", "im2col_cm_reference", "im2col_cm_pixels", "im2col_cm_pixels_reference",
    "col2im_cm", "col2im_cm_reference",
    "matmul", "matmul_reference", "matmul_batched", "matmul_batched_reference",
    "bn_stats", "bn_stats_reference", "bn_normalize", "bn_normalize_reference",
    "bn_backward_sums", "bn_backward_sums_reference", "bn_backward_dx", "bn_backward_dx_reference",
    "bn_sums", "bn_sums_reference", "bn_sqdev", "bn_sqdev_reference",
    "gelu_forward", "gelu_forward_reference", "gelu_backward", "gelu_backward_reference",
    "maxpool2d_forward", "maxpool2d_forward_reference",
    "maxpool2d_backward", "maxpool2d_backward_reference",
    "maxpool2d_forward_cm", "maxpool2d_forward_cm_reference",
    "maxpool2d_backward_cm", "maxpool2d_backward_cm_reference",
    "avgpool2d_forward", "avgpool2d_forward_reference",
    "avgpool2d_backward", "avgpool2d_backward_reference",
    "winograd_filter", "winograd_filter_reference", "winograd_input", "winograd_input_reference",
    "winograd_output", "winograd_output_reference",
    "depthwise_forward", "depthwise_forward_reference",
    "depthwise_backward_input", "depthwise_backward_input_reference",
    "depthwise_backward_weight", "depthwise_backward_weight_reference",
]
