"""Start-up: the first training step of the seed CNN (batch 64) in a fresh process.

Method: ``python -m benchmarks.child`` runs in a new process with ``NUMBA_CACHE_DIR`` pointing at a
new temporary folder. The first run finds the folder empty (cold: every kernel is compiled); the
second run reuses it (warm: kernels load from the cache). Each run reports the time to import the
engine, the first and second training step (the first includes compiling or loading kernels) and
the whole process wall time as seen from outside. PyTorch is run the same way for comparison.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(contender: str, net: str, batch: int, steps: int, env_extra: dict | None = None,
          warmup: bool = False) -> dict:
    env = dict(os.environ)
    env.update(env_extra or {})
    t0 = time.perf_counter()
    argv = [sys.executable, "-m", "benchmarks.child", contender, net, str(batch), str(steps)]
    out = subprocess.run(argv + (["--warmup"] if warmup else []),
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {contender} {net} {batch} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def run(use_torch: bool, log, net: str = "seed_cnn", batch: int = 64) -> dict:
    runs = []
    with tempfile.TemporaryDirectory(prefix="tinycnn-numba-cache-") as cache:
        for label in ("cold", "warm"):
            r = child("tinycnn", net, batch, 2, {"NUMBA_CACHE_DIR": cache})
            r["cache"] = label
            runs.append(r)
            log(f"  tinycnn {label:4s} cache: import {r['import_s']:.2f} s, first step {r['first_step_s']:.2f} s, "
                f"second {r['second_step_s']:.3f} s, process {r['wall_s']:.2f} s")
    if use_torch:
        r = child("pytorch", net, batch, 2)
        r["cache"] = "n/a"
        runs.append(r)
        log(f"  pytorch: import {r['import_s']:.2f} s, first step {r['first_step_s']:.2f} s, "
            f"second {r['second_step_s']:.3f} s, process {r['wall_s']:.2f} s")
    return {"runs": runs, "method": __doc__.split("\n\n", 1)[1].strip().replace("\n", " ")}
