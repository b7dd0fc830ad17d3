"""Layers: forward and backward written by hand, one family per file."""
from .activation import ReLU, Sigmoid, Tanh
from .base import Layer, Parameter
from .batchnorm import BatchNorm2D
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .pool import AvgPool2D, MaxPool2D
from .softmax import Softmax

__all__ = [
    "Layer",
    "Parameter",
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
]
