"""Sequential: a stack of layers run forward in order and backward in reverse.

``state_dict`` keys are torch.nn.Sequential's: ``"<index>.<name>"`` for each layer's parameters
(``weight``, ``bias``) and buffers (e.g. ``running_mean``), in PyTorch's order, so
``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})``
works for the same architecture.

Shapes: ``Sequential(*layers, input_shape=(C, H, W))`` checks every layer's input when it is built
(see ``tinycnn.shapes``); without ``input_shape`` the check runs at the first forward, on the batch's
per-sample shape. ``summary()`` prints per-layer shapes, parameters, multiply-adds and memory.

Two ways to train the same model: the PyTorch-style loop (``zero_grad``, forward, loss, ``backward``,
``step``, all written by you) or the Keras-style ``compile`` / ``fit`` / ``evaluate`` / ``predict``,
whose machinery lives in ``tinycnn.training``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from . import fast, shapes
from . import training as fit_api
from ._typing import PathLike, Shape
from .layers.base import Layer, Parameter

if TYPE_CHECKING:
    from .callbacks import Callback
    from .losses import SoftmaxCrossEntropy
    from .optim import Optimizer

# What fit / evaluate take: arrays (x, y), or x an iterable of (x, y) batches and y None
XYBatches = Iterable[tuple[np.ndarray, np.ndarray]]


class Sequential:
    def __init__(self, *layers: Layer | Sequential, input_shape: Shape | None = None) -> None:
        for i, layer in enumerate(layers):
            if not hasattr(layer, "forward") or not hasattr(layer, "backward"):
                raise TypeError(f"Sequential: item {i} ({layer!r}) is not a layer (no forward/backward)")
        self.layers = list(layers)
        self.training = True
        self.input_shape: tuple | None = None     # per sample (C, H, W): given, or the first forward's
        self._shape_records = None                # [shapes.LayerShape] for input_shape
        self._checked_shapes: set = set()         # per-sample shapes already checked
        self.stop_training = False                # set by callbacks (EarlyStopping) during fit
        self.compiled: fit_api.Compiled | None = None
        self._plans: dict = {}                    # the executor's plans, by layers (see plan())
        self._last_plan: fast.Plan | None = None  # the plan the last forward ran, for backward
        if input_shape is not None:
            self.build(input_shape)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer | Sequential:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer | Sequential]:
        return iter(self.layers)

    def __call__(self, x: ArrayLike) -> np.ndarray:
        return self.forward(x)

    def build(self, input_shape: Shape, *, source: str = "input_shape") -> list[shapes.LayerShape]:
        """Check every layer against per-sample ``input_shape`` (C, H, W); raise ``ShapeError`` naming
        the first layer that cannot take its input. Returns the per-layer shapes."""
        input_shape = tuple(int(d) for d in input_shape)
        records = shapes.infer_shapes(self.layers, input_shape, source=source)
        if self.input_shape is None:
            self.input_shape, self._shape_records = input_shape, records
        self._checked_shapes.add(input_shape)
        return records

    def summary(self, batch_size: int = 32, *, input_shape: Shape | None = None,
                print_fn: Callable[[str], object] | None = print) -> str:
        """Print (and return) per layer: output shape, parameters, multiply-adds, activation memory and
        Conv2D's im2col buffer; then the totals for ``batch_size`` images."""
        if input_shape is None and self.input_shape is None:
            raise ValueError("Sequential.summary: the input shape is not known yet; pass "
                             "input_shape=(C, H, W) to Sequential or summary(), or run one forward first")
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        records = self.build(shape) if input_shape is not None else self._shape_records
        params = self.parameters()
        dtype = params[0].data.dtype if params else np.float32
        frozen = sum(p.data.size for p in params if not p.requires_grad)
        text = shapes.summary_text(records, shape, batch_size, dtype, frozen_params=frozen)
        if print_fn is not None:
            print_fn(text)
        return text

    def output_shape(self, in_shape: Shape) -> Shape:
        """Per-sample shape in -> per-sample shape out, checking every layer (a Sequential nested in
        another network, or in a residual block)."""
        records = shapes.infer_shapes(self.layers, tuple(int(d) for d in in_shape), source="its input")
        return records[-1].out_shape if records else tuple(in_shape)

    def add(self, layer: Layer | Sequential) -> None:
        """Append a layer (Keras's ``model.add``); shapes are checked again at the next forward."""
        if not hasattr(layer, "forward") or not hasattr(layer, "backward"):
            raise TypeError(f"Sequential.add: {layer!r} is not a layer (no forward/backward)")
        self.layers.append(layer)
        self._shape_records, self._checked_shapes = None, set()
        if self.input_shape is not None:
            shape, self.input_shape = self.input_shape, None
            self.build(shape)

    def count_params(self, trainable_only: bool = False) -> int:
        """Number of numbers in the parameters (Keras's ``count_params``: frozen ones included);
        ``trainable_only=True`` counts only parameters with ``requires_grad`` True."""
        return int(sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only))

    def requires_grad_(self, requires_grad: bool = True) -> Sequential:
        """Freeze (False) or unfreeze (True) every parameter; returns the model (torch's
        ``Module.requires_grad_``). One layer: ``model[0].requires_grad_(False)``."""
        for layer in self.layers:
            layer.requires_grad_(requires_grad)
        return self

    def forward(self, x: ArrayLike) -> np.ndarray:
        """x: (N, ...) -> the last layer's output. Runs through the executor's plan
        (``tinycnn.fast``), or the layers' own code when the executor is off."""
        x = np.asarray(x)
        if x.ndim >= 2 and x.shape[1:] not in self._checked_shapes:
            self.build(x.shape[1:], source=f"the batch of shape {x.shape} passed to forward")
        self._last_plan = self.plan(plain=not fast.runs_fast(x))
        return self._last_plan.forward(x)

    def backward(self, grad_y: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """grad_y: gradient of the loss w.r.t. the output -> gradient w.r.t. the input; every parameter's
        ``.grad`` is written on the way. ``input_grad=False`` (what ``fit`` and ``tinycnn train`` use)
        returns None and lets the executor skip the work whose only product is the input gradient."""
        if self._last_plan is None:
            last = f"{self.layers[-1]!r}: " if self.layers else ""
            raise RuntimeError(f"{last}backward() called before forward()")
        return self._last_plan.backward(grad_y, input_grad)

    def forward_through(self, layers: Sequence[Layer | Sequential], x: ArrayLike) -> np.ndarray:
        """Forward through ``layers``, the first layers of this model (``fit`` stops before a trailing
        Softmax, whose work the loss does); ``backward`` then runs back through the same layers."""
        self._last_plan = self.plan(layers, plain=not fast.runs_fast(x))
        return self._last_plan.forward(np.asarray(x))

    def plan(self, layers: Sequence[Layer | Sequential] | None = None, *, plain: bool = False) -> fast.Plan:
        """The plan that runs ``layers`` (default: all of this model's), made once and kept while the
        layers stay the same. ``plain=True``: every layer on its own code (the executor turned off)."""
        layers = self.layers if layers is None else list(layers)
        key = (tuple(id(layer) for layer in layers), plain)
        if key not in self._plans:
            if len(self._plans) >= 4:                 # layers were replaced: forget the old plans
                self._plans.clear()
            self._plans[key] = fast.compile(layers, plain=plain)
        return self._plans[key]

    # -- Keras-style front end (machinery in tinycnn.training) ---------------------------------------

    def compile(self, optimizer: str | Optimizer = "sgd",
                loss: str | SoftmaxCrossEntropy = "sparse_categorical_crossentropy",
                metrics: str | Callable | Sequence[str | Callable] | None = None, lr: float | None = None,
                seed: int = fit_api.DEFAULT_SEED) -> Sequential:
        """Choose optimizer ('sgd', 'adam' or an optimizer object), loss and metrics for ``fit``.
        ``seed`` seeds the generator that shuffles the data in ``fit``. See ``tinycnn.training.compile_model``."""
        self.compiled = fit_api.compile_model(self, optimizer, loss, metrics, lr=lr, seed=seed)
        return self

    def save(self, path: PathLike, optimizer: Optimizer | None = None, **options: bool) -> None:
        """Architecture, weights and (optionally) optimizer state in one file; ``tinycnn.load_model``
        reads it back. See ``tinycnn.saving.save_model``."""
        from .saving import save_model  # saving imports this module
        return save_model(self, path, optimizer, **options)

    @property
    def optimizer(self) -> Optimizer | None:
        """The optimizer ``compile`` chose (Keras's ``model.optimizer``); None before ``compile``."""
        return self.compiled.optimizer if self.compiled is not None else None

    def fit(self, x: np.ndarray | XYBatches, y: np.ndarray | None = None, epochs: int = 1,
            batch_size: int | None = None, validation_split: float = 0.0,
            validation_data: tuple[np.ndarray, np.ndarray] | XYBatches | None = None,
            shuffle: bool = True, callbacks: Sequence[Callback] | None = None, verbose: int = 1,
            rng: np.random.Generator | None = None, class_weight: dict[int, float] | None = None,
            sample_weight: ArrayLike | None = None, initial_epoch: int = 0) -> fit_api.History:
        """Train on NCHW arrays ``x`` and labels ``y``, or on an iterable of ``(x, y)`` batches ``x``
        (re-iterated every epoch, e.g. a ``tinycnn.data`` pipeline with augmentation); returns a
        ``History``. See ``tinycnn.training.fit``."""
        return fit_api.fit(self, x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                           validation_data=validation_data, shuffle=shuffle, callbacks=callbacks, verbose=verbose,
                           rng=rng, class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch)

    def evaluate(self, x: np.ndarray | XYBatches, y: np.ndarray | None = None, batch_size: int | None = None,
                 verbose: int = 0, return_dict: bool = False, sample_weight: ArrayLike | None = None,
                 tta: str | None = None) -> float | list[float] | dict[str, float]:
        """Loss and metrics on ``(x, y)`` (or an iterable of batches) in eval mode, as Keras returns them:
        the loss alone when no metrics were compiled, else ``[loss, metric1, ...]``; ``return_dict=True``
        gives ``{"loss": 0.9, "accuracy": 0.7}``. tta: test-time augmentation, None, "flip" or
        "flip-translate" (``tinycnn.tta``)."""
        return fit_api.evaluate(self, x, y, batch_size=batch_size, verbose=verbose, return_dict=return_dict,
                                sample_weight=sample_weight, tta=tta)

    def predict(self, x: ArrayLike, batch_size: int = 32, tta: str | None = None) -> np.ndarray:
        """Class probabilities (N, K), in eval mode; softmax applied exactly once. tta: as ``evaluate``."""
        return fit_api.predict(self, x, batch_size=batch_size, tta=tta)

    def predict_classes(self, x: ArrayLike, batch_size: int = 32) -> np.ndarray:
        """Most probable class per sample: int64 (N,)."""
        return self.predict(x, batch_size=batch_size).argmax(axis=1)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``("0.weight", Parameter)`` pairs, torch.nn.Sequential's names, in its order."""
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"{i}.{name}", p

    def named_buffers(self) -> dict[str, np.ndarray]:
        """Every layer's buffers, keyed ``"<index>.<name>"`` as torch.nn.Sequential keys them."""
        return {f"{i}.{name}": buf for i, layer in enumerate(self.layers)
                for name, buf in layer.named_buffers().items()}

    def named_children(self) -> list[tuple[str, Layer | Sequential]]:
        """``("0", layer)`` pairs, as torch's ``named_children()``."""
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def train(self, mode: bool = True) -> Sequential:
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)

    # -- state ---------------------------------------------------------------------------------

    def _state_slots(self) -> dict[str, tuple]:
        """key -> (owner, attribute name, array) for every parameter and buffer, in torch's order."""
        slots = {}
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                slots[f"{i}.{name}"] = (p, "data", p.data)
            for name, buf in layer.named_buffers().items():
                slots[f"{i}.{name}"] = (layer, name, buf)
        return slots

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed as torch.nn.Sequential keys them."""
        return {key: np.array(arr, copy=True) for key, (_, _, arr) in self._state_slots().items()}

    def load_state_dict(self, state: dict) -> None:
        """Strict load: every key must be present with its exact shape; nothing is changed on error."""
        slots = self._state_slots()
        missing = [k for k in slots if k not in state]
        extra = [k for k in state if k not in slots]
        mis_shaped = [f"{k}: model {slots[k][2].shape} vs given {tuple(np.shape(state[k]))}"
                      for k in slots if k in state and tuple(np.shape(state[k])) != slots[k][2].shape]
        values = {k: np.asarray(state[k]) for k in slots if k in state}
        # strings, objects (None would become NaN), complex: refused before anything is written
        not_numeric = [f"{k}: dtype {v.dtype}" for k, v in values.items() if v.dtype.kind not in "biuf"]
        if missing or extra or mis_shaped or not_numeric:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if extra:
                parts.append(f"unexpected keys {extra}")
            if mis_shaped:
                parts.append("shape mismatch: " + "; ".join(mis_shaped))
            if not_numeric:
                parts.append("non-numeric values: " + "; ".join(not_numeric))
            raise ValueError("Sequential.load_state_dict: " + ", ".join(parts))
        for key, (_, _, arr) in slots.items():
            arr[...] = values[key]                     # in place: optimizers keep their references
