"""What every tutorial shares: the run mode, saving figures, quoting tinycnn's source, checking agreement,
loading a dataset, and checking an exercise.

A tutorial starts with ``from helpers import FAST, save_figure, quote, assert_agree``. This file sits next
to the tutorials, so the import works both when a tutorial runs as a script
(``python tutorials/01_convolution_by_hand.py``: Python puts the script's folder on ``sys.path``) and
when it is opened as a notebook from the ``tutorials/`` folder.

Environment variables:

* ``TINYCNN_TUTORIAL_MODE``: ``full`` (the default: the data and step counts the pages were made with)
  or ``fast`` (smaller data, fewer steps: what the test suite runs).
* ``TINYCNN_TUTORIAL_FIGURES``: the folder figures are written to. By default a run writes them to
  ``tutorials/my_figures/`` (ignored by git), so running a tutorial never changes the committed figures.
* ``TINYCNN_TUTORIAL_PUBLISH=1``: write the figures to ``tutorials/figures/``, the folder the pages
  show (``tutorials/render.py run`` does this: it is how the pages are made).

Any other ``TINYCNN_*`` variable that neither the tutorials nor tinycnn read gets a warning: a typo in
a variable's name would otherwise be ignored without a word.

In Jupyter or VS Code, ``save_figure`` shows the figure inline as well as saving it.
"""
from __future__ import annotations

import difflib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TUTORIALS_DIR = Path(__file__).resolve().parent
PUBLISHED_FIGURES_DIR = TUTORIALS_DIR / "figures"     # what the pages show; written only when publishing
LOCAL_FIGURES_DIR = TUTORIALS_DIR / "my_figures"      # an ordinary run's figures (ignored by git)

# Every TINYCNN_* variable read anywhere: by the tutorials (first group) or by tinycnn and its tests.
KNOWN_VARIABLES = (
    "TINYCNN_TUTORIAL_MODE", "TINYCNN_TUTORIAL_FIGURES", "TINYCNN_TUTORIAL_PUBLISH",
    "TINYCNN_CACHE_DIR", "TINYCNN_DATA_DIR", "TINYCNN_FAST", "TINYCNN_LANES", "TINYCNN_PROFILE", "TINYCNN_RECYCLE",
    "TINYCNN_REQUIRE_TORCH", "TINYCNN_REQUIRE_EXTRAS", "TINYCNN_TANH_ULPS_F", "TINYCNN_BENCH_REMOVED_BLAS_ENV",
)


def warn_unknown_variables(environ=os.environ) -> list[str]:
    """Warn about each ``TINYCNN_*`` variable nothing reads (a misspelt name); return their names."""
    unknown = sorted(k for k in environ if k.startswith("TINYCNN_") and k not in KNOWN_VARIABLES)
    for name in unknown:
        close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.warn(f"environment variable {name} is set, but neither the tutorials nor tinycnn read it"
                      f"{hint} (known: {', '.join(KNOWN_VARIABLES)})", stacklevel=2)
    return unknown


warn_unknown_variables()

MODE = os.environ.get("TINYCNN_TUTORIAL_MODE", "full")
if MODE not in ("full", "fast"):
    raise ValueError(f"TINYCNN_TUTORIAL_MODE must be 'full' or 'fast', got {MODE!r}")
FAST = MODE == "fast"

_publish = os.environ.get("TINYCNN_TUTORIAL_PUBLISH", "0")
if _publish not in ("0", "1"):
    raise ValueError(f"TINYCNN_TUTORIAL_PUBLISH must be 0 or 1, got {_publish!r}")
PUBLISH = _publish == "1"
FIGURES_DIR = Path(os.environ.get("TINYCNN_TUTORIAL_FIGURES")
                   or (PUBLISHED_FIGURES_DIR if PUBLISH else LOCAL_FIGURES_DIR))


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, classic Notebook, VS Code's notebooks and Interactive
    Window all run one), where a figure can be shown inline."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


