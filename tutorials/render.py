"""Run the tutorials cell by cell and render each one to a Markdown page that GitHub shows with its pictures.

A tutorial is a jupytext "percent" file: ``# %%`` starts a code cell, ``# %% [markdown]`` a prose cell
whose lines are commented out with ``# ``. Since the markers are comments, the file is also a plain
script. A code cell may carry tags, as in jupytext: ``# %% tags=["same-output"]`` marks a cell whose
printed output must be the same in fast and full mode (the tests compare the two, so a quote of
tinycnn's source on the page cannot silently go out of date).

Commands, from the repository root::

    python tutorials/render.py run 01 02     # full mode: run each tutorial in a fresh process, record its
                                             # printed output in tutorials/outputs/NN_name.json, write its
                                             # figures to tutorials/figures/, then write tutorials/NN_name.md
    python tutorials/render.py run all
    python tutorials/render.py render 01     # rewrite the .md from the .py and the recorded outputs, without
                                             # running (enough after editing prose); refuses if a code cell
                                             # changed since the recorded run
    python tutorials/render.py check         # exit status 1 if any page is stale
    python tutorials/render.py execute tutorials/01_convolution_by_hand.py --mode fast \\
        --figures-dir /tmp/figs --record /tmp/01.json          # one run, nothing rendered (the tests use it)

The page is a pure function of the .py file and the recorded outputs: rendering twice gives the same
bytes, so the tests can check that every committed page is current.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TUTORIALS_DIR = Path(__file__).resolve().parent
OUTPUTS_DIR = TUTORIALS_DIR / "outputs"
FIGURES_DIR = TUTORIALS_DIR / "figures"

CELL_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
TAGS = re.compile(r"tags=(?P<json>\[[^\]]*\])")


class TutorialFormatError(ValueError):
    """The .py file is not in the percent format this renderer reads."""


class StaleRecordError(RuntimeError):
    """The recorded outputs were made from different code than the .py holds now."""


@dataclass
class Cell:
    kind: str                         # "code" or "markdown"
    source: str                       # code as written; prose with the leading "# " removed
    line: int                         # 1-based line number of the cell's first source line in the file
    tags: list = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

def _skip_header(lines: list[str]) -> int:
    """Index of the first line after jupytext's optional ``# ---`` ... ``# ---`` YAML header."""
    if lines and lines[0].rstrip() == "# ---":
        for i in range(1, len(lines)):
            if lines[i].rstrip() == "# ---":
                return i + 1
        raise TutorialFormatError("the '# ---' header is never closed by a second '# ---' line")
    return 0


def _trim(block: list[str], first_line: int) -> tuple[list[str], int]:
    """Drop blank lines at both ends; return the rest and the line number of its first line."""
    start, end = 0, len(block)
    while start < end and not block[start].strip():
        start += 1
    while end > start and not block[end - 1].strip():
        end -= 1
    return block[start:end], first_line + start


def _make_cell(kind: str, tags: list, block: list[str], first_line: int, where: str) -> Cell | None:
    block, line = _trim(block, first_line)
    if not block:
        return None
    if kind == "markdown":
        prose = []
        for i, s in enumerate(block):
            if s.rstrip() == "#":
                prose.append("")
            elif s.startswith("# "):
                prose.append(s[2:].rstrip())
            else:
                raise TutorialFormatError(
                    f"{where}:{line + i}: a markdown cell line must start with '# ' (or be '#'), got {s!r}")
        return Cell("markdown", "\n".join(prose), line, tags)
    return Cell("code", "\n".join(s.rstrip() for s in block), line, tags)


def parse(text: str, where: str = "<tutorial>") -> list[Cell]:
    """Split a percent-format file into cells (code before the first marker is a code cell)."""
    lines = text.splitlines()
    i = _skip_header(lines)
    cells: list[Cell] = []
    kind, tags, block, first = "code", [], [], i + 1
    for n in range(i, len(lines)):
        m = CELL_MARKER.match(lines[n])
        if not m:
            block.append(lines[n])
            continue
        cell = _make_cell(kind, tags, block, first, where)
        if cell:
            cells.append(cell)
        rest = m.group("rest").strip()
        kind = "markdown" if rest.startswith("[markdown]") else "code"
        t = TAGS.search(rest)
        try:
            tags = json.loads(t.group("json")) if t else []
        except json.JSONDecodeError as err:
            raise TutorialFormatError(f"{where}:{n + 1}: cannot read the tags in {lines[n]!r}: {err}") from None
        block, first = [], n + 2
    cell = _make_cell(kind, tags, block, first, where)
    if cell:
        cells.append(cell)
    return cells


