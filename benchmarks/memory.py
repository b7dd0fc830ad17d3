"""Peak memory of a training run: each contender alone in its own process.

Method: ``python -m benchmarks.child`` imports one engine, builds the network and the batch, and reads
its peak resident set size (Linux ``VmHWM`` from /proc/self/status; not ``ru_maxrss``, which a
child inherits from its parent across fork and exec) as the base; it then runs
5 training steps (forward, loss, backward, SGD momentum) and reads the peak again. "Peak increase" is
the memory the training itself needed (activations, caches, gradients, optimizer state, workspaces);
"peak RSS" also counts the engine's libraries (PyTorch's are larger than NumPy + Numba's). tinycnn's
kernels load from a Numba cache warmed by one throw-away run first, so compiler memory is not counted.
"""
from __future__ import annotations

import tempfile

from .startup import child


def run(batches: list[int], use_torch: bool, log, nets=("seed_cnn", "lenet"), steps: int = 5) -> dict:
    runs = []
    contenders = ["tinycnn", "pytorch", "numpy"] if use_torch else ["tinycnn", "numpy"]
    with tempfile.TemporaryDirectory(prefix="tinycnn-numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        child("tinycnn", nets[0], 2, 1, env)                        # warm the cache
        for net in nets:
            for batch in batches:
                for name in contenders:
                    r = child(name, net, batch, steps, env)
                    runs.append(r)
                    log(f"  {net:8s} batch {batch:3d} {name:8s} peak {r['peak_mib']:6.0f} MiB, "
                        f"base {r['base_mib']:6.0f} MiB, increase {r['peak_mib'] - r['base_mib']:6.0f} MiB")
    return {"runs": runs, "method": __doc__.split("\n\n", 1)[1].strip().replace("\n", " ")}
