"""Run the accuracy table's rows and record what they measured.

    python -m benchmarks.accuracy                      # every row (about an hour on 2 quiet cores)
    python -m benchmarks.accuracy embedded mnist       # chosen rows
    python -m benchmarks.accuracy --list               # the rows and their commands

Each row runs ``tinycnn train <its arguments> --out <folder>`` in a child process, exactly as the
README shows it, with the machine's environment unchanged. Recorded per run, in ``results.json``
(every run is kept, newest last) and the table ``results.md`` (the newest run of each row) -- in
``benchmarks/accuracy/local/`` (ignored by git), or with ``--publish`` in the tracked files beside
this one that the README's accuracy table quotes:

    test accuracy (from the run's metrics.json), target, reached or not
    wall seconds of the whole command (start-up, data loading, training, test, pictures) and the
    training seconds alone (the sum of the epochs' training passes)
    epochs, images per second of training, the git commit, the date
    the 1-minute load average before, during (sampled every 5 s: mean and max) and after the run

The machine is shared: a row does not start while the 1-minute load average is above ``--max-load``
(default 2.5), or while other processes keep more than ``--max-busy`` cores busy (default 0.5,
measured from /proc/stat over 5 seconds just before the start: the load average lags a minute
behind, so a benchmark that has just started does not show in it yet), unless ``--force`` is given.
The recorded load says how quiet it really was. ``--threads 1`` runs tinycnn on one core (one BLAS
and one Numba thread): on a machine where another process holds a core it measures accuracy without
the two fighting over both cores; the thread count is recorded and shown in the table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .rows import ABLATION_ROWS, BY_KEY, ROWS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PUBLISHED_JSON = HERE / "results.json"          # tracked: the README's accuracy table comes from here
PUBLISHED_MD = HERE / "results.md"
LOCAL = HERE / "local"                          # ignored by git: where runs go unless --publish
RESULTS_JSON = LOCAL / "results.json"
RESULTS_MD = LOCAL / "results.md"


def default_data_dir() -> str | None:
    """$TINYCNN_DATA_DIR, else <repo>/../shared/datasets when it exists, else None (download)."""
    env = os.environ.get("TINYCNN_DATA_DIR")
    if env:
        return env
    shared = REPO.parent / "shared" / "datasets"
    return str(shared) if shared.is_dir() else None


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy_cores(seconds: float = 5.0) -> float | None:
    """How many cores were busy (not idle, not waiting for I/O) during the next ``seconds``, from
    /proc/stat; None where there is no /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]     # user nice system idle iowait irq ...
        return sum(values), values[3] + values[4]
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 == total0:
        return 0.0
    return round((1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1), 2)


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a background thread."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.every):
            value = load1()
            if value is not None:
                self.samples.append(value)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples
        return {"mean": round(sum(s) / len(s), 2) if s else None, "max": max(s) if s else None, "samples": len(s)}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command(row, data_dir) -> list[str]:
    if any("{data}" in a for a in row.args) and data_dir is None:
        # no folder with the files: drop --data-dir and let tinycnn download into its cache
        args, skip = [], False
        for a in row.args:
            if skip:
                skip = False
            elif a == "--data-dir":
                skip = True
            else:
                args.append(a)
        return ["tinycnn", "train", *args]
    return ["tinycnn", "train", *(a.replace("{data}", data_dir or "") for a in row.args)]


def tinycnn_executable() -> list[str]:
    exe = shutil.which("tinycnn")
    return [exe] if exe else [sys.executable, "-m", "tinycnn"]