# ----------------------------------------------------------------------------------------------
# Executing
# ----------------------------------------------------------------------------------------------

def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def execute(path: Path, mode: str, figures_dir: Path) -> dict:
    """Run every code cell of ``path`` in one namespace, as the script would run, capturing each
    cell's printed output and the figures it saved. Returns the record (see ``write_record``).

    Call this in a fresh process (``render.py execute``): the mode is read once, when the tutorial
    first imports ``helpers``.
    """
    path = Path(path).resolve()
    os.environ["TINYCNN_TUTORIAL_MODE"] = mode
    os.environ["TINYCNN_TUTORIAL_FIGURES"] = str(Path(figures_dir).resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, str(TUTORIALS_DIR.parent))  # this checkout's tinycnn, not another installed copy
    sys.path.insert(0, str(path.parent))          # what `python tutorials/NN.py` does
    import helpers                                 # the same module object the tutorial will import

    if helpers.MODE != mode:
        raise RuntimeError(f"helpers was imported in {helpers.MODE!r} mode before execute({mode!r}); "
                           f"run each tutorial in a fresh process")
    cells = parse(path.read_text(), str(path))
    namespace = {"__name__": "__main__", "__file__": str(path)}
    record = {"tutorial": path.name, "mode": mode, "cells": []}
    seen = set()
    start = time.perf_counter()
    for cell in cells:
        if cell.kind != "code":
            continue
        code = compile("\n" * (cell.line - 1) + cell.source, str(path), "exec")   # tracebacks point at the file
        helpers.SAVED_FIGURES.clear()
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except BaseException:
            sys.stderr.write(f"--- output of the failing cell (line {cell.line}) ---\n{out.getvalue()}\n")
            raise
        figures = []
        for fig in helpers.SAVED_FIGURES:
            if fig.file in seen:
                raise RuntimeError(f"{path.name}: figure {fig.file} is saved twice; give each figure its own name")
            seen.add(fig.file)
            figures.append({"file": fig.file, "caption": fig.caption,
                            "sha256": _sha256_file(helpers.FIGURES_DIR / fig.file)})
        record["cells"].append({"line": cell.line, "source_sha256": cell.sha256, "tags": cell.tags,
                                "stdout": out.getvalue(), "figures": figures})
    record["seconds"] = round(time.perf_counter() - start, 1)
    return record


