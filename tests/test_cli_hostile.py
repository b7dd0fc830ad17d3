"""The command line under hostile conditions: Ctrl-C during start-up, a reader that goes away, bad
flags; and the small guards behind them (--out that cannot be written, ModelCheckpoint paths, IDX
headers whose dimensions overflow)."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from checkpoint_files import run_checkpoint
from conftest import default_sigint

import tinycnn as tc
from tinycnn import cli as cli_module
from tinycnn.callbacks import ModelCheckpoint
from tinycnn.cli import main as cli
from tinycnn.commands._run_dir import RunDirError, check_writable_out
from tinycnn.data import DataError
from tinycnn.data.idx import parse_idx, read_idx

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


# -- Ctrl-C during start-up ------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["train", "--subset", "20", "--epochs", "1"], ["evaluate", "CK"]])
def test_ctrl_c_while_loading_the_dataset_is_one_line_and_130(tmp_path, monkeypatch, capsys, command):
    ck = run_checkpoint(tmp_path / "ck.npz")
    command = [str(ck) if a == "CK" else a for a in command]
    if command[0] == "train":
        command += ["--out", str(tmp_path / "out")]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tc.data, "load", interrupted)
    assert cli(command) == 130
    err = capsys.readouterr().err
    assert err.strip() == "tinycnn: interrupted (Ctrl-C)"
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_importing_the_command(monkeypatch, capsys):
    real = cli_module.importlib.import_module

    class Importer:
        @staticmethod
        def import_module(name, *args):
            if name == "tinycnn.commands.gradcheck":
                raise KeyboardInterrupt
            return real(name, *args)

        util = cli_module.importlib.util

    monkeypatch.setattr(cli_module, "importlib", Importer)
    assert cli(["gradcheck"]) == 130
    assert capsys.readouterr().err.strip() == "tinycnn: interrupted (Ctrl-C)"


def test_a_real_sigint_during_start_up(tmp_path):
    """A real SIGINT to a `tinycnn train` process while its dataset loads (made slow here): one line on
    stderr, exit status 130, no traceback."""
    script = tmp_path / "slow_train.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        import tinycnn.data
        def slow_load(*args, **kwargs):
            print("loading", flush=True)
            time.sleep(60)
        tinycnn.data.load = slow_load
        from tinycnn.cli import main
        sys.exit(main(["train", "--out", {str(tmp_path / "out")!r}, "--quiet"]))
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=default_sigint)
    try:
        assert proc.stdout.readline().strip() == "loading"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "tinycnn: interrupted (Ctrl-C)" and "Traceback" not in err


# -- a reader that goes away --------------------------------------------------------------------

@pytest.mark.parametrize("args", [["gradcheck", "--only", "ReLU"], ["--help"]])
def test_output_piped_into_a_closed_reader_exits_quietly(args):
    proc = subprocess.Popen([sys.executable, "-m", "tinycnn", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    proc.stdout.close()                       # like `| head -0`: nobody reads
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert err == "", err
    assert code in (0, 141)


def test_head_reads_one_line_of_a_long_output():
    """`tinycnn gradcheck | head -1` (more output than a pipe buffer holds): quiet, status 141."""
    proc = subprocess.Popen([sys.executable, "-m", "tinycnn", "gradcheck"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, cwd=ROOT)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert first.startswith(b"tinycnn gradcheck:")
    assert proc.wait(timeout=300) in (0, 141) and err == "", err


# -- bad flags -------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [(["--h", "0"], "argument --h: must be a finite number > 0, got 0"),
                                            (["--h", "nan"], "argument --h: must be a finite number > 0, got nan"),
                                            (["--h", "-1"], "argument --h: must be a finite number > 0, got -1"),
                                            (["--tol", "nan"], "argument --tol: must be a finite number > 0"),
                                            (["--tol", "-1"], "argument --tol: must be a finite number > 0"),
                                            (["--seed", "-5"], "argument --seed: must be an integer >= 0, got -5"),
                                            (["--h", "big"], "argument --h: expected a number, got 'big'")])
def test_gradcheck_refuses_bad_flags(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["gradcheck", *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "NOT OK" not in err


@pytest.mark.parametrize("n", ["0", "-3"])
def test_evaluate_refuses_a_subset_below_one(tmp_path, capsys, monkeypatch, n):
    ck = run_checkpoint(tmp_path / "ck.npz")
    monkeypatch.setattr(tc.data, "load", lambda *a, **k: pytest.fail("the dataset was loaded"))
    assert cli(["evaluate", str(ck), "--subset", n]) == 2
    assert f"tinycnn evaluate: error: --subset must be >= 1 image, got {n}" in capsys.readouterr().err


# -- --out in a place that cannot be written -------------------------------------------------------

def test_out_under_a_file_or_a_read_only_place_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match=r"--out .*afile/run: .*afile is a file, not a folder"):
        check_writable_out(tmp_path / "afile" / "run")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        target = locked / "deeper" / "run"
        if os.geteuid() == 0:                     # root writes anywhere chmod allows nothing: use /sys
            target = Path("/sys/tinycnn-test/run")
            if os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
                pytest.skip("no read-only place to test with")
        with pytest.raises(RunDirError, match=r"--out .* cannot be written: creating a folder in .* fails"):
            check_writable_out(target)
    finally:
        locked.chmod(0o755)
    assert check_writable_out(tmp_path / "new" / "run") == (tmp_path / "new" / "run").absolute()
    assert not (tmp_path / "new").exists()                 # the probe leaves nothing behind
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- ModelCheckpoint path templates ---------------------------------------------------------------

@pytest.mark.parametrize("path, match", [("mc-{nosuchkey}.npz", r"\{nosuchkey\} is neither \{epoch\} nor a key"),
                                         ("mc-{}.npz", "positional fields"),
                                         ("mc-{epoch:.2q}.npz", "format spec does not apply"),
                                         ("mc-{epoch.real}.npz", "is neither"),
                                         ("mc-{.npz", "not a valid format string")])
def test_model_checkpoint_refuses_a_bad_path_template_at_construction(path, match):
    with pytest.raises(ValueError, match=match):
        ModelCheckpoint(path)


def test_model_checkpoint_good_templates_still_save(tmp_path):
    rng = np.random.default_rng(0)
    model = tc.Sequential(tc.Flatten(), tc.Dense(4, 3, rng=rng))
    model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1), metrics=["accuracy"])
    x, y = rng.standard_normal((12, 4)).astype(np.float32), rng.integers(0, 3, 12)
    mc = ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{val_loss:.3f}-{accuracy:.2f}.npz"))
    model.fit(x, y, epochs=2, batch_size=4, validation_split=0.25, callbacks=[mc], verbose=0)
    assert sorted(p.name.split("-")[1] for p in tmp_path.glob("ck-*.npz")) == ["01", "02"]


# -- IDX headers whose dimensions overflow --------------------------------------------------------

def test_idx_dimensions_whose_product_overflows_are_refused(tmp_path):
    import struct
    # 4 dimensions of 2**32 - 1: the product (about 3e38) wraps around in int64 arithmetic
    header = bytes([0, 0, 0x08, 4]) + struct.pack(">4I", *[0xFFFFFFFF] * 4)
    for name, data in (("big-idx4-ubyte", header + bytes(16)), ("big-idx4-ubyte.gz", header + bytes(16))):
        p = tmp_path / name
        if name.endswith(".gz"):
            import gzip
            p.write_bytes(gzip.compress(data))
        else:
            p.write_bytes(data)
        with pytest.raises(DataError, match=rf"{name}: its header announces shape \(4294967295, 4294967295, "
                                            rf"4294967295, 4294967295\) = \d+ bytes, more than"):
            read_idx(p)
    with pytest.raises(DataError, match="more than"):
        parse_idx(header + bytes(16), "bytes")
    # a product that wraps to exactly the payload's size in int64 is still refused
    dims = (2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1)
    assert int(np.prod(dims, dtype=np.int64)) != int(np.prod(np.array(dims, dtype=object)))


def test_idx_gzip_bomb_reads_only_what_the_header_announces(tmp_path):
    import gzip
    header = bytes([0, 0, 0x08, 1]) + (16).to_bytes(4, "big")
    p = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(p, "wb", compresslevel=1) as f:
        f.write(header + bytes(16))
        zero = bytes(1 << 20)
        for _ in range(64):
            f.write(zero)                         # 64 MB after the 16 announced bytes
    import tracemalloc
    tracemalloc.start()
    with pytest.raises(DataError, match=r"has 67108864 bytes after the 24 its header"):
        read_idx(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_model_checkpoint_does_not_save_a_diverged_epoch(tmp_path):
    """val_loss NaN after an epoch (weights overflowed): no checkpoint for it, a warning naming the
    last one saved, which still loads."""
    rng = np.random.default_rng(0)
    model = tc.Sequential(tc.Flatten(), tc.Dense(4, 3, rng=rng))
    model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1))
    mc = ModelCheckpoint(str(tmp_path / "ck-{epoch}.npz"))
    x, y = rng.standard_normal((12, 4)).astype(np.float32), rng.integers(0, 3, 12)
    model.fit(x, y, epochs=1, batch_size=4, callbacks=[mc], verbose=0)
    assert mc.last_saved.endswith("ck-1.npz")
    model.layers[1].weight.data[0, 0] = np.inf                # as if the epoch had diverged
    with pytest.warns(RuntimeWarning, match=r"epoch 2 not saved: .*model 1\.weight holds 1 non-finite.*ck-1\.npz"):
        mc.set_model(model)
        mc.on_epoch_end(1, {"loss": 0.5, "val_loss": float("nan")})
    assert mc.skipped == [2] and not (tmp_path / "ck-2.npz").exists()
    tc.load_checkpoint(tmp_path / "ck-1.npz", tc.Sequential(tc.Flatten(), tc.Dense(4, 3, rng=rng)))
