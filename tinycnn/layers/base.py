"""What every layer shares: ``Parameter``, the ``Layer`` base class, and the input checks.

A layer's contract::

    forward(x) -> y          caches what backward needs (as named fields, never a positional tuple)
    backward(grad_y) -> grad_x
                             writes each parameter's ``.grad`` (overwritten, not accumulated)
    parameters() -> list[Parameter]
    per_sample               True when output sample i depends on input sample i only, in the
                             current mode: the batch may then be cut into lanes (``tinycnn.lanes``)

A layer never updates its own weights: that is the optimizer's job.
"""
from __future__ import annotations

import copy
import numbers

import numpy as np


class Parameter:
    """A trainable array and its gradient.

    ``data``: the values, any shape. ``grad``: same shape and dtype, zeros until a backward pass
    writes it.
    """

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"

    @classmethod
    def sharing(cls, other: "Parameter") -> "Parameter":
        """A Parameter whose ``data`` is ``other.data`` itself (not a copy), with its own ``grad``."""
        p = cls.__new__(cls)
        p.data = other.data
        p.grad = np.zeros_like(other.data)
        return p


class Layer:
    """Base class. Subclasses implement ``forward`` and ``backward``."""

    training: bool = True
    # True when ``backward(grad_y, input_grad=False)`` is accepted: the layer then writes its
    # parameters' gradients only and returns None (Sequential asks that of a network's first layer,
    # whose input gradient nobody reads during training, as PyTorch skips it for an input that does
    # not require grad).
    can_skip_input_grad: bool = False
    # True when sample i of the output depends on sample i of the input only, in the current mode,
    # and forward changes no state shared across samples. Then a batch can be cut into slices run
    # on separate threads through ``replica()`` copies (``tinycnn.lanes``) with the same result.
    # False by default, so a layer written by a user is never split unless it says so.
    per_sample: bool = False

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_y):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def named_parameters(self) -> dict[str, Parameter]:
        """Parameters by PyTorch's attribute name (``weight``, ``bias``), in PyTorch's order."""
        return {}

    def named_buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved in ``state_dict`` (e.g. batch norm's running statistics)."""
        return {}

    def parameters(self) -> list[Parameter]:
        return list(self.named_parameters().values())

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def replica(self) -> "Layer":
        """A copy of this layer for another thread (``tinycnn.lanes``): it reads the *same* parameter
        arrays, and has its own gradients and cache. Subclasses with other per-call state (Conv2D's
        workspaces) reset it too."""
        rep = copy.copy(self)
        for name, p in self.named_parameters().items():
            if getattr(self, name, None) is not p:       # the copy would share this gradient: refuse
                raise TypeError(f"{self!r}.replica: parameter {name!r} is not stored as the attribute "
                                f"self.{name}; override replica() for this layer")
            setattr(rep, name, Parameter.sharing(p))
        rep._cache = None
        return rep

    # -- helpers shared by the layers ----------------------------------------------------------

    def _need_cache(self, cache):
        if cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return cache

    def _check_grad(self, grad_y, expected_shape):
        grad_y = np.asarray(grad_y)
        if grad_y.dtype.kind != "f":          # int, bool, object: no silent cast, no Numba traceback
            raise TypeError(f"{self!r}: backward got grad_y of dtype {grad_y.dtype}, but a floating "
                            f"array is needed")
        if grad_y.shape != tuple(expected_shape):
            raise ValueError(
                f"{self!r}: backward got grad_y of shape {grad_y.shape}, but forward produced "
                f"an output of shape {tuple(expected_shape)}"
            )
        return grad_y


def pair(value, name: str, owner: str, *, minimum: int) -> tuple[int, int]:
    """Turn ``k`` or ``(kh, kw)`` into ``(kh, kw)``, checking both are integers >= ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        h, w = value
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be an int or an (h, w) pair, got {value!r}") from None
    for v in (h, w):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"{owner}: {name} must hold integers, got {value!r}")
        if v < minimum:
            raise ValueError(f"{owner}: {name} must be >= {minimum}, got {tuple(value)}")
    return int(h), int(w)


def positive_int(value, name: str, owner: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def check_input(layer, x, ndim: int, layout: str, dtype=None) -> np.ndarray:
    """Validate a layer's input and return it as a C-contiguous floating array.

    Rejects non-arrays of the wrong rank, integer, boolean and object arrays (a silent cast would hide
    a bug such as feeding raw uint8 pixels). Floating input is cast to ``dtype`` when one is given
    (the layer's parameter dtype), else kept. Non-contiguous, Fortran-ordered and negative-stride
    views are copied to C order, so they give exactly the contiguous result.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(
            f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed; convert it first, "
            f"e.g. x.astype(np.float32) / 255 for raw pixels"
        )
    if x.ndim != ndim:
        raise ValueError(
            f"{layer!r}: expected a {ndim}-D input {layout}, got {x.ndim}-D input of shape {x.shape}"
        )
    return np.ascontiguousarray(x, dtype=dtype)


def float_dtype(dtype, owner: str):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{owner}: dtype must be float32 or float64, got {dtype}")
    return dtype


def kaiming_uniform(rng, shape, fan_in: int, dtype) -> np.ndarray:
    """PyTorch's default init for Conv2d/Linear weights and biases.

    ``kaiming_uniform_(w, a=sqrt(5))`` gives bound = gain * sqrt(3 / fan_in) with
    gain = sqrt(2 / (1 + a**2)) = sqrt(1/3), i.e. bound = 1 / sqrt(fan_in). The bias uses the same bound.
    """
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
