"""What fit prints: nothing (verbose=0), a tqdm bar or plain lines (1), one line per epoch (2)."""
import sys

import numpy as np
import pytest

import tinycnn as tc


def setup():
    rng = np.random.default_rng(0)
    model = tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng))
    model.compile("sgd", metrics=["accuracy"])
    x = rng.standard_normal((20, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    return model, x, y


def test_verbose_0_prints_nothing(capsys):
    model, x, y = setup()
    model.fit(x, y, epochs=2, batch_size=4, validation_split=0.2, verbose=0)
    model.evaluate(x, y)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("columns", [80, 200])
def test_verbose_2_prints_one_entry_per_epoch_with_rate_and_numbers(capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    model, x, y = setup()
    model.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    starts = [k for k, line in enumerate(lines) if line.startswith("Epoch ")]
    assert len(starts) == 3 and all(len(line) <= columns for line in lines)
    if columns == 200:
        assert len(lines) == 3                                  # one line each when they fit
    for i, (a, b) in enumerate(zip(starts, starts[1:] + [len(lines)]), 1):
        entry = " ".join(lines[a:b])
        assert entry.startswith(f"Epoch {i}/3 - 16 images - ")
        for word in ("img/s", "loss ", "accuracy ", "val_loss ", "val_accuracy "):
            assert word in entry, (word, entry)


def test_verbose_1_draws_a_tqdm_bar_with_images_per_second_and_time_left(capsys, monkeypatch):
    pytest.importorskip("tqdm", reason="tqdm is the optional 'progress' extra")
    monkeypatch.setenv("COLUMNS", "120")
    model, x, y = setup()
    model.fit(x, y, epochs=2, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "img/s" in out and "loss " in out and "accuracy " in out
    assert "20/20 [" in out and "<00:00" in out          # tqdm's [elapsed<remaining, rate] block


@pytest.mark.parametrize("columns", [80, 60])
def test_the_bar_and_the_end_of_epoch_numbers_fit_the_terminal(capsys, monkeypatch, columns):
    pytest.importorskip("tqdm", reason="tqdm is the optional 'progress' extra")
    monkeypatch.setenv("COLUMNS", str(columns))
    rng = np.random.default_rng(0)
    model = tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.ReLU(), tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng))
    model.compile("sgd", metrics=["accuracy"])
    x = rng.standard_normal((12000, 1, 6, 6)).astype(np.float32)      # five-digit image counts
    model.fit(x, rng.integers(0, 3, 12000), epochs=10, batch_size=2000, validation_split=0.1, verbose=1)
    screens = capsys.readouterr().out.replace("\r", "\n").splitlines()  # every state the bar was drawn in
    assert max(len(s) for s in screens) <= columns
    ends = [s for s in screens if s.startswith("  val_loss ")]
    assert len(ends) == 10 and all("val_accuracy " in s for s in ends)
    assert any(s.startswith("Epoch 10/10 100%") and "loss " in s and "accuracy " in s for s in screens)


def test_verbose_1_without_tqdm_falls_back_to_plain_lines(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)       # makes `from tqdm import tqdm` raise ImportError
    model, x, y = setup()
    model.fit(x, y, epochs=1, batch_size=2, verbose=1)   # 10 steps: a line at each tenth
    lines = capsys.readouterr().out.strip().splitlines()
    steps = [line for line in lines if line.strip().startswith("step ")]
    assert [line.split()[1] for line in steps] == [f"{k}/10" for k in range(1, 11)]
    assert all("img/s" in line and " left " in line and "loss " in line for line in steps)
    assert lines[-1].startswith("Epoch 1/1 - 20 images - ")


def test_bad_verbose_is_rejected():
    model, x, y = setup()
    with pytest.raises(ValueError, match=r"fit: verbose must be 0 \(quiet\), 1 \(progress bar\) or 2"):
        model.fit(x, y, verbose=3)
