"""Layers: forward and backward written by hand, one family per file.

    base.py           Parameter, Layer, input checks         conv.py        Conv2D
    pool.py           MaxPool2D, AvgPool2D                   adaptive_pool.py  AdaptiveAvgPool2D, AdaptiveMaxPool2D
    activation.py     ReLU, Sigmoid, Tanh                    pointwise.py   LeakyReLU, GELU, SiLU, Identity
    softmax.py        Softmax, LogSoftmax                    dense.py       Dense, Flatten
    dropout.py        Dropout                                dropout2d.py   Dropout2D
    batchnorm.py      BatchNorm2D                            norm.py        BatchNorm1D, LayerNorm, GroupNorm
    containers.py     Residual, Concat (graphs of layers)
"""
from .activation import ReLU, Sigmoid, Tanh
from .adaptive_pool import AdaptiveAvgPool2D, AdaptiveMaxPool2D
from .base import Layer, Parameter
from .batchnorm import BatchNorm2D
from .containers import Concat, Residual
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .dropout2d import Dropout2D
from .norm import BatchNorm1D, GroupNorm, LayerNorm
from .pointwise import GELU, Identity, LeakyReLU, SiLU
from .pool import AvgPool2D, MaxPool2D
from .softmax import LogSoftmax, Softmax

__all__ = [
    "Layer", "Parameter",
    "Conv2D", "MaxPool2D", "AvgPool2D", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D",
    "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "SiLU", "Identity", "Softmax", "LogSoftmax",
    "Flatten", "Dense", "Dropout", "Dropout2D",
    "BatchNorm2D", "BatchNorm1D", "LayerNorm", "GroupNorm",
    "Residual", "Concat",
]
