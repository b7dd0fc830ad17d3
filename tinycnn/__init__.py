"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

Every layer's forward and backward pass is written out by hand (no autograd) and checked against
finite differences, the adjoint identity and PyTorch.
"""
from .layers import AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, Parameter, ReLU, Sigmoid
from .layers import BatchNorm2D, Dropout, Tanh
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = [
    "Parameter", "Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten", "Dense",
    "SoftmaxCrossEntropy", "Sequential", "SGD", "Adam",
]
__all__ += ["Tanh", "Dropout", "BatchNorm2D"]

# Keras-style front end (issue 3): Softmax layer, training errors and History; callbacks in tc.callbacks.
from . import callbacks  # noqa: E402
from .layers import Softmax  # noqa: E402
from .shapes import ShapeError  # noqa: E402
from .training import History, NonFiniteLossError  # noqa: E402

__all__ += ["Softmax", "ShapeError", "History", "NonFiniteLossError", "callbacks"]

# Learning-rate tools, metrics, checkpoints, PyTorch interop (issue 3). torch is imported lazily.
from . import checkpoint, interop, lr_finder, metrics, schedules  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .lr_finder import LRRangeResult, lr_range_test  # noqa: E402
from .schedules import CosineAnnealingLR, LinearLR, OneCycleLR, StepLR  # noqa: E402

__all__ += ["checkpoint", "interop", "lr_finder", "metrics", "schedules", "save_checkpoint", "load_checkpoint",
            "lr_range_test", "LRRangeResult", "StepLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR"]

# Optimizers and schedules beyond SGD / Adam, torch.optim's names and rules.
from .optim import AdamW, RMSprop  # noqa: E402
from .schedules import MultiStepLR, ReduceLROnPlateau, SequentialLR  # noqa: E402

__all__ += ["AdamW", "RMSprop", "MultiStepLR", "ReduceLROnPlateau", "SequentialLR"]

# Graph containers and modern layers (tinycnn.layers: containers, pointwise, softmax_dim, dropout2d,
# norm, adaptive_pool).
from .layers import (AdaptiveAvgPool2D, AdaptiveMaxPool2D, BatchNorm1D, Concat, Dropout2D, GELU,  # noqa: E402
                     GroupNorm, Identity, LayerNorm, LeakyReLU, LogSoftmax, Residual, SiLU)

__all__ += ["Residual", "Concat", "LeakyReLU", "GELU", "SiLU", "Identity", "LogSoftmax", "Dropout2D",
            "BatchNorm1D", "LayerNorm", "GroupNorm", "AdaptiveAvgPool2D", "AdaptiveMaxPool2D"]
