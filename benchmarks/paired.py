"""Two tinycnn checkouts, timed paired in time: ``python -m benchmarks.paired --old DIR --new DIR CONFIG ...``.

A suite run divides tinycnn by a PyTorch measured in the same process, and compares two engines only
through two such runs, minutes apart. That cannot show a few per cent: PyTorch's own rate moves by
10-40 % between runs, and it depends on the engine it shares the process with (see
benchmarks/PERFORMANCE.md, 'Before and after the executor: paired runs in two long-lived
processes'). This tool measures tinycnn's own rate instead:

* two worker processes start once, each importing ``tinycnn`` from its own checkout (``DIR`` is a
  folder holding a ``tinycnn/`` package, e.g. a ``git worktree`` of an older commit); both use *this*
  checkout's ``benchmarks`` code, so the networks, batches and steps are the same;
* for each round, the driver asks them in turn (old, new in even rounds; new, old in odd ones) to time
  one configuration: a pause of ``timing.SETTLE_S``, untimed calls for ``timing.WARM_S``, then the
  median of ``--steps`` calls (a training step or an inference forward, as ``throughput.contenders``
  builds them, at the configuration's thread count);
* per configuration it prints the median of each side's round medians and the median over rounds of
  old time / new time (above 1: the new checkout is faster), with the range of that ratio.

CONFIG is ``NET:MODE:BATCH:THREADS``, e.g. ``lenet:infer:64:2`` (NET from ``benchmarks.nets.NETS``,
MODE ``train`` or ``infer``). The workers run without the environment's OpenBLAS overrides
(``blas_env.OVERRIDES``), as the suite does.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

THIS_REPO = Path(__file__).resolve().parent.parent


def parse_config(text: str) -> tuple[str, str, int, int]:
    """``"lenet:infer:64:2"`` -> ("lenet", "infer", 64, 2), with a clear error for anything else."""
    parts = text.split(":")
    if len(parts) != 4 or parts[1] not in ("train", "infer") or not parts[2].isdigit() or not parts[3].isdigit():
        raise argparse.ArgumentTypeError(
            f"configuration {text!r}: expected NET:MODE:BATCH:THREADS, e.g. lenet:infer:64:2 "
            "(MODE train or infer, BATCH and THREADS positive integers)")
    net, mode, batch, threads = parts[0], parts[1], int(parts[2]), int(parts[3])
    if batch < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"configuration {text!r}: BATCH and THREADS must be at least 1")
    return net, mode, batch, threads


def worker(root: str) -> None:
    """Serve timing requests on stdin (one JSON object per line), answering one JSON line each.

    Request: ``{"config": "NET:MODE:BATCH:THREADS", "steps": S}``; answer: ``{"median_s": ...,
    "times_s": [...]}``. The first answer is ``{"tinycnn": <path of the imported package>}``.
    """
    sys.path.insert(0, root)           # this checkout's tinycnn, ahead of any installed one
    import tinycnn

    from . import timing
    from .nets import NETS
    from .throughput import contenders

    print(json.dumps({"tinycnn": str(Path(tinycnn.__file__).resolve().parent)}), flush=True)
    built = {}
    for line in sys.stdin:
        req = json.loads(line)
        net, mode, batch, threads = parse_config(req["config"])
        if req["config"] not in built:
            built[req["config"]] = contenders(NETS[net], batch, mode, use_torch=False)["tinycnn"]
        fn = built[req["config"]]
        with timing.thread_count(threads):
            time.sleep(timing.SETTLE_S)                     # the other worker's threads go idle
            start = time.perf_counter()
            fn()
            while time.perf_counter() - start < timing.WARM_S:
                fn()
            times = []
            for _ in range(req["steps"]):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        print(json.dumps({"median_s": statistics.median(times), "times_s": times}), flush=True)


class Worker:
    """A long-lived worker process importing tinycnn from ``root``."""

    def __init__(self, root: Path):
        from .blas_env import OVERRIDES

        env = {k: v for k, v in os.environ.items() if k not in OVERRIDES and k != "PYTHONPATH"}
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.paired", "--worker", str(root)],
                                     cwd=THIS_REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.package = self._answer()["tinycnn"]
        if not Path(self.package).is_relative_to(root.resolve()):
            self.close()
            raise SystemExit(f"benchmarks.paired: the worker for {root} imported tinycnn from "
                             f"{self.package}, not from that folder")

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"benchmarks.paired: a worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def time(self, config: str, steps: int) -> float:
        self.proc.stdin.write(json.dumps({"config": config, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self._answer()["median_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="folder holding the old tinycnn/ package")
    p.add_argument("--new", type=Path, default=THIS_REPO, help="folder holding the new one (default: this checkout)")
    p.add_argument("--rounds", type=int, default=15, help="rounds per configuration (default 15)")
    p.add_argument("--steps", type=int, default=0,
                   help="timed calls per turn (default: 10 training steps or 20 inference calls)")
    p.add_argument("configs", nargs="+", type=parse_config, metavar="NET:MODE:BATCH:THREADS")
    args = p.parse_args(argv)
    for side in (args.old, args.new):
        if not (side / "tinycnn" / "__init__.py").is_file():
            p.error(f"{side} holds no tinycnn/ package")
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")

    workers = {"old": Worker(args.old), "new": Worker(args.new)}
    print(f"old: {workers['old'].package}\nnew: {workers['new'].package}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| net | mode | batch | threads | old ms | new ms | old/new (median, range) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    try:
        for net, mode, batch, threads in args.configs:
            config = f"{net}:{mode}:{batch}:{threads}"
            steps = args.steps or (10 if mode == "train" else 20)
            old, new, ratio = [], [], []
            for r in range(args.rounds):
                order = ("old", "new") if r % 2 == 0 else ("new", "old")
                got = {side: workers[side].time(config, steps) for side in order}
                old.append(got["old"])
                new.append(got["new"])
                ratio.append(got["old"] / got["new"])
            print(f"| {net} | {mode} | {batch} | {threads} | {1e3 * statistics.median(old):.2f} | "
                  f"{1e3 * statistics.median(new):.2f} | {statistics.median(ratio):.3f} "
                  f"({min(ratio):.2f}-{max(ratio):.2f}) |", flush=True)
    finally:
        for w in workers.values():
            w.close()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        sys.exit(main())