def run_row(row, data_dir, keep: Path | None, busy_before=None, threads: int | None = None) -> dict:
    cmd = command(row, data_dir)
    out_root = keep or Path(tempfile.mkdtemp(prefix=f"tinycnn-acc-{row.key}-"))
    out = out_root / f"{row.key}-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"\n=== {row.key}: {' '.join(cmd)}", flush=True)
    before = load1()
    t0 = time.perf_counter()
    with LoadSampler() as sampler:
        env = dict(os.environ)
        if threads is not None:          # BLAS and Numba thread pools of the child
            env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                       NUMBA_NUM_THREADS=str(threads))
        done = subprocess.run([*tinycnn_executable(), *cmd[1:], "--out", str(out)], cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    result = {
        "row": row.key, "title": row.title, "command": " ".join(cmd), "target": row.target,
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": git_commit(),
        "exit_status": done.returncode, "wall_seconds": round(wall, 1),
        "load_average_1min": {"before": before, "during": sampler.summary(), "after": load1()},
        "busy_cores_before": busy_before,
        "cpu_count": os.cpu_count(), "threads": threads or "default (all cores)",
        "thread_env": {k: v for k, v in env.items() if k.startswith(("OPENBLAS_", "OMP_", "NUMBA_NUM"))},
        "note": row.note,
    }
    if done.returncode == 0:
        metrics = json.loads((out / "metrics.json").read_text())
        h = metrics["history"]
        result.update(
            accuracy=metrics["test"]["accuracy"], reached=metrics["test"]["accuracy"] >= row.target,
            epochs=len(h["loss"]), train_seconds=round(sum(h["seconds"]), 1),
            images_per_s=round(sum(h["images_per_s"]) / len(h["images_per_s"])),
            model=metrics["model"]["name"], macs_per_image=metrics["model"]["macs_per_image"],
            config=metrics["config"])
        budget_used = result["wall_seconds"] if row.budget_of == "wall" else result["train_seconds"]
        result["budget"] = (None if row.budget_s is None else
                            {"seconds": row.budget_s, "of": row.budget_of, "met": budget_used <= row.budget_s})
    if keep is None:
        shutil.rmtree(out_root, ignore_errors=True)
    else:
        result["out"] = str(out)
    return result


def use_published(publish: bool) -> None:
    """Record into the tracked results.json / results.md (``--publish``) or the ignored local/ copy."""
    global RESULTS_JSON, RESULTS_MD
    RESULTS_JSON, RESULTS_MD = (PUBLISHED_JSON, PUBLISHED_MD) if publish else (LOCAL / "results.json",
                                                                               LOCAL / "results.md")


def read_results() -> list:
    """The recorded runs; a first local run starts from the published ones, so its table is whole."""
    for path in (RESULTS_JSON, PUBLISHED_JSON):
        if path.exists():
            return json.loads(path.read_text())
    return []


def write_results(runs: list) -> None:
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(runs, indent=1) + "\n")
    os.replace(tmp, RESULTS_JSON)
    tmp = RESULTS_MD.with_suffix(".md.tmp")
    tmp.write_text(markdown(runs))
    os.replace(tmp, RESULTS_MD)


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _shown(cmd: str) -> str:
    """The command as the README shows it: the shared data folder as ../shared/datasets."""
    shared = str(REPO.parent / "shared" / "datasets")
    return cmd.replace(shared, "../shared/datasets")


def markdown(runs: list) -> str:
    latest = {}
    for r in runs:
        latest[r["row"]] = r
    lines = ["# Accuracy runs (newest run of each row; every run is in results.json)", "",
             "Written by `python -m benchmarks.accuracy`. Load: the 1-minute load average of the 2-core "
             "machine before / mean during / max during the run (above ~2 means other work shared the cores).",
             "", "| row | command | test accuracy | target | wall time | training time | epochs | img/s | threads | "
             "load before / mean / max | date, commit |", "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for row in ROWS:
        r = latest.get(row.key)
        if r is None:
            lines.append(f"| {row.title} | `{' '.join(command(row, '../shared/datasets'))}` | not run yet | "
                         f"{row.target:.1%} | | | | | | | |")
            continue
        load = r["load_average_1min"]
        acc = (f"**{r['accuracy']:.2%}**" + ("" if r["reached"] else " (below target)")
               if "accuracy" in r else f"failed (exit {r['exit_status']})")
        lines.append(f"| {r['title']} | `{_shown(r['command'])}` | {acc} | {r['target']:.1%} | "
                     f"{_minutes(r['wall_seconds'])} "
                     f"| {_minutes(r.get('train_seconds'))} | {r.get('epochs', '-')} | {r.get('images_per_s', '-')} "
                     f"| {r.get('threads', 'default (all cores)')} "
                     f"| {load['before']} / {load['during']['mean']} / {load['during']['max']} "
                     f"| {r['date'][:10]}, {r['commit']} |")
    notes = sorted({r.get("note") for r in latest.values() if r.get("note") and r["row"] not in ABLATION_KEYS})
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines + ablation_markdown(latest)) + "\n"


ABLATION_KEYS = {row.key for row in ABLATION_ROWS}


