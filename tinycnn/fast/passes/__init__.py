"""The executor's passes, in the order they run. Each is one file; its docstring says what it
changes and what it measured.

    fusion    Conv2D bias in the product; BatchNorm2D+ReLU and BatchNorm2D+GELU as one op;
              ReLU->MaxPool2D reordered
    winograd  3x3 stride-1 convolutions with enough channels as Winograd F(2x2, 3x3)
    blocks    thin convolutions in cache-sized blocks of output pixels (on one thread)
    layout    channel-major activations between fast ops
    prune     no input gradient where nobody reads it, no step for frozen parameters
    memory    outputs and workspaces from the recycling allocator
    threads   products split over tinycnn's threads, small kernels serial
    lanes     the batch cut into one slice per thread when every op is per-sample (a rule applied
              per call, in ``Plan``)
"""
from . import blocks, fusion, lanes, layout, memory, prune, threads, winograd

ORDER = ("fusion", "winograd", "blocks", "layout", "prune", "memory", "threads", "lanes")
GRAPH_PASSES = {"fusion": fusion.apply, "winograd": winograd.apply, "blocks": blocks.apply, "layout": layout.apply,
                "prune": prune.apply, "memory": memory.apply, "threads": threads.apply}

__all__ = ["ORDER", "GRAPH_PASSES", "blocks", "fusion", "layout", "prune", "memory", "threads", "lanes", "winograd"]
