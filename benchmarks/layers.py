"""Per-layer forward and backward times for the layers of the two benchmark networks.

Each layer gets the input shape it sees inside its network (NCHW, float32, C-contiguous) and a random
upstream gradient. PyTorch's forward runs with autograd recording (as in training) and its backward
is ``torch.autograd.grad`` of the output with respect to the input and the parameters. All contenders
run interleaved, all cores.
"""
from __future__ import annotations

import numpy as np

import tinycnn as tc

from . import numpy_engine as npe
from .timing import interleave, median

# name, kind, layer args, input shape per image (C, H, W) or (features,)
LAYERS = [
    ("seed conv1 3->32 k3", "conv", (3, 32, 3, 0), (3, 32, 32)),
    ("seed conv2 32->64 k3", "conv", (32, 64, 3, 0), (32, 15, 15)),
    ("seed conv3 64->128 k3", "conv", (64, 128, 3, 0), (64, 6, 6)),
    ("lenet conv1 1->32 k3 p1", "conv", (1, 32, 3, 1), (1, 28, 28)),
    ("lenet conv2 32->64 k3 p1", "conv", (32, 64, 3, 1), (32, 14, 14)),
    ("ReLU", "relu", (), (32, 30, 30)),
    ("MaxPool 2 (seed)", "maxpool", (2,), (32, 30, 30)),
    ("MaxPool 2 (lenet)", "maxpool", (2,), (32, 28, 28)),
    ("Dense 512->10", "dense", (512, 10), (512,)),
    ("Dense 3136->10", "dense", (3136, 10), (3136,)),
    ("softmax cross-entropy", "loss", (10,), (10,)),
]


def _tinycnn(kind, args, rng):
    if kind == "conv":
        return tc.Conv2D(args[0], args[1], args[2], padding=args[3], rng=rng)
    if kind == "relu":
        return tc.ReLU()
    if kind == "maxpool":
        return tc.MaxPool2D(args[0])
    if kind == "dense":
        return tc.Dense(args[0], args[1], rng=rng)
    raise ValueError(kind)


def _numpy(kind, args, layer):
    if kind == "conv":
        return npe.Conv(layer.weight.data.copy(), layer.bias.data.copy(), padding=args[3])
    if kind == "relu":
        return npe.ReLU()
    if kind == "maxpool":
        return npe.MaxPool(args[0])
    if kind == "dense":
        return npe.Dense(layer.weight.data.copy(), layer.bias.data.copy())
    raise ValueError(kind)


def _torch(kind, args, layer):
    import torch

    if kind == "conv":
        m = torch.nn.Conv2d(args[0], args[1], args[2], padding=args[3])
    elif kind == "relu":
        return torch.nn.ReLU()
    elif kind == "maxpool":
        return torch.nn.MaxPool2d(args[0])
    elif kind == "dense":
        m = torch.nn.Linear(args[0], args[1])
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(layer.weight.data))
        m.bias.copy_(torch.from_numpy(layer.bias.data))
    return m


def bench_one(name, kind, args, in_shape, batch, rounds, reps, use_torch) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *in_shape), dtype=np.float32)
    if kind == "maxpool":
        x = np.maximum(x, 0)                                # as after a ReLU: ties of zeros happen
    fwd, bwd = {}, {}
    if kind == "loss":
        labels = rng.integers(0, args[0], batch)
        loss = tc.SoftmaxCrossEntropy()
        fwd["tinycnn"] = lambda: loss(x, labels)
        bwd["tinycnn"] = loss.backward
        loss(x, labels)
        fwd["numpy"] = lambda: npe.softmax_cross_entropy(x, labels)   # loss and gradient together
        if use_torch:
            import torch
            import torch.nn.functional as F
            tx = torch.from_numpy(x).requires_grad_(True)
            tl = torch.from_numpy(labels)
            state = {}

            def t_fwd():
                state["y"] = F.cross_entropy(tx, tl)
            t_fwd()
            fwd["pytorch"] = t_fwd
            bwd["pytorch"] = lambda: torch.autograd.grad(state["y"], [tx], retain_graph=True)
    else:
        layer = _tinycnn(kind, args, rng)
        y = layer.forward(x)
        g = rng.standard_normal(y.shape, dtype=np.float32)    # random upstream gradient
        fwd["tinycnn"] = lambda: layer.forward(x)
        bwd["tinycnn"] = lambda: layer.backward(g)
        nl = _numpy(kind, args, layer)
        nl.forward(x)
        fwd["numpy"] = lambda: nl.forward(x)
        bwd["numpy"] = lambda: nl.backward(g)
        if use_torch:
            import torch
            tl = _torch(kind, args, layer)
            tx = torch.from_numpy(x).requires_grad_(True)
            tg = torch.from_numpy(g)
            wrt = [tx] + list(tl.parameters())
            state = {}

            def t_fwd():
                state["y"] = tl(tx)
            t_fwd()
            fwd["pytorch"] = t_fwd
            bwd["pytorch"] = lambda: torch.autograd.grad(state["y"], wrt, tg, retain_graph=True)
    rows = []
    for pass_name, fns in (("forward", fwd), ("backward", bwd)):
        times = interleave(fns, rounds, reps)
        rows.append({"layer": name, "input": f"{batch}x" + "x".join(map(str, in_shape)), "pass": pass_name,
                     "ms": {k: 1e3 * median(v) for k, v in times.items()}})
    return rows


QUICK = ("seed conv2 32->64 k3", "lenet conv1 1->32 k3 p1", "MaxPool 2 (seed)", "Dense 512->10",
         "softmax cross-entropy")


def run(batch: int, rounds: int, reps: int, use_torch: bool, log, names=None) -> list[dict]:
    """Rows of median milliseconds per contender; ``names`` picks a subset of LAYERS (quick mode)."""
    rows = []
    for name, kind, args, in_shape in LAYERS:
        if names is not None and name not in names:
            continue
        for r in bench_one(name, kind, args, in_shape, batch, rounds, reps, use_torch):
            rows.append(r)
            log(f"  {r['layer']:26s} {r['pass']:8s} " + "  ".join(f"{k} {v:7.2f} ms" for k, v in r["ms"].items()))
    return rows
