"""Lanes pass: with two or more threads, one batch cut into slices, each run through the whole
network on its own thread.

Two ways to put T cores to work on one training step:

* inside each op: every product and kernel split over the T threads, which meet again at its end
  (the threads pass). A step of the seed CNN starts ~20 such pieces of parallel work, each costing
  a wake-up and a wait; the short ones (ReLU, pooling of a small map) never pay for it.
* across the batch ("lanes"): when every op is per-sample (``Op.per_sample``: sample i's output and
  gradient never look at sample j's, in the layers' current modes), lane t takes rows ``slices[t]``
  of the batch through its own copies of the ops (the same layers and parameter arrays, its own
  caches and gradients) from the first node to the last, every kernel serial and BLAS
  single-threaded. The lanes meet twice per step: when forward joins their outputs and when
  backward adds up their parameter gradients.

Results equal the uncut batch's up to the order of the batch sums: each lane's slice of the
upstream gradient already carries the loss's 1/N, so the sum of the lanes' parameter gradients is
the full batch's gradient. A network with batch-mixing layers (BatchNorm2D in training, Dropout in
training) or a layer the executor cannot vouch for runs uncut.

What this pass decides is the rule, applied per call (it depends on the batch): ``lane_count``.
A lane must carry enough work to pay for the joins and for the lanes' Python code taking turns on
the GIL (~0.5-1 ms per step in all): at least ``MIN_LANE_BATCH`` images and ``MIN_LANE_MACS``
forward multiply-adds (benchmarks/PERFORMANCE.md, 'Batch lanes across threads': the seed CNN, 5.1 M
multiply-adds per image, gains from 8 images per lane on; a 0.45 M network loses at 16).
"""
from __future__ import annotations

import os

import numba

from ... import _jit

MIN_LANE_BATCH = 8          # images per lane at least
MIN_LANE_MACS = 25_000_000  # forward multiply-adds per lane at least

_ENABLED = os.environ.get("TINYCNN_LANES", "1") != "0"


def set_enabled(on: bool) -> bool:
    """Turn lanes on or off for the whole process (benchmark ablations, tests); returns the old
    setting. ``TINYCNN_LANES=0`` in the environment starts with them off."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(on)
    return old


def lane_count(ops, n: int, macs_per_sample) -> int:
    """How many lanes a forward of ``n`` samples through ``ops`` uses (1: not cut). ``macs_per_sample``:
    forward multiply-adds per sample, or None when unknown."""
    threads = numba.get_num_threads()
    if threads < 2 or _jit.serial_here() or not _ENABLED:
        return 1
    if not ops or not all(op.per_sample for op in ops):
        return 1
    count = max(1, min(threads, n // MIN_LANE_BATCH))
    while count > 1 and macs_per_sample is not None and (n // count) * macs_per_sample < MIN_LANE_MACS:
        count -= 1
    return count
