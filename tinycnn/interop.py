"""PyTorch interop: weights and whole models between tinycnn and ``torch.nn.Sequential``.

tinycnn keeps PyTorch's parameter names, shapes and layout (NCHW, weights (out, in, kh, kw)), so
moving weights is a copy, never a reshape::

    to_torch_state_dict(model)          -> {"0.weight": torch.Tensor, ...}  (copies)
    load_torch_state_dict(model, state)    state: a torch state_dict (or an nn.Module); strict
    to_torch_module(model)              -> the equivalent torch.nn.Sequential, weights copied,
                                           in the model's dtype and train/eval mode
    from_torch_module(module)           -> the equivalent tc.Sequential (the way back)

Layer correspondence (looked up by class name, so layers added later need no import here):

    Conv2D      <-> nn.Conv2d      (every option both ways: stride, padding as numbers, 'same' or
                                    'valid', dilation, groups, bias, padding_mode)
    MaxPool2D   <-> nn.MaxPool2d   (every option both ways but return_indices=True, which is refused:
                                    a tinycnn layer returns one array)
    AvgPool2D   <-> nn.AvgPool2d   (every option both ways: ceil_mode, count_include_pad,
                                    divisor_override)
    Dense       <-> nn.Linear       Flatten <-> nn.Flatten (start_dim 1, end_dim -1)
    ReLU, Sigmoid, Tanh <-> nn.ReLU, nn.Sigmoid, nn.Tanh      Softmax <-> nn.Softmax(dim=1)
    Dropout     <-> nn.Dropout     (each side draws its own masks: equal outputs in eval mode only)
    LeakyReLU, GELU, SiLU, Identity, LogSoftmax <-> their nn namesakes   Dropout2D <-> nn.Dropout2d
    BatchNorm1D, LayerNorm, GroupNorm <-> nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm
    AdaptiveAvgPool2D, AdaptiveMaxPool2D <-> nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d (no return_indices)
    nn.Softmax(dim=d), d != 1 -> tinycnn.layers.softmax.Softmax(d)
    BatchNorm2D <-> nn.BatchNorm2d (running_mean, running_var, num_batches_tracked)

Graphs (``tinycnn.layers.containers``), inside the top-level Sequential:

    Residual(block, shortcut, post) <-> a module with children ``block``, ``shortcut`` (optional),
                  ``post`` (optional) whose forward computes post(block(x) + shortcut(x)) (``x``
                  itself without a shortcut; ``F.relu`` / ``torch.relu`` serve as the post too)
    Concat(*branches, dim)          <-> a module with children ``0``, ``1``, ... (an nn.ModuleList)
                  whose forward computes torch.cat([self[0](x), self[1](x), ...], dim)
    a child that is a chain         <-> nn.Sequential

``from_torch_module`` reads what such a module's forward really computes with ``torch.fx`` (every
child a leaf) and maps it only when the traced graph is exactly one of these forms, with the child
names above (so the state_dict keys agree); anything else is refused with the module's path (e.g.
``3.block.1``) and the reason. ``to_torch_module`` builds them from ``torch_residual_class()`` and
``torch_concat_class()``, small nn.Module classes of that form.

torch is imported only when one of these functions runs; without it they raise an ImportError
that says how to install it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .model import Sequential


def _torch():
    try:
        import torch
    except ImportError as err:
        raise ImportError("tinycnn.interop needs PyTorch, which is not installed; install the CPU build "
                          "with: pip install torch==2.13.0") from err
    return torch


def _torch_dtype(torch, np_dtype):
    return {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(np_dtype)]


def to_torch_state_dict(model: Sequential) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` as torch tensors (copies), keys unchanged."""
    torch = _torch()
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in model.state_dict().items()}


def load_torch_state_dict(model: Sequential, state: Mapping[str, object] | torch.nn.Module) -> None:
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
                     padding=layer.padding, dilation=getattr(layer, "dilation", 1), groups=getattr(layer, "groups", 1),
                     bias=layer.bias is not None, padding_mode=getattr(layer, "padding_mode", "zeros"))


def _batchnorm_to_torch(nn, layer):
    return nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                          track_running_stats=layer.track_running_stats)