def write_record(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def read_record(path: Path) -> dict:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

def _fence(text: str, lang: str) -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def check_record(cells: list[Cell], record: dict, name: str) -> None:
    """Raise StaleRecordError unless ``record`` is a full-mode run of exactly these code cells."""
    fix = f"run `python tutorials/render.py run {name[:2]}` to execute it again in full mode"
    if record.get("mode") != "full":
        raise StaleRecordError(f"{name}: the recorded outputs come from a {record.get('mode')!r} run; {fix}")
    code = [c for c in cells if c.kind == "code"]
    recorded = record["cells"]
    if len(code) != len(recorded):
        raise StaleRecordError(f"{name}: the file has {len(code)} code cells, the recorded run had "
                               f"{len(recorded)}; {fix}")
    for cell, rec in zip(code, recorded):
        if cell.sha256 != rec["source_sha256"]:
            raise StaleRecordError(f"{name}: the code cell at line {cell.line} changed since the recorded "
                                   f"run; {fix}")


def render(py_path: Path, record: dict) -> str:
    """The Markdown page for ``py_path``, with the outputs and figures of ``record`` (a full run)."""
    py_path = Path(py_path)
    cells = parse(py_path.read_text(), str(py_path))
    check_record(cells, record, py_path.name)
    figures_rel = os.path.relpath(FIGURES_DIR, py_path.parent).replace(os.sep, "/")
    parts = [f"<!-- Generated by tutorials/render.py from {py_path.name} and its recorded full-mode run. "
             f"Do not edit: edit the .py, then run `python tutorials/render.py run {py_path.name[:2]}`. -->"]
    outputs = iter(record["cells"])
    for cell in cells:
        if cell.kind == "markdown":
            parts.append(cell.source)
            continue
        rec = next(outputs)
        parts.append(_fence(cell.source, "python"))
        if rec["stdout"].strip():
            parts.append(_fence(rec["stdout"].rstrip("\n"), "text"))
        for fig in rec["figures"]:
            parts.append(f"![{fig['caption']}]({figures_rel}/{fig['file']})")
    parts.append(f"---\n\n*This page was generated from [`{py_path.name}`]({py_path.name}); its full-mode "
                 f"run took {record['seconds']:.0f} s. Run it yourself with `python tutorials/{py_path.name}` "
                 f"(add `TINYCNN_TUTORIAL_MODE=fast` for a quick run).*")
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def tutorial_files() -> list[Path]:
    return sorted(p for p in TUTORIALS_DIR.glob("[0-9][0-9]_*.py"))


def _select(names: list[str]) -> list[Path]:
    files = tutorial_files()
    if not names or names == ["all"]:
        return files
    chosen = []
    for n in names:
        hits = [p for p in files if p.name.startswith(n) or p.stem == n]
        if len(hits) != 1:
            raise SystemExit(f"render.py: {n!r} matches {len(hits)} tutorials "
                             f"(have: {', '.join(p.name for p in files)})")
        chosen += hits
    return chosen


def record_path(py_path: Path) -> Path:
    return OUTPUTS_DIR / f"{Path(py_path).stem}.json"


def md_path(py_path: Path) -> Path:
    return Path(py_path).with_suffix(".md")


def stale_reasons(py_path: Path) -> list[str]:
    """Why the committed page of ``py_path`` is not current (empty when it is)."""
    rec_path, page = record_path(py_path), md_path(py_path)
    if not rec_path.exists():
        return [f"{py_path.name}: no recorded full run ({rec_path.relative_to(TUTORIALS_DIR.parent)})"]
    record = read_record(rec_path)
    try:
        expected = render(py_path, record)
    except StaleRecordError as err:
        return [str(err)]
    reasons = []
    if not page.exists() or page.read_text() != expected:
        reasons.append(f"{page.name} is not what `python tutorials/render.py render {py_path.name[:2]}` writes")
    for cell in record["cells"]:
        for fig in cell["figures"]:
            f = FIGURES_DIR / fig["file"]
            if not f.exists():
                reasons.append(f"{py_path.name}: figure {fig['file']} is missing")
            elif _sha256_file(f) != fig["sha256"]:
                reasons.append(f"{py_path.name}: figure {fig['file']} is not the one the recorded full run made")
    return reasons


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run tutorials in full mode, record their outputs, render their pages")
    run_p.add_argument("names", nargs="*")
    render_p = sub.add_parser("render", help="render pages from the recorded outputs, without running")
    render_p.add_argument("names", nargs="*")
    sub.add_parser("check", help="exit 1 if any page is stale")
    ex = sub.add_parser("execute", help="run one tutorial and write its record (no page)")
    ex.add_argument("file", type=Path)
    ex.add_argument("--mode", choices=("full", "fast"), default="full")
    ex.add_argument("--figures-dir", type=Path, default=FIGURES_DIR)
    ex.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "execute":
        write_record(execute(args.file, args.mode, args.figures_dir), args.record)
        return 0
    if args.command == "run":
        for py in _select(args.names):
            print(f"running {py.name} in full mode ...", flush=True)
            subprocess.run([sys.executable, __file__, "execute", str(py), "--mode", "full",
                            "--figures-dir", str(FIGURES_DIR), "--record", str(record_path(py))], check=True)
            md_path(py).write_text(render(py, read_record(record_path(py))))
            print(f"  wrote {md_path(py).name} ({read_record(record_path(py))['seconds']:.1f} s)")
        return 0
    if args.command == "render":
        for py in _select(args.names):
            md_path(py).write_text(render(py, read_record(record_path(py))))
            print(f"wrote {md_path(py).name}")
        return 0
    reasons = [r for py in tutorial_files() for r in stale_reasons(py)]
    print("\n".join(reasons) if reasons else f"all {len(tutorial_files())} tutorial pages are current")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
