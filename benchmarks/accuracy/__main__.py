"""``python -m benchmarks.accuracy``: see run.py."""
import sys

from .run import main

sys.exit(main())
