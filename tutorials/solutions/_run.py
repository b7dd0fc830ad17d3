"""Shared by the solution files: put tutorials/ and the repository on sys.path, run the checks."""
from __future__ import annotations

import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1]
for folder in (TUTORIALS.parent, TUTORIALS):          # this checkout's tinycnn; the exercises package
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def run_all(solutions) -> bool:
    """Run each (check, answer) pair; True if every one passed."""
    return all([check(answer) for check, answer in solutions])
