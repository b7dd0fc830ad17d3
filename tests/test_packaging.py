"""The package as pip and a newcomer see it: one version, `tinycnn --version`, licences beside the
code and the data, a `test` extra that cannot pull a CUDA build, py.typed, an sdist manifest that
carries the tests' helpers, and sub-packages that load on first use without slowing `import tinycnn`."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinycnn
from tinycnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(tinycnn.__file__).resolve().parent


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    path = ROOT / "pyproject.toml"
    if not path.is_file():
        pytest.skip("no pyproject.toml beside the tests")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_version_has_one_source_and_the_cli_prints_it(capsys):
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tinycnn._version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", tinycnn.__version__)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinycnn {tinycnn.__version__}"


def test_licences_metadata_and_typing_marker():
    project = pyproject()["project"]
    assert project["license"] == "MIT"                              # an SPDX expression, not a table
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    data_licence = (PACKAGE / "data" / "LICENSE-MNIST.txt").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in data_licence and "embedded_mnist.npz" in data_licence
    assert set(project["license-files"]) == {"LICENSE", "tinycnn/data/LICENSE-MNIST.txt"}
    assert project["authors"]
    assert any(c.startswith("Programming Language :: Python :: 3") for c in project["classifiers"])
    assert (PACKAGE / "py.typed").is_file()
    package_data = pyproject()["tool"]["setuptools"]["package-data"]["tinycnn"]
    assert "py.typed" in package_data and "data/*.txt" in package_data


def test_the_test_extra_does_not_name_torch():
    extras = pyproject()["project"]["optional-dependencies"]
    assert not any(re.match(r"torch\b", req) for req in extras["test"]), extras["test"]
    assert {"docs", "lint"} <= set(extras)


def test_the_sdist_manifest_ships_the_tests_helpers():
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8").split()
    assert "graft" in manifest and "tests" in manifest
    for helper in ("conftest.py", "tolerances.py", "data_files.py", "window_shapes.py"):
        assert (ROOT / "tests" / helper).is_file(), helper


def test_ruff_is_configured():
    lint = pyproject()["tool"]["ruff"]
    assert lint["line-length"] == 120 and {"E", "F", "W", "I", "B"} <= set(lint["lint"]["select"])


def test_sub_packages_load_on_first_use():
    code = ("import sys, tinycnn as tc\n"
            "lazy = ('tinycnn.data', 'tinycnn.zoo', 'tinycnn.gradcheck', 'tinycnn.plots')\n"
            "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]\n"
            "assert callable(tc.data.load) and callable(tc.zoo.build) and callable(tc.gradcheck.check_layer)\n"
            "assert 'tinycnn.data' in sys.modules and {'data', 'zoo', 'gradcheck'} <= set(dir(tc))\n"
            "try:\n    tc.nosuch\nexcept AttributeError as e:\n    assert 'nosuch' in str(e)\n"
            "else:\n    raise SystemExit('tc.nosuch did not raise')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_all_is_one_list_of_names_that_exist():
    import tinycnn.layers
    for module in (tinycnn, tinycnn.layers):
        assert len(module.__all__) == len(set(module.__all__))
        for name in module.__all__:
            assert getattr(module, name) is not None, name
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "__all__ +=" not in source and source.count("__all__ = [") == 1
