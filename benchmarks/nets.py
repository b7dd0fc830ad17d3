"""The benchmark networks: three chains built identically in every contender from one list of layer
specs, and two networks of tinycnn's model zoo that are not chains.

Weights are drawn once by tinycnn (from ``rng``) and copied into the others through ``state_dict``
keys (batch-norm buffers included), so all contenders compute the same function; ``run.py`` checks
that they do before timing. Each chain builder imports its own engine, so a child process measuring
one contender loads no other.

The zoo networks (``NetInfo.zoo``: resnet20's residual blocks, mobilenet's depthwise convolutions)
are built by ``tinycnn.zoo``; their PyTorch twin is ``tinycnn.interop.to_torch_module`` of the
tinycnn model (``build_net``, ``build_torch_net``). The plain-NumPy baseline implements only chains
of the spec kinds below, so it has no contender for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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
    """A benchmark network: a chain of ``spec`` entries, or (``zoo`` set, ``spec`` None) the
    ``tinycnn.zoo`` builder of that name, called as ``builder(input_shape, classes, rng)``."""
    name: str
    spec: list | None
    input_shape: tuple        # (C, H, W)
    classes: int = 10
    zoo: str | None = None    # a function of tinycnn.zoo, for networks that are not chains


NETS = {
    "seed_cnn": NetInfo("seed_cnn", SEED_CNN, (3, 32, 32)),
    "lenet": NetInfo("lenet", LENET, (1, 28, 28)),
    "vgg_bn": NetInfo("vgg_bn", VGG_BN, (3, 32, 32)),
    # 3x32x32, 10 classes; 40.8 M and 22.9 M MACs per image (tinycnn.zoo's defaults: width 16 and 32)
    "resnet20": NetInfo("resnet20", None, (3, 32, 32), zoo="resnet20"),
    "mobilenet": NetInfo("mobilenet", None, (3, 32, 32), zoo="mobilenet"),
}
# The chains: every engine builds them, the plain-NumPy baseline included (child.py, memory.py and
# startup.py measure only these).
CHAIN_NETS = tuple(name for name, info in NETS.items() if info.zoo is None)


def without_dropout(info: NetInfo) -> NetInfo:
    """The same net with every dropout's p set to 0 (the identity): what ``throughput.agreement`` builds,
    since each engine draws its own dropout masks and their training outputs could not agree otherwise.
    A zoo net is returned as it is (resnet20 and mobilenet have no dropout; ``throughput.agreement``
    refuses a zoo net that has)."""
    if info.zoo is not None:
        return info
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

    A zoo net (``info.zoo``) is counted on the built model: ``tinycnn.shapes.macs_per_sample`` (a
    Conv2D's O*OH*OW * (C_in / groups)*KH*KW, a Dense layer's in*out, the layers inside a Residual
    included; residual additions and global average pooling add no counted FLOPs), then the same
    rule: forward = 2 * MACs, train = 2 * (3 * MACs - the first layer's MACs), each forward MAC
    having one weight-gradient and one input-gradient MAC.
    """
    if info.zoo is not None:
        fwd, train = _zoo_flops(info.zoo, tuple(info.input_shape), info.classes)
        return {"forward": fwd, "train": train}
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


