"""What ``fit`` prints while it trains.

    verbose=0   nothing
    verbose=1   one progress bar per epoch (tqdm, the optional ``progress`` extra) showing the running
                loss and metrics, images per second and the time left in the epoch; when tqdm is not
                installed, plain lines at every tenth of the epoch carry the same numbers
    verbose=2   one line per epoch, at its end

Every line fits the terminal's width (``COLUMNS`` when set, see ``tinycnn._terminal``; no limit
when the output is a file or a pipe): the bar drops its image counts and elapsed time when they do
not fit, the validation numbers get their own line under the bar when an epoch ends, and longer
lines are wrapped between fields. Rates and times come from ``time.perf_counter``; they are for the eye only
(no test asserts them).
"""
from __future__ import annotations

import sys
import time

from ._terminal import columns

MIN_BAR = 5        # the narrowest progress bar worth drawing, in characters


def _import_tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def format_logs(logs: dict) -> str:
    """{"loss": 2.3, "accuracy": 0.1} -> "loss 2.3000  accuracy 0.1000" (the learning rate left out)."""
    return "  ".join(_fields(logs))


def _fields(logs: dict) -> list[str]:
    return [f"{k} {v:.4f}" for k, v in logs.items() if k != "lr"]


def wrap(fields: list[str], width: int | None, *, sep: str = "  ", indent: str = "  ") -> list[str]:
    """Join ``fields`` with ``sep`` into lines of at most ``width`` characters (None: one line),
    breaking only between fields; continuation lines start with ``indent``. A single field longer
    than a line stays whole."""
    lines, line = [], ""
    for f in fields:
        if line and width is not None and len(line) + len(sep) + len(f) > width:
            lines.append(line)
            line = indent + f
        else:
            line = f"{line}{sep}{f}" if line else f
    return lines + [line] if line else lines


def bar_format(desc: str, total: int, postfix: str, width: int | None) -> str:
    """A tqdm ``bar_format`` that fits ``width`` with room for a bar of at least MIN_BAR: the full
    form (percentage, bar, images done / total, elapsed < remaining, postfix), else without the
    counts and elapsed time, else the percentage and postfix alone."""
    counts = f"| {total}/{total} [00:00<00:00] "
    forms = [("{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}",
              len(desc) + 6 + len(counts) + len(postfix)),
             ("{desc} {percentage:3.0f}%|{bar}| <{remaining} {postfix}", len(desc) + 6 + 9 + len(postfix))]
    for form, fixed in forms:
        if width is None or fixed + MIN_BAR <= width:
            return form
    return "{desc} {percentage:3.0f}% {postfix}"


def _seconds(t: float) -> str:
    return f"{t:.1f}s" if t < 60 else f"{int(t // 60)}m{t % 60:04.1f}s"


class Progress:
    """Progress of one ``fit`` call. ``n_samples``: training images per epoch; ``steps``: batches per epoch."""

    def __init__(self, verbose: int, epochs: int, n_samples: int, steps: int, *, file=None):
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0 (quiet), 1 (progress bar) or 2 (one line per epoch), "
                             f"got {verbose!r}")
        self.verbose, self.epochs, self.n_samples, self.steps = verbose, epochs, n_samples, steps
        self.file = file
        self.tqdm = _import_tqdm() if verbose == 1 else None
        self._bar = None
        self._desc = ""
        self._width: int | None = None
        self._step = 0
        self._seen = 0
        self._t0 = 0.0
        self._next_line = 0

    def _out(self):
        return self.file if self.file is not None else sys.stdout

    def _print(self, text: str):
        print(text, file=self._out(), flush=True)

    def start_epoch(self, epoch: int):
        """``epoch``: 0-based."""
        self._step, self._seen, self._t0 = 0, 0, time.perf_counter()
        self._next_line = 1
        self._desc, self._width = f"Epoch {epoch + 1}/{self.epochs}", columns()
        if self.tqdm is not None:
            self._bar = self.tqdm(total=self.n_samples, unit="img", desc=self._desc, file=self._out(),
                                  leave=True, ncols=self._width, bar_format="{desc} {percentage:3.0f}%|{bar}|")

    def _postfix(self, logs: dict) -> str:
        elapsed = time.perf_counter() - self._t0
        rate = self._seen / elapsed if elapsed > 0 else 0.0
        return "  ".join([f"{rate:.0f} img/s", *_fields(logs)])

    def _set_bar(self, logs: dict, refresh: bool):
        postfix = self._postfix(logs)
        form = bar_format(self._desc, self.n_samples, postfix, self._width)
        self._bar.bar_format = form.replace("{postfix}", postfix.replace("{", "{{").replace("}", "}}"))
        if refresh:
            self._bar.refresh()

    def update(self, n_images: int, logs: dict):
        """After each batch: ``n_images`` in it, ``logs`` the running loss and metrics of the epoch."""
        self._step += 1
        self._seen += n_images
        if self.verbose != 1:
            return
        if self._bar is not None:
            self._set_bar(logs, refresh=False)
            self._bar.update(n_images)
            return
        if self._step >= self._next_line * self.steps / 10 or self._step == self.steps:
            self._next_line = int(self._step * 10 / self.steps) + 1
            elapsed = time.perf_counter() - self._t0
            rate = self._seen / elapsed if elapsed > 0 else float("inf")
            left = (self.n_samples - self._seen) / rate if rate > 0 else 0.0
            fields = [f"  step {self._step}/{self.steps}", f"{rate:.0f} img/s", f"{_seconds(left)} left",
                      *_fields(logs)]
            for line in wrap(fields, columns(), indent="    "):
                self._print(line)

    def end_epoch(self, epoch: int, logs: dict):
        """After validation: ``logs`` holds the epoch's train and validation numbers."""
        elapsed = time.perf_counter() - self._t0
        rate = self._seen / elapsed if elapsed > 0 else float("inf")
        if self._bar is not None:
            train = {k: v for k, v in logs.items() if not k.startswith("val_")}
            self._set_bar(train, refresh=True)
            self._bar.close()
            self._bar = None
            rest = {k: v for k, v in logs.items() if k not in train}
            if rest:                      # the end-of-epoch numbers under the bar, never cut off
                for line in wrap(_fields(rest), self._width, indent="  "):
                    self._print("  " + line if not line.startswith("  ") else line)
        elif self.verbose:
            fields = [f"Epoch {epoch + 1}/{self.epochs} -", f"{self._seen} images -", f"{_seconds(elapsed)} -",
                      f"{rate:.0f} img/s -", *_fields(logs)]
            for line in wrap(fields, columns(), sep=" "):
                self._print(line)

    def close(self):
        """Close an open bar (e.g. when training stops on an exception)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
