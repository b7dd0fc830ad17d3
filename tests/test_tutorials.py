"""The tutorials run, assert their claims, and their committed pages are what the code makes.

* Every ``tutorials/NN_*.py`` runs in fast mode in a fresh subprocess (``MPLBACKEND=Agg``, figures written
  to a temporary folder, so the committed full-mode figures are never touched). A tutorial asserts its own
  claims, so a non-zero exit status is a failed claim.
* Cells tagged ``same-output`` (quotes of tinycnn's source) must print in fast mode exactly what the
  committed page shows: when tinycnn's code changes, the page must be made again.
* Every committed page ``tutorials/NN_*.md`` must be exactly what ``tutorials/render.py`` makes from the
  current ``.py`` and the recorded full-mode run (``tutorials/outputs/NN_*.json``), whose cells must be
  those of the current ``.py``; every figure the page shows must exist and be the one that run saved.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"


def _load_render():
    spec = importlib.util.spec_from_file_location("tutorials_render", TUTORIALS / "render.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                 # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


render = _load_render()
TUTORIAL_FILES = render.tutorial_files()
IDS = [p.stem for p in TUTORIAL_FILES]


def _hashes(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


SKIP_EXIT_STATUS = 77       # helpers.SKIP_EXIT_STATUS: the tutorial could not get its dataset


def _execute(py: Path, tmp_path: Path, mode: str = "fast") -> dict:
    """Run ``render.py execute`` on ``py`` in a fresh process; return its record. A tutorial that stops
    with status 77 (its dataset is neither in ../shared nor in the cache, and cannot be downloaded) is
    skipped with the reason it printed."""
    env = dict(os.environ, MPLBACKEND="Agg")
    record = tmp_path / "record.json"
    proc = subprocess.run(
        [sys.executable, str(TUTORIALS / "render.py"), "execute", str(py), "--mode", mode,
         "--figures-dir", str(tmp_path / "figures"), "--record", str(record)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode == SKIP_EXIT_STATUS:
        pytest.skip(f"{py.name}: no dataset here: {proc.stderr.strip()[-600:]}")
    assert proc.returncode == 0, (
        f"{py.name} failed in {mode} mode (exit status {proc.returncode}).\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}")
    return json.loads(record.read_text())


def test_there_are_tutorials():
    assert [p.name[:2] for p in TUTORIAL_FILES][:2] == ["01", "02"], TUTORIAL_FILES


@pytest.mark.parametrize("py", TUTORIAL_FILES, ids=IDS)
def test_tutorial_runs_in_fast_mode_and_matches_its_page(py, tmp_path):
    committed_figures = _hashes(render.FIGURES_DIR)
    fast = _execute(py, tmp_path)

    assert _hashes(render.FIGURES_DIR) == committed_figures, "a fast run changed the committed figures"
    saved = {f["file"] for c in fast["cells"] for f in c["figures"]}
    assert saved == {p.name for p in (tmp_path / "figures").glob("*.png")}

    full = render.read_record(render.record_path(py))
    assert saved == {f["file"] for c in full["cells"] for f in c["figures"]}, (
        "fast and full mode must save the same figures")
    assert [c["source_sha256"] for c in fast["cells"]] == [c["source_sha256"] for c in full["cells"]], (
        f"{py.name} changed since its recorded full run: python tutorials/render.py run {py.name[:2]}")
    for f_cell, c_cell in zip(fast["cells"], full["cells"]):
        if "same-output" in f_cell["tags"]:
            diff = "\n".join(difflib.unified_diff(c_cell["stdout"].splitlines(), f_cell["stdout"].splitlines(),
                                                  "on the committed page", "printed now", lineterm=""))
            assert f_cell["stdout"] == c_cell["stdout"], (
                f"{py.name}, cell at line {f_cell['line']}: prints something else than the committed page "
                f"(has the code it quotes changed?); make the page again: "
                f"python tutorials/render.py run {py.name[:2]}\n{diff}")


@pytest.mark.parametrize("py", TUTORIAL_FILES, ids=IDS)
def test_committed_page_is_current(py):
    assert render.stale_reasons(py) == []


@pytest.mark.parametrize("py", TUTORIAL_FILES, ids=IDS)
def test_every_image_on_the_page_exists(py):
    page = render.md_path(py).read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert images, f"{py.name}'s page shows no figure"
    missing = [i for i in images if not (TUTORIALS / i).is_file()]
    assert not missing, f"{py.name}'s page shows images that do not exist: {missing}"


def test_no_orphan_figures_or_records():
    shown = {f["file"] for py in TUTORIAL_FILES if render.record_path(py).exists()
             for c in render.read_record(render.record_path(py))["cells"] for f in c["figures"]}
    orphans = sorted({p.name for p in render.FIGURES_DIR.glob("*.png")} - shown)
    assert not orphans, f"figures no recorded run saved (delete them?): {orphans}"
    stems = {p.stem for p in TUTORIAL_FILES}
    stray = sorted(p.name for p in render.OUTPUTS_DIR.glob("*.json") if p.stem not in stems)
    assert not stray, f"records without a tutorial: {stray}"


def test_readme_lists_every_tutorial():
    readme = (TUTORIALS / "README.md").read_text()
    missing = [p.name for p in TUTORIAL_FILES if p.name not in readme or p.with_suffix(".md").name not in readme]
    assert not missing, f"tutorials/README.md does not link {missing}"


# ----------------------------------------------------------------------------------------------
# The renderer itself, on a small made-up tutorial
# ----------------------------------------------------------------------------------------------

TOY = '''# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Toy
#
# Some *prose*.

# %%
import matplotlib.pyplot as plt
from helpers import FAST, save_figure
print("fast" if FAST else "full")

# %% tags=["same-output"]
print("same in both modes")

# %%
fig, ax = plt.subplots()
ax.plot([0, 1], [1, 0])
save_figure(fig, "99_toy", "a line going down")
'''


def test_parse_reads_cells_tags_and_line_numbers():
    cells = render.parse(TOY)
    assert [c.kind for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[0].source == "# Toy\n\nSome *prose*."
    assert cells[1].line == 13 and cells[1].source.startswith("import matplotlib")
    assert cells[2].tags == ["same-output"] and cells[2].source == 'print("same in both modes")'
    assert cells[3].line == TOY.splitlines().index("fig, ax = plt.subplots()") + 1


def test_parse_rejects_an_uncommented_prose_line():
    with pytest.raises(render.TutorialFormatError, match=r"toy.py:4: a markdown cell line must start with '# '"):
        render.parse("# %% [markdown]\n# fine\n#\nnot a comment\n", "toy.py")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The toy tutorial, next to a copy of helpers.py, executed in full mode in a subprocess."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "helpers.py").write_text((TUTORIALS / "helpers.py").read_text())
    py = folder / "99_toy.py"
    py.write_text(TOY)
    return py, _execute(py, folder, mode="full"), folder


def test_execute_captures_each_cells_output_and_figures(toy_run):
    _, record, folder = toy_run
    assert record["mode"] == "full"
    assert [c["stdout"] for c in record["cells"]] == ["full\n", "same in both modes\n", ""]
    (fig,) = record["cells"][2]["figures"]
    assert fig["file"] == "99_toy.png" and fig["caption"] == "a line going down"
    assert fig["sha256"] == hashlib.sha256((folder / "figures" / "99_toy.png").read_bytes()).hexdigest()


def test_render_shows_prose_code_output_and_figures(toy_run):
    py, record, _ = toy_run
    page = render.render(py, record)
    assert "# Toy\n\nSome *prose*." in page
    assert '```python\nprint("same in both modes")\n```\n\n```text\nsame in both modes\n```' in page
    figures = os.path.relpath(render.FIGURES_DIR, py.parent).replace(os.sep, "/")
    assert f"![a line going down]({figures}/99_toy.png)" in page
    assert page == render.render(py, record)          # a pure function: same input, same bytes


def test_render_refuses_outputs_of_other_code(toy_run, tmp_path):
    py, record, _ = toy_run
    edited = tmp_path / py.name
    edited.write_text(TOY.replace('print("same in both modes")', 'print("edited")'))
    with pytest.raises(render.StaleRecordError, match=r"the code cell at line 18 changed since the recorded run"):
        render.render(edited, record)
    with pytest.raises(render.StaleRecordError, match=r"the file has 4 code cells, the recorded run had 3"):
        (tmp_path / "more.py").write_text(TOY + "\n# %%\nprint(1)\n")
        render.render(tmp_path / "more.py", record)
    with pytest.raises(render.StaleRecordError, match=r"come from a 'fast' run"):
        render.render(py, dict(record, mode="fast"))


# ----------------------------------------------------------------------------------------------
# The exercises: every reference solution passes its check, and every check catches a typical mistake
# ----------------------------------------------------------------------------------------------

SOLUTION_FILES = sorted((TUTORIALS / "solutions").glob("solutions_[0-9][0-9].py"))


def _load_solutions(path: Path):
    for folder in (str(ROOT), str(TUTORIALS), str(path.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"tutorial_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_tutorial_has_solutions_to_at_least_three_exercises():
    numbers = {p.stem[-2:] for p in SOLUTION_FILES}
    assert numbers == {p.name[:2] for p in TUTORIAL_FILES}, (sorted(numbers), IDS)
    for path in SOLUTION_FILES:
        module = _load_solutions(path)
        assert len(module.SOLUTIONS) >= 3 and len(module.WRONG) == len(module.SOLUTIONS), path.name
        tutorial = next(p for p in TUTORIAL_FILES if p.name[:2] == path.stem[-2:]).read_text()
        for check, _ in module.SOLUTIONS:             # each check is run in its tutorial's exercise cells
            assert f".{check.__name__}(" in tutorial, f"{path.stem[-2:]}: the tutorial never runs {check.__name__}"


@pytest.mark.parametrize("path", SOLUTION_FILES, ids=[p.stem for p in SOLUTION_FILES])
def test_reference_solutions_pass_and_mistakes_are_caught(path, capsys):
    module = _load_solutions(path)
    for check, answer in module.SOLUTIONS:
        assert check(answer), f"{path.name}: the reference solution fails {check.label}:\n{capsys.readouterr().out}"
    for check, wrong in module.WRONG:
        assert not check(wrong, quiet=True), f"{path.name}: {check.label} accepts a wrong answer"


def test_an_unattempted_exercise_says_so(capsys):
    module = _load_solutions(SOLUTION_FILES[0])
    check = module.SOLUTIONS[0][0]

    def not_done(*args):
        raise NotImplementedError

    assert not check(not_done)
    assert "NOT OK" in capsys.readouterr().out
    assert not check(lambda *a: 1 / 0, quiet=True)    # the learner's code failing is a NOT OK, not a crash


# ----------------------------------------------------------------------------------------------
# Opened as a notebook (jupytext), a tutorial shows its figures inline
# ----------------------------------------------------------------------------------------------

NOTEBOOK_TUTORIAL = TUTORIALS / "01_convolution_by_hand.py"


def test_a_tutorial_opened_as_a_notebook_shows_every_figure_inline(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = jupytext.read(NOTEBOOK_TUTORIAL)                 # the percent format, as Jupyter opens it
    monkeypatch.setenv("TINYCNN_TUTORIAL_MODE", "fast")
    monkeypatch.setenv("TINYCNN_TUTORIAL_FIGURES", str(tmp_path / "figures"))
    monkeypatch.delenv("MPLBACKEND", raising=False)            # the kernel's own (inline) backend, as for a user
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()

    images = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
              if "image/png" in out.get("data", {})]
    saved = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    expected = sorted(f["file"] for c in render.read_record(render.record_path(NOTEBOOK_TUTORIAL))["cells"]
                      for f in c["figures"])
    assert len(images) == len(saved) > 0, (
        f"{len(images)} inline images for {len(saved)} saved figures: each figure must appear once, inline")
    assert saved == expected, "the notebook run must save the figures the page shows"
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors


# ----------------------------------------------------------------------------------------------
# helpers.py: where figures go, unknown variables, datasets that cannot be had
# ----------------------------------------------------------------------------------------------

def _fresh_helpers(monkeypatch, **env):
    for key in [k for k in os.environ if k.startswith("TINYCNN_TUTORIAL")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("tutorial_helpers_under_test", TUTORIALS / "helpers.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)     # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_figures_go_to_an_ignored_folder_unless_publishing(monkeypatch):
    assert _fresh_helpers(monkeypatch).FIGURES_DIR == TUTORIALS / "my_figures"
    assert _fresh_helpers(monkeypatch, TINYCNN_TUTORIAL_PUBLISH="1").FIGURES_DIR == TUTORIALS / "figures"
    assert "tutorials/my_figures/" in (ROOT / ".gitignore").read_text().splitlines()
    with pytest.raises(ValueError, match=r"TINYCNN_TUTORIAL_PUBLISH must be 0 or 1, got 'yes'"):
        _fresh_helpers(monkeypatch, TINYCNN_TUTORIAL_PUBLISH="yes")


def test_an_unknown_tinycnn_variable_warns(monkeypatch):
    with pytest.warns(UserWarning, match=r"TINYCNN_TUTORIAL_MDOE is set, but .* did you mean TINYCNN_TUTORIAL_MODE"):
        helpers = _fresh_helpers(monkeypatch, TINYCNN_TUTORIAL_MDOE="fast")
    assert helpers.warn_unknown_variables({"TINYCNN_CACHE_DIR": "/x", "HOME": "/root"}) == []


def test_a_dataset_that_cannot_be_had_stops_the_tutorial_with_status_77(monkeypatch, tmp_path, capsys):
    helpers = _fresh_helpers(monkeypatch)
    monkeypatch.setattr(helpers, "SHARED_DATASETS", tmp_path / "no-shared")
    monkeypatch.setenv("TINYCNN_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(helpers.DatasetUnavailable) as stop:
        helpers.load_dataset("cifar10", download=False)
    assert stop.value.code == helpers.SKIP_EXIT_STATUS == SKIP_EXIT_STATUS
    assert "needs the cifar10 dataset" in capsys.readouterr().err
