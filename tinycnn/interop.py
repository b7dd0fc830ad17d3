"""PyTorch interop: weights and whole models between tinycnn and ``torch.nn.Sequential``.

tinycnn keeps PyTorch's parameter names, shapes and layout (NCHW, weights (out, in, kh, kw)), so
moving weights is a copy, never a reshape::

    to_torch_state_dict(model)          -> {"0.weight": torch.Tensor, ...}  (copies)
    load_torch_state_dict(model, state)    state: a torch state_dict (or an nn.Module); strict
    to_torch_module(model)              -> the equivalent torch.nn.Sequential, weights copied,
                                           in the model's dtype and train/eval mode
    from_torch_module(module)           -> the equivalent tc.Sequential (the way back)

Layer correspondence (looked up by class name, so layers added later need no import here):

    Conv2D      <-> nn.Conv2d      (dilation 1, groups 1, zero padding)
    MaxPool2D   <-> nn.MaxPool2d   (dilation 1, floor mode)
    AvgPool2D   <-> nn.AvgPool2d   (count_include_pad=True, floor mode, no divisor_override)
    Dense       <-> nn.Linear       Flatten <-> nn.Flatten (start_dim 1, end_dim -1)
    ReLU, Sigmoid, Tanh <-> nn.ReLU, nn.Sigmoid, nn.Tanh      Softmax <-> nn.Softmax(dim=1)
    Dropout     <-> nn.Dropout     (each side draws its own masks: equal outputs in eval mode only)
    BatchNorm2D <-> nn.BatchNorm2d (running_mean, running_var, num_batches_tracked)

torch is imported only when one of these functions runs; without it they raise an ImportError
that says how to install it.
"""
from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError as err:
        raise ImportError("tinycnn.interop needs PyTorch, which is not installed; install the CPU build "
                          "with: pip install torch==2.13.0") from err
    return torch


def _torch_dtype(torch, np_dtype):
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(np_dtype)]


def to_torch_state_dict(model) -> dict:
    """``model.state_dict()`` as torch tensors (copies), keys unchanged."""
    torch = _torch()
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in model.state_dict().items()}


def load_torch_state_dict(model, state) -> None:
    """Load a torch ``state_dict`` (or the state of an ``nn.Module``) into ``model``.

    Strict, as ``Sequential.load_state_dict``: missing, extra or mis-shaped keys raise a ValueError
    naming them, and nothing is changed. Values are cast to each tinycnn array's dtype.
    """
    torch = _torch()
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    arrays = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
              for k, v in state.items()}
    model.load_state_dict(arrays)


# -- tinycnn layer -> torch module ------------------------------------------------------------------

def _conv_to_torch(nn, layer):
    return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                     padding=layer.padding, bias=layer.bias is not None)


def _batchnorm_to_torch(nn, layer):
    return nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                          track_running_stats=layer.track_running_stats)


_TO_TORCH = {
    "Conv2D": _conv_to_torch,
    "MaxPool2D": lambda nn, lay: nn.MaxPool2d(lay.kernel_size, stride=lay.stride, padding=lay.padding),
    "AvgPool2D": lambda nn, lay: nn.AvgPool2d(lay.kernel_size, stride=lay.stride, padding=lay.padding,
                                            count_include_pad=True),
    "ReLU": lambda nn, lay: nn.ReLU(),
    "Sigmoid": lambda nn, lay: nn.Sigmoid(),
    "Tanh": lambda nn, lay: nn.Tanh(),
    "Softmax": lambda nn, lay: nn.Softmax(dim=1),
    "Flatten": lambda nn, lay: nn.Flatten(),
    "Dense": lambda nn, lay: nn.Linear(lay.in_features, lay.out_features, bias=lay.bias is not None),
    "Dropout": lambda nn, lay: nn.Dropout(lay.p),
    "BatchNorm2D": _batchnorm_to_torch,
}


def to_torch_module(model):
    """Build the ``torch.nn.Sequential`` equivalent to ``model``, with its weights (copied), in each
    layer's dtype, and in the model's train/eval mode."""
    torch = _torch()
    nn = torch.nn
    modules = []
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__
        build = _TO_TORCH.get(kind)
        if build is None:
            raise TypeError(f"to_torch_module: layer {i} ({layer!r}) has no PyTorch equivalent here; "
                            f"supported: {', '.join(sorted(_TO_TORCH))}")
        module = build(nn, layer)
        if getattr(layer, "dtype", None) is not None:
            module = module.to(_torch_dtype(torch, layer.dtype))     # floating tensors only
        modules.append(module)
    seq = nn.Sequential(*modules)
    seq.load_state_dict(to_torch_state_dict(model), strict=True)
    seq.train(bool(getattr(model, "training", True)))
    return seq