_TO_TORCH = {
    "Conv2D": _conv_to_torch,
    "MaxPool2D": lambda nn, lay: nn.MaxPool2d(lay.kernel_size, stride=lay.stride, padding=lay.padding,
                                            dilation=getattr(lay, "dilation", 1),
                                            ceil_mode=getattr(lay, "ceil_mode", False)),
    "AvgPool2D": lambda nn, lay: nn.AvgPool2d(lay.kernel_size, stride=lay.stride, padding=lay.padding,
                                            ceil_mode=getattr(lay, "ceil_mode", False),
                                            count_include_pad=getattr(lay, "count_include_pad", True),
                                            divisor_override=getattr(lay, "divisor_override", None)),
    "ReLU": lambda nn, lay: nn.ReLU(),
    "Sigmoid": lambda nn, lay: nn.Sigmoid(),
    "Tanh": lambda nn, lay: nn.Tanh(),
    "Softmax": lambda nn, lay: nn.Softmax(dim=getattr(lay, "dim", 1)),
    "Flatten": lambda nn, lay: nn.Flatten(),
    "Dense": lambda nn, lay: nn.Linear(lay.in_features, lay.out_features, bias=lay.bias is not None),
    "Dropout": lambda nn, lay: nn.Dropout(lay.p),
    "BatchNorm2D": _batchnorm_to_torch,
    # the layers of pointwise.py, softmax.py, dropout2d.py, norm.py, adaptive_pool.py
    "LeakyReLU": lambda nn, lay: nn.LeakyReLU(lay.negative_slope),
    "GELU": lambda nn, lay: nn.GELU(approximate=lay.approximate),
    "SiLU": lambda nn, lay: nn.SiLU(),
    "Identity": lambda nn, lay: nn.Identity(),
    "LogSoftmax": lambda nn, lay: nn.LogSoftmax(dim=lay.dim),
    "Dropout2D": lambda nn, lay: nn.Dropout2d(lay.p),
    "BatchNorm1D": lambda nn, lay: nn.BatchNorm1d(lay.num_features, eps=lay.eps, momentum=lay.momentum,
                                                  affine=lay.affine, track_running_stats=lay.track_running_stats),
    "LayerNorm": lambda nn, lay: nn.LayerNorm(lay.normalized_shape, eps=lay.eps,
                                              elementwise_affine=lay.elementwise_affine, bias=lay.bias is not None),
    "GroupNorm": lambda nn, lay: nn.GroupNorm(lay.num_groups, lay.num_channels, eps=lay.eps, affine=lay.affine),
    "AdaptiveAvgPool2D": lambda nn, lay: nn.AdaptiveAvgPool2d(lay.output_size),
    "AdaptiveMaxPool2D": lambda nn, lay: nn.AdaptiveMaxPool2d(lay.output_size),
}


def _torch_container_classes():
    """The torch modules that mirror Residual and Concat (made once, when torch is first needed)."""
    global _TORCH_CONTAINERS
    if _TORCH_CONTAINERS is None:
        nn = _torch().nn

        class Residual(nn.Module):
            """post(block(x) + shortcut(x)); a missing shortcut or post is the identity."""

            def __init__(self, block, shortcut=None, post=None):
                super().__init__()
                self.block = block
                self.shortcut = shortcut
                self.post = post

            def forward(self, x):
                out = self.block(x) + (x if self.shortcut is None else self.shortcut(x))
                return out if self.post is None else self.post(out)

        class Concat(nn.ModuleList):
            """torch.cat([branch(x) for branch in self], dim)."""

            def __init__(self, branches, dim=1):
                super().__init__(branches)
                self.dim = dim

            def forward(self, x):
                import torch
                return torch.cat([branch(x) for branch in self], self.dim)

        Residual.__module__ = Concat.__module__ = __name__
        _TORCH_CONTAINERS = (Residual, Concat)
    return _TORCH_CONTAINERS


_TORCH_CONTAINERS = None


def torch_residual_class() -> type:
    """The nn.Module class ``to_torch_module`` builds for a Residual (children block, shortcut, post)."""
    return _torch_container_classes()[0]


def torch_concat_class() -> type:
    """The nn.ModuleList subclass ``to_torch_module`` builds for a Concat (children 0, 1, ...; ``dim``)."""
    return _torch_container_classes()[1]


def _to_torch(torch, layer, path: str):
    """The torch module for one tinycnn layer, container or Sequential (``path``: its key prefix)."""
    nn = torch.nn
    kind = type(layer).__name__
    chain = getattr(layer, "layers", None)
    if isinstance(chain, list):                                       # a Sequential inside a container
        return nn.Sequential(*[_to_torch(torch, sub, f"{path}.{i}") for i, sub in enumerate(chain)])
    if kind == "Residual" and hasattr(layer, "named_children"):
        kids = dict(layer.named_children())
        convert = {k: _to_torch(torch, c, f"{path}.{k}") for k, c in kids.items()}
        return torch_residual_class()(convert["block"], convert.get("shortcut"), convert.get("post"))
    if kind == "Concat" and hasattr(layer, "named_children"):
        return torch_concat_class()([_to_torch(torch, c, f"{path}.{k}") for k, c in layer.named_children()],
                                    dim=layer.dim)
    build = _TO_TORCH.get(kind)
    if build is None:
        raise TypeError(f"to_torch_module: layer {path} ({layer!r}) has no PyTorch equivalent here; "
                        f"supported: {', '.join(sorted(_TO_TORCH))}, Residual, Concat")
    module = build(nn, layer)
    if getattr(layer, "dtype", None) is not None:
        module = module.to(_torch_dtype(torch, layer.dtype))     # floating tensors only
    return module


