"""Lanes: one batch cut into slices, each run through the whole network on its own thread.

    y = forward(layers, x)                       # x: (N, ...) -> y: (N, ...)
    g = backward(layers, grad_y, input_grad)     # dL/dx (N, ...), or None with input_grad=False

Two ways to put T cores to work on one training step:

* inside each kernel: every im2col, product and pooling pass is split over the T threads, which meet
  again at its end (tinycnn's other path: ``_jit.launch`` and ``kernels.matmul``). A step of the seed
  CNN starts ~20 such pieces of parallel work (8 split products, 13 parallel kernels at batch 64);
  each costs a wake-up and a wait, and the short ones (ReLU, pooling of a small map) never pay for it.
* across the batch ("lanes"): sample i's forward and backward never look at sample j's (when every
  layer is ``per_sample``), so lane t takes rows ``slices[t]`` of the batch through its own copies of
  the layers (``Layer.replica``: the same parameter arrays, its own caches and gradients) from the
  first layer to the last, with every kernel serial. The lanes meet twice per step: when forward
  joins their outputs and when backward adds up their parameter gradients.

Measured on the 2-core benchmark machine, seed CNN at batch 64 (benchmarks/NOTES.md, section 6): a
forward + backward took 16.3 ms split inside the kernels and 11.6 ms as two lanes of 32, against
20.7 ms on one thread.

What stays the same: the result. Each lane's slice of ``grad_y`` already carries the loss's 1/N
(the loss is computed once, on the joined output), so the sum of the lanes' parameter gradients is
the full batch's gradient; only the order of the additions differs (the property test in
tests/test_lanes.py bounds the difference). Layers whose output mixes samples (BatchNorm2D in
training) or whose forward draws random numbers in order (Dropout in training) say
``per_sample = False``, and then the layers run as they are, never cut.

The lanes' threads are ``tinycnn._workers`` helpers; the calling thread runs lane 0 itself. While
they run, BLAS is single-threaded and ``_jit.serial()`` keeps every kernel serial.

One liberty a lane takes with its private copies: a ReLU directly followed by a MaxPool2D runs
*after* it (pool, then ReLU on the 4x smaller pooled map; backward in the mirrored order). The two
orders give the same bits, forward and backward: max and ReLU only pick values, ReLU is
non-decreasing, so max(relu(x)) = relu(max(x)); where the window's maximum m is > 0 both orders
pick the same first winner and pass g to it, and where m <= 0 (or NaN) both send exactly 0.0 to a
pixel that is <= 0 (or NaN), which no other window can route a nonzero gradient to either.
tests/test_lanes.py checks the bits on inputs full of ties, zeros, NaN and -inf. It saves the
full-size ReLU pass and its mask, forward and backward (~0.4 ms of a ~10 ms LeNet step per lane).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np

from . import _jit, _workers, backprop, shapes
from .kernels.gemm import blas_single_threaded
from .layers.activation import ReLU
from .layers.pool import MaxPool2D

# A lane must carry enough work to pay for the joins and for the two lanes' Python code taking turns
# on the GIL (~0.5-1 ms per step in all). Measured at two threads (benchmarks/NOTES.md 6.6): the
# seed CNN (5.1 M multiply-adds per image) gains from 8 images per lane on (41 M per lane), LeNet
# (3.8 M) just about at 8 (30 M), a 0.45 M network loses at 16 images per lane (7 M: 2.2 ms in lanes
# against 1.7 ms on one thread).
MIN_LANE_BATCH = 8          # images per lane at least
MIN_LANE_MACS = 25_000_000  # forward multiply-adds per lane at least


@dataclass
class LanedPass:
    """Kept on a network's last layer after a forward that ran in lanes, for the backward."""
    layer_ids: tuple          # id() of every layer of the pass, first to last
    slices: list              # [slice]: lane t's rows of the batch
    out_shape: tuple          # (N, ...): the joined output's shape


