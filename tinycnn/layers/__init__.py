"""Layers: forward and backward written by hand, one family per file."""
from .activation import ReLU, Sigmoid
from .base import Layer, Parameter
from .conv import Conv2D
from .dense import Dense, Flatten
from .pool import AvgPool2D, MaxPool2D

__all__ = ["Layer", "Parameter", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "Sigmoid", "Flatten", "Dense"]