def to_torch_module(model: Sequential) -> torch.nn.Sequential:
    """Build the ``torch.nn.Sequential`` equivalent to ``model``, with its weights (copied), in each
    layer's dtype, and in the model's train/eval mode. Residual and Concat become the modules of
    ``torch_residual_class()`` / ``torch_concat_class()``, with the same state_dict keys."""
    torch = _torch()
    seq = torch.nn.Sequential(*[_to_torch(torch, layer, str(i)) for i, layer in enumerate(model.layers)])
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


def _build(i, module, name: str, *args, **kwargs):
    """``name(*args, **kwargs)``; a setting the tinycnn layer refuses (one torch too refuses, but only
    when the module runs, such as pooling padding over half the kernel) names the torch module."""
    try:
        return _cls(name)(*args, **kwargs)
    except (ValueError, TypeError) as err:
        raise ValueError(f"from_torch_module: module {i} ({module!r}) cannot be built as a tinycnn {name}: "
                         f"{err}") from err


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


_FROM_TORCH_LEAVES = {"Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "Flatten", "Softmax", "BatchNorm2d",
                      "Dropout", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "GELU", "SiLU", "Identity", "LogSoftmax",
                      "Dropout2d", "BatchNorm1d", "LayerNorm", "GroupNorm", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"}


def _from_torch_layer(i, m):
    kind = type(m).__name__
    dtype = _layer_dtype(m) or np.float32
    init_rng = np.random.default_rng(0)           # weights are overwritten from the module right after
    if kind == "Conv2d":
        padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)      # 'same' / 'valid' / (h, w)
        return _build(i, m, "Conv2D", m.in_channels, m.out_channels, _pair(m.kernel_size), stride=_pair(m.stride),
                      padding=padding, bias=m.bias is not None, dilation=_pair(m.dilation), groups=m.groups,
                      padding_mode=m.padding_mode, dtype=dtype, rng=init_rng)
    if kind == "Linear":
        return _cls("Dense")(m.in_features, m.out_features, bias=m.bias is not None, dtype=dtype, rng=init_rng)
    if kind == "MaxPool2d":
        _require(not m.return_indices, i, m, "return_indices=True (a tinycnn layer returns one array)")
        return _build(i, m, "MaxPool2D", _pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding),
                      dilation=_pair(m.dilation), ceil_mode=bool(m.ceil_mode))
    if kind == "AvgPool2d":
        return _build(i, m, "AvgPool2D", _pair(m.kernel_size), stride=_pair(m.stride), padding=_pair(m.padding),
                      ceil_mode=bool(m.ceil_mode), count_include_pad=bool(m.count_include_pad),
                      divisor_override=m.divisor_override)
    if kind == "Flatten":
        _require(m.start_dim == 1 and m.end_dim == -1, i, m, f"start_dim={m.start_dim}, end_dim={m.end_dim}")
        return _cls("Flatten")()
    if kind == "Softmax":
        if m.dim == 1:
            return _cls("Softmax")()
        _require(isinstance(m.dim, int), i, m, f"dim={m.dim} (an implicit dim)")
        from .layers.softmax import Softmax as SoftmaxAlong
        return SoftmaxAlong(m.dim)
    if kind == "LogSoftmax":
        _require(isinstance(m.dim, int), i, m, f"dim={m.dim} (an implicit dim)")
        return _cls("LogSoftmax")(m.dim)
    if kind == "LeakyReLU":
        return _cls("LeakyReLU")(m.negative_slope)
    if kind == "GELU":
        return _cls("GELU")(m.approximate)
    if kind in ("SiLU", "Identity"):
        return _cls(kind)()
    if kind == "Dropout2d":
        return _cls("Dropout2D")(m.p)
    if kind == "BatchNorm1d":
        return _cls("BatchNorm1D")(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                   track_running_stats=m.track_running_stats, dtype=dtype)
    if kind == "LayerNorm":
        return _cls("LayerNorm")(m.normalized_shape, eps=m.eps, elementwise_affine=m.elementwise_affine,
                                 bias=m.bias is not None, dtype=dtype)
    if kind == "GroupNorm":
        return _cls("GroupNorm")(m.num_groups, m.num_channels, eps=m.eps, affine=m.affine, dtype=dtype)
    if kind in ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d"):
        _require(not getattr(m, "return_indices", False), i, m, "return_indices=True")
        return _cls(kind[:-1] + "D")(m.output_size)
    if kind == "BatchNorm2d":
        return _cls("BatchNorm2D")(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                                   track_running_stats=m.track_running_stats, dtype=dtype)
    if kind == "Dropout":
        return _cls("Dropout")(m.p)
    if kind in ("ReLU", "Sigmoid", "Tanh"):
        return _cls(kind)()
    raise TypeError(f"from_torch_module: module {i} ({m!r}) has no tinycnn equivalent; supported: "
                    f"{', '.join(sorted(_FROM_TORCH_LEAVES))}, and nn.Sequential / residual / concatenation "
                    f"modules of them")