def ablation_markdown(latest: dict) -> list[str]:
    """The ablation's table: the full recipe's mean and spread over its seeds, then each technique's row
    with its difference to that mean (a difference inside the spread is not evidence either way)."""
    done = {k: r for k, r in latest.items() if k in ABLATION_KEYS and "accuracy" in r}
    full = [done[row.key]["accuracy"] for row in ABLATION_ROWS if "_full_" in row.key and row.key in done]
    lines = ["", "## Speedrun ablation", "",
             "`python -m benchmarks.accuracy --ablation`: the speedrun recipe on a 2-epoch budget (airbench "
             "64/128/128), the full recipe over three seeds and each technique removed in turn (seed 0).", ""]
    if full:
        lines.append(f"Full recipe: mean **{sum(full) / len(full):.2%}** over {len(full)} seed(s), spread "
                     f"{min(full):.2%} to {max(full):.2%}.")
        lines.append("")
    lines += ["| row | command | test accuracy | vs full mean | wall time | load before / mean / max | date, commit |",
              "|---|---|---:|---:|---:|---|---|"]
    for row in ABLATION_ROWS:
        r = latest.get(row.key)
        if r is None:
            lines.append(f"| {row.title} | `{' '.join(command(row, '../shared/datasets'))}` | not run yet | | | | |")
            continue
        load = r["load_average_1min"]
        if "accuracy" in r:
            acc = f"{r['accuracy']:.2%}"
            mean = sum(full) / len(full) if full else None
            delta = "" if mean is None or "_full_" in row.key else f"{(r['accuracy'] - mean) * 100:+.2f} points"
        else:
            acc, delta = f"failed (exit {r['exit_status']})", ""
        lines.append(f"| {r['title']} | `{_shown(r['command'])}` | {acc} | {delta} | {_minutes(r['wall_seconds'])} "
                     f"| {load['before']} / {load['during']['mean']} / {load['during']['max']} "
                     f"| {r['date'][:10]}, {r['commit']} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", help=f"rows to run (default: every row of the README's table): "
                                                f"{', '.join(BY_KEY)}")
    parser.add_argument("--data-dir", default=default_data_dir(),
                        help="folder with mnist/, fashion_mnist/, cifar10/ (default: $TINYCNN_DATA_DIR or "
                             "../shared/datasets beside the repository; without one, tinycnn downloads)")
    parser.add_argument("--max-load", type=float, default=2.5,
                        help="do not start a row while the 1-minute load average is above this (default 2.5)")
    parser.add_argument("--max-busy", type=float, default=0.5,
                        help="do not start a row while other processes keep more than this many cores busy "
                             "(default 0.5)")
    parser.add_argument("--force", action="store_true", help="run even on a busy machine (the load is recorded)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="MINUTES",
                        help="wait up to this long (checking every 30 s) for the machine to be quiet before "
                             "each row, instead of skipping it")
    parser.add_argument("--threads", type=int, help="run tinycnn with this many BLAS and Numba threads "
                        "(default: the libraries' own choice, all cores); recorded with the result")
    parser.add_argument("--keep", type=Path, help="keep each run's --out folder under this folder")
    parser.add_argument("--ablation", action="store_true",
                        help="run the speedrun ablation's rows (with no row names: all of them)")
    parser.add_argument("--list", action="store_true", help="print the rows and their commands, run nothing")
    parser.add_argument("--publish", action="store_true",
                        help=f"record into the tracked {PUBLISHED_JSON.name} and {PUBLISHED_MD.name} (the README's "
                             f"table); default: {LOCAL}/, ignored by git")
    args = parser.parse_args(argv)
    use_published(args.publish)
    unknown = [r for r in args.rows if r not in BY_KEY]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {', '.join(BY_KEY)}")
    chosen = [BY_KEY[k] for k in args.rows] if args.rows else list(ABLATION_ROWS if args.ablation else ROWS)
    if args.list:
        for row in chosen:
            print(f"{row.key:20} target {row.target:.1%}  {' '.join(command(row, args.data_dir))}")
        return 0
    status = 0
    for row in chosen:
        give_up = time.monotonic() + 60 * args.wait
        while True:
            load, busy = load1(), busy_cores()
            too_busy = ((load is not None and load > args.max_load) or (busy is not None and busy > args.max_busy))
            if not too_busy or args.force or time.monotonic() >= give_up:
                break
            print(f"=== {row.key}: waiting for a quiet machine (load {load}, {busy} cores busy)", flush=True)
            time.sleep(25)
        if too_busy and not args.force:
            print(f"=== {row.key}: NOT RUN: the machine is busy (1-minute load average {load}, limit "
                  f"{args.max_load}; {busy} cores busy in the last 5 s, limit {args.max_busy}); the time "
                  f"would not mean much (--force runs anyway)")
            status = 3
            continue
        result = run_row(row, args.data_dir, args.keep, busy, args.threads)
        write_results(read_results() + [result])
        print(f"=== {row.key}: accuracy {result.get('accuracy', 'n/a')}, wall {result['wall_seconds']} s, "
              f"load {result['load_average_1min']}")
        status = status or (0 if result.get("reached") else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
