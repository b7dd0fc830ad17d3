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


def test_verbose_2_prints_one_line_per_epoch_with_rate_and_numbers(capsys):
    model, x, y = setup()
    model.fit(x, y, epochs=3, batch_size=4, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"Epoch {i}/3 - 16 images - ")
        for word in ("img/s", "loss ", "accuracy ", "val_loss ", "val_accuracy "):
            assert word in line, (word, line)


def test_verbose_1_draws_a_tqdm_bar_with_images_per_second_and_time_left(capsys):
    pytest.importorskip("tqdm", reason="tqdm is the optional 'progress' extra")
    model, x, y = setup()
    model.fit(x, y, epochs=2, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "img/s" in out and "loss " in out and "accuracy " in out
    assert "20/20 [" in out and "<00:00" in out          # tqdm's [elapsed<remaining, rate] block


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
