"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

Every layer's forward and backward pass is written out by hand (no autograd) and checked against
finite differences, the adjoint identity and PyTorch.

``import tinycnn as tc`` gives the layers, the model, losses, optimizers, schedules and the training
front end as ``tc.Conv2D``, ``tc.Sequential``, ...; ``tc.data``, ``tc.zoo``, ``tc.gradcheck``,
``tc.plots`` and the other sub-packages are reachable the same way. ``tc.fast`` is the executor that
runs a model fast (``Sequential`` uses it by default).

Everything here is imported on first use (``__getattr__`` below): ``import tinycnn`` itself runs
only the standard library, so that it is instant and a Ctrl-C while NumPy and Numba load (the
first attribute access, or the command line's start-up) arrives inside tinycnn's own code, which
reports it in one line (``tinycnn.cli``). Type checkers and editors read the imports in the
``TYPE_CHECKING`` block, which name the same objects as ``_EXPORTS``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:   # the same names as _EXPORTS, for type checkers; never run
    from . import (
        callbacks,
        checkpoint,
        data,
        export,
        fast,
        gradcheck,
        init,
        interop,
        lr_finder,
        metrics,
        plots,
        saving,
        schedules,
        speedrun,
        tta,
        zoo,
    )
    from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from .ema import EMA
    from .layers import (
        GELU,
        AdaptiveAvgPool2D,
        AdaptiveMaxPool2D,
        AvgPool2D,
        BatchNorm1D,
        BatchNorm2D,
        Concat,
        Conv2D,
        Dense,
        Dropout,
        Dropout2D,
        Flatten,
        GroupNorm,
        Identity,
        Layer,
        LayerNorm,
        LeakyReLU,
        LogSoftmax,
        MaxPool2D,
        Parameter,
        ReLU,
        Residual,
        Sigmoid,
        SiLU,
        Softmax,
        Tanh,
    )
    from .lookahead import Lookahead
    from .losses import SoftmaxCrossEntropy
    from .lr_finder import LRRangeResult, lr_range_test
    from .model import Sequential
    from .optim import SGD, Adam, AdamW, RMSprop
    from .saving import load_model, save_model
    from .schedules import (
        CosineAnnealingLR,
        LinearLR,
        MultiStepLR,
        OneCycleLR,
        PiecewiseLinearLR,
        ReduceLROnPlateau,
        SequentialLR,
        StepLR,
    )
    from .shapes import ShapeError
    from .training import History, NonFiniteLossError

# public name -> the module (relative to this package) that defines it, imported on first use
_EXPORTS = {
    **dict.fromkeys(["Parameter", "Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D",
                     "AdaptiveMaxPool2D", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "SiLU", "Identity",
                     "Softmax", "LogSoftmax", "Flatten", "Dense", "Dropout", "Dropout2D", "BatchNorm2D",
                     "BatchNorm1D", "LayerNorm", "GroupNorm", "Residual", "Concat"], ".layers"),
    "Sequential": ".model",
    "ShapeError": ".shapes",
    "SoftmaxCrossEntropy": ".losses",
    **dict.fromkeys(["SGD", "Adam", "AdamW", "RMSprop"], ".optim"),
    "Lookahead": ".lookahead",
    "EMA": ".ema",
    **dict.fromkeys(["StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR", "PiecewiseLinearLR",
                     "SequentialLR",
                     "ReduceLROnPlateau"], ".schedules"),
    **dict.fromkeys(["History", "NonFiniteLossError"], ".training"),
    **dict.fromkeys(["lr_range_test", "LRRangeResult"], ".lr_finder"),
    **dict.fromkeys(["save_checkpoint", "load_checkpoint", "CheckpointError"], ".checkpoint"),
    **dict.fromkeys(["save_model", "load_model"], ".saving"),
}

# Sub-packages and modules reachable as attributes (``tc.data``, ``tc.layers``, ...), imported on first use.
_SUBMODULES = ("callbacks", "checkpoint", "export", "fast", "init", "interop", "lr_finder", "metrics",
               "saving", "schedules", "speedrun", "tta", "data", "zoo", "gradcheck", "plots", "layers", "model",
               "losses", "optim", "shapes", "training", "kernels", "progress", "cli")

__all__ = [
    "__version__",
    # layers
    "Parameter",
    "Layer",
    "Conv2D",
    "MaxPool2D",
    "AvgPool2D",
    "AdaptiveAvgPool2D",
    "AdaptiveMaxPool2D",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "LeakyReLU",
    "GELU",
    "SiLU",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Dense",
    "Dropout",
    "Dropout2D",
    "BatchNorm2D",
    "BatchNorm1D",
    "LayerNorm",
    "GroupNorm",
    "Residual",
    "Concat",
    # model, loss, optimizers, schedules
    "Sequential",
    "ShapeError",
    "SoftmaxCrossEntropy",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Lookahead",
    "EMA",
    "StepLR",
    "MultiStepLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
    "PiecewiseLinearLR",
    "SequentialLR",
    "ReduceLROnPlateau",
    # training front end
    "History",
    "NonFiniteLossError",
    "lr_range_test",
    "LRRangeResult",
    # files
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "save_model",
    "load_model",
    # sub-packages
    "callbacks",
    "checkpoint",
    "export",
    "fast",
    "init",
    "interop",
    "lr_finder",
    "metrics",
    "saving",
    "schedules",
    "speedrun",
    "tta",
    "data",
    "zoo",
    "gradcheck",
    "plots",
]


def __getattr__(name: str) -> object:
    """``tc.<name>``: import the module that defines it (once; later look-ups find it in globals())."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'tinycnn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
