"""Ctrl-C while the command line is still importing NumPy and Numba (the first second and a half of
every `tinycnn` run, before any command code): one line on stderr, exit status 130, no traceback --
for `python -m tinycnn` and for the console script that pip writes from pyproject's [project.scripts].

The child process is held at a known point instead of being interrupted at a lucky moment: a
``sitecustomize`` module put first on its PYTHONPATH installs an import hook that, when ``numpy`` is
first imported, prints a marker line and sleeps. The test waits for the marker, then sends a real
SIGINT; the KeyboardInterrupt is raised inside ``import numpy``, wherever in tinycnn that happens.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import default_sigint

ROOT = Path(__file__).resolve().parents[1]
MARKER = "hook: importing numpy"
INTERRUPTED = "tinycnn: interrupted (Ctrl-C)"

HOOK = textwrap.dedent(f"""
    import sys
    import time


    class HoldNumPy:
        # a meta path finder that holds the first `import numpy` until a signal arrives
        def find_spec(self, name, path=None, target=None):
            if name == "numpy":
                sys.meta_path.remove(self)
                print({MARKER!r}, flush=True)
                time.sleep(120)
            return None


    sys.meta_path.insert(0, HoldNumPy())
""")


def _run_interrupted(tmp_path: Path, argv: list[str]) -> tuple[int, str, str]:
    """Start ``argv`` with the hook, SIGINT it once it is inside ``import numpy``; (status, stdout, stderr)."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook_dir), str(ROOT)]),
           "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path, preexec_fn=default_sigint)
    try:
        first = proc.stdout.readline().strip()
        if first != MARKER:                      # the hook never fired: report what the child said
            proc.kill()
            out, err = proc.communicate(timeout=60)
            pytest.fail(f"the child did not reach `import numpy` (first line {first!r}); stderr:\n{err}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def _assert_one_line_and_130(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == [INTERRUPTED], err
    assert code == 130, err


def test_the_hook_really_interrupts_an_import(tmp_path):
    """Control: the same hook under plain Python (no tinycnn) gives the raw traceback the tests
    below must not see -- so they are not passing because the signal missed the import."""
    code, _, err = _run_interrupted(tmp_path, [sys.executable, "-c", "import numpy"])
    assert "Traceback" in err and "KeyboardInterrupt" in err and "sitecustomize" in err, err
    assert code != 0


@pytest.mark.parametrize("command", [["--help"], ["evaluate", "no-such-checkpoint.npz"]])
def test_python_m_tinycnn(tmp_path, command):
    code, _, err = _run_interrupted(tmp_path, [sys.executable, "-m", "tinycnn", *command])
    _assert_one_line_and_130(code, err)


def test_the_console_script(tmp_path):
    """The script pip generates for [project.scripts] ``tinycnn = "module:function"`` (the same three
    lines: import the function, call it, exit with its status), built from pyproject.toml itself."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, function = scripts["tinycnn"].split(":")
    script = tmp_path / "tinycnn-script.py"
    script.write_text(f"import sys\nfrom {module} import {function}\nsys.exit({function}())\n", encoding="utf-8")
    code, _, err = _run_interrupted(tmp_path, [sys.executable, str(script), "evaluate", "no-such-checkpoint.npz"])
    _assert_one_line_and_130(code, err)


def test_importing_the_package_and_the_cli_runs_only_the_standard_library():
    """Why the above holds: `import tinycnn` and `import tinycnn.cli` load neither NumPy nor Numba, so
    the heavy imports happen inside ``tinycnn.cli.main``, where Ctrl-C is handled; the names still work."""
    code = ("import sys\nimport tinycnn as tc\nimport tinycnn.cli\n"
            "heavy = sorted(m for m in ('numpy', 'numba', 'threadpoolctl') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "net = tc.Sequential(tc.Flatten(), tc.Dense(4, 2, rng=__import__('numpy').random.default_rng(0)))\n"
            "assert net.forward(__import__('numpy').ones((3, 4), 'float32')).shape == (3, 2)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
