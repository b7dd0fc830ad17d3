"""What every layer shares: ``Parameter``, the ``Layer`` base class, and the input checks.

A layer's contract::

    forward(x) -> y          caches what backward needs (as named fields, never a positional tuple)
    backward(grad_y) -> grad_x
                             writes each parameter's ``.grad`` (overwritten, not accumulated)
    parameters() -> list[Parameter]
    named_parameters()       (name, Parameter) pairs, torch's names and order

A layer never updates its own weights: that is the optimizer's job. A layer knows nothing of how it
is run fast: that is the executor's (``tinycnn.fast``), which reads the layer's settings and
parameters and keeps its own caches.
"""
from __future__ import annotations

import numbers

import numpy as np


class Parameter:
    """A trainable array and its gradient.

    ``data``: the values, any shape. ``grad``: same shape and dtype, zeros until a backward pass
    writes it. ``requires_grad`` (torch's name, default True): False freezes the parameter -- every
    optimizer leaves it alone (no update, no weight decay, no change to its momentum or moment
    state), while ``state_dict`` still holds it and backward still writes its ``grad``.
    """

    def __init__(self, data: np.ndarray, requires_grad: bool = True):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.requires_grad = requires_grad

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"Parameter.requires_grad must be True or False, got {flag!r} "
                            f"({type(flag).__name__})")
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Set ``requires_grad`` in place and return the parameter (torch's ``Tensor.requires_grad_``)."""
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        frozen = "" if self._requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


class Layer:
    """Base class. Subclasses implement ``forward`` and ``backward``.

    Parameters are found by looking: every attribute that holds a ``Parameter`` is one, named after
    the attribute, in the order the attributes were set (``weight`` before ``bias``), as torch's
    ``Module`` registers them. Containers of layers override ``named_parameters`` to add their
    children's, prefixed with the child's name.
    """

    training: bool = True

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_y):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def named_parameters(self):
        """``(name, Parameter)`` pairs, as torch's ``named_parameters()`` yields them: ``("weight", w)``,
        ``("bias", b)``."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def named_buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved in ``state_dict`` (e.g. batch norm's running statistics)."""
        return {}

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def requires_grad_(self, requires_grad: bool = True):
        """Freeze (False) or unfreeze (True) every parameter of this layer, its children's included;
        returns the layer (torch's ``Module.requires_grad_``)::

            conv.requires_grad_(False)            # the optimizers leave conv's weight and bias alone
            bn.weight.requires_grad = False       # one parameter: batch norm with a frozen scale
        """
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def train(self, mode: bool = True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

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


def check_image_input(layer, x, dtype=None) -> tuple[np.ndarray, bool]:
    """An image layer's input: (N, C, H, W), or one unbatched (C, H, W) image as torch accepts.

    Returns (x as a C-contiguous (N, C, H, W) floating array, unbatched); the other checks are
    ``check_input``'s. The layer gives its output back without the batch axis when ``unbatched``."""
    ndim = np.ndim(x)
    if ndim == 3:
        return check_input(layer, x, 3, "(C, H, W)", dtype)[None], True
    try:
        return check_input(layer, x, 4, "(N, C, H, W)", dtype), False
    except ValueError as err:
        raise ValueError(f"{err} (a 3-D unbatched input (C, H, W) is accepted too)") from None


def unbatch(y: np.ndarray, unbatched: bool) -> np.ndarray:
    """(N, ...) -> y[0] (a view) when the input was one unbatched image, else y."""
    return y[0] if unbatched else y


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
