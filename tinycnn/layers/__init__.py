"""Layers: forward and backward written by hand, one family per file."""
from .activation import ReLU, Sigmoid
from .base import Layer, Parameter
from .conv import Conv2D
from .dense import Dense, Flatten
from .pool import AvgPool2D, MaxPool2D

__all__ = ["Layer", "Parameter", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten", "Dense"]

# Issue 3 layers (train/eval modes, running statistics).
from .activation import Tanh  # noqa: E402
from .batchnorm import BatchNorm2D  # noqa: E402
from .dropout import Dropout  # noqa: E402

__all__ += ["Tanh", "Dropout", "BatchNorm2D"]

from .softmax import Softmax  # noqa: E402

__all__ += ["Softmax"]
