"""Every ```python block of README.md and of the documentation site's own pages (docs/*.md) runs as
written: each in a fresh interpreter (as a reader who copies one block would), in an empty temporary
folder, offline, with this checkout's tinycnn."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced block whose info string is ``python``."""
    blocks = []
    for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


BLOCKS = [(page.relative_to(ROOT).as_posix(), line, code) for page in PAGES if page.is_file()
          for line, code in python_blocks(page.read_text(encoding="utf-8"))]


def test_the_readme_has_python_blocks():
    if not README.is_file():
        pytest.skip("no README.md beside the tests (an installed copy of the tests)")
    assert sum(page == "README.md" for page, _, _ in BLOCKS) >= 2


@pytest.mark.parametrize("page, line, code", BLOCKS, ids=[f"{page}:{line}" for page, line, _ in BLOCKS])
def test_python_block_runs(page, line, code, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "80", "TINYCNN_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{page} line {line}:\n{code}\n--- stderr:\n{done.stderr[-3000:]}"
    assert os.listdir(tmp_path) == [] or set(os.listdir(tmp_path)) <= {"cache"}, os.listdir(tmp_path)
