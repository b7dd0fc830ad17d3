"""Every ```python block of README.md runs as written: each in a fresh interpreter (as a reader who
copies one block would), in an empty temporary folder, offline, with this checkout's tinycnn."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced block whose info string is ``python``."""
    blocks = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8")) if README.is_file() else []


def test_the_readme_has_python_blocks():
    if not README.is_file():
        pytest.skip("no README.md beside the tests (an installed copy of the tests)")
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(line, code, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "80", "TINYCNN_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"README.md line {line}:\n{code}\n--- stderr:\n{done.stderr[-3000:]}"
    assert os.listdir(tmp_path) == [] or set(os.listdir(tmp_path)) <= {"cache"}, os.listdir(tmp_path)
