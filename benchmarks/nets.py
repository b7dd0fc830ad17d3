"""The two benchmark networks, built identically in every contender from one list of layer specs.

Weights are drawn once by tinycnn (from ``rng``) and copied into the others through ``state_dict``
keys, so all contenders compute the same function; ``run.py`` checks that they do before timing.
Each builder imports its own engine, so a child process measuring one contender loads no other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each spec entry: ("conv", in, out, kernel, padding) | ("relu",) | ("maxpool", k) | ("flatten",)
#                  | ("dense", in, out)
SEED_CNN = [  # the seed's Keras CNN on 3x32x32
    ("conv", 3, 32, 3, 0), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 0), ("relu",), ("maxpool", 2),
    ("conv", 64, 128, 3, 0), ("relu",), ("maxpool", 2),
    ("flatten",), ("dense", 512, 10),
]
LENET = [  # LeNet-style network on 1x28x28
    ("conv", 1, 32, 3, 1), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 1), ("relu",), ("maxpool", 2),
    ("flatten",), ("dense", 3136, 10),
]


@dataclass(frozen=True)
class NetInfo:
    name: str
    spec: list
    input_shape: tuple        # (C, H, W)
    classes: int = 10


NETS = {
    "seed_cnn": NetInfo("seed_cnn", SEED_CNN, (3, 32, 32)),
    "lenet": NetInfo("lenet", LENET, (1, 28, 28)),
}

LR, MOMENTUM = 0.01, 0.9


def build_tinycnn(spec, rng):
    import tinycnn as tc

    layers = []
    for s in spec:
        kind = s[0]
        if kind == "conv":
            layers.append(tc.Conv2D(s[1], s[2], s[3], padding=s[4], rng=rng))
        elif kind == "relu":
            layers.append(tc.ReLU())
        elif kind == "maxpool":
            layers.append(tc.MaxPool2D(s[1]))
        elif kind == "flatten":
            layers.append(tc.Flatten())
        elif kind == "dense":
            layers.append(tc.Dense(s[1], s[2], rng=rng))
    return tc.Sequential(*layers)


def build_torch(spec, state: dict[str, np.ndarray]):
    import torch

    layers = []
    for s in spec:
        kind = s[0]
        if kind == "conv":
            layers.append(torch.nn.Conv2d(s[1], s[2], s[3], padding=s[4]))
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "maxpool":
            layers.append(torch.nn.MaxPool2d(s[1]))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "dense":
            layers.append(torch.nn.Linear(s[1], s[2]))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return model


def build_numpy(spec, state: dict[str, np.ndarray]):
    from . import numpy_engine as npe

    layers = []
    for i, s in enumerate(spec):
        kind = s[0]
        if kind == "conv":
            layers.append(npe.Conv(state[f"{i}.weight"].copy(), state[f"{i}.bias"].copy(), padding=s[4]))
        elif kind == "relu":
            layers.append(npe.ReLU())
        elif kind == "maxpool":
            layers.append(npe.MaxPool(s[1]))
        elif kind == "flatten":
            layers.append(npe.Flatten())
        elif kind == "dense":
            layers.append(npe.Dense(state[f"{i}.weight"].copy(), state[f"{i}.bias"].copy()))
    return npe.Net(layers)


def flops_per_image(info: NetInfo) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) of the convolutions and dense layers, per image.

    ``forward``; ``train`` = forward + weight gradient + input gradient, where the first layer's input
    gradient is not counted (no contender needs it; PyTorch and tinycnn skip it in a training step,
    see benchmarks/PERFORMANCE.md, 'Skipping the first layer's input gradient'; the plain-NumPy
    baseline computes it anyway).
    """
    c, h, w = info.input_shape
    fwd = train = 0
    first = True
    for s in info.spec:
        if s[0] == "conv":
            _, cin, cout, k, p = s
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            f = 2 * cout * cin * k * k * h * w
            fwd += f
            train += f * (2 if first else 3)
            c = cout
            first = False
        elif s[0] == "maxpool":
            h, w = h // s[1], w // s[1]
        elif s[0] == "dense":
            f = 2 * s[1] * s[2]
            fwd += f
            train += f * (2 if first else 3)
            first = False
    return {"forward": fwd, "train": train}


def random_state(spec, rng) -> dict[str, np.ndarray]:
    """A float32 ``state_dict`` for ``spec`` (uniform in +-1/sqrt(fan_in), PyTorch's default bound),
    made without importing any engine: child processes use it to build a contender alone."""
    state = {}
    for i, s in enumerate(spec):
        if s[0] == "conv":
            _, cin, cout, k, _ = s
            shape, fan_in, out = (cout, cin, k, k), cin * k * k, cout
        elif s[0] == "dense":
            shape, fan_in, out = (s[2], s[1]), s[1], s[2]
        else:
            continue
        bound = 1 / np.sqrt(fan_in)
        state[f"{i}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        state[f"{i}.bias"] = rng.uniform(-bound, bound, out).astype(np.float32)
    return state


def reduction_lengths(info: NetInfo, batch: int) -> list[int]:
    """Length of every sum a training step forms, per conv/dense layer: forward (fan-in + 1 for the
    bias), weight gradient (batch x output positions) and input gradient (fan-out x kernel area).
    The scale of float32 disagreement between two correct engines is about 2 * u * their total."""
    c, h, w = info.input_shape
    out = []
    for s in info.spec:
        if s[0] == "conv":
            _, cin, cout, k, p = s
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            out += [cin * k * k + 1, batch * h * w, cout * k * k]
        elif s[0] == "maxpool":
            h, w = h // s[1], w // s[1]
        elif s[0] == "dense":
            out += [s[1] + 1, batch, s[2]]
    return out