def lane_count(layers, n: int, sample_shape=None) -> int:
    """How many lanes a forward of ``n`` samples (each of ``sample_shape``, if known) through
    ``layers`` would use (1: not cut)."""
    threads = numba.get_num_threads()
    if threads < 2 or _jit.serial_here() or not _ENABLED:
        return 1
    if not layers or not all(getattr(layer, "per_sample", False) for layer in layers):
        return 1
    count = max(1, min(threads, n // MIN_LANE_BATCH))
    macs = _macs_per_sample(layers, sample_shape) if sample_shape is not None else None
    while count > 1 and macs is not None and (n // count) * macs < MIN_LANE_MACS:
        count -= 1
    return count


def _macs_per_sample(layers, sample_shape):
    """Forward multiply-adds per sample, remembered on the last layer per input shape; None when the
    layers cannot say (a layer of the user's without ``output_shape``)."""
    key = (tuple(id(layer) for layer in layers), tuple(sample_shape))
    memo = getattr(layers[-1], "_lane_macs", None)
    if memo is None or memo[0] != key:
        try:
            macs = shapes.macs_per_sample(layers, sample_shape)
        except Exception:                       # noqa: BLE001 - any failure: fall back to the batch rule
            macs = None
        memo = layers[-1]._lane_macs = (key, macs)
    return memo[1]


def forward(layers, x):
    """Run ``x`` (N, ...) through ``layers``, in lanes when ``lane_count`` says so."""
    last = layers[-1] if layers else None
    count = lane_count(layers, x.shape[0], x.shape[1:]) if isinstance(x, np.ndarray) and x.ndim >= 2 else 1
    if count < 2:
        if last is not None:
            last._laned_pass = None
        for layer in layers:
            x = layer.forward(x)
        return x
    slices = _workers.split(x.shape[0], count)
    reps = _in_lane_order(layers, _replicas(layers, count))
    for layer in layers:
        layer._cache = None               # backward of a layer on its own must not find an old cache
    outs = _run(_lane_forward, [(reps[t], x[s]) for t, s in enumerate(slices)])
    y = np.concatenate(outs, axis=0)
    last._laned_pass = LanedPass(tuple(id(layer) for layer in layers), slices, y.shape)
    return y


def backward(layers, grad_y, input_grad: bool = True):
    """Backward through ``layers`` after ``forward``: every parameter's ``.grad`` is written; returns
    dL/d(input), or None with ``input_grad=False`` (see ``backprop.backward_through``)."""
    laned = getattr(layers[-1], "_laned_pass", None) if layers else None
    if laned is None or laned.layer_ids != tuple(id(layer) for layer in layers):
        return backprop.backward_through(layers, grad_y, input_grad)
    grad_y = layers[-1]._check_grad(grad_y, laned.out_shape)
    reps = _replicas(layers, len(laned.slices))
    run = _in_lane_order(layers, reps)
    grads = _run(_lane_backward, [(run[t], grad_y[s], input_grad) for t, s in enumerate(laned.slices)])
    for i, layer in enumerate(layers):
        for name, p in layer.named_parameters().items():
            lane_grads = [reps[t][i].named_parameters()[name].grad for t in range(len(reps))]
            total = lane_grads[0].copy()
            for g in lane_grads[1:]:
                total += g
            p.grad = total
    return np.concatenate(grads, axis=0) if input_grad else None


SWAP_RELU_POOL = True      # run ReLU -> MaxPool2D as MaxPool2D -> ReLU inside lanes (module docstring)


def execution_order(layers) -> list[int]:
    """Indices of ``layers`` in the order a lane runs them: as given, except that a ReLU directly
    followed by a MaxPool2D runs after it. Exact types only: a subclass may do something else."""
    order = list(range(len(layers)))
    i = 0
    while SWAP_RELU_POOL and i < len(layers) - 1:
        if type(layers[i]) is ReLU and type(layers[i + 1]) is MaxPool2D:
            order[i], order[i + 1] = i + 1, i
            i += 2
        else:
            i += 1
    return order


def _in_lane_order(layers, reps):
    order = execution_order(layers)
    return [[lane[i] for i in order] for lane in reps]


def _lane_forward(reps, x):
    for layer in reps:
        x = layer.forward(x)
    return x


def _lane_backward(reps, grad_y, input_grad):
    return backprop.backward_through(reps, grad_y, input_grad)


def _run(fn, lane_args):
    """fn(*lane_args[t]) for every lane t, lane 0 on this thread and the others on helpers, every
    kernel serial and BLAS single-threaded; their results in lane order."""
    _workers.ensure(len(lane_args) - 1)
    with blas_single_threaded():
        jobs = [_workers.submit(_serially, fn, args) for args in lane_args[1:]]
        try:
            first = _serially(fn, lane_args[0])
        finally:
            results = []
            errors = []
            for job in jobs:                      # wait for every lane, even if lane 0 failed
                try:
                    results.append(job.wait())
                except BaseException as err:      # re-raised below, after every lane has stopped
                    errors.append(err)
        if errors:
            raise errors[0]
    return [first] + results


def _serially(fn, args):
    with _jit.serial():
        return fn(*args)


def _replicas(layers, lanes: int) -> list[list]:
    """[lane][layer] copies of ``layers`` (lane 0 included), made once per layer and refreshed on
    every call: parameter arrays, buffers and the train/eval mode are the layer's own current ones."""
    for layer in layers:
        have = getattr(layer, "_lane_replicas", None)
        if have is None or len(have) < lanes:
            have = [layer.replica() for _ in range(lanes)]
            for rep in have:
                rep._lane_replicas = None
            layer._lane_replicas = have
        for rep in have[:lanes]:
            rep.training = layer.training
            reps_params = rep.named_parameters()
            for name, p in layer.named_parameters().items():
                reps_params[name].data = p.data       # the optimizer may have put a new array there
            for name, buf in layer.named_buffers().items():
                setattr(rep, name, buf)
    return [[layer._lane_replicas[t] for layer in layers] for t in range(lanes)]


_ENABLED = os.environ.get("TINYCNN_LANES", "1") != "0"


def set_enabled(on: bool) -> bool:
    """Turn lanes on or off for the whole process (the benchmark's ablation, tests); returns the old
    setting. ``TINYCNN_LANES=0`` in the environment starts with them off."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(on)
    return old
