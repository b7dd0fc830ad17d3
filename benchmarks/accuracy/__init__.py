"""The accuracy table: ``python -m benchmarks.accuracy`` trains each row's network with ``tinycnn train``
and records its test accuracy, wall time, epochs and the machine's load average (see ``run.py``)."""
