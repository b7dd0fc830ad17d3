"""Type aliases shared by the public signatures (for readers and type checkers; no behaviour)."""
from __future__ import annotations

import os
from typing import TypeAlias

IntPair: TypeAlias = "int | tuple[int, int]"     # one int for both axes, or (h, w): kernel_size, stride, ...
Shape: TypeAlias = "tuple[int, ...]"             # an array's shape, or a per-sample shape such as (C, H, W)
PathLike: TypeAlias = "str | os.PathLike[str]"   # a file name as str or pathlib.Path
