"""How wide the output may be: the terminal's width, or no limit when there is no terminal.

``columns()``: ``COLUMNS`` when it is set (so ``COLUMNS=80 tinycnn train`` is an 80-column run);
otherwise the width of the terminal standard output is attached to; ``None`` when it is a file or
a pipe (a log keeps every line whole, as a program reading it expects).
"""
from __future__ import annotations

import os
import sys

MIN_COLUMNS = 40      # narrower than this, lines are laid out for 40 and left to the terminal


def columns() -> int | None:
    text = os.environ.get("COLUMNS", "").strip()
    if text.isdigit() and int(text) > 0:
        return max(int(text), MIN_COLUMNS)
    try:
        stream = sys.__stdout__
        if stream is not None and stream.isatty():
            return max(os.get_terminal_size(stream.fileno()).columns, MIN_COLUMNS)
    except (AttributeError, OSError, ValueError):
        pass
    return None
