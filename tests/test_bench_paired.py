"""The paired two-checkout timer (benchmarks/paired.py): its argument checks, and one real round."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.paired import parse_config

REPO = Path(__file__).resolve().parent.parent


def test_parse_config_accepts_the_documented_form():
    assert parse_config("lenet:infer:64:2") == ("lenet", "infer", 64, 2)


@pytest.mark.parametrize("text", ["lenet:infer:64", "lenet:eval:64:2", "lenet:train:x:2", "lenet:train:0:2"])
def test_parse_config_refuses_with_the_expected_form(text):
    with pytest.raises(argparse.ArgumentTypeError, match="NET:MODE:BATCH:THREADS|at least 1"):
        parse_config(text)


def test_one_round_against_this_checkout_prints_a_ratio_row():
    """Both workers import this checkout's tinycnn; the row's ratio is a positive number."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.paired", "--old", str(REPO), "--new", str(REPO),
                          "--rounds", "1", "--steps", "2", "lenet:infer:2:1"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if line.startswith("| lenet | infer | 2 | 1 |")]
    assert len(row) == 1, out.stdout
    ratio = float(row[0].split("|")[7].split()[0])
    assert ratio > 0
    assert f"old: {REPO / 'tinycnn'}" in out.stdout


def test_a_folder_without_tinycnn_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.paired", "--old", str(tmp_path), "lenet:infer:2:1"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "holds no tinycnn/ package" in out.stderr
