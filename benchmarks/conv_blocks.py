"""Conv2D in cache-sized blocks against the one-product path: ``python -m benchmarks.conv_blocks``.

What the blocked path (``tinycnn/fast/ops/conv_blocks.py``) buys, measured in one process with the two
paths' calls interleaved (the ops the blocks pass marked have their ``cfg.conv_blocks`` turned off
for the "off" turns and on again for the "blocks" turns):

* per layer: one Conv2D op of the executor (every pass but lanes; followed by a ReLU so its output is
  channel-major), forward and backward (with the input gradient, except for a first layer of 3
  channels, whose input gradient nobody asks for), on the 3x3 shapes of the zoo's networks, with the
  blocked path switched on and off for the op itself, whether the blocks pass marks it or not (the
  table says which: it shows what the pass's weight limit leaves out);
* per network: a training step of zoo networks (as ``benchmarks.profile`` times it: forward, loss,
  backward without the input gradient, SGD).

Printed: medians over ``--rounds`` rounds of ``--reps`` calls each, and ``blocks / off`` (below 1 =
the blocked path is faster). Run without the environment's OpenBLAS overrides, as the suite does.
"""
from __future__ import annotations

import argparse
import statistics
import sys

from .blas_env import reexec_without_overrides
from .timing import timed_calls

# (in, out, map size, stride): resnet20's three widths, vgg-bn's and airbench's layers, first layers
LAYERS = [(16, 16, 32, 1), (32, 32, 16, 1), (64, 64, 8, 1), (64, 64, 32, 1), (32, 64, 14, 1), (64, 128, 16, 1),
          (128, 128, 16, 1), (128, 256, 8, 1), (3, 16, 32, 1), (3, 64, 32, 1)]
NETWORKS = ["resnet20", "vgg-bn", "seed-keras", "lenet", "mobilenet", "airbench"]


def _interleaved(fns: dict, rounds: int, reps: int) -> dict:
    """name -> seconds per call (list), the contenders' turns alternating, one warm call each turn."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for name, (switch, fn) in fns.items():
            switch()
            fn()
            times[name] += timed_calls(fn, reps)
    return times


def _marked(plan) -> list:
    """The ops of ``plan`` the blocks pass gave the blocked path."""
    return [node.op for node in plan.graph.nodes if getattr(node.op.cfg, "conv_blocks", False)]


def _switch(ops, value: bool):
    """A call that turns the blocked path of ``ops`` on or off (their lanes' copies share the config)."""
    def switch():
        for op in ops:
            op.cfg.conv_blocks = value
    return switch


def _op_call(op, x, g, input_grad):
    def call():
        op.forward(x)
        op.backward(g, input_grad)
    return call


def _train_step(plan, loss_fn, opt, x, labels):
    def step():
        loss_fn(plan.forward(x), labels)
        plan.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return step


def layers_table(batch: int, rounds: int, reps: int, shapes=LAYERS) -> list[str]:
    import numpy as np

    import tinycnn as tc
    from tinycnn import fast

    lines = ["| layer | map | weights | the pass marks it | off fwd+bwd ms | blocks fwd+bwd ms | blocks / off "
             "| off GFLOP/s | blocks GFLOP/s |", "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    rng = np.random.default_rng(0)
    for c, o, hw, s in shapes:
        layer = tc.Conv2D(c, o, 3, stride=s, padding=1, rng=rng)
        plan = fast.compile([layer, tc.ReLU()], [p for p in fast.PASSES if p != "lanes"])
        op = plan.graph.nodes[0].op
        xs = np.ascontiguousarray(rng.standard_normal((c, hw, hw, batch), dtype=np.float32))
        x = xs.transpose(3, 0, 1, 2)                            # (N, C, H, W) view of channel-major memory
        y = op.forward(x)
        g = np.ones(y.shape, np.float32)
        input_grad = c > 3
        call = _op_call(op, x, g, input_grad)
        marked = "yes" if _marked(plan) else "no"                  # the pass's choice; measured either way
        t = _interleaved({"off": (_switch([op], False), call), "blocks": (_switch([op], True), call)},
                         rounds, reps)
        off, blk = statistics.median(t["off"]), statistics.median(t["blocks"])
        macs = o * c * 9 * y.shape[2] * y.shape[3] * batch
        flops = 2 * macs * (3 if input_grad else 2)
        lines.append(f"| {c} -> {o}, stride {s} | {hw} x {hw} | {o * c * 9 * 4 // 1024} KB | {marked} | "
                     f"{1e3 * off:.2f} | {1e3 * blk:.2f} | {blk / off:.2f} | {flops / off / 1e9:.0f} | "
                     f"{flops / blk / 1e9:.0f} |")
    return lines


def networks_table(batch: int, rounds: int, reps: int, names=NETWORKS) -> list[str]:
    import tinycnn as tc

    from .profile import build

    lines = ["| network | off step ms | blocks step ms | blocks / off |", "|---|---:|---:|---:|"]
    for name in names:
        model, x, labels = build(name, batch)
        plan = tc.fast.compile(model)
        loss_fn = tc.SoftmaxCrossEntropy()
        step = _train_step(plan, loss_fn, tc.SGD(model.parameters(), lr=1e-3, momentum=0.9), x, labels)
        marked = _marked(plan)
        t = _interleaved({"off": (_switch(marked, False), step), "blocks": (_switch(marked, True), step)},
                         rounds, reps)
        off, blk = statistics.median(t["off"]), statistics.median(t["blocks"])
        lines.append(f"| {name} | {1e3 * off:.1f} | {1e3 * blk:.1f} | {blk / off:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m benchmarks.conv_blocks", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="for the networks (2: they run in lanes)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sections", default="layers,networks", help="layers, networks or both (comma-separated)")
    p.add_argument("--quick", action="store_true", help="two small layers and LeNet, batch 4, one round (a smoke run)")
    args = p.parse_args(argv)
    for flag in ("batch", "threads", "rounds", "reps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    sections = set(args.sections.split(","))
    if not sections <= {"layers", "networks"}:
        p.error(f"--sections: layers and/or networks, got {args.sections!r}")
    from . import machine
    from .timing import thread_count

    shapes, names = (LAYERS[:1] + LAYERS[-1:], ["lenet"]) if args.quick else (LAYERS, NETWORKS)
    batch, rounds = (4, 1) if args.quick else (args.batch, args.rounds)
    info = machine.facts()
    print(f"# Conv2D blocks vs one product: batch {batch}; {info['cpu']}; {machine.blas_summary(info)}; "
          f"BLAS overrides removed: {info['blas_env_removed_for_this_run'] or 'none'}")
    if "layers" in sections:
        with thread_count(1):                               # the blocked path runs on one thread only
            print("\n## One Conv2D op, forward + backward, one thread\n")
            print("\n".join(layers_table(batch, rounds, args.reps, shapes)), flush=True)
    with thread_count(args.threads):
        if "networks" in sections:
            print(f"\n## A training step ({args.threads} thread(s); with two, the networks run in lanes)\n")
            print("\n".join(networks_table(batch, rounds, args.reps, names)), flush=True)
    return 0


if __name__ == "__main__":
    reexec_without_overrides(sys.argv[1:], module="benchmarks.conv_blocks")
    sys.exit(main())
