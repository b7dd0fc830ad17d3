"""Ablation: the shipped training step beside the same step with one executor pass removed, timed
interleaved (seed CNN by default).

* ``shipped``: every pass of ``tinycnn.fast`` (fusion, layout, prune, memory, threads, lanes);
* ``without <pass>``, for each pass in turn: the plan compiled without it (each pass's docstring says
  what it changes; ``without prune`` computes the first layer's input gradient too, as a hand-written
  loop that calls ``backward(g)`` would);
* ``without lanes or threads``: neither cut batch nor split products: one ``np.matmul`` call per
  product on BLAS's own threads, every kernel on all of Numba's threads.

It also times the shipped step under each split of the cores between Numba's and OpenBLAS's thread
pools (both pools all cores; Numba 1; BLAS 1).

``SAME_ARITHMETIC`` lists the variants that do the same arithmetic in the same order;
``check_same_values`` verifies that they train bit for bit alike. The others change the order of a
sum (the bias inside the product, a batch sum split over lanes, a product split into K blocks), within
the rounding bounds tests/test_fast_equals_plain.py and tests/test_lanes.py check.
"""
from __future__ import annotations

import numpy as np

import tinycnn as tc
from tinycnn import fast

from .nets import LR, MOMENTUM, NETS, build_tinycnn
from .throughput import contenders, make_batch
from .timing import interleave, median, thread_count

ALL = tuple(fast.PASSES)
VARIANTS = {"shipped": ALL}  # name -> the executor passes it runs with
VARIANTS.update({f"without {name}": tuple(p for p in ALL if p != name) for name in ALL})
VARIANTS["without lanes or threads"] = tuple(p for p in ALL if p not in ("lanes", "threads"))
# Passes that move numbers or skip work but never change an arithmetic operation: same weights, bit for bit.
SAME_ARITHMETIC = ["shipped", "without prune", "without memory", "without layout"]


def variant_step(info, batch, passes):
    x, labels = make_batch(info, batch)
    model = build_tinycnn(info.spec, np.random.default_rng(0))
    plan = fast.compile(model, passes)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        loss_fn(plan.forward(x), labels)
        plan.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return step, model


def check_same_values(info, batch):
    """The variants of SAME_ARITHMETIC must train exactly alike: compare weights after two steps."""
    params = []
    for name in SAME_ARITHMETIC:
        step, model = variant_step(info, batch, VARIANTS[name])
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
    fns = {name: variant_step(info, batch, passes)[0] for name, passes in VARIANTS.items()}
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
        times = interleave(split_variants(variant_step(info, batch, VARIANTS["shipped"])[0], cores), rounds, reps)
        out["splits"] = {"cores": cores, "ms": {k: 1e3 * median(v) for k, v in times.items()}}
        log("  thread splits: " + "  ".join(f"{k} {v:.1f} ms" for k, v in out["splits"]["ms"].items()))
    return out
