"""Write the suite's results as Markdown (for people and the README) and JSON (for machines)."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from .machine import blas_summary
from .nets import NETS, flops_per_image

NAMES = {"tinycnn": "tinycnn", "pytorch": "PyTorch", "numpy": "NumPy im2col"}


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def _load(la):
    return "n/a" if la is None else "/".join(f"{v:.1f}" for v in la)


def machine_md(m: dict) -> list[str]:
    removed = m["blas_env_removed_for_this_run"]
    lines = ["## Machine", "",
             f"- CPU: {m['cpu']}, {m['usable_cpus']} usable cores",
             f"- BLAS (threadpoolctl): {blas_summary(m)}",
             f"- Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']} "
             f"(threading layer {m['numba_threading_layer']}, {m['numba_threads']} threads), "
             f"PyTorch {m.get('torch') or 'not installed'}, tinycnn {m.get('tinycnn', '?')}",
             f"- Load average (1, 5, 15 min) at start {_load(m.get('load_average_at_start'))}, at end "
             f"{_load(m.get('load_average_at_end'))}: anything near or above the core count means other "
             "processes shared the cores and the two-thread figures are unreliable",
             "- Environment: "
             f"{'removed ' + ', '.join(f'{k}={v}' for k, v in removed.items()) if removed else 'unchanged'}"
             " for this run (see benchmarks/blas_env.py)", ""]
    return lines


def train_md(records: list[dict], matmul: dict | None) -> list[str]:
    lines = ["## Training step and inference (images per second; median of interleaved calls)", "",
             "Each contender's turn starts after a 0.3 s pause, so no engine's idle threads are still "
             "spinning on a core when the next one starts, then makes untimed calls for 0.25 s, so "
             "the cores are back from idle before the timed calls (benchmarks/timing.py).", "",
             "| net | mode | batch | threads | tinycnn | PyTorch | NumPy im2col | tinycnn / PyTorch "
             "| tinycnn / NumPy | tinycnn GFLOP/s | of matmul peak |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    no_numpy = []                                 # nets without a plain-NumPy contender
    for r in records:
        c = r["contenders"]
        ips = {k: c[k]["images_per_s"] if k in c else None for k in NAMES}
        flops = flops_per_image(NETS[r["net"]])["train" if r["mode"] == "train" else "forward"]
        gf = ips["tinycnn"] * flops / 1e9
        peak = matmul.get(r["threads"], {}).get("gflops") if matmul else None
        if ips["numpy"] is None and r["net"] not in no_numpy:
            no_numpy.append(r["net"])
        lines.append(
            f"| {r['net']} | {r['mode']} | {r['batch']} | {r['threads']} | {ips['tinycnn']:.0f} | "
            + (f"{ips['pytorch']:.0f}" if ips["pytorch"] else "-") + " | "
            + (f"{ips['numpy']:.0f}" if ips["numpy"] else "—") + " | "
            f"{_ratio(ips['tinycnn'], ips['pytorch'])} | "
            + (_ratio(ips["tinycnn"], ips["numpy"]) if ips["numpy"] else "—") + " | "
            f"{gf:.0f} | " + (f"{100 * gf / peak:.0f}%" if peak else "-") + " |")
    lines += ["", "Ratios above 1 mean tinycnn is faster. FLOPs count the convolutions' and dense layers' "
              "multiply-adds (training: forward + weight gradient + input gradient, without the first "
              "layer's input gradient); the peak is the matmul section's rate at the same thread count."]
    if no_numpy:
        lines += ["", f"—: no NumPy im2col figure for {', '.join(no_numpy)}: the plain-NumPy baseline "
                  "(benchmarks/numpy_engine.py) implements only the chains of layer specs in "
                  "benchmarks/nets.py, not tinycnn.zoo's residual blocks, grouped (depthwise) "
                  "convolutions or global average pooling."]
    return lines + [""]


# The speed targets for every net of the suite, as ratios tinycnn / PyTorch from this one run:
# mode -> (must, aim); None: no aim. Also: two threads never slower than one (must), and at least
# AIM_MATMUL_SHARE of the matmul section's rate while training AIM_MATMUL_NETS at batch 256 (aim).
TARGETS = {"train": (1.3, 2.0), "infer": (1.5, None)}
AIM_MATMUL_SHARE, AIM_MATMUL_NETS = 0.60, ("vgg_bn", "resnet20")


def targets_md(records: list[dict], matmul: dict | None) -> list[str]:
    """Every row of the train section against the targets: its ratio to PyTorch against the must and
    the aim, and whether its two-thread rate is at least its one-thread rate."""
    ips = {(r["net"], r["mode"], r["batch"], r["threads"]): r["contenders"] for r in records}
    lines = ["## Against the speed targets", "",
             "Must: training >= " + f"{TARGETS['train'][0]}x PyTorch, inference >= {TARGETS['infer'][0]}x, "
             "two threads never slower than one; aim: training >= " + f"{TARGETS['train'][1]}x, and "
             f">= {100 * AIM_MATMUL_SHARE:.0f} % of the matmul rate training "
             + " and ".join(AIM_MATMUL_NETS) + " at batch 256.", "",
             "| net | mode | batch | threads | tinycnn / PyTorch | must | aim | 2 threads >= 1 thread |",
             "|---|---|---:|---:|---:|---|---|---|"]
    tally = {"must": [0, 0], "aim": [0, 0]}
    for r in records:
        c = r["contenders"]
        if "pytorch" not in c:
            continue
        ratio = c["tinycnn"]["images_per_s"] / c["pytorch"]["images_per_s"]
        must, aim = TARGETS[r["mode"]]
        ok_must = ratio >= must
        tally["must"][0] += ok_must
        tally["must"][1] += 1
        aim_cell = "-"
        if aim is not None:
            tally["aim"][0] += ratio >= aim
            tally["aim"][1] += 1
            aim_cell = "met" if ratio >= aim else "missed"
        threads_cell = "-"
        if r["threads"] > 1 and (r["net"], r["mode"], r["batch"], 1) in ips:
            one = ips[(r["net"], r["mode"], r["batch"], 1)]["tinycnn"]["images_per_s"]
            threads_cell = "yes" if c["tinycnn"]["images_per_s"] >= one else f"**no** ({one:.0f} img/s on 1)"
        lines.append(f"| {r['net']} | {r['mode']} | {r['batch']} | {r['threads']} | {ratio:.2f}x | "
                     f"{'met' if ok_must else '**missed**'} | {aim_cell} | {threads_cell} |")
    lines += ["", f"Must met in {tally['must'][0]} of {tally['must'][1]} rows; training aim met in "
              f"{tally['aim'][0]} of {tally['aim'][1]}."]
    if matmul:
        for r in records:
            if r["net"] in AIM_MATMUL_NETS and r["mode"] == "train" and r["batch"] == 256:
                peak = matmul.get(r["threads"], {}).get("gflops")
                if peak:
                    gf = r["contenders"]["tinycnn"]["images_per_s"] * flops_per_image(NETS[r["net"]])["train"] / 1e9
                    lines.append(f"- {r['net']} training, batch 256, {r['threads']} thread(s): {gf:.0f} GFLOP/s "
                                 f"= {100 * gf / peak:.0f} % of the matmul rate (aim {100 * AIM_MATMUL_SHARE:.0f} %)")
    return lines + [""]


def agreement_md(agr: dict) -> list[str]:
    lines = ["## Do the contenders compute the same function?", "",
             "Max relative difference to tinycnn (max |difference| / max |tinycnn's value| per tensor) from "
             "identical weights and batch (batch 8, float32).", "",
             "| net | contender | logits | loss | parameter gradients |", "|---|---|---:|---:|---:|"]
    for net, per in agr.items():
        for name, d in per.items():
            lines.append(f"| {net} | {NAMES[name]} | {d['logits']:.1e} | {d['loss']:.1e} | "
                         f"{d['gradients']:.1e} |")
    return lines + [""]


def layers_md(rows: list[dict]) -> list[str]:
    lines = ["## Per layer (milliseconds, median; batch as shown, all cores)", "",
             "| layer | input | pass | tinycnn | PyTorch | NumPy im2col | tinycnn / PyTorch |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        ms = {k: r["ms"].get(k) for k in NAMES}
        cell = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
        lines.append(f"| {r['layer']} | {r['input']} | {r['pass']} | {cell(ms['tinycnn'])} | "
                     f"{cell(ms['pytorch'])} | {cell(ms['numpy'])} | {_ratio(ms['pytorch'], ms['tinycnn'])} |")
    return lines + ["", "Ratio = PyTorch time / tinycnn time (above 1: tinycnn faster).", ""]


def ladder_md(lad: dict) -> list[str]:
    lines = [f"## Convolution speed ladder ({lad['shape']})", "",
             "| rung | forward ms | backward ms | speed-up over the rung before | agrees with the rung before |",
             "|---|---:|---:|---:|---|"]
    prev = None
    for r in lad["rungs"]:
        tot = r["forward_ms"] + r["backward_ms"]
        lines.append(f"| {r['name']} | {r['forward_ms']:.2f} | {r['backward_ms']:.2f} | "
                     + (f"{prev / tot:.1f}x" if prev else "-") + f" | {r['agrees']} |")
        prev = tot
    return lines + ["", lad["check"], ""]


def startup_md(st: dict) -> list[str]:
    lines = ["## Start-up: first training step in a fresh process (seed CNN, batch 64)", "",
             "| contender | Numba cache | import s | first step s | second step s | process wall s |",
             "|---|---|---:|---:|---:|---:|"]
    for r in st["runs"]:
        lines.append(f"| {NAMES[r['contender']]} | {r['cache']} | {r['import_s']:.2f} | {r['first_step_s']:.2f} | "
                     f"{r['second_step_s']:.3f} | {r['wall_s']:.2f} |")
    return lines + ["", st["method"], ""]


def memory_md(mem: dict) -> list[str]:
    lines = ["## Peak memory of a training run (MiB)", "",
             "| net | batch | contender | peak RSS | RSS after imports and model | peak increase |",
             "|---|---:|---|---:|---:|---:|"]
    for r in mem["runs"]:
        lines.append(f"| {r['net']} | {r['batch']} | {NAMES[r['contender']]} | {r['peak_mib']:.0f} | "
                     f"{r['base_mib']:.0f} | {r['peak_mib'] - r['base_mib']:.0f} |")
    return lines + ["", mem["method"], ""]


def matmul_md(mm: dict) -> list[str]:
    lines = ["## Machine float32 matrix multiply (NumPy's BLAS)", "", "| threads | size | GFLOP/s |",
             "|---:|---:|---:|"]
    for n, r in mm.items():
        lines.append(f"| {n} | {r['size']} | {r['gflops']:.0f} |")
    return lines + [""]


def whatif_md(w: dict) -> list[str]:
    names = list(w["rows"][0]["ms"])
    lines = [f"## What-if: the shipped step beside variants of it ({w['net']}, batch {w['batch']}, "
             "training step, ms)", "",
             "| threads | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for r in w["rows"]:
        lines.append(f"| {r['threads']} | " + " | ".join(f"{r['ms'][k]:.1f}" for k in names) + " |")
    if w.get("splits"):
        sp = w["splits"]
        lines += ["", f"Split of the {sp['cores']} cores between the thread pools (shipped tinycnn, training step, "
                  "ms):", "",
                  "| " + " | ".join(sp["ms"]) + " |", "|" + "---:|" * len(sp["ms"]),
                  "| " + " | ".join(f"{v:.1f}" for v in sp["ms"].values()) + " |"]
    return lines + ["", "Variants are defined in benchmarks/whatif.py; the first three train "
                    f"bit for bit alike (max weight difference after two steps: "
                    f"{w['max_weight_diff_after_two_steps']:.1e}). See benchmarks/PERFORMANCE.md.", ""]


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["# tinycnn benchmarks", "",
             f"`python -m benchmarks{' --quick' if results['quick'] else ''}` (or `tinycnn bench`), {stamp}, "
             f"suite time {results['suite_seconds']:.0f} s."
             + (" **Quick smoke run: these numbers mean nothing.**" if results["quick"] else ""), ""]
    lines += machine_md(results["machine"])
    if "train" in results:
        lines += train_md(results["train"], results.get("matmul"))
        lines += targets_md(results["train"], results.get("matmul"))
    if "agreement" in results:
        lines += agreement_md(results["agreement"])
    if "matmul" in results:
        lines += matmul_md(results["matmul"])
    if "layers" in results:
        lines += layers_md(results["layers"])
    if "ladder" in results:
        lines += ladder_md(results["ladder"])
    if "whatif" in results:
        lines += whatif_md(results["whatif"])
    if "startup" in results:
        lines += startup_md(results["startup"])
    if "memory" in results:
        lines += memory_md(results["memory"])
    md = out_dir / "latest.md"
    js = out_dir / "latest.json"
    md.write_text("\n".join(lines))
    js.write_text(json.dumps(results, indent=1, default=str))
    return md, js
