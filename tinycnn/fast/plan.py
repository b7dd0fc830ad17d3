"""A compiled network: the graph after the passes, its ops, and how to run it forward and backward.

    plan = compile(layers)                  # tinycnn.fast.compile: lower, make ops, run the passes
    y = plan.forward(x)                     # x: (N, ...) -> y: (N, ...)
    g = plan.backward(grad_y, input_grad)   # dL/dx, or None with input_grad=False; writes every
                                            # parameter's .grad
    print(plan.describe())                  # the program, with what each pass did

Forward walks the nodes in order, keeping each value only while a node still has to read it.
Backward walks them in reverse (only the steps the prune pass keeps) and routes gradients through
the graph: a node's gradient is the one its output received, and a value read by several nodes (a
fork: a residual block's input, an Inception block's) receives the *sum* of their gradients — the
one line marked "fork" below. Each op leaves its parameters' gradients in ``op.grads``; ``_commit``
writes them to the layers' ``Parameter.grad``, summed over the lanes when the batch ran in lanes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .. import _jit, _workers, shapes
from ..kernels.gemm import blas_single_threaded
from . import graph as graph_mod
from . import switch
from .lanesync import LaneSync
from .ops import PlainOp, make_op
from .passes import GRAPH_PASSES, ORDER, prune
from .passes import lanes as lanes_pass
from .passes import winograd as winograd_pass


@dataclass
class LastForward:
    """What backward needs to know about the forward before it."""
    slices: list              # [slice]: each lane's rows of the batch ([slice(0, N)] when uncut)
    out_shape: tuple          # (N, ...): the output's shape


class Plan:
    def __init__(self, layers, passes=ORDER, *, plain: bool = False):
        unknown = [p for p in passes if p not in ORDER]
        if unknown:
            raise ValueError(f"tinycnn.fast.compile: unknown passes {unknown}; the passes are {list(ORDER)}")
        self.layers = list(layers)
        # an opt-in pass that is switched off is left out, so that describe() lists what ran
        self.passes = tuple(p for p in ORDER if p in passes and (p != "winograd" or winograd_pass.enabled()))
        self.plain = plain
        self.graph = graph_mod.lower(self.layers, opaque=plain)
        for node in self.graph.nodes:
            node.op = PlainOp(node.layer) if plain else make_op(node)
        for name in self.passes:
            if name in GRAPH_PASSES:
                GRAPH_PASSES[name](self.graph)
        self.lanes: list[list] = [[node.op for node in self.graph.nodes]]   # [lane][node] ops
        self._steps: dict = {}
        self._macs: dict = {}
        self._syncs: dict = {}                     # lane count -> LaneSync
        self.last: LastForward | None = None

    def describe(self) -> str:
        head = "plain: every layer on its own code" if self.plain else f"passes: {', '.join(self.passes) or 'none'}"
        return head + "\n" + self.graph.describe()

    # -- forward -------------------------------------------------------------------------------

    def forward(self, x):
        if self.plain:
            with switch.off():                     # nested Sequentials run their own code too
                return self._forward(x)
        return self._forward(x)

    def backward(self, grad_y, input_grad: bool = True):
        if self.plain:
            with switch.off():
                return self._backward(grad_y, input_grad)
        return self._backward(grad_y, input_grad)

    def _forward(self, x):
        x = np.asarray(x)
        self.last = None
        n = x.shape[0]
        count = 1
        if "lanes" in self.passes and n > 0:
            count = lanes_pass.lane_count(self.lanes[0], n, self._macs_per_sample(x.shape[1:]))
        if count == 1:
            self._bind(1)
            y = _run_forward(self.graph, self.lanes[0], x)
            self.last = LastForward(slices=[slice(0, n)], out_shape=y.shape)
            return y
        slices = _workers.split(n, count)
        lanes = self._lane_ops(count)
        sync = self._bind(len(slices))
        outs = _in_lanes(_run_forward, [(self.graph, lanes[t], x[s]) for t, s in enumerate(slices)], sync)
        y = np.concatenate(outs, axis=0)
        self.last = LastForward(slices=slices, out_shape=y.shape)
        return y

    # -- backward ------------------------------------------------------------------------------

    def _backward(self, grad_y, input_grad: bool = True):
        last = self.last
        who = f"{self.layers[-1]!r}: " if self.layers else ""
        if last is None:
            raise RuntimeError(f"{who}backward() called before forward()")
        grad_y = np.asarray(grad_y)
        if grad_y.dtype.kind != "f":
            raise TypeError(f"{who}backward got grad_y of dtype {grad_y.dtype}, but a floating array is needed")
        if grad_y.shape != last.out_shape:
            raise ValueError(f"{who}backward got grad_y of shape {grad_y.shape}, but forward produced an output "
                             f"of shape {last.out_shape}")
        steps = self._backward_steps(input_grad)
        if len(last.slices) == 1:
            gx = _run_backward(self.graph, self.lanes[0], steps, grad_y, input_grad)
            self._commit(1)
            return gx
        lanes = self._lane_ops(len(last.slices))
        gxs = _in_lanes(_run_backward, [(self.graph, lanes[t], steps, grad_y[s], input_grad)
                                        for t, s in enumerate(last.slices)], self._syncs[len(last.slices)])
        self._commit(len(last.slices))
        return np.concatenate(gxs, axis=0) if input_grad else None

    def _backward_steps(self, input_grad):
        key = (bool(input_grad), prune.frozen_key(self.graph))      # frozen parameters change the steps
        if key not in self._steps:
            if "prune" in self.passes:
                self._steps[key] = prune.backward_steps(self.graph, key[0])
            else:
                self._steps[key] = [(i, True) for i in reversed(range(len(self.graph.nodes)))]
        return self._steps[key]

    def _commit(self, lanes: int):
        """Every trainable parameter's .grad from the ops' gradients (summed over lanes, in lane
        order); a frozen parameter's .grad is left as it was."""
        for i, node in enumerate(self.graph.nodes):
            op = self.lanes[0][i]
            if node.kind != "layer" or isinstance(op, PlainOp):
                continue                                # a plain layer wrote its own gradients
            for name, p in node.layer.named_parameters():
                if name not in op.grads or not prune.trainable(p):
                    continue
                total = op.grads[name]
                if lanes > 1:
                    total = total.copy()
                    for t in range(1, lanes):
                        total += self.lanes[t][i].grads[name]
                p.grad = total

    # -- helpers -------------------------------------------------------------------------------

    def _bind(self, count):
        """Tell every op its lane and the call's LaneSync (None when the batch is not cut)."""
        sync = None
        if count > 1:
            sync = self._syncs.get(count)
            if sync is None:
                sync = self._syncs[count] = LaneSync(count)
        for t, ops in enumerate(self.lanes):
            for op in ops:
                op.lane, op.sync = t, (sync if t < count else None)
        return sync

    def _lane_ops(self, count):
        while len(self.lanes) < count:
            self.lanes.append([op.lane_copy() for op in self.lanes[0]])
        return self.lanes[:count]

    def _macs_per_sample(self, sample_shape):
        key = tuple(sample_shape)
        if key not in self._macs:
            try:
                self._macs[key] = shapes.macs_per_sample(self.layers, key)
            except Exception:                   # noqa: BLE001 - a layer that cannot say: no MAC rule
                self._macs[key] = None
        return self._macs[key]


