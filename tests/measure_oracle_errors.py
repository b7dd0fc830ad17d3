"""Measure how far tinycnn is from PyTorch, per layer, tensor and dtype, over many random configurations.

Not a test (pytest does not collect it): a measurement for the notes. It reuses the runners of
tests/test_torch_oracle.py, draws configurations from the same ranges with a seeded numpy Generator,
and prints for every (layer, tensor, dtype):

* max rel: the largest max-norm relative error max|tinycnn - torch| / max|torch| seen;
* max diff/bound (float32): the largest elementwise |tinycnn - torch| / derived bound seen (the test
  passes while this stays <= 1; "exact" = the tensors were bit-equal every time).

Usage:  python tests/measure_oracle_errors.py [--configs 300] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_torch_oracle import (  # noqa: E402
    bound_ratio,
    max_rel_error,
    run_avgpool,
    run_conv,
    run_dense,
    run_flatten,
    run_maxpool,
    run_relu,
    run_sigmoid,
    run_softmax_ce,
)
from window_shapes import Window  # noqa: E402


def draw_window(rng, pooling: bool) -> Window:
    kh, kw = rng.integers(1, 6, 2)
    sh, sw = rng.integers(1, 4, 2)
    ph = rng.integers(0, kh // 2 + 1) if pooling else rng.integers(0, kh)
    pw = rng.integers(0, kw // 2 + 1) if pooling else rng.integers(0, kw)
    min_h, min_w = max(1, kh - 2 * ph), max(1, kw - 2 * pw)
    return Window(n=int(rng.integers(1, 5)), c=int(rng.integers(1, 7)),
                  h=int(min_h + rng.integers(0, 7)), w=int(min_w + rng.integers(0, 7)),
                  kh=int(kh), kw=int(kw), sh=int(sh), sw=int(sw), ph=int(ph), pw=int(pw))


def draw_shape(rng, min_dims=1):
    return tuple(int(v) for v in rng.integers(1, 6, rng.integers(min_dims, 5)))


def runners(torch, rng, dtype):
    """One random configuration of every layer: {layer name: list[Compared]}."""
    seed = int(rng.integers(2**32))
    return {
        "Conv2D": run_conv(torch, draw_window(rng, False), int(rng.integers(1, 7)), bool(rng.integers(2)), seed, dtype),
        "MaxPool2D": run_maxpool(torch, draw_window(rng, True), bool(rng.integers(2)), seed, dtype),
        "AvgPool2D": run_avgpool(torch, draw_window(rng, True), bool(rng.integers(2)), seed, dtype),
        "ReLU": run_relu(torch, draw_shape(rng), seed, dtype),
        "Sigmoid": run_sigmoid(torch, draw_shape(rng), float(rng.choice([0.5, 3.0, 12.0])), seed, dtype),
        "Flatten": run_flatten(torch, draw_shape(rng, 2), seed, dtype),
        "Dense": run_dense(torch, int(rng.integers(1, 5)), int(rng.integers(1, 41)), int(rng.integers(1, 13)),
                           bool(rng.integers(2)), seed, dtype),
        "SoftmaxCrossEntropy": run_softmax_ce(torch, int(rng.integers(1, 7)), int(rng.integers(1, 13)),
                                              str(rng.choice(["int", "prob", "unnormalized"])),
                                              float(rng.choice([0.1, 1.0, 10.0, 50.0])), seed, dtype),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=300, help="random configurations per layer and dtype")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(args.seed)
    rel = defaultdict(float)
    ratio = defaultdict(float)
    exact = defaultdict(lambda: True)
    for dtype in (np.float64, np.float32):
        for _ in range(args.configs):
            for layer, results in runners(torch, rng, dtype).items():
                for c in results:
                    key = (layer, c.name, np.dtype(dtype).name)
                    rel[key] = max(rel[key], max_rel_error(c))
                    ratio[key] = max(ratio[key], bound_ratio(c))
                    exact[key] &= bool(np.array_equal(c.ours, c.theirs))
    print(f"{args.configs} random configurations per layer and dtype (seed {args.seed})\n")
    print(f"| {'layer':<20} | {'tensor':<12} | {'dtype':<7} | {'max rel error':>13} | {'max diff/bound':>14} |")
    print(f"|{'-' * 22}|{'-' * 14}|{'-' * 9}|{'-' * 15}|{'-' * 16}|")
    for key in sorted(rel, key=lambda k: (list(dict.fromkeys(k2[0] for k2 in rel)).index(k[0]), k[2], k[1])):
        layer, name, dt = key
        r = "exact" if exact[key] else f"{ratio[key]:.3f}" if dt == "float32" else "-"
        print(f"| {layer:<20} | {name:<12} | {dt:<7} | {rel[key]:>13.3e} | {r:>14} |")


if __name__ == "__main__":
    main()
