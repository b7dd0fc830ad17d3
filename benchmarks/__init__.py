"""tinycnn's benchmark suite: ``python -m benchmarks`` (or ``tinycnn bench``) from a source checkout.

Contenders: tinycnn, PyTorch CPU (when installed, same thread count) and a careful plain-NumPy im2col
engine (``numpy_engine.py``), the baseline a user would write by hand. Results go to
``benchmarks/results/latest.md`` and ``latest.json``. Nothing here is imported by the package itself.

This file must not import NumPy: ``__main__`` may first re-execute the process without the OpenBLAS
overrides (see ``blas_env.py``), and that only works before NumPy is loaded.
"""
