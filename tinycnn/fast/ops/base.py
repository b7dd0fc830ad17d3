"""What every op of the executor shares, and the op that runs a layer's own (plain) code.

An op computes one node of the graph for one lane. It reads its layer's settings and parameters at
every call (the optimizer may replace a parameter's array), keeps its own cache, and leaves the
parameter gradients it computes in ``self.grads`` (name -> array); the plan hands them to the layer's
``Parameter.grad`` afterwards (summed over the lanes when the batch ran in lanes).

    forward(*xs) -> y                  xs: the node's inputs, y: its output (any memory layout)
    backward(g, input_grad) -> gx      gx: a gradient per input (a tuple for several inputs), or
                                       None when ``input_grad`` is False (the prune pass's choice)

The settings the passes decide live in ``self.cfg`` (an ``OpConfig``): every op reads the same
fields, so a pass changes one field and every op that cares follows.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ... import kernels
from .. import memory


def trainable(p) -> bool:
    """Whether a parameter takes gradients: its ``requires_grad``, True when it has no such attribute."""
    return bool(getattr(p, "requires_grad", True))


@dataclass
class OpConfig:
    """Per-op choices made by the passes (defaults: every pass turned off)."""
    channel_major: bool = False         # layout: hand outputs and input gradients on as channel-major views
    bias_in_gemm: bool = False          # fusion: Conv2D's bias as an extra row of the product
    fuse_relu: bool = False             # fusion: a ReLU that followed this op runs inside it
    fuse_gelu: bool = False             # fusion: an exact GELU that followed this op runs inside it
    alloc: memory.Allocator = memory.FRESH   # memory: where outputs and temporaries come from
    split_products: bool = False        # threads: products through kernels.matmul, kernels by size
    winograd: bool = False              # winograd: a 3x3 stride-1 Conv2D as Winograd F(2x2, 3x3)
    conv_blocks: bool = False           # blocks: a thin Conv2D in cache-sized blocks of output pixels


class Op:
    """Base class of the executor's ops."""

    def __init__(self, layer, cfg: OpConfig | None = None):
        self.layer = layer
        self.cfg = cfg if cfg is not None else OpConfig()
        self.grads: dict[str, np.ndarray] = {}
        self.cache = None
        self.lane = 0                       # this op's lane in the current call
        self.sync = None                    # the call's LaneSync when it runs in lanes, else None

    def __repr__(self):
        return f"{type(self).__name__}({self.layer!r})"

    @property
    def per_sample(self) -> bool:
        """True when output sample i depends on input sample i only and forward changes no state
        shared across samples (in the layer's current mode): the lanes pass may cut the batch."""
        return False

    @property
    def mixes_samples_in_lanes(self) -> bool:
        """True when the op mixes samples but can still run in lanes by meeting the other lanes
        (``self.sync.gather``): batch norm's statistics, dropout's mask."""
        return False

    def lane_copy(self) -> "Op":
        """An op for another lane: the same layer and config, its own cache and gradients."""
        op = copy.copy(self)
        op.grads, op.cache = {}, None
        return op

    # helpers for the fast ops
    def matmul(self, a, b, out):
        """out = a @ b: split over tinycnn's threads (threads pass) or one NumPy call."""
        if self.cfg.split_products:
            return kernels.matmul(a, b, out)
        return np.matmul(a, b, out=out)

    def launch(self, kernel, elements, *args, **kwargs):
        """A parallel kernel, or its serial twin for small work (threads pass) or inside a lane."""
        if self.cfg.split_products:
            return kernels.launch(kernel, elements, *args, **kwargs)
        return kernels.launch(kernel, 1 << 62, *args, **kwargs)   # as large as it gets: parallel


# Layers without parameters whose plain code is per-sample in every mode and plain NumPy (no parallel
# Numba kernel, which must not be launched from two lanes at once): a lane may run its own copy of
# the layer object (copy.copy: the same settings, its own cache).
_PLAIN_PER_SAMPLE = ("Sigmoid", "Tanh", "Flatten", "Softmax", "ReLU", "Identity", "LeakyReLU", "GELU",
                     "SiLU", "LogSoftmax", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D")


class PlainOp(Op):
    """A layer the executor has no fast version of (or any ``Layer`` subclass a user writes): its own
    ``forward``/``backward``, unchanged. Its input is handed over as it comes (a plain layer accepts
    any memory layout and makes its own C-ordered copy where it needs one); it writes its parameters'
    gradients itself."""

    writes_own_grads = True

    def __init__(self, layer, cfg=None):
        super().__init__(layer, cfg)
        self.lane_layer = layer

    @property
    def per_sample(self):
        layer = self.layer
        if type(layer).__name__ in _PLAIN_PER_SAMPLE and type(layer).__module__.startswith("tinycnn."):
            return not layer.parameters()
        return False

    def lane_copy(self):
        op = super().lane_copy()
        op.lane_layer = copy.copy(self.layer)          # its own cache; no parameters to share
        return op

    def forward(self, x):
        self.lane_layer.training = self.layer.training
        return self.lane_layer.forward(x)

    def backward(self, g, input_grad=True):
        return self.lane_layer.backward(g)
