"""The suite's entry point: ``python -m benchmarks [--quick] [--sections ...]``.

Sections (all by default): ``train`` (training steps and inference, one thread and all cores: the
five nets of nets.py (three chains and the zoo's resnet20 and mobilenet) at batch 64 and 256; in
``--quick``, the seed CNN, vgg_bn and both zoo nets at batch 4), ``layers`` (per-layer forward and
backward), ``matmul`` (the machine's float32 matrix-multiply rate), ``whatif`` (measured potential
of proposed changes in files the speed work does not own), ``startup`` (first training step in a
fresh process, cold and warm Numba cache), ``memory`` (peak memory of a training run, each contender
in its own process) and ``ladder`` (the convolution speed ladder). ``--quick`` shrinks every section
to a seconds-long smoke run whose numbers mean nothing. Results: ``<out>/latest.md`` and
``<out>/latest.json``, where ``<out>`` is ``benchmarks/results/local/`` (ignored by git) unless
``--out`` names another folder; ``--publish`` writes the tracked ``benchmarks/results/latest.*``
that the README's Speed table quotes (a full run only: not with ``--quick`` or ``--sections``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

SECTIONS = ("matmul", "train", "layers", "ladder", "whatif", "startup", "memory")
PUBLISHED = Path(__file__).resolve().parent / "results"          # tracked: what the README quotes
DEFAULT_OUT = PUBLISHED / "local"                                # ignored by git


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds); its numbers mean nothing")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=None, help="sections to run (default: all)")
    p.add_argument("--out", type=Path, default=None, help=f"folder for latest.md/latest.json (default {DEFAULT_OUT}, "
                   "ignored by git)")
    p.add_argument("--publish", action="store_true",
                   help=f"write the tracked {PUBLISHED}/latest.md and latest.json (the README's Speed table); "
                        "full runs only")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument("--keep-blas-env", action="store_true",
                   help="keep OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (the suite removes them by default)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = publish_problem(args)
    if problem:
        parser.error(problem)
    return run(args)


def publish_problem(args) -> str | None:
    """Why ``--publish`` cannot be honoured with these options (None when it can, or is not asked)."""
    if not getattr(args, "publish", False):
        return None
    if args.quick:
        return "--publish: a --quick run's numbers mean nothing; publish a full run"
    if args.sections:
        return "--publish: the published results hold every section; run them all (no --sections)"
    if args.out is not None:
        return f"--publish writes {PUBLISHED}; leave out --out"
    return None


def out_dir(args) -> Path:
    """Where this run's latest.md / latest.json go."""
    if getattr(args, "publish", False):
        return PUBLISHED
    return args.out or DEFAULT_OUT


def run(args) -> int:
    from . import machine, report, throughput
    from .nets import NETS

    t_start = time.perf_counter()
    out = out_dir(args)
    sections = args.sections or (("matmul", "train", "layers", "ladder", "whatif") if args.quick else SECTIONS)
    use_torch = throughput.have_torch() and not args.no_torch
    all_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # quick: one thread only; on a busy machine, thread pools waiting for each other make 2-thread runs
    # take seconds, and the smoke run measures nothing anyway
    threads = [1] if args.quick else sorted({1, all_cores}, reverse=True)
    q = args.quick

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", flush=True)

    facts = machine.facts()
    log(f"machine: {facts['cpu']}, {facts['usable_cpus']} cores; BLAS: {machine.blas_summary(facts)}")
    if facts["blas_env_removed_for_this_run"]:
        log(f"(removed for this run: {facts['blas_env_removed_for_this_run']})")
    results = {"quick": q, "machine": facts, "sections": list(sections), "torch": use_torch}
    from . import timing
    timing.SETTLE_S = 0.0 if q else timing.SETTLE_S
    timing.WARM_S = 0.0 if q else timing.WARM_S
    results["settle_s"] = timing.SETTLE_S
    results["warm_s"] = timing.WARM_S

    if "matmul" in sections:
        from . import matmul
        log("== matmul")
        results["matmul"] = matmul.rate(threads, size=256 if q else 2048, rounds=1 if q else 3, reps=2 if q else 5)
        for n, r in results["matmul"].items():
            log(f"  {n} thread(s): {r['gflops']:.0f} GFLOP/s  ({r['size']}^2 float32)")

    if "train" in sections:
        log("== training steps and inference")
        nets = list(NETS.values())
        batches = [4] if q else [64, 256]
        results["agreement"] = {info.name: throughput.agreement(info, 2 if q else 8, use_torch) for info in nets}
        for name, agr in results["agreement"].items():
            log(f"  agreement {name}: {agr}")
        reps = {4: 1, 64: 5, 256: 2}
        # quick: the seed CNN and vgg_bn (the only chain with batch norm and dropout) and both zoo nets
        # (residual blocks, depthwise convolutions; tinycnn and PyTorch only), to smoke-test them all
        quick_nets = ("seed_cnn", "vgg_bn", "resnet20", "mobilenet")
        timed = [NETS[name] for name in quick_nets] if q else nets
        results["train"] = throughput.run(timed, batches, threads,
                                          ("train", "infer"),
                                          rounds=1 if q else 5, reps=reps, use_torch=use_torch, log=log)

    if "layers" in sections:
        from . import layers
        log("== per-layer forward and backward")
        results["layers"] = layers.run(batch=4 if q else 64, rounds=1 if q else 5, reps=1 if q else 5,
                                       use_torch=use_torch, log=log, names=layers.QUICK if q else None)

    if "ladder" in sections:
        from . import ladder
        log("== convolution speed ladder")
        results["ladder"] = ladder.run(batch=1 if q else 32, reps=1 if q else 15, log=log)

    if "whatif" in sections:
        from . import whatif
        log("== what-if: the shipped training step beside variants of it (ablation)")
        results["whatif"] = whatif.run([1] if q else threads, batch=4 if q else 64, rounds=1 if q else 5,
                                       reps=1 if q else 4,
                                       use_torch=use_torch, log=log)

    if "startup" in sections:
        from . import startup
        log("== start-up: first training step in a fresh process")
        results["startup"] = startup.run(use_torch=use_torch, log=log)

    if "memory" in sections:
        from . import memory
        log("== peak memory of a training run (one process per contender)")
        results["memory"] = memory.run(batches=[64, 256], use_torch=use_torch, log=log)

    results["suite_seconds"] = time.perf_counter() - t_start
    results["machine"]["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    md, js = report.write(results, out)
    log(f"wrote {md} and {js} ({results['suite_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