def _run_forward(graph, ops, x):
    """Every node in order; each value is dropped once its last reader has run (its memory can then
    be recycled)."""
    values = {0: x}
    last_read = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_read[v] = i
    for i, node in enumerate(graph.nodes):
        values[node.output] = ops[i].forward(*[values[v] for v in node.inputs])
        for v in node.inputs:
            if last_read[v] == i and v != graph.output:
                del values[v]
    return values[graph.output]


def _run_backward(graph, ops, steps, grad_y, input_grad):
    grads = {graph.output: grad_y}
    for i, need_input in steps:
        node = graph.nodes[i]
        g = grads.pop(node.output)
        gx = ops[i].backward(g, need_input)
        if not need_input:
            continue
        gx = gx if isinstance(gx, tuple) else (gx,)
        for v, gv in zip(node.inputs, gx):
            grads[v] = gv if v not in grads else grads[v] + gv       # fork: the readers' gradients add up
    return grads.get(0) if input_grad else None


def _in_lanes(fn, lane_args, sync):
    """fn(*lane_args[t]) for every lane t, lane 0 on this thread and the others on helper threads,
    every kernel serial and BLAS single-threaded; the results in lane order. A lane that fails breaks
    ``sync``'s barrier so that no other lane waits for it; the first real error is raised."""
    _workers.ensure(len(lane_args) - 1)
    with blas_single_threaded():
        jobs = [_workers.submit(_serially, fn, args, sync) for args in lane_args[1:]]
        outcomes = []
        try:
            outcomes.append((_serially(fn, lane_args[0], sync), None))
        except BaseException as err:              # reported below, after every lane has stopped
            outcomes.append((None, err))
        for job in jobs:                          # wait for every lane, even if lane 0 failed
            try:
                outcomes.append((job.wait(), None))
            except BaseException as err:
                outcomes.append((None, err))
    errors = [err for _, err in outcomes if err is not None]
    if errors:
        sync.reset()
        real = [err for err in errors if not isinstance(err, threading.BrokenBarrierError)]
        raise (real or errors)[0]
    return [result for result, _ in outcomes]


def _serially(fn, args, sync):
    with _jit.serial():
        try:
            return fn(*args)
        except BaseException:
            sync.abort()                          # the other lanes stop waiting at their next gather
            raise
