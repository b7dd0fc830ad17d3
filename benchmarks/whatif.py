"""What-if and ablation: the shipped training step beside variants of it, timed interleaved.

On the seed CNN training step: the shipped step, and variants of it that each go without one
technique of benchmarks/PERFORMANCE.md (the fused ReLU kernels, once a variant here, are now in all):

* ``shipped``: ``model.backward(g, input_grad=False)``, as ``fit`` and ``tinycnn train`` run it;
* ``with layer-0 input grad``: ``model.backward(g)`` (what a hand-written loop gets by default);
* ``without recycled arrays``: ``tinycnn.layers.buffers`` switched off (fresh arrays each step);
* ``without lanes``: the batch not cut into lanes (``tinycnn.lanes``); every kernel and product is
  split over the threads instead (what shipped before lanes; only differs with more than one thread);
* ``without lanes or split matmul``: as the last, with the products as plain ``np.matmul`` on a
  multi-threaded BLAS instead of ``tinycnn.kernels.matmul``.

(ReLU and 2 x 2 max pooling fused into one pass was prototyped for the earlier (C, N, H, W) layout
and measured no gain above the noise; benchmarks/PERFORMANCE.md, 'ReLU/MaxPool reordering', keeps
its figures. It was removed with the move to the (C, H, W, N) layout, for which it was never
rewritten.)

It also times the shipped step under each split of the cores between Numba's and OpenBLAS's thread
pools (both pools all cores; Numba 1; BLAS 1): benchmarks/PERFORMANCE.md, 'Sharing the cores
between thread pools'.

The first three variants do the same arithmetic in the same order, and ``check_same_values``
verifies that they train bit for bit alike; without lanes the batch's sums are not split in two, and
the split product adds its K blocks in another order (within the rounding bounds tests/test_lanes.py
and tests/test_fast_kernels.py check).
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np

import tinycnn as tc
from tinycnn import kernels, lanes
from tinycnn.layers import buffers

from .nets import LR, MOMENTUM, NETS, build_tinycnn
from .throughput import contenders, make_batch
from .timing import interleave, median, thread_count


@contextmanager
def _plain_matmul():
    """The convolutions' and dense layers' products as np.matmul, with BLAS's own threads."""
    saved = kernels.matmul
    kernels.matmul = lambda a, b, out: np.matmul(a, b, out=out)
    try:
        yield
    finally:
        kernels.matmul = saved


@contextmanager
def _no_recycling():
    saved = buffers._ENABLED
    buffers._ENABLED = False
    try:
        yield
    finally:
        buffers._ENABLED = saved


@contextmanager
def _no_lanes():
    saved = lanes.set_enabled(False)
    try:
        yield
    finally:
        lanes.set_enabled(saved)


VARIANTS = {                # name -> (input_grad, recycle, lanes, split matmul)
    "shipped": (False, True, True, True),
    "with layer-0 input grad": (True, True, True, True),
    "without recycled arrays": (False, False, True, True),
    "without lanes": (False, True, False, True),
    "without lanes or split matmul": (False, True, False, False),
}
SAME_ARITHMETIC = ["shipped", "with layer-0 input grad", "without recycled arrays"]


def variant_step(info, batch, input_grad: bool, recycle: bool, laned: bool, split: bool):
    x, labels = make_batch(info, batch)
    model = build_tinycnn(info.spec, np.random.default_rng(0))
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def body():
        loss_fn(model(x), labels)
        model.backward(loss_fn.backward(), input_grad=input_grad)
        opt.step()

    def step():
        if recycle and laned and split:
            return body()
        with (_no_recycling() if not recycle else nullcontext()), (_no_lanes() if not laned else nullcontext()), \
                (_plain_matmul() if not split else nullcontext()):
            return body()
    return step, model


def check_same_values(info, batch):
    """The variants of SAME_ARITHMETIC must train exactly alike: compare weights after two steps."""
    params = []
    for name in SAME_ARITHMETIC:
        step, model = variant_step(info, batch, *VARIANTS[name])
        step()
        step()
        params.append([p.data for p in model.parameters()])
    return max(float(np.max(np.abs(a - b))) for other in params[1:] for a, b in zip(params[0], other))


def split_variants(step, cores: int) -> dict:
    """The shipped step under each split of ``cores`` between Numba's and OpenBLAS's thread pools."""
    import numba
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()

    def with_split(numba_threads, blas_threads):
        def run():
            numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
            with ctl.limit(limits=blas_threads, user_api="blas"):
                step()
        return run

    return {f"Numba {a} + BLAS {b} threads": with_split(a, b)
            for a, b in ((cores, cores), (1, cores), (cores, 1))}


def run(threads: list[int], batch: int, rounds: int, reps: int, use_torch: bool, log, net: str = "seed_cnn") -> dict:
    info = NETS[net]
    diff = check_same_values(info, min(batch, 8))
    fns = {name: variant_step(info, batch, *flags)[0] for name, flags in VARIANTS.items()}
    if use_torch:
        fns["pytorch"] = contenders(info, batch, "train", True)["pytorch"]
    out = {"net": net, "batch": batch, "max_weight_diff_after_two_steps": diff, "rows": [], "splits": None}
    log(f"  variants with the same arithmetic train identically: max |weight difference| after two steps = {diff:.1e}")
    for n in threads:
        with thread_count(n):
            times = interleave(fns, rounds, reps)
        row = {"threads": n, "ms": {k: 1e3 * median(v) for k, v in times.items()}}
        out["rows"].append(row)
        log(f"  {n} thread(s): " + "  ".join(f"{k} {v:.1f} ms" for k, v in row["ms"].items()))
    cores = max(threads)
    if cores > 1:                   # the deliberate split of the cores between the two thread pools
        times = interleave(split_variants(variant_step(info, batch, *VARIANTS["shipped"])[0], cores), rounds, reps)
        out["splits"] = {"cores": cores, "ms": {k: 1e3 * median(v) for k, v in times.items()}}
        log("  thread splits: " + "  ".join(f"{k} {v:.1f} ms" for k, v in out["splits"]["ms"].items()))
    return out
