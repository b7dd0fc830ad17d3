"""``tinycnn gradcheck``: check every layer's backward pass against central finite differences.

Each layer is built on a small random float64 configuration (channels, non-square kernels, stride,
padding and input size drawn from ``--seed``) and checked by ``tinycnn.gradcheck``:

* ``grad x``, ``grad weight``, ... : the backward pass against central differences (``check_layer``);
* ``adjoint x``, ``adjoint weight``, ... : the dot-product test <J v, u> = <v, J^T u> (``adjoint_check``);
* the loss's ``grad logits`` against central differences (``check_loss``).

Every layer prints a table (tensor, shape, max |analytic - numeric|, relative error, worst index,
OK / NOT OK); a summary line follows. The exit status is 1 if anything is NOT OK.

Inputs are kept away from kinks: ReLU sees |x| >= 0.01, max pooling sees distinct values 0.01 apart
(``away_from_zero``, ``distinct_values``), far beyond the step h = 1e-6.
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tinycnn as tc
from tinycnn.gradcheck import GradcheckReport, away_from_zero, check_layer, check_loss, distinct_values

F64 = np.float64


@dataclass
class LayerCase:
    layer: object
    x: np.ndarray                                  # float64 input the layer accepts
    before_forward: Callable | None = None         # e.g. re-seed a dropout mask before each forward


@dataclass
class LossCase:
    loss: object
    logits: np.ndarray                             # (N, K) float64
    labels: np.ndarray                             # int (N,) or probabilities (N, K)


def _window(rng, pooling: bool):
    """Random kernel (kh, kw), stride (sh, sw), padding (ph, pw) and an input size (h, w) that fits."""
    kh, kw = (int(k) for k in rng.integers(1, 4, size=2))
    sh, sw = (int(s) for s in rng.integers(1, 4, size=2))
    ph = int(rng.integers(0, kh // 2 + 1 if pooling else kh))
    pw = int(rng.integers(0, kw // 2 + 1 if pooling else kw))
    h = max(1, kh - 2 * ph) + int(rng.integers(0, 4))
    w = max(1, kw - 2 * pw) + int(rng.integers(0, 4))
    return (kh, kw), (sh, sw), (ph, pw), (h, w)


def _conv(rng, bias=True):
    c, o = (int(v) for v in rng.integers(1, 4, size=2))
    k, s, p, (h, w) = _window(rng, pooling=False)
    layer = tc.Conv2D(c, o, k, stride=s, padding=p, bias=bias, dtype=F64, rng=rng)
    return LayerCase(layer, rng.standard_normal((2, c, h, w)))


def _maxpool(rng):
    k, s, p, (h, w) = _window(rng, pooling=True)
    return LayerCase(tc.MaxPool2D(k, stride=s, padding=p), distinct_values((2, 2, h, w), rng))


def _avgpool(rng):
    k, s, p, (h, w) = _window(rng, pooling=True)
    return LayerCase(tc.AvgPool2D(k, stride=s, padding=p), rng.standard_normal((2, 2, h, w)))


def _dense(rng, bias=True):
    i, o = (int(v) for v in rng.integers(1, 7, size=2))
    return LayerCase(tc.Dense(i, o, bias=bias, dtype=F64, rng=rng), rng.standard_normal((3, i)))


def _dropout(rng):
    layer = tc.Dropout(0.4, rng=np.random.default_rng(0))
    mask_seed = int(rng.integers(2**31))

    def same_mask():                               # every forward draws the same mask
        layer.rng = np.random.default_rng(mask_seed)

    return LayerCase(layer, rng.standard_normal((2, 3, 4)), same_mask)


def _batchnorm(rng):
    layer = tc.BatchNorm2D(3, dtype=F64)
    for p in layer.parameters():                   # random gamma, beta instead of the 1, 0 start
        p.data[...] = rng.standard_normal(p.shape)
    return LayerCase(layer, rng.standard_normal((2, 3, 3, 2)))


def _sce_labels(rng):
    logits = rng.uniform(-2, 2, size=(4, 5))         # moderate: see "Resolution" in tinycnn.gradcheck
    return LossCase(tc.SoftmaxCrossEntropy(), logits, rng.integers(0, 5, size=4))


def _sce_probabilities(rng):
    logits = rng.uniform(-2, 2, size=(4, 5))         # moderate: see "Resolution" in tinycnn.gradcheck
    return LossCase(tc.SoftmaxCrossEntropy(), logits, rng.dirichlet(np.ones(5), size=4))


# name -> builder(rng) -> LayerCase | LossCase.
CASES: dict[str, Callable] = {
    "Conv2D": _conv,
    "Conv2D(bias=False)": lambda rng: _conv(rng, bias=False),
    "MaxPool2D": _maxpool,
    "AvgPool2D": _avgpool,
    "ReLU": lambda rng: LayerCase(tc.ReLU(), away_from_zero((2, 3, 4), rng)),
    "Sigmoid": lambda rng: LayerCase(tc.Sigmoid(), 2 * rng.standard_normal((2, 3, 4))),
    "Flatten": lambda rng: LayerCase(tc.Flatten(), rng.standard_normal((2, 3, 2, 2))),
    "Dense": _dense,
    "Dense(bias=False)": lambda rng: _dense(rng, bias=False),
    "SoftmaxCrossEntropy(labels)": _sce_labels,
    "SoftmaxCrossEntropy(probabilities)": _sce_probabilities,
    "Tanh": lambda rng: LayerCase(tc.Tanh(), 2 * rng.standard_normal((2, 3, 4))),
    "Softmax": lambda rng: LayerCase(tc.Softmax(), 2 * rng.standard_normal((3, 5))),
    "Dropout": _dropout,
    "BatchNorm2D": _batchnorm,
}


# -- graph containers and the modern layers (layers/containers.py, pointwise.py, softmax.py,
#    dropout2d.py, norm.py, adaptive_pool.py) ----------------------------------------------------------

def _residual(rng):
    """A projection block with a post activation: conv -> tanh, shortcut 1x1 conv, both stride 2."""
    c, o = (int(v) for v in rng.integers(1, 4, size=2))
    block = tc.Sequential(tc.Conv2D(c, o, 3, stride=2, padding=1, dtype=F64, rng=rng), tc.Tanh())
    layer = tc.Residual(block, shortcut=tc.Conv2D(c, o, 1, stride=2, dtype=F64, rng=rng), post=tc.Sigmoid())
    return LayerCase(layer, rng.standard_normal((2, c, 5, 4)))


def _concat(rng):
    """Three branches joined along channels: a 1x1 conv, a 3x3 conv with tanh, and the input itself."""
    c = int(rng.integers(1, 4))
    layer = tc.Concat(tc.Conv2D(c, 2, 1, dtype=F64, rng=rng),
                      tc.Sequential(tc.Conv2D(c, 3, 3, padding=1, dtype=F64, rng=rng), tc.Tanh()), tc.Identity())
    return LayerCase(layer, rng.standard_normal((2, c, 4, 3)))


def _affine(layer, rng):
    for p in layer.parameters():                   # weights away from their 1, 0 start
        p.data[...] = rng.uniform(0.5, 1.5, p.shape)
    return layer


def _softmax_dim(rng):
    from tinycnn.layers.softmax import Softmax
    return LayerCase(Softmax(dim=-1), 2 * rng.standard_normal((2, 3, 4)))


def _dropout2d(rng):
    layer = tc.Dropout2D(0.4, rng=np.random.default_rng(0))
    mask_seed = int(rng.integers(2**31))

    def same_mask():                               # every forward draws the same channel mask
        layer.rng = np.random.default_rng(mask_seed)

    return LayerCase(layer, rng.standard_normal((3, 4, 2, 3)), same_mask)


def _adaptive(kind, rng):
    h, w = (int(v) for v in rng.integers(3, 8, size=2))
    out = (int(rng.integers(2, h + 2)), int(rng.integers(2, w + 2)))    # overlapping (or repeated) bins
    if kind == "avg":
        return LayerCase(tc.AdaptiveAvgPool2D(out), rng.standard_normal((2, 2, h, w)))
    return LayerCase(tc.AdaptiveMaxPool2D(out), distinct_values((2, 2, h, w), rng))


def _conv_options(rng, depthwise=False):
    """Groups (or depthwise), dilation and padding='same' with an even kernel on one axis (torch puts
    the odd padding pixel after); one unbatched (C, H, W) image for the depthwise case."""
    groups = int(rng.integers(2, 4))
    c = groups if depthwise else groups * int(rng.integers(1, 3))
    o = c if depthwise else groups * int(rng.integers(1, 3))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    layer = tc.Conv2D(c, o, (3, 2), padding="same", dilation=d, groups=groups if not depthwise else c,
                      dtype=F64, rng=rng)
    shape = (c, 5, 4) if depthwise else (2, c, 5, 4)
    return LayerCase(layer, rng.standard_normal(shape))


def _conv_padding_mode(mode, rng):
    """Padding copied from the image (``padding_mode``), as much as torch allows on one axis of the 4x3
    input (reflect: size - 1, circular: the whole size), with a stride and an even kernel."""
    pad = {"reflect": (3, 2), "replicate": (2, 4), "circular": (4, 3)}[mode]
    layer = tc.Conv2D(2, 3, (3, 2), stride=(2, 1), padding=pad, padding_mode=mode, dtype=F64, rng=rng)
    return LayerCase(layer, rng.standard_normal((2, 2, 4, 3)))


def _pool_options(kind, rng):
    """ceil_mode windows that run past the padding; max: dilation 2 (every window still holds a pixel
    on these sizes); avg: without the padding in the divisor, or a fixed divisor."""
    if kind == "max":
        layer = tc.MaxPool2D(3, stride=2, padding=1, dilation=2, ceil_mode=True)
        return LayerCase(layer, distinct_values((2, 2, 6, 7), rng))
    if kind == "avg":
        layer = tc.AvgPool2D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    else:
        layer = tc.AvgPool2D((2, 3), stride=2, padding=1, ceil_mode=True, divisor_override=5)
    return LayerCase(layer, rng.standard_normal((2, 2, 6, 7)))


_GRAPHS_AND_MODERN = {
    "Conv2D(groups, dilation, padding='same')": _conv_options,
    "Conv2D(depthwise, unbatched)": lambda rng: _conv_options(rng, depthwise=True),
    "Conv2D(padding_mode='reflect')": lambda rng: _conv_padding_mode("reflect", rng),
    "Conv2D(padding_mode='replicate')": lambda rng: _conv_padding_mode("replicate", rng),
    "Conv2D(padding_mode='circular')": lambda rng: _conv_padding_mode("circular", rng),
    "MaxPool2D(dilation, ceil_mode)": lambda rng: _pool_options("max", rng),
    "AvgPool2D(ceil_mode, count_include_pad=False)": lambda rng: _pool_options("avg", rng),
    "AvgPool2D(divisor_override)": lambda rng: _pool_options("divisor", rng),
    "Residual": _residual,
    "Concat": _concat,
    "LeakyReLU": lambda rng: LayerCase(tc.LeakyReLU(0.1), away_from_zero((2, 3, 4), rng)),
    "GELU": lambda rng: LayerCase(tc.GELU(), 2 * rng.standard_normal((2, 3, 4))),
    "GELU(tanh)": lambda rng: LayerCase(tc.GELU(approximate="tanh"), 2 * rng.standard_normal((2, 3, 4))),
    "SiLU": lambda rng: LayerCase(tc.SiLU(), 2 * rng.standard_normal((2, 3, 4))),
    "Identity": lambda rng: LayerCase(tc.Identity(), rng.standard_normal((2, 3))),
    "Softmax(dim=-1)": _softmax_dim,
    "LogSoftmax": lambda rng: LayerCase(tc.LogSoftmax(dim=1), 2 * rng.standard_normal((3, 5))),
    "Dropout2D": _dropout2d,
    "BatchNorm1D": lambda rng: LayerCase(_affine(tc.BatchNorm1D(3, dtype=F64), rng), rng.standard_normal((4, 3, 2))),
    "LayerNorm": lambda rng: LayerCase(_affine(tc.LayerNorm((3, 2), dtype=F64), rng),
                                       rng.standard_normal((2, 4, 3, 2))),
    "GroupNorm": lambda rng: LayerCase(_affine(tc.GroupNorm(2, 4, dtype=F64), rng), rng.standard_normal((2, 4, 3))),
    "AdaptiveAvgPool2D": lambda rng: _adaptive("avg", rng),
    "AdaptiveMaxPool2D": lambda rng: _adaptive("max", rng),
}
CASES.update({name: build for name, build in _GRAPHS_AND_MODERN.items()
              if hasattr(tc, name.split("(")[0]) or name.startswith("Softmax(")})


@dataclass
class Outcome:
    name: str
    report: GradcheckReport
    seconds: float


def run_case(name: str, case, rng, h: float, tol: float) -> Outcome:
    start = time.perf_counter()
    if isinstance(case, LossCase):
        report = check_loss(case.loss, case.logits, case.labels, h=h, tol=tol)
    else:
        report = check_layer(case.layer, case.x, rng=rng, h=h, tol=tol,
                             before_forward=case.before_forward, adjoint=True)
    return Outcome(name, report, time.perf_counter() - start)


def _positive_float(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value
    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def add_arguments(parser):
    parser.add_argument("--seed", type=_seed, default=0,
                        help="seed of the random configurations, inputs and upstream gradients (default 0)")
    parser.add_argument("--only", action="append", metavar="NAME", choices=sorted(CASES),
                        help="check only this layer (repeatable); one of: " + ", ".join(CASES))
    parser.add_argument("--h", type=_positive_float("--h"), default=1e-6, help="finite-difference step (default 1e-6)")
    parser.add_argument("--tol", type=_positive_float("--tol"), default=1e-7,
                        help="largest relative error called OK (default 1e-7)")


def run(args) -> int:
    rng = np.random.default_rng(args.seed)
    names = args.only or list(CASES)
    print(f"tinycnn gradcheck: {len(names)} layers, float64, central differences with h = {args.h:g}, "
          f"seed {args.seed}\n")
    outcomes = []
    for i, name in enumerate(names, 1):
        outcome = run_case(name, CASES[name](rng), rng, args.h, args.tol)
        outcomes.append(outcome)
        print(f"[{i}/{len(names)}] {name}  ({outcome.seconds:.2f} s)")
        print(outcome.report.table())
        print()
    rows = [(o.name, r) for o in outcomes for r in o.report.rows]
    failed = [(name, r) for name, r in rows if not r.ok]
    worst_name, worst = max(rows, key=lambda nr: nr[1].rel_error if np.isfinite(nr[1].rel_error) else np.inf)
    if failed:
        listing = ", ".join(f"{name} {r.tensor}" for name, r in failed)
        print(f"gradcheck summary: NOT OK: {len(failed)} of {len(rows)} checks in {len(outcomes)} layers "
              f"failed: {listing}")
        return 1
    print(f"gradcheck summary: OK: all {len(rows)} checks in {len(outcomes)} layers pass "
          f"(worst relative error {worst.rel_error:.1e}: {worst_name} {worst.tensor}; tolerance {args.tol:.0e})")
    return 0
