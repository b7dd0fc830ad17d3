"""Pictures of a training run: learning curves, the confusion matrix, the first layer's filters.

matplotlib is an optional extra (``pip install 'tinycnn[plot]'``): ``available()`` says whether it is
installed, and every function here raises ``ImportError`` with that hint when it is not. The figures
are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly -- no ``pyplot``, so no GUI
backend is chosen and no global figure state is touched -- and written as PNG under a temporary name,
then renamed, so a picture file is either complete or absent.

    learning_curves(history, path)            history: {"loss": [...], "val_loss": [...], "accuracy": ...}
    confusion_matrix(cm, classes, path)       cm: (K, K) counts, rows true, columns predicted
    first_layer_filters(weight, path)         weight: (O, C, KH, KW) of the first Conv2D
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._typing import PathLike

HINT = "pip install 'tinycnn[plot]' (or pip install matplotlib)"


def _figure_class():
    """matplotlib's Figure and Agg canvas classes, or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def available() -> bool:
    return _figure_class() is not None


def _new_figure(width: float, height: float):
    classes = _figure_class()
    if classes is None:
        raise ImportError(f"tinycnn.plots needs matplotlib: {HINT}")
    Figure, Canvas = classes
    fig = Figure(figsize=(width, height), dpi=100)
    Canvas(fig)
    return fig


def _save(fig, path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def learning_curves(history: dict, path: PathLike) -> Path:
    """Loss and accuracy per epoch, training (running, as it trained) and validation."""
    fig = _new_figure(10, 4)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for i, (key, title) in enumerate((("loss", "loss (cross-entropy)"), ("accuracy", "accuracy"))):
        ax = fig.add_subplot(1, 2, i + 1)
        if key in history:
            ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(cm: np.ndarray, classes: Sequence[str], path: PathLike) -> Path:
    """Colour = share of the true class (row-normalised); counts written in the cells up to 20 classes."""
    cm = np.asarray(cm)                                                  # (K, K)
    k = len(classes)
    side = min(4 + 0.45 * k, 20)
    fig = _new_figure(side + 1.5, side)
    ax = fig.add_subplot(1, 1, 1)
    rows = cm.sum(axis=1, keepdims=True)                                 # (K, 1)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)  # (K, K)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 20:
        ax.set_xticks(range(k), [str(c) for c in classes], rotation=90)
        ax.set_yticks(range(k), [str(c) for c in classes])
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix ({int(cm.sum())} images)")
    fig.tight_layout()
    return _save(fig, path)


def first_layer_filters(weight: np.ndarray, path: PathLike) -> Path:
    """One tile per output channel of the first convolution, each scaled to its own min..max:
    colour for 3 input channels (RGB), grey for 1, the mean over input channels otherwise."""
    w = np.asarray(weight, dtype=np.float64)                            # (O, C, KH, KW)
    if w.ndim != 4:
        raise ValueError(f"plots.first_layer_filters: weight must be (O, C, KH, KW), got shape {w.shape}")
    o, c = w.shape[:2]
    tiles = w.transpose(0, 2, 3, 1) if c == 3 else w.mean(axis=1)      # (O, KH, KW, 3) or (O, KH, KW)
    lo = tiles.reshape(o, -1).min(axis=1).reshape((o,) + (1,) * (tiles.ndim - 1))
    hi = tiles.reshape(o, -1).max(axis=1).reshape((o,) + (1,) * (tiles.ndim - 1))
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1.0)              # each filter in 0..1
    cols = int(np.ceil(np.sqrt(o)))
    rows = int(np.ceil(o / cols))
    fig = _new_figure(cols * 0.8 + 0.5, rows * 0.8 + 0.8)
    for i in range(o):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(tiles[i], cmap=None if c == 3 else "gray", interpolation="nearest")
        ax.set_axis_off()
    fig.suptitle(f"first-layer filters ({o} x {c} x {w.shape[2]} x {w.shape[3]})")
    return _save(fig, path)
