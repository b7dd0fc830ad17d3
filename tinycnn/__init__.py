"""tinycnn: a convolutional-network engine written from scratch on NumPy and Numba.

Every layer's forward and backward pass is written out by hand (no autograd) and checked against
finite differences, the adjoint identity and PyTorch.
"""
from .layers import AvgPool2D, Conv2D, Dense, Flatten, Layer, MaxPool2D, Parameter, ReLU, Sigmoid
from .losses import SoftmaxCrossEntropy
from .model import Sequential
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = [
    "Parameter", "Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten", "Dense",
    "SoftmaxCrossEntropy", "Sequential", "SGD", "Adam",
]
