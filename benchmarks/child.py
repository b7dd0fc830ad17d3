"""One contender alone in a fresh process:
``python -m benchmarks.child CONTENDER NET BATCH STEPS [--warmup]``.

Prints one JSON line: seconds to import the engine and for the first and second training step, and
the resident set size before the steps (``base_mib``) and its peak at the end (``peak_mib``, Linux
``VmHWM``, see ``peak_rss_mib``). With ``--warmup`` one training step at batch 1 runs first (loading
compiled kernels, initialising the libraries) and the peak is reset after it, so ``peak - base`` is
the memory of the training run itself. Only the named contender's engine is imported, so each process holds one
engine's memory.
Used by ``startup.py`` and ``memory.py``, for the chain nets of nets.py (``CHAIN_NETS``) only.
"""
from __future__ import annotations

import json
import resource
import sys
import time


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024                       # kB
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux's ``VmHWM`` (from /proc/self/status) belongs to this process's own address space. Where it is
    missing we fall back to ``ru_maxrss``, which on Linux is *inherited across fork and exec* (a child
    of a large parent reports the parent's peak), so it is only right for a process that started small.
    """
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux: write 5 to /proc/self/clear_refs); return the current
    RSS in MiB, or the unreset peak where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mib("VmRSS")
    except OSError:
        return peak_rss_mib()


def main(argv) -> None:
    t0 = time.perf_counter()
    contender, net_name, batch, steps = argv[0], argv[1], int(argv[2]), int(argv[3])
    warmup = "--warmup" in argv[4:]
    import numpy as np

    from .nets import (
        CHAIN_NETS,
        LR,
        MOMENTUM,
        NETS,
        build_net,
        build_numpy,
        build_torch_net,
        random_state,
    )
    if contender == "tinycnn":
        import tinycnn as tc
    elif contender == "pytorch":
        import torch
        import torch.nn.functional as F
    t_import = time.perf_counter() - t0

    info = NETS[net_name]
    if info.spec is None and contender == "numpy":
        raise SystemExit(f"benchmarks.child: {net_name} is a zoo net; the plain-NumPy engine runs only the chains "
                         f"{', '.join(CHAIN_NETS)}")

    def make_step(batch):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, *info.input_shape), dtype=np.float32)
        labels = rng.integers(0, info.classes, batch)
        if info.spec is None:                       # a zoo net: its own initial weights are the state
            state = {k: np.array(v) for k, v in build_net(info, np.random.default_rng(0)).state_dict().items()}
        else:
            state = random_state(info.spec, rng)
        if contender == "tinycnn":
            model = build_net(info, rng)
            model.load_state_dict(state)
            loss_fn = tc.SoftmaxCrossEntropy()
            opt = tc.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

            def step():
                loss_fn(model(x), labels)
                model.backward(loss_fn.backward(), input_grad=False)
                opt.step()
        elif contender == "pytorch":
            tmodel = build_torch_net(info, state)
            topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
            tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

            def step():
                topt.zero_grad(set_to_none=True)
                F.cross_entropy(tmodel(tx), tl).backward()
                topt.step()
        else:
            from . import numpy_engine as npe
            net = build_numpy(info.spec, state)
            nopt = npe.SGDMomentum(net, LR, MOMENTUM)

            def step():
                npe.train_step(net, nopt, x, labels)
        return step

    warm_s = None
    if warmup:                      # one step at batch 1: compiled kernels loaded, libraries initialised
        t1 = time.perf_counter()
        make_step(1)()
        warm_s = time.perf_counter() - t1
    step = make_step(batch)
    base = reset_peak() if warmup else peak_rss_mib()
    times = []
    for _ in range(steps):
        t1 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t1)
    print(json.dumps({"contender": contender, "net": net_name, "batch": batch, "import_s": t_import,
                      "warmup_s": warm_s, "first_step_s": times[0],
                      "second_step_s": times[1] if steps > 1 else None,
                      "base_mib": base, "peak_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main(sys.argv[1:])