def _batchnorm_entries(prefix: int | str, c: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {f"{prefix}.weight": rng.uniform(0.5, 1.5, c).astype(np.float32),          # gamma (C,)
            f"{prefix}.bias": rng.uniform(-0.5, 0.5, c).astype(np.float32),            # beta (C,)
            f"{prefix}.running_mean": rng.uniform(-0.5, 0.5, c).astype(np.float32),
            f"{prefix}.running_var": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{prefix}.num_batches_tracked": np.array(0, dtype=np.int64)}


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
    engines is about 2 * u * their total.

    A zoo net (``info.zoo``) is walked on the built model (``layer_walk``, the layers inside each
    Residual included) with the same rules, where a Conv2D of ``groups`` g sums (C_in / g) x KH x KW
    products forward (+ 1 for a bias), batch x OH x OW for the weight gradient and (C_out / g) x KH x KW
    for the input gradient (for a stride above 1 fewer terms are nonzero: the length is an upper
    bound); a global average pool sums its window (H x W) once; a Residual adds two values forward
    (block(x) + shortcut(x)) and two backward (x's gradients from the block and from the shortcut).
    ReLU, Flatten and MaxPool2D form no sums; a layer of another kind raises ValueError, so that a
    new zoo net gets its rule written down before its agreement is judged."""
    if info.zoo is not None:
        return _zoo_reduction_lengths(info, batch)
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


# -- the zoo networks -------------------------------------------------------------------------------

def build_net(info: NetInfo, rng: np.random.Generator):
    """The tinycnn model of ``info``: ``build_tinycnn(info.spec, rng)`` for a chain, else the zoo's
    ``getattr(tinycnn.zoo, info.zoo)(info.input_shape, info.classes, rng)``."""
    if info.zoo is None:
        return build_tinycnn(info.spec, rng)
    from tinycnn import zoo

    return getattr(zoo, info.zoo)(info.input_shape, info.classes, rng)


def build_torch_net(info: NetInfo, state: dict[str, np.ndarray]):
    """The PyTorch twin of ``info`` with ``state`` loaded (strict: every key, buffers included).

    A chain: ``build_torch(info.spec, state)``. A zoo net: ``tinycnn.interop.to_torch_module`` of the
    tinycnn model (it maps Residual to a module with children block / shortcut / post, so the keys
    are the same), loaded with ``state``; the module is in training mode."""
    if info.zoo is None:
        return build_torch(info.spec, state)
    import torch

    from tinycnn import interop

    model = build_net(info, np.random.default_rng(0))
    model.load_state_dict(state)
    tmodel = interop.to_torch_module(model)
    tmodel.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    return tmodel.train()


def layer_walk(model, input_shape: tuple) -> list[tuple[str, object, tuple, tuple]]:
    """``(path, layer, in_shape, out_shape)`` for every layer of ``model``, shapes per sample; a
    container (Residual, Concat) comes first and then the layers inside it, depth first, with the
    state_dict key prefixes as paths: ``("3", Residual, (16, 32, 32), (16, 32, 32))``, then
    ``("3.block.0", Conv2D, (16, 32, 32), (16, 32, 32))``, ..."""
    from tinycnn.shapes import infer_shapes

    def walk(path, layer, in_shape, out_shape):
        rows = [(path, layer, in_shape, out_shape)]
        if hasattr(layer, "child_shapes"):                         # a container: its children's shapes
            for c in layer.child_shapes(in_shape):
                rows += walk(f"{path}.{c.path}", c.layer, c.in_shape, c.out_shape)
        return rows

    return [row for r in infer_shapes(model.layers, tuple(input_shape))
            for row in walk(str(r.index), r.layer, r.in_shape, r.out_shape)]


@lru_cache(maxsize=None)
def _zoo_flops(name: str, input_shape: tuple, classes: int) -> tuple[int, int]:
    from tinycnn.shapes import infer_shapes, macs_per_sample

    info = NetInfo(name, None, input_shape, classes, zoo=name)
    model = build_net(info, np.random.default_rng(0))
    macs = macs_per_sample(model.layers, input_shape)                 # Conv2D (C_in / groups) and Dense
    first = next(r for r in infer_shapes(model.layers, input_shape)
                 if macs_per_sample([r.layer], r.in_shape) > 0)
    if hasattr(first.layer, "child_shapes"):
        raise ValueError(f"benchmarks.nets.flops_per_image({name}): the first layer with multiply-adds is a "
                         f"container ({first.layer!r}); only a Conv2D or Dense first layer is counted here")
    first_macs = macs_per_sample([first.layer], first.in_shape)
    return 2 * macs, 2 * (3 * macs - first_macs)


def zoo_batchnorm_state(state: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``batchnorm_state`` for a zoo net: the same random float32 entries for every batch norm of
    ``state`` (each key prefix with a ``running_mean``, e.g. "3.block.1"), drawn in key order."""
    out = {}
    for key, value in state.items():
        if key.endswith(".running_mean"):
            out.update(_batchnorm_entries(key.removesuffix(".running_mean"), value.shape[0], rng))
    return out


_NO_SUMS = ("ReLU", "Flatten", "MaxPool2D")       # element-wise or a maximum: no sum is formed


def _zoo_reduction_lengths(info: NetInfo, batch: int) -> list[int]:
    model = build_net(info, np.random.default_rng(0))
    out = []
    for path, layer, in_shape, out_shape in layer_walk(model, info.input_shape):
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw = layer.kernel_size
            g, bias = layer.groups, int(layer.bias is not None)
            out += [layer.in_channels // g * kh * kw + bias, batch * out_shape[1] * out_shape[2],
                    layer.out_channels // g * kh * kw]
        elif kind == "Dense":
            out += [layer.in_features + int(layer.bias is not None), batch, layer.out_features]
        elif kind == "BatchNorm2D":
            out += [batch * in_shape[1] * in_shape[2]] * 4
        elif kind == "AdaptiveAvgPool2D":
            out.append(-(-in_shape[1] // out_shape[1]) * -(-in_shape[2] // out_shape[2]))   # window, rounded up
        elif kind == "Residual":
            out += [2, 2]                  # block(x) + shortcut(x); backward, x's two gradients added
        elif kind not in _NO_SUMS:
            raise ValueError(f"benchmarks.nets.reduction_lengths({info.name}): no rule for layer {path} "
                             f"({layer!r}); add the lengths of the sums it forms")
    return out
