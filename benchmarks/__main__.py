"""``python -m benchmarks [options]``: run the benchmark suite (options: ``--help``)."""
import sys

from .blas_env import reexec_without_overrides

reexec_without_overrides(sys.argv[1:])

from .run import main  # noqa: E402  (NumPy is imported only after the re-exec above)

sys.exit(main(sys.argv[1:]))
