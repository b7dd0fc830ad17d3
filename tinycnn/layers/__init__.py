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

# Graph containers and the layers PyTorch users reach for next (one file per family). The
# dim-capable Softmax lives in softmax_dim.py (tinycnn.layers.softmax_dim.Softmax) beside LogSoftmax.
from .adaptive_pool import AdaptiveAvgPool2D, AdaptiveMaxPool2D  # noqa: E402
from .containers import Concat, Residual  # noqa: E402
from .dropout2d import Dropout2D  # noqa: E402
from .norm import BatchNorm1D, GroupNorm, LayerNorm  # noqa: E402
from .pointwise import GELU, Identity, LeakyReLU, SiLU  # noqa: E402
from .softmax_dim import LogSoftmax  # noqa: E402

__all__ += ["Residual", "Concat", "LeakyReLU", "GELU", "SiLU", "Identity", "LogSoftmax", "Dropout2D",
            "BatchNorm1D", "LayerNorm", "GroupNorm", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D"]
