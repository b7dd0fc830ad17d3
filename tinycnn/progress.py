"""What ``fit`` prints while it trains.

    verbose=0   nothing
    verbose=1   one progress bar per epoch (tqdm, the optional ``progress`` extra) showing the running
                loss and metrics, images per second and the time left in the epoch; when tqdm is not
                installed, plain lines at every tenth of the epoch carry the same numbers
    verbose=2   one line per epoch, at its end

Rates and times come from ``time.perf_counter``; they are for the eye only (no test asserts them).
"""
from __future__ import annotations

import sys
import time


def _import_tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def format_logs(logs: dict) -> str:
    """{"loss": 2.3, "accuracy": 0.1} -> "loss 2.3000  accuracy 0.1000" (the learning rate left out)."""
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "lr")


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
        if self.tqdm is not None:
            self._bar = self.tqdm(total=self.n_samples, unit="img", desc=f"Epoch {epoch + 1}/{self.epochs}",
                                  file=self._out(), leave=True, dynamic_ncols=True)

    def update(self, n_images: int, logs: dict):
        """After each batch: ``n_images`` in it, ``logs`` the running loss and metrics of the epoch."""
        self._step += 1
        self._seen += n_images
        if self.verbose != 1:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            self._bar.update(n_images)
            return
        if self._step >= self._next_line * self.steps / 10 or self._step == self.steps:
            self._next_line = int(self._step * 10 / self.steps) + 1
            elapsed = time.perf_counter() - self._t0
            rate = self._seen / elapsed if elapsed > 0 else float("inf")
            left = (self.n_samples - self._seen) / rate if rate > 0 else 0.0
            self._print(f"  step {self._step}/{self.steps}  {rate:.0f} img/s  {_seconds(left)} left  "
                        f"{format_logs(logs)}")

    def end_epoch(self, epoch: int, logs: dict):
        """After validation: ``logs`` holds the epoch's train and validation numbers."""
        elapsed = time.perf_counter() - self._t0
        rate = self._seen / elapsed if elapsed > 0 else float("inf")
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=True)
            self._bar.close()
            self._bar = None
        elif self.verbose:
            self._print(f"Epoch {epoch + 1}/{self.epochs} - {self._seen} images - {_seconds(elapsed)} - "
                        f"{rate:.0f} img/s - {format_logs(logs)}")

    def close(self):
        """Close an open bar (e.g. when training stops on an exception)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
