"""Shared by the saving and export tests: one example of every layer class, and the list of the
classes tinycnn exports (so a new class without an example, a registry entry or a converter fails)."""
import numpy as np

import tinycnn as tc
from tinycnn.layers import Layer

NESTABLE = hasattr(tc.Sequential, "named_buffers")      # a Sequential that can sit inside another


def has_class(*names):
    return all(isinstance(getattr(tc, n, None), type) for n in names)


# Every layer class tinycnn exports needs an example here (test_every_exported_class_has_an_example):
# name -> (factory(rng) -> layers of a Sequential, per-sample input shape). Non-default arguments
# throughout, so a registry entry that forgets one shows as a different architecture.
EXAMPLES = {
    "Conv2D": (lambda r: [tc.Conv2D(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), bias=False, rng=r)], (3, 9, 8)),
    "MaxPool2D": (lambda r: [tc.MaxPool2D(3, stride=2, padding=1)], (2, 7, 6)),
    "AvgPool2D": (lambda r: [tc.AvgPool2D((2, 3), stride=(1, 2), padding=(1, 1))], (2, 7, 6)),
    "ReLU": (lambda r: [tc.ReLU()], (2, 3, 3)),
    "Sigmoid": (lambda r: [tc.Sigmoid()], (2, 3, 3)),
    "Tanh": (lambda r: [tc.Tanh()], (2, 3, 3)),
    "Flatten": (lambda r: [tc.Flatten()], (2, 3, 3)),
    "Dense": (lambda r: [tc.Flatten(), tc.Dense(18, 5, rng=r), tc.Dense(5, 3, bias=False, rng=r)], (2, 3, 3)),
    "Dropout": (lambda r: [tc.Dropout(0.3, rng=np.random.default_rng(5))], (2, 3, 3)),
    "BatchNorm2D": (lambda r: [tc.BatchNorm2D(2, eps=1e-3, momentum=None), tc.BatchNorm2D(2, affine=False),
                               tc.BatchNorm2D(2, momentum=0.3, track_running_stats=False)], (2, 3, 3)),
    "Softmax": (lambda r: [tc.Flatten(), tc.Softmax()], (2, 3, 3)),
    "Sequential": (lambda r: [tc.Sequential(tc.Conv2D(2, 3, 1, rng=r), tc.ReLU(),
                                            tc.Dropout(0.5, rng=np.random.default_rng(6))), tc.Sequential()],
                   (2, 3, 3)),
    # layers and containers that arrive with the modern-CNN layer set (used once tinycnn has them)
    "LeakyReLU": (lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.LeakyReLU(0.2)], (2, 3, 3)),
    "GELU": (lambda r: [tc.Conv2D(2, 2, 1, rng=r), tc.GELU(approximate="tanh"), tc.GELU()], (2, 3, 3)),
    "SiLU": (lambda r: [tc.SiLU()], (2, 3, 3)),
    "LogSoftmax": (lambda r: [tc.LogSoftmax(dim=1)], (2, 3, 3)),
    "Identity": (lambda r: [tc.Identity()], (2, 3, 3)),
    "Dropout2D": (lambda r: [tc.Dropout2D(0.4)], (2, 3, 3)),
    "BatchNorm1D": (lambda r: [tc.Flatten(), tc.BatchNorm1D(18, eps=1e-4, momentum=0.2)], (2, 3, 3)),
    "LayerNorm": (lambda r: [tc.LayerNorm((3, 3), eps=1e-4)], (2, 3, 3)),
    "GroupNorm": (lambda r: [tc.GroupNorm(2, 4, eps=1e-4)], (4, 3, 3)),
    # sizes that divide the input: ONNX pools express only equal, non-overlapping bins (overlapping
    # bins are covered in tests/test_adaptive_pool.py, and refused by the exporter in test_export.py)
    "AdaptiveAvgPool2D": (lambda r: [tc.AdaptiveAvgPool2D((2, 3))], (2, 4, 6)),
    "AdaptiveMaxPool2D": (lambda r: [tc.AdaptiveMaxPool2D(2)], (2, 4, 6)),
    "Residual": (lambda r: [tc.Residual(tc.Sequential(tc.Conv2D(2, 2, 3, padding=1, rng=r), tc.BatchNorm2D(2),
                                                      tc.ReLU())),
                            tc.Residual(tc.Sequential(tc.Conv2D(2, 4, 3, padding=1, rng=r)),
                                        shortcut=tc.Conv2D(2, 4, 1, bias=False, rng=r))], (2, 5, 5)),
    "Concat": (lambda r: [tc.Concat(tc.Sequential(tc.Conv2D(2, 3, 1, rng=r)),
                                    tc.Sequential(tc.Conv2D(2, 2, 3, padding=1, rng=r), tc.ReLU()))], (2, 5, 5)),
}


def exported_layer_classes() -> dict:
    """Every class ``tinycnn`` exports that goes into a network: Layer subclasses and containers
    (anything with forward and backward), losses left out."""
    found = {}
    for name, obj in vars(tc).items():
        if not isinstance(obj, type) or obj is Layer:
            continue
        if name.endswith(("Loss", "CrossEntropy")):
            continue
        if issubclass(obj, Layer) or (callable(getattr(obj, "forward", None))
                                      and callable(getattr(obj, "backward", None))):
            found[name] = obj
    return found
