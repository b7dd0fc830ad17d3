"""The three benchmark networks, built identically in every contender from one list of layer specs.

Weights are drawn once by tinycnn (from ``rng``) and copied into the others through ``state_dict``
keys (batch-norm buffers included), so all contenders compute the same function; ``run.py`` checks
that they do before timing. Each builder imports its own engine, so a child process measuring one
contender loads no other.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Each spec entry: ("conv", in, out, kernel, padding, bias) | ("relu",) | ("maxpool", k) | ("flatten",)
#                  | ("dense", in, out) | ("batchnorm", channels) | ("dropout", p)
# ("batchnorm", C) is PyTorch's BatchNorm2d(C) (eps 1e-5, momentum 0.1, affine, running statistics);
# ("dropout", p) is inverted dropout with drop probability p.
SEED_CNN = [  # the seed's Keras CNN on 3x32x32
    ("conv", 3, 32, 3, 0, True), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 0, True), ("relu",), ("maxpool", 2),
    ("conv", 64, 128, 3, 0, True), ("relu",), ("maxpool", 2),
    ("flatten",), ("dense", 512, 10),
]
LENET = [  # LeNet-style network on 1x28x28
    ("conv", 1, 32, 3, 1, True), ("relu",), ("maxpool", 2),
    ("conv", 32, 64, 3, 1, True), ("relu",), ("maxpool", 2),
    ("flatten",), ("dense", 3136, 10),
]


def _vgg_stage_conv(c_in: int, c_out: int, pool: bool) -> list:
    """The zoo's vgg-bn conv block: conv (3x3, pad 1, no bias) [-> MaxPool(2)] -> BN -> ReLU."""
    return [("conv", c_in, c_out, 3, 1, False), *([("maxpool", 2)] if pool else []),
            ("batchnorm", c_out), ("relu",)]


VGG_BN_WIDTH, VGG_BN_DROPOUT = 32, 0.25        # tinycnn.zoo.vgg_bn's defaults
_W = VGG_BN_WIDTH
VGG_BN = [  # the zoo's vgg-bn on 3x32x32, width 32: (32,16,16) (64,8,8) (128,4,4) (256,2,2), 33.9 M MACs
    *_vgg_stage_conv(3, _W, pool=True),
    *_vgg_stage_conv(_W, 2 * _W, pool=False), *_vgg_stage_conv(2 * _W, 2 * _W, pool=True),
    *_vgg_stage_conv(2 * _W, 4 * _W, pool=False), *_vgg_stage_conv(4 * _W, 4 * _W, pool=True),
    *_vgg_stage_conv(4 * _W, 8 * _W, pool=True),
    ("flatten",), ("dropout", VGG_BN_DROPOUT), ("dense", 8 * _W * 2 * 2, 10),
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
    "vgg_bn": NetInfo("vgg_bn", VGG_BN, (3, 32, 32)),
}


def without_dropout(info: NetInfo) -> NetInfo:
    """The same net with every dropout's p set to 0 (the identity): what ``throughput.agreement`` builds,
    since each engine draws its own dropout masks and their training outputs could not agree otherwise."""
    spec = [("dropout", 0.0) if s[0] == "dropout" else s for s in info.spec]
    return NetInfo(info.name, spec, info.input_shape, info.classes)


LR, MOMENTUM = 0.01, 0.9
_KINDS = ("conv", "relu", "maxpool", "flatten", "dense", "batchnorm", "dropout")


def _check_kind(s) -> str:
    if s[0] not in _KINDS:
        raise ValueError(f"benchmarks.nets: unknown layer spec {s!r}; known kinds: {', '.join(_KINDS)}")
    return s[0]


def build_tinycnn(spec, rng: np.random.Generator):
    """tinycnn.Sequential for ``spec``; weights drawn from ``rng`` in layer order, Dropout's masks from a
    generator spawned from ``rng`` (as tinycnn.zoo.vgg_bn: the spawn leaves the weights' draws alone)."""
    import tinycnn as tc

    layers = []
    for s in spec:
        kind = _check_kind(s)
        if kind == "conv":
            layers.append(tc.Conv2D(s[1], s[2], s[3], padding=s[4], bias=s[5], rng=rng))
        elif kind == "relu":
            layers.append(tc.ReLU())
        elif kind == "maxpool":
            layers.append(tc.MaxPool2D(s[1]))
        elif kind == "flatten":
            layers.append(tc.Flatten())
        elif kind == "dense":
            layers.append(tc.Dense(s[1], s[2], rng=rng))
        elif kind == "batchnorm":
            layers.append(tc.BatchNorm2D(s[1]))
        elif kind == "dropout":
            layers.append(tc.Dropout(s[1], rng=rng.spawn(1)[0]))
    return tc.Sequential(*layers)


def build_torch(spec, state: dict[str, np.ndarray]):
    """torch.nn.Sequential for ``spec`` with ``state`` loaded (strict: every key, buffers included)."""
    import torch

    layers = []
    for s in spec:
        kind = _check_kind(s)
        if kind == "conv":
            layers.append(torch.nn.Conv2d(s[1], s[2], s[3], padding=s[4], bias=s[5]))
        elif kind == "relu":
            layers.append(torch.nn.ReLU())
        elif kind == "maxpool":
            layers.append(torch.nn.MaxPool2d(s[1]))
        elif kind == "flatten":
            layers.append(torch.nn.Flatten())
        elif kind == "dense":
            layers.append(torch.nn.Linear(s[1], s[2]))
        elif kind == "batchnorm":
            layers.append(torch.nn.BatchNorm2d(s[1]))            # eps 1e-5, momentum 0.1, as tinycnn
        elif kind == "dropout":
            layers.append(torch.nn.Dropout(s[1]))
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return model


