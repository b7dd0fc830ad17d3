"""Sequential: a stack of layers run forward in order and backward in reverse.

``state_dict`` keys are torch.nn.Sequential's: ``"<index>.<name>"`` for each layer's parameters
(``weight``, ``bias``) and buffers (e.g. ``running_mean``), in PyTorch's order, so
``torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})``
works for the same architecture.
"""
from __future__ import annotations

import numpy as np

from .layers.base import Layer, Parameter


class Sequential:
    def __init__(self, *layers: Layer):
        for i, layer in enumerate(layers):
            if not hasattr(layer, "forward") or not hasattr(layer, "backward"):
                raise TypeError(f"Sequential: item {i} ({layer!r}) is not a layer (no forward/backward)")
        self.layers = list(layers)
        self.training = True

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_y):
        for layer in reversed(self.layers):
            grad_y = layer.backward(grad_y)
        return grad_y

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> dict[str, Parameter]:
        return {f"{i}.{name}": p for i, layer in enumerate(self.layers)
                for name, p in layer.named_parameters().items()}

    def train(self, mode: bool = True):
        self.training = bool(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = np.zeros_like(p.data)

    # -- state ---------------------------------------------------------------------------------

    def _state_slots(self) -> dict[str, tuple]:
        """key -> (owner, attribute name, array) for every parameter and buffer, in torch's order."""
        slots = {}
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters().items():
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
        if missing or extra or mis_shaped:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if extra:
                parts.append(f"unexpected keys {extra}")
            if mis_shaped:
                parts.append("shape mismatch: " + "; ".join(mis_shaped))
            raise ValueError("Sequential.load_state_dict: " + ", ".join(parts))
        for key, (_, _, arr) in slots.items():
            arr[...] = np.asarray(state[key])          # in place: optimizers keep their references
