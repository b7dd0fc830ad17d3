"""Peak memory of a training run: each contender alone in its own process.

Method: ``python -m benchmarks.child ... --warmup`` imports one engine and runs one training step at
batch 1 (compiled kernels loaded, libraries initialised), then builds the network and batch, resets
the peak resident set size to the current one (Linux: ``/proc/self/clear_refs``) and reads it as the
base; it runs 5 training steps (forward, loss, backward, SGD momentum) and reads the peak (``VmHWM``
from /proc/self/status; not ``ru_maxrss``, which a child inherits from its parent across fork and
exec). "Peak increase" is the memory the training itself needed (activations, caches, gradients,
optimizer state, workspaces); "peak RSS" also counts the engine's libraries (PyTorch's are larger
than NumPy + Numba's). tinycnn's kernels come from a Numba cache warmed by one throw-away run first.
"""
from __future__ import annotations

import tempfile

from .nets import NETS
from .startup import child


def run(batches: list[int], use_torch: bool, log, nets=tuple(NETS), steps: int = 5) -> dict:
    runs = []
    every = ["tinycnn", "pytorch", "numpy"] if use_torch else ["tinycnn", "numpy"]
    with tempfile.TemporaryDirectory(prefix="tinycnn-numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        # Warm the cache at the largest batch: small work runs on the kernels' serial twins, large
        # work on the parallel versions (tinycnn/_jit.py), and a kernel compiled inside a measured
        # run would add the compiler's memory to its peak (seen: +60 MiB at seed CNN batch 64).
        for net in nets:
            child("tinycnn", net, max(batches), 1, env)
        for net in nets:
            for batch in batches:
                names = every if NETS[net].zoo is None else [c for c in every if c != "numpy"]   # no NumPy zoo
                for name in names:
                    r = child(name, net, batch, steps, env, warmup=True)
                    runs.append(r)
                    log(f"  {net:8s} batch {batch:3d} {name:8s} peak {r['peak_mib']:6.0f} MiB, "
                        f"base {r['base_mib']:6.0f} MiB, increase {r['peak_mib'] - r['base_mib']:6.0f} MiB")
    return {"runs": runs, "method": __doc__.split("\n\n", 1)[1].strip().replace("\n", " ")}