@dataclass
class SavedFigure:
    file: str                 # file name inside FIGURES_DIR, e.g. "01_im2col.png"
    caption: str              # one sentence; the image's alt text on the rendered page


SAVED_FIGURES: list[SavedFigure] = []     # appended by save_figure; read by tutorials/render.py


def save_figure(fig, name: str, caption: str) -> Path:
    """Save a matplotlib figure as ``FIGURES_DIR/<name>.png``, show it inline in a notebook, and close it.

    ``name`` must start with the tutorial's two-digit number (``"01_im2col"``) so the figures of
    different tutorials never collide. The rendered page shows the figure under the cell that saved it.
    In a Jupyter kernel the figure is displayed once, in the cell's output, before it is closed (closing
    keeps a long tutorial from holding dozens of open figures).
    """
    import matplotlib.pyplot as plt

    if not (len(name) > 3 and name[:2].isdigit() and name[2] == "_") or "/" in name or name.endswith(".png"):
        raise ValueError(f"save_figure: name must look like '01_what' (no folder, no .png), got {name!r}")
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    path = FIGURES_DIR / f"{name}.png"
    # Fixed dpi, no software version in the metadata: the same pixels give the same bytes.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    if in_notebook():
        from IPython.display import display
        display(fig)
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


def unit_roundoff(dtype=np.float64) -> float:
    """u = eps / 2: the largest relative error of rounding one real number to ``dtype``."""
    return float(np.finfo(dtype).eps) / 2


def rounding_bound(n_terms: int, abs_sum, dtype=np.float64):
    """How far two roundings of the same sum of ``n_terms`` terms can be apart, elementwise.

    Higham's bound: a floating-point sum of n terms, in any order, is within gamma_n * S of the exact
    sum, where gamma_n = n*u / (1 - n*u), u is the unit roundoff of ``dtype`` and S = sum of |terms|.
    Two different summation orders are therefore at most 2 * gamma_n * S apart.

    The unit roundoff is half the machine epsilon: u = eps / 2 = 2**-53 (1.1e-16) in float64 and
    2**-24 (6.0e-8) in float32, where eps = 2**-52 (2.2e-16) and 2**-23 (1.2e-7) is the gap between
    1 and the next larger number.
    """
    u = unit_roundoff(dtype)
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


# ----------------------------------------------------------------------------------------------
# Datasets: the shared folder next to the repository if it is there, else tinycnn's cached download
# ----------------------------------------------------------------------------------------------

SHARED_DATASETS = TUTORIALS_DIR.parent.parent / "shared" / "datasets"
SKIP_EXIT_STATUS = 77          # "skipped", as automake's test drivers read it: no data, not a failure


class DatasetUnavailable(SystemExit):
    """The tutorial cannot get its dataset (offline, nothing cached): it stops with status 77."""


def load_dataset(name: str, download: bool = True):
    """``tinycnn.data.load(name)``: from ``../shared/datasets`` when that folder holds it, otherwise from
    tinycnn's cache, downloading the files once (SHA-256 checked) if ``download``. Returns
    ``(dataset, source)`` with ``source`` "shared" or "cache". When it cannot get the data (offline and
    nothing cached, or ``download=False`` and nothing cached), it prints what to do and stops the tutorial
    with exit status 77 (the test suite reads that as "skipped")."""
    from tinycnn import data

    if (SHARED_DATASETS / name).is_dir():
        return data.load(name, data_dir=SHARED_DATASETS), "shared"
    try:
        return data.load(name, download=download), "cache"
    except data.DataError as err:
        how = ("Connect to the internet once (tinycnn.data downloads it into its cache, $TINYCNN_CACHE_DIR "
               "or ~/.cache/tinycnn)" if download else
               "Fast mode never downloads (the test suite runs it): run the tutorial once in full mode, "
               "which downloads it into tinycnn's cache")
        print(f"This tutorial needs the {name} dataset and could not get it:\n  {err}\n{how}, "
              f"or place the files where the message says.", file=sys.stderr)
        raise DatasetUnavailable(SKIP_EXIT_STATUS) from None