def build_numpy(spec, state: dict[str, np.ndarray], rng: np.random.Generator | None = None):
    """The plain-NumPy engine's Net for ``spec`` with copies of ``state``; Dropout's masks are drawn
    from ``rng`` (default ``np.random.default_rng(0)``)."""
    from . import numpy_engine as npe

    rng = np.random.default_rng(0) if rng is None else rng
    layers = []
    for i, s in enumerate(spec):
        kind = _check_kind(s)
        if kind == "conv":
            bias = state[f"{i}.bias"].copy() if s[5] else None
            layers.append(npe.Conv(state[f"{i}.weight"].copy(), bias, padding=s[4]))
        elif kind == "relu":
            layers.append(npe.ReLU())
        elif kind == "maxpool":
            layers.append(npe.MaxPool(s[1]))
        elif kind == "flatten":
            layers.append(npe.Flatten())
        elif kind == "dense":
            layers.append(npe.Dense(state[f"{i}.weight"].copy(), state[f"{i}.bias"].copy()))
        elif kind == "batchnorm":
            layers.append(npe.BatchNorm(*(state[f"{i}.{name}"].copy() for name in npe.BatchNorm.STATE)))
        elif kind == "dropout":
            layers.append(npe.Dropout(s[1], rng))
    return npe.Net(layers)


def flops_per_image(info: NetInfo) -> dict[str, int]:
    """Multiply-add FLOPs (2 per MAC) of the convolutions and dense layers, per image.

    ``forward``; ``train`` = forward + weight gradient + input gradient, where the first layer's input
    gradient is not counted (no contender needs it; PyTorch and tinycnn skip it in a training step,
    see benchmarks/PERFORMANCE.md, 'Skipping the first layer's input gradient'; the plain-NumPy
    baseline computes it anyway). Biases, ReLU, pooling, batch norm and dropout add no counted FLOPs:
    they are element-wise or per-channel (a few operations per value, O(C*H*W), next to the
    convolutions' O(C_in*C_out*K*K*H*W)); they only pass the shape on.
    """
    _, h, w = info.input_shape
    fwd = train = 0
    first = True
    for s in info.spec:
        kind = _check_kind(s)
        if kind == "conv":
            _, cin, cout, k, p, _ = s
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            f = 2 * cout * cin * k * k * h * w
            fwd += f
            train += f * (2 if first else 3)
            first = False
        elif kind == "maxpool":
            h, w = h // s[1], w // s[1]
        elif kind == "dense":
            f = 2 * s[1] * s[2]
            fwd += f
            train += f * (2 if first else 3)
            first = False
    return {"forward": fwd, "train": train}


def _batchnorm_entries(i: int, c: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {f"{i}.weight": rng.uniform(0.5, 1.5, c).astype(np.float32),          # gamma (C,)
            f"{i}.bias": rng.uniform(-0.5, 0.5, c).astype(np.float32),            # beta (C,)
            f"{i}.running_mean": rng.uniform(-0.5, 0.5, c).astype(np.float32),
            f"{i}.running_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{i}.num_batches_tracked": np.array(0, dtype=np.int64)}


def batchnorm_state(spec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random float32 batch-norm parameters and running statistics for every ("batchnorm", C) of
    ``spec``: gamma in [0.5, 1.5], beta in [-0.5, 0.5], running mean in [-0.5, 0.5], running variance in
    [0.5, 1.5], num_batches_tracked 0 (int64, 0-d). Not the fresh layer's ones and zeros, so that a check
    between engines sees an engine that confuses gamma with beta or ignores the running statistics."""
    state = {}
    for i, s in enumerate(spec):
        if _check_kind(s) == "batchnorm":
            state.update(_batchnorm_entries(i, s[1], rng))
    return state


def random_state(spec, rng) -> dict[str, np.ndarray]:
    """A float32 ``state_dict`` for ``spec`` (uniform in +-1/sqrt(fan_in), PyTorch's default bound;
    batch norm as ``batchnorm_state``), made without importing any engine: child processes use it to
    build a contender alone."""
    state = {}
    for i, s in enumerate(spec):
        kind = _check_kind(s)
        if kind == "conv":
            _, cin, cout, k, _, bias = s
            shape, fan_in, out = (cout, cin, k, k), cin * k * k, (cout if bias else None)
        elif kind == "dense":
            shape, fan_in, out = (s[2], s[1]), s[1], s[2]
        elif kind == "batchnorm":
            state.update(_batchnorm_entries(i, s[1], rng))
            continue
        else:
            continue
        bound = 1 / np.sqrt(fan_in)
        state[f"{i}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        if out is not None:
            state[f"{i}.bias"] = rng.uniform(-bound, bound, out).astype(np.float32)
    return state


def reduction_lengths(info: NetInfo, batch: int) -> list[int]:
    """Length of every sum a training step forms, per conv/dense/batch-norm layer: forward (fan-in, + 1
    for a bias), weight gradient (batch x output positions) and input gradient (fan-out x kernel area);
    a batch norm's four per-channel sums over M = batch x H x W values (mean and variance forward,
    sum(g) and sum(g * x_hat) backward). The scale of float32 disagreement between two correct
    engines is about 2 * u * their total."""
    _, h, w = info.input_shape
    out = []
    for s in info.spec:
        kind = _check_kind(s)
        if kind == "conv":
            _, cin, cout, k, p, bias = s
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            out += [cin * k * k + int(bool(bias)), batch * h * w, cout * k * k]
        elif kind == "maxpool":
            h, w = h // s[1], w // s[1]
        elif kind == "dense":
            out += [s[1] + 1, batch, s[2]]
        elif kind == "batchnorm":
            out += [batch * h * w] * 4
    return out
