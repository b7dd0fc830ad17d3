"""The fast executor: a network compiled into a plan that computes what its layers compute, faster.

The layers (``tinycnn.layers``) are the definition: plain NumPy that reads like the derivation. This
package owns every speed trick, as a small compiler:

    plan = tinycnn.fast.compile(layers)           # or a Sequential; passes=... to choose passes
    y = plan.forward(x);  plan.backward(g, input_grad=False);  print(plan.describe())

1. ``graph.lower``: the layers become a graph of nodes over numbered values (chains, and graph
   containers such as residual blocks through their ``lower_into``).
2. ``ops.make_op``: every node gets an op — a fast one for the layer kinds that have one (Conv2D,
   depthwise Conv2D, MaxPool2D, AvgPool2D, ReLU, GELU, Dense, Flatten, BatchNorm2D, the graph joins) in
   the configurations that op implements, else ``PlainOp``, which runs the layer's own code (any layer
   a user writes, and options such as grouped or dilated convolution, run correctly that way).
3. The passes (``passes/``, one file each): fusion, winograd, blocks, layout, prune, memory, threads,
   lanes.

``Sequential`` runs through a plan by default; ``TINYCNN_FAST=0`` (or ``set_enabled(False)``) runs the
layers' own code instead. ``tests/test_fast_equals_plain.py`` holds the two equal on random networks.
"""
from __future__ import annotations

import numpy as np

from . import switch
from .passes import ORDER as PASSES
from .passes.lanes import set_enabled as set_lanes_enabled
from .passes.winograd import set_enabled as set_winograd_enabled
from .plan import Plan


def compile(layers, passes=PASSES, *, plain: bool = False) -> Plan:  # noqa: A001
    """A ``Plan`` for ``layers`` (a list of layers or a ``Sequential``) with the named passes.
    ``plain=True``: every layer runs its own code, one node each, no passes (the reference)."""
    return Plan(getattr(layers, "layers", layers), () if plain else passes, plain=plain)


def runs_fast(x) -> bool:
    """Whether a batch ``x`` goes through the fast ops: the executor is on and x is float32/float64
    (other dtypes run the layers' own code, which raises their own clear errors)."""
    return switch.enabled() and getattr(x, "dtype", None) in (np.float32, np.float64)


enabled, set_enabled = switch.enabled, switch.set_enabled


__all__ = ["compile", "runs_fast", "Plan", "PASSES", "enabled", "set_enabled", "set_lanes_enabled",
           "set_winograd_enabled"]
