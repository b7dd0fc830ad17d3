"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

Every layer's forward and backward pass is written out by hand (no autograd) and checked against
finite differences, the adjoint identity and PyTorch.

``import tinycnn as tc`` gives the layers, the model, losses, optimizers, schedules and the training
front end directly; the heavier sub-packages ``tc.data``, ``tc.zoo``, ``tc.gradcheck`` and
``tc.plots`` are imported on first use, so that ``import tinycnn`` stays fast.
"""
from __future__ import annotations

import importlib

from . import callbacks, checkpoint, interop, lr_finder, metrics, schedules
from ._version import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .layers import (
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    Parameter,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import SoftmaxCrossEntropy
from .lr_finder import LRRangeResult, lr_range_test
from .model import Sequential
from .optim import SGD, Adam
from .schedules import CosineAnnealingLR, LinearLR, OneCycleLR, StepLR
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
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Flatten",
    "Dense",
    "Softmax",
    "Dropout",
    "BatchNorm2D",
    # model, loss, optimizers, schedules
    "Sequential",
    "ShapeError",
    "SoftmaxCrossEntropy",
    "SGD",
    "Adam",
    "StepLR",
    "CosineAnnealingLR",
    "LinearLR",
    "OneCycleLR",
    # training front end
    "History",
    "NonFiniteLossError",
    "lr_range_test",
    "LRRangeResult",
    "save_checkpoint",
    "load_checkpoint",
    # sub-modules
    "callbacks",
    "checkpoint",
    "interop",
    "lr_finder",
    "metrics",
    "schedules",
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
