"""Where a training step's time goes, op by op: ``python -m benchmarks.profile MODEL [options]``.

MODEL is a zoo name (``tinycnn.zoo``: lenet, seed-keras, vgg-bn, resnet20, mobilenet, airbench), built
for CIFAR-10's (3, 32, 32) images (LeNet: MNIST's (1, 28, 28)) and 10 classes. The step is what the
suite times: forward, softmax cross-entropy, backward without the input gradient, SGD with momentum
0.9, on one fixed float32 batch, through the executor (``tinycnn.fast.compile``).

Method: after ``--warmup`` untimed steps (lanes, workspaces and compiled kernels exist by then),
``--steps`` plain steps are timed as a whole (the step time), then ``--steps`` more with every op of
lane 0 wrapped in a timer (forward and backward separately). When the batch runs in lanes, lane 0's
op times include its waits for the other lanes (batch norm's gathered statistics), so they add up to
the step's wall time, not to the work of both cores. Shares are of the timed-and-wrapped step (the
ops ran inside it, so they add up to at most 100 % over one step); the remainder is the loss, the
optimizer, the lanes' hand-over and the executor's own bookkeeping.

Printed per op: forward and backward milliseconds (median over the timed steps), share of the step,
and for Conv2D/Dense the GFLOP/s of its forward and of its backward (2 FLOPs per multiply-add; the
backward counts a weight gradient and, when the prune pass keeps it, an input gradient; in lanes, the
whole batch's FLOPs over lane 0's time, i.e. both cores' rate). The
machine's float32 matrix-multiply rate at the same thread count (``matmul.rate``) is measured in the
same process and printed beside it, so a layer's rate reads as a fraction of the machine's.
Run without the environment's OpenBLAS overrides, as the suite does (``blas_env``).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from .blas_env import reexec_without_overrides


def build(name: str, batch: int, seed: int = 0):
    """(model, x, labels): the zoo network ``name``, a (batch, C, H, W) float32 batch, (batch,) labels."""
    import numpy as np

    from tinycnn import zoo

    shape = (1, 28, 28) if name == "lenet" else (3, 32, 32)
    rng = np.random.default_rng(seed)
    model = zoo.build(name, input_shape=shape, num_classes=10, rng=rng)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)          # (N, C, H, W)
    labels = rng.integers(0, 10, batch)                                   # (N,)
    return model, x, labels


class OpTimer:
    """Wraps one op's forward and backward; keeps per-call seconds and the last shapes seen."""

    def __init__(self, op):
        self.op, self.fwd, self.bwd = op, [], []
        self.in_shapes, self.out_shape, self.input_grad = (), None, True
        forward, backward = op.forward, op.backward

        def timed_forward(*xs):
            t0 = time.perf_counter()
            y = forward(*xs)
            self.fwd.append(time.perf_counter() - t0)
            self.in_shapes, self.out_shape = tuple(x.shape for x in xs), y.shape
            return y

        def timed_backward(g, input_grad):
            t0 = time.perf_counter()
            gx = backward(g, input_grad)
            self.bwd.append(time.perf_counter() - t0)
            self.input_grad = input_grad
            return gx

        op.forward, op.backward = timed_forward, timed_backward

    def macs(self) -> int:
        """Multiply-adds of this op's forward (Conv2D: output values x C_in/groups x KH x KW; Dense:
        rows x in x out); 0 for every other op."""
        import numpy as np

        layer = self.op.layer
        kind = type(layer).__name__
        if kind == "Conv2D" and self.out_shape is not None:
            kh, kw = layer.kernel_size
            return int(np.prod(self.out_shape)) * (layer.in_channels // layer.groups) * kh * kw
        if kind == "Dense" and self.out_shape is not None:
            return int(np.prod(self.out_shape)) * layer.in_features
        return 0


def profile(name: str, batch: int, threads: int, warmup: int, steps: int) -> str:
    import tinycnn as tc

    from . import matmul
    from .timing import thread_count

    model, x, labels = build(name, batch)
    plan = tc.fast.compile(model)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss_fn(plan.forward(x), labels)
        plan.backward(loss_fn.backward(), input_grad=False)
        opt.step()

    with thread_count(threads):
        for _ in range(warmup):
            step()
        whole = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            whole.append(time.perf_counter() - t0)
        timers = [OpTimer(op) for op in plan.lanes[0]]
        wrapped = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            wrapped.append(time.perf_counter() - t0)
        rate = matmul.rate([threads], size=2048, rounds=2, reps=3)[threads]["gflops"]

    step_s = statistics.median(whole)
    wrapped_s = statistics.median(wrapped)                  # the shares' denominator: the ops ran inside it
    lanes = len(plan.last.slices)
    lines = [f"{name}, batch {batch}, {threads} thread(s), {lanes} lane(s); step {1e3 * step_s:.1f} ms "
             f"(median of {steps}; {1e3 * wrapped_s:.1f} ms with the timers); machine float32 matmul "
             f"{rate:.0f} GFLOP/s at {threads} thread(s)",
             "",
             "| # | op | layer | fwd ms | bwd ms | share | fwd GFLOP/s | bwd GFLOP/s |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    ops_total = 0.0
    conv_s = conv_flops = 0.0
    for i, t in enumerate(timers):
        f = statistics.median(t.fwd) if t.fwd else 0.0
        b = statistics.median(t.bwd) if t.bwd else 0.0
        ops_total += f + b
        macs = t.macs() * (lanes if lanes > 1 else 1)      # lane 0 saw its share of the batch
        bwd_macs = macs * (2 if t.input_grad else 1)
        if macs:
            conv_s += f + b
            conv_flops += 2 * (macs + bwd_macs)
        rf = f"{2 * macs / f / 1e9:.0f}" if macs and f else ""
        rb = f"{2 * bwd_macs / b / 1e9:.0f}" if macs and b else ""
        layer = repr(t.op.layer) if t.op.layer is not None else "-"
        lines.append(f"| {i} | {type(t.op).__name__} | {layer[:60]} | {1e3 * f:.2f} | {1e3 * b:.2f} | "
                     f"{100 * (f + b) / wrapped_s:.1f} % | {rf} | {rb} |")
    lines.append(f"| | remainder | loss, optimizer, lanes, executor | | | "
                 f"{100 * max(wrapped_s - ops_total, 0.0) / wrapped_s:.1f} % | | |")
    lines += ["", f"Conv2D and Dense: {100 * conv_s / wrapped_s:.0f} % of the step, "
              f"{conv_flops / conv_s / 1e9 if conv_s else 0:.0f} GFLOP/s while they run; "
              f"whole step {conv_flops / step_s / 1e9:.0f} GFLOP/s = "
              f"{100 * conv_flops / step_s / 1e9 / rate:.0f} % of the machine's matmul rate"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a tinycnn.zoo name: lenet, seed-keras, vgg-bn, resnet20, mobilenet, airbench")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    for flag in ("batch", "threads", "warmup", "steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    print(profile(args.model, args.batch, args.threads, args.warmup, args.steps))
    return 0


if __name__ == "__main__":
    reexec_without_overrides(sys.argv[1:], module="benchmarks.profile")
    sys.exit(main())
