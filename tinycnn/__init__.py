"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

Every layer's forward and backward pass is written out by hand (no autograd) and checked against
finite differences, the adjoint identity and PyTorch.

``import tinycnn as tc`` gives the layers, the model, losses, optimizers, schedules and the training
front end directly; the heavier sub-packages ``tc.data``, ``tc.zoo``, ``tc.gradcheck`` and
``tc.plots`` are imported on first use, so that ``import tinycnn`` stays fast. ``tc.fast`` is the
executor that runs a model fast (``Sequential`` uses it by default).
"""
from __future__ import annotations

import importlib

from . import callbacks, checkpoint, export, fast, init, interop, lr_finder, metrics, saving, schedules, tta
from ._version import __version__
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

# Sub-packages imported on first attribute access (module __getattr__ below).
_LAZY_SUBMODULES = ("data", "zoo", "gradcheck", "plots")

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
    "tta",
    "data",
    "zoo",
    "gradcheck",
    "plots",
]


def __getattr__(name: str):
    """Import ``tinycnn.data``, ``tinycnn.zoo``, ``tinycnn.gradcheck`` and ``tinycnn.plots`` on first use."""
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tinycnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