# -- torch module -> tinycnn layer ------------------------------------------------------------------

def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _require(ok: bool, i: int, module, what: str):
    if not ok:
        raise ValueError(f"from_torch_module: module {i} ({module!r}) uses {what}, which tinycnn does not "
                         f"implement")


def _layer_dtype(module):
    tensors = list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]
    if not tensors:
        return None
    name = str(tensors[0].dtype).replace("torch.", "")
    if name not in ("float32", "float64"):
        raise TypeError(f"from_torch_module: {module!r} holds {name} tensors; tinycnn runs float32 or float64")
    return np.dtype(name)


def _cls(name: str):
    """The tinycnn layer class ``name``, looked up at run time."""
    from . import layers
    cls = getattr(layers, name, None)
    if cls is None:
        raise TypeError(f"from_torch_module: this tinycnn has no {name} layer")
    return cls


def _from_torch_layer(i, m):
    kind = type(m).__name__
    dtype = _layer_dtype(m) or np.float32
    init_rng = np.random.default_rng(0)           # weights are overwritten from the module right after
    if kind == "Conv2d":
        _require(isinstance(m.padding, tuple), i, m, f"padding={m.padding!r}")
        _require(_pair(m.dilation) == (1, 1), i, m, f"dilation={m.dilation}")
        _require(m.groups == 1, i, m, f"groups={m.groups}")
        _require(m.padding_mode == "zeros", i, m, f"padding_mode={m.padding_mode!r}")
        return _cls("Conv2D")(m.in_channels, m.out_channels, _pair(m.kernel_size), stride=_pair(m.stride),
                              padding=_pair(m.padding), bias=m.bias is not None, dtype=dtype, rng=init_rng)
    if kind == "Linear":
        return _cls("Dense")(m.in_features, m.out_features, bias=m.bias is not None, dtype=dtype, rng=init_rng)
    if kind == "MaxPool2d":
        _require(_pair(m.dilation) == (1, 1), i, m, f"dilation={m.dilation}")
        _require(not m.ceil_mode and not m.return_indices, i, m, "ceil_mode or return_indices")
        return _cls("MaxPool2D")(_pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding))
    if kind == "AvgPool2d":
        _require(m.count_include_pad, i, m, "count_include_pad=False")
        _require(not m.ceil_mode and m.divisor_override is None, i, m, "ceil_mode or divisor_override")
        return _cls("AvgPool2D")(_pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding))
    if kind == "Flatten":
        _require(m.start_dim == 1 and m.end_dim == -1, i, m, f"start_dim={m.start_dim}, end_dim={m.end_dim}")
        return _cls("Flatten")()
    if kind == "Softmax":
        _require(m.dim == 1, i, m, f"dim={m.dim}")
        return _cls("Softmax")()
    if kind == "BatchNorm2d":
        return _cls("BatchNorm2D")(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                   track_running_stats=m.track_running_stats, dtype=dtype)
    if kind == "Dropout":
        return _cls("Dropout")(m.p)
    if kind in ("ReLU", "Sigmoid", "Tanh"):
        return _cls(kind)()
    raise TypeError(f"from_torch_module: module {i} ({m!r}) has no tinycnn equivalent; supported: Conv2d, "
                    f"Linear, MaxPool2d, AvgPool2d, Flatten, ReLU, Sigmoid, Tanh, Softmax, Dropout, BatchNorm2d")


def from_torch_module(module):
    """Build the ``tc.Sequential`` equivalent to a ``torch.nn.Sequential``, weights copied, in the
    module's dtype and train/eval mode. Options tinycnn lacks (dilation, groups, ceil_mode, ...)
    raise a ValueError naming the module."""
    torch = _torch()
    from .model import Sequential

    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"from_torch_module: expected a torch.nn.Sequential, got {type(module).__name__}")
    model = Sequential(*[_from_torch_layer(i, m) for i, m in enumerate(module)])
    load_torch_state_dict(model, module.state_dict())
    model.train(module.training)
    return model
