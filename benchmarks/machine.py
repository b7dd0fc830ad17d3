"""Machine facts printed with every result: CPU, cores, BLAS and its threads, versions."""
from __future__ import annotations

import os
import platform
import sys

from .blas_env import removed_overrides


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def facts() -> dict:
    import numba
    import numpy as np
    from threadpoolctl import threadpool_info

    info = {
        "cpu": cpu_model(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "blas_env_removed_for_this_run": removed_overrides(),
        "blas_env_in_force": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    import tinycnn
    info["tinycnn"] = tinycnn.__version__
    info["threadpools"] = [
        {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version", "num_threads",
                               "architecture", "threading_layer") if p.get(k) is not None}
        | {"file": os.path.basename(p["filepath"])}
        for p in threadpool_info()
    ]
    return info


def blas_summary(info: dict) -> str:
    for p in info["threadpools"]:
        if p["user_api"] == "blas":
            return (f"{p.get('internal_api')} {p.get('version', '')} kernel {p.get('architecture', '?')}, "
                    f"{p['num_threads']} threads ({p['file']})")
    return "no BLAS found by threadpoolctl"