# -- torch module trees -> containers (read with torch.fx) ----------------------------------------

def _refuse(path, module, reason: str):
    raise ValueError(f"from_torch_module: module {path} ({type(module).__name__}) cannot be mapped: {reason}")


def _traced_expression(path, module):
    """What ``module.forward`` computes, as a nested tuple over its direct children:

        ("x",)                      the input
        ("mod", name, e)            child ``name`` applied to e
        ("add", e1, e2)             e1 + e2 (operator.add / iadd, torch.add, Tensor.add)
        ("relu", e)                 F.relu / torch.relu / Tensor.relu
        ("cat", [e, ...], dim)      torch.cat

    read from a torch.fx trace in which every child module is a leaf. Anything else is refused."""
    import operator

    torch = _torch()
    from torch import fx

    class _ChildrenAsLeaves(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return True

    try:
        graph = _ChildrenAsLeaves().trace(module)
    except Exception as err:                      # noqa: BLE001 - any tracing failure is a refusal
        _refuse(path, module, f"torch.fx could not trace its forward to see what it computes ({err})")
    adds = {operator.add, operator.iadd, torch.add}
    relus = {torch.relu, torch.nn.functional.relu}
    env, result = {}, None
    for node in graph.nodes:
        def arg(a):
            if not isinstance(a, fx.Node):
                # arg is only called inside the iteration that defines it, so node is never stale.
                _refuse(path, module,
                        f"its forward uses a constant {a!r} in {node.format_node()}")  # noqa: B023
            return env[a.name]
        if node.op == "placeholder":
            if env:
                _refuse(path, module, "its forward takes more than one input")
            env[node.name] = ("x",)
        elif node.op == "call_module" and len(node.args) == 1 and not node.kwargs:
            env[node.name] = ("mod", str(node.target), arg(node.args[0]))
        elif ((node.op == "call_function" and node.target in adds)
              or (node.op == "call_method" and node.target in ("add", "add_"))) \
                and len(node.args) == 2 and not node.kwargs:
            env[node.name] = ("add", arg(node.args[0]), arg(node.args[1]))
        elif ((node.op == "call_function" and node.target in relus)
              or (node.op == "call_method" and node.target in ("relu", "relu_"))) \
                and len(node.args) == 1 and not any(v for k, v in node.kwargs.items() if k != "inplace"):
            env[node.name] = ("relu", arg(node.args[0]))
        elif node.op == "call_function" and node.target is torch.cat:
            tensors = node.args[0] if node.args else node.kwargs.get("tensors")
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
                _refuse(path, module, f"its forward calls torch.cat in a form not read here: {node.format_node()}")
            env[node.name] = ("cat", [arg(t) for t in tensors], dim)
        elif node.op == "output":
            result = arg(node.args[0])
        else:
            _refuse(path, module, f"its forward computes {node.format_node()!r}, which is neither a child "
                                  f"module, an addition, a ReLU nor a torch.cat; only residual "
                                  f"(post(block(x) + shortcut(x))) and concatenation (torch.cat of "
                                  f"branches) modules map to tinycnn containers")
    return result


def _child_on_x(e):
    """``name`` for ("mod", name, ("x",)), "x" for ("x",), else None."""
    if e == ("x",):
        return "x"
    if e[0] == "mod" and e[2] == ("x",):
        return e[1]
    return None


def _from_torch_graph(path, m):
    """A Residual or Concat for a torch module whose traced forward has one of their forms."""
    from .layers.containers import Concat, Residual

    if list(m.named_parameters(recurse=False)) or list(m.named_buffers(recurse=False)):
        _refuse(path, m, "it holds parameters or buffers of its own (outside its children)")
    names = [n for n, _ in m.named_children()]
    expr = _traced_expression(path, m)
    used: list[str] = []

    def child(name):
        used.append(name)
        return _from_torch(f"{path}.{name}", m.get_submodule(name))

    if expr[0] == "cat":
        branches, dim = expr[1], expr[2]
        order = [_child_on_x(e) for e in branches]
        if any(o in (None, "x") for o in order):
            _refuse(path, m, f"its torch.cat joins {branches}; each piece must be one child applied to the input")
        if order != [str(i) for i in range(len(order))]:
            _refuse(path, m, f"its torch.cat joins the children {order} in that order; tinycnn's Concat keys its "
                             f"branches 0, 1, ... (an nn.ModuleList) in concatenation order, so the state_dict "
                             f"keys would differ")
        if dim == 0:
            _refuse(path, m, "it concatenates along dim 0, the batch axis")
        built = [child(o) for o in order]
        extra = [n for n in names if n not in used]
        if extra:
            _refuse(path, m, f"its children {extra} are not used by its forward")
        return Concat(*built, dim=dim)
    post = None
    if expr[0] in ("mod", "relu") and expr[-1][0] == "add":
        post, expr = expr, expr[-1]
    if expr[0] != "add":
        _refuse(path, m, f"its forward computes {expr}, which is neither post(block(x) + shortcut(x)) nor a "
                         f"torch.cat of branches")
    operands = sorted((_child_on_x(expr[1]), _child_on_x(expr[2])), key=lambda o: o != "block")
    if operands[0] != "block" or operands[1] not in ("x", "shortcut"):
        _refuse(path, m, f"its forward adds {expr[1]} and {expr[2]}; tinycnn's Residual needs block(x) + "
                         f"shortcut(x) or block(x) + x, from children named 'block' and 'shortcut' (so the "
                         f"state_dict keys agree); this module's children are {names}")
    block = child("block")
    shortcut = child("shortcut") if operands[1] == "shortcut" else None
    post_layer = None
    if post is not None:
        if post[0] == "relu":
            post_layer = _cls("ReLU")()
        elif post[1] == "post":
            post_layer = child("post")
        else:
            _refuse(path, m, f"the layer after the addition is the child {post[1]!r}; tinycnn's Residual "
                             f"calls it 'post'")
    extra = [n for n in names if n not in used and not (n == "post" and post is not None)]
    if extra:
        _refuse(path, m, f"its children {extra} are not used by its forward")
    return Residual(block, shortcut=shortcut, post=post_layer)


def _from_torch(path: str, m):
    """The tinycnn layer for torch module ``m`` at key prefix ``path``."""
    torch = _torch()
    if isinstance(m, torch.nn.Sequential):
        from .model import Sequential
        inner = [_from_torch(f"{path}.{i}", sub) for i, sub in enumerate(m)]
        for i, sub in enumerate(inner):
            if isinstance(sub, Sequential):
                _refuse(f"{path}.{i}", m[i], "an nn.Sequential directly inside an nn.Sequential; tinycnn's "
                                             "Sequential does not nest (put it inside a Residual/Concat, or "
                                             "flatten it, which renumbers the keys)")
        return Sequential(*inner)
    if type(m).__name__ in _FROM_TORCH_LEAVES or not list(m.children()):
        return _from_torch_layer(path, m)
    return _from_torch_graph(path, m)


def from_torch_module(module: torch.nn.Sequential) -> Sequential:
    """Build the ``tc.Sequential`` equivalent to a ``torch.nn.Sequential``, weights copied, in the
    module's dtype and train/eval mode. Options tinycnn lacks (MaxPool2d's return_indices, ...) and
    settings its layers refuse raise a ValueError naming the module; modules with children become
    Residual / Concat when their forward has one of those forms (see the module docstring), else are
    refused with the reason."""
    torch = _torch()
    from .model import Sequential

    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"from_torch_module: expected a torch.nn.Sequential, got {type(module).__name__}")
    layers = [_from_torch(str(i), m) for i, m in enumerate(module)]
    for i, layer in enumerate(layers):
        if isinstance(layer, Sequential):
            _refuse(str(i), module[i], "an nn.Sequential directly inside the top-level nn.Sequential; tinycnn's "
                                       "Sequential does not nest (put it inside a Residual/Concat, or flatten "
                                       "it, which renumbers the keys)")
    model = Sequential(*layers)
    load_torch_state_dict(model, module.state_dict())
    model.train(module.training)
    return model
