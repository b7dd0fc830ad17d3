"""What every tutorial shares: the run mode, saving figures, quoting tinycnn's source, checking agreement.

A tutorial starts with ``from helpers import FAST, save_figure, quote, assert_agree``. This file sits next
to the tutorials, so the import works both when a tutorial runs as a script
(``python tutorials/01_convolution_by_hand.py``: Python puts the script's folder on ``sys.path``) and
when it is opened as a notebook from the ``tutorials/`` folder.

Environment variables:

* ``TINYCNN_TUTORIAL_MODE``: ``full`` (the default: the data and step counts the pages were made with)
  or ``fast`` (smaller data, fewer steps: what the test suite runs).
* ``TINYCNN_TUTORIAL_FIGURES``: the folder figures are written to (default ``tutorials/figures``).
  The test suite points it at a temporary folder, so a fast run never overwrites the committed figures.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TUTORIALS_DIR = Path(__file__).resolve().parent

MODE = os.environ.get("TINYCNN_TUTORIAL_MODE", "full")
if MODE not in ("full", "fast"):
    raise ValueError(f"TINYCNN_TUTORIAL_MODE must be 'full' or 'fast', got {MODE!r}")
FAST = MODE == "fast"

FIGURES_DIR = Path(os.environ.get("TINYCNN_TUTORIAL_FIGURES") or TUTORIALS_DIR / "figures")


@dataclass
class SavedFigure:
    file: str                 # file name inside FIGURES_DIR, e.g. "01_im2col.png"
    caption: str              # one sentence; the image's alt text on the rendered page


SAVED_FIGURES: list[SavedFigure] = []     # appended by save_figure; read by tutorials/render.py


def save_figure(fig, name: str, caption: str) -> Path:
    """Save a matplotlib figure as ``FIGURES_DIR/<name>.png`` and close it.

    ``name`` must start with the tutorial's two-digit number (``"01_im2col"``) so the figures of
    different tutorials never collide. The rendered page shows the figure under the cell that saved it.
    """
    import matplotlib.pyplot as plt

    if not (len(name) > 3 and name[:2].isdigit() and name[2] == "_") or "/" in name or name.endswith(".png"):
        raise ValueError(f"save_figure: name must look like '01_what' (no folder, no .png), got {name!r}")
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.png"
    # Fixed dpi, no software version in the metadata: the same pixels give the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    SAVED_FIGURES.append(SavedFigure(file=path.name, caption=caption))
    return path


def quote(obj) -> None:
    """Print the source of a tinycnn function or method, read live with ``inspect``.

    Numba kernels are quoted through ``.py_func`` (the plain Python function Numba compiled). The header
    names the file relative to the repository, e.g. ``tinycnn/layers/activation.py :: ReLU.backward``.
    """
    func = getattr(obj, "py_func", obj)
    source = inspect.getsource(func)
    lines = source.splitlines()
    indent = min(len(s) - len(s.lstrip()) for s in lines if s.strip())
    file = Path(inspect.getsourcefile(func)).resolve()
    root = TUTORIALS_DIR.parent
    shown = file.relative_to(root).as_posix() if file.is_relative_to(root) else file.name
    print(f"# {shown} :: {func.__qualname__}")
    print("\n".join(s[indent:] for s in lines))


def rounding_bound(n_terms: int, abs_sum, dtype=np.float64):
    """How far two roundings of the same sum of ``n_terms`` terms can be apart, elementwise.

    Higham's bound: a floating-point sum of n terms, in any order, is within gamma_n * S of the exact
    sum, where gamma_n = n*u / (1 - n*u), u is the unit roundoff of ``dtype`` and S = sum of |terms|.
    Two different summation orders are therefore at most 2 * gamma_n * S apart.
    """
    u = float(np.finfo(dtype).eps)
    gamma = n_terms * u / (1 - n_terms * u)
    return 2 * gamma * np.asarray(abs_sum, dtype=np.float64)


def assert_agree(name: str, a, b, bound) -> None:
    """Assert |a - b| <= bound elementwise and print one line saying by how much they agree."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{name}: shapes differ, {a.shape} vs {b.shape}"
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), a.shape)
    diff = np.abs(a - b)
    worst = int(np.argmax(diff - bound))
    assert (diff <= bound).all(), (
        f"{name}: NOT OK, |diff| = {diff.flat[worst]:.3e} at index "
        f"{np.unravel_index(worst, a.shape)} exceeds the bound {bound.flat[worst]:.3e}")
    print(f"{name}: OK, max |diff| = {diff.max():.1e} (rounding bound: {bound.max():.1e})")
