"""Checkpoints: round trip, exact resume, clear mismatch errors, and saves killed mid-write."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint, stale_temporaries
from tinycnn.schedules import OneCycleLR, StepLR


def small_cnn(seed, out=3, dropout=False):
    """x: (N, 1, 8, 8) -> conv (4, 6, 6) -> pool (4, 3, 3) -> 36 -> out. With ``dropout``, a
    Dropout (its own generator, seeded from ``seed``) before the dense layer."""
    rng = np.random.default_rng(seed)
    layers = [tc.Conv2D(1, 4, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten()]
    if dropout:
        layers.append(tc.Dropout(0.25, rng=np.random.default_rng(seed + 100)))
    return tc.Sequential(*layers, tc.Dense(4 * 3 * 3, out, rng=rng))


def toy_data():
    rng = np.random.default_rng(123)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)    # (N, C, H, W)
    y = rng.integers(0, 3, 64)
    return x, y


def train(model, opt, rng, steps, sched=None):
    """PyTorch-style loop; each batch is drawn by ``rng``."""
    x, y = toy_data()
    loss_fn = tc.SoftmaxCrossEntropy()
    for _ in range(steps):
        idx = rng.choice(len(x), size=16, replace=False)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx])
        model.backward(loss_fn.backward())
        opt.step()
        if sched is not None:
            sched.step()


def assert_states_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k}: max diff {np.abs(a[k] - b[k]).max():.3e}"


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if ".tmp-" in n)


# -- round trip and format ----------------------------------------------------------------------

def test_round_trip_restores_everything_and_the_file_is_pickle_free(tmp_path):
    model, rng = small_cnn(0), np.random.default_rng(5)
    opt = tc.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.99), weight_decay=1e-4)
    train(model, opt, rng, 3)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt, epoch=4, rng=rng, extra={"val_loss": 0.25, "note": "best"})

    with np.load(path, allow_pickle=False) as z:                  # every member is a plain array
        names = set(z.files)
    assert {"model/0.weight", "model/0.bias", "model/4.weight", "model/4.bias", "meta",
            "optim/exp_avg/0", "optim/exp_avg_sq/3"} <= names

    model2, rng2 = small_cnn(9), np.random.default_rng(77)
    opt2 = tc.Adam(model2.parameters())
    meta = load_checkpoint(path, model2, opt2, rng2)
    assert meta["epoch"] == 4 and meta["extra"] == {"val_loss": 0.25, "note": "best"}
    assert meta["format_version"] == 1 and meta["layers"][0].startswith("Conv2D(1, 4")
    assert_states_equal(model2.state_dict(), model.state_dict())
    assert opt2.step_count == 3 and opt2.betas == (0.8, 0.99) and opt2.lr == 3e-3
    for a, b in zip(opt2.exp_avg + opt2.exp_avg_sq, opt.exp_avg + opt.exp_avg_sq):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    assert np.array_equal(rng2.random(5), rng.random(5))
    assert leftovers(tmp_path) == []


def test_sgd_momentum_buffers_not_yet_created_stay_none(tmp_path):
    model = small_cnn(0)
    opt = tc.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    save_checkpoint(tmp_path / "a.npz", model, opt)
    opt2 = tc.SGD(model.parameters(), lr=0.5)
    opt2.momentum_buffers = [np.ones_like(p.data) for p in opt2.params]
    load_checkpoint(tmp_path / "a.npz", optimizer=opt2)
    assert opt2.momentum_buffers == [None] * 4
    assert (opt2.lr, opt2.momentum, opt2.nesterov) == (0.1, 0.9, True)


def test_batchnorm_buffers_round_trip_with_their_dtypes(tmp_path):
    def bn_model(seed):
        return tc.Sequential(tc.BatchNorm2D(3), tc.Flatten(), tc.Dense(12, 2, rng=np.random.default_rng(seed)))

    model = bn_model(0)
    x = np.random.default_rng(0).normal(size=(5, 3, 2, 2)).astype(np.float32)
    model(x), model(x)                                    # running statistics move, 2 batches tracked
    save_checkpoint(tmp_path / "bn.npz", model)
    fresh = bn_model(1)
    load_checkpoint(tmp_path / "bn.npz", fresh)
    saved, loaded = model.state_dict(), fresh.state_dict()
    assert_states_equal(loaded, saved)
    assert int(loaded["0.num_batches_tracked"]) == 2 and loaded["0.num_batches_tracked"].dtype == np.int64
    assert loaded["0.running_var"].dtype == np.float32 and not np.all(loaded["0.running_var"] == 1)


def test_mt19937_rng_state_round_trips(tmp_path):
    rng = np.random.Generator(np.random.MT19937(3))      # its state holds an ndarray
    rng.random(10)
    save_checkpoint(tmp_path / "a.npz", small_cnn(0), rng=rng)
    rng2 = np.random.Generator(np.random.MT19937(99))
    load_checkpoint(tmp_path / "a.npz", rng=rng2)
    assert np.array_equal(rng2.random(8), rng.random(8))
    with pytest.raises(ValueError, match="the checkpoint's rng is a MT19937, the given one a PCG64"):
        load_checkpoint(tmp_path / "a.npz", rng=np.random.default_rng(0))


# -- exact resume ----------------------------------------------------------------------------------

RESUME_CASES = {   # optimizer, schedule (or None), dropout in the model
    "sgd_momentum": (lambda p: tc.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                     lambda o: StepLR(o, step_size=4, gamma=0.5), False),
    "sgd_nesterov_dropout": (lambda p: tc.SGD(p, lr=0.05, momentum=0.8, nesterov=True), None, True),
    "adam": (lambda p: tc.Adam(p, lr=2e-3, weight_decay=1e-4),
             lambda o: OneCycleLR(o, max_lr=5e-3, total_steps=20, cycle_momentum=True), False),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_is_bit_identical(tmp_path, case):
    make_opt, make_sched, dropout = RESUME_CASES[case]
    k, m = 6, 9
    # the run that is never stopped (it saves a checkpoint after k steps and goes on)
    model, rng = small_cnn(0, dropout=dropout), np.random.default_rng(7)
    opt = make_opt(model.parameters())
    sched = make_sched(opt) if make_sched else None
    train(model, opt, rng, k, sched)
    at_checkpoint = model.state_dict()
    save_checkpoint(tmp_path / "ck.npz", model, opt, epoch=k, rng=rng,
                    extra={"scheduler": sched.state_dict() if sched else None})
    train(model, opt, rng, m, sched)
    never_stopped = model.state_dict()

    # the resumed run: fresh objects with other seeds, everything comes from the file
    model2, rng2 = small_cnn(1, dropout=dropout), np.random.default_rng(999)
    opt2 = make_opt(model2.parameters())
    sched2 = make_sched(opt2) if make_sched else None            # build before loading (see schedules.py)
    meta = load_checkpoint(tmp_path / "ck.npz", model2, opt2, rng2)
    if sched2 is not None:
        sched2.load_state_dict(meta["extra"]["scheduler"])
    assert meta["epoch"] == k
    train(model2, opt2, rng2, m, sched2)
    assert_states_equal(model2.state_dict(), never_stopped)

    # controls: training moved the weights, and resuming *without* the optimizer state differs
    dense = f"{len(model.layers) - 1}.weight"
    assert not np.array_equal(at_checkpoint[dense], never_stopped[dense])
    model3, rng3 = small_cnn(1, dropout=dropout), np.random.default_rng(999)
    opt3 = make_opt(model3.parameters())
    load_checkpoint(tmp_path / "ck.npz", model3, rng=rng3)
    train(model3, opt3, rng3, m, make_sched(opt3) if make_sched else None)
    assert not np.array_equal(model3.state_dict()[dense], never_stopped[dense])


# -- mismatches: clear message, nothing half-loaded ------------------------------------------------

def test_different_architecture_names_keys_and_shapes_and_changes_nothing(tmp_path):
    model, rng = small_cnn(0, out=3), np.random.default_rng(1)
    opt = tc.Adam(model.parameters())
    train(model, opt, rng, 2)
    save_checkpoint(tmp_path / "ck.npz", model, opt, rng=rng)

    other = small_cnn(5, out=5)                 # Dense(36, 5) instead of Dense(36, 3)
    other_opt = tc.Adam(other.parameters())
    other_rng = np.random.default_rng(42)
    before = other.state_dict()
    rng_before = other_rng.bit_generator.state
    with pytest.raises(ValueError) as info:
        load_checkpoint(tmp_path / "ck.npz", other, other_opt, other_rng)
    msg = str(info.value)
    assert "ck.npz" in msg
    assert "4.weight" in msg and "(3, 36)" in msg and "(5, 36)" in msg
    assert "4.bias" in msg
    assert_states_equal(other.state_dict(), before)
    assert other_opt.step_count == 0 and all(not m.any() for m in other_opt.exp_avg)
    assert other_rng.bit_generator.state == rng_before


def test_missing_layer_is_named_and_layer_lists_shown(tmp_path):
    save_checkpoint(tmp_path / "ck.npz", small_cnn(0))
    rng = np.random.default_rng(0)
    smaller = tc.Sequential(tc.Conv2D(1, 4, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2), tc.Flatten())
    with pytest.raises(ValueError, match=r"(?s)unexpected keys \['4.weight', '4.bias'\].*checkpoint layers:.*Dense"):
        load_checkpoint(tmp_path / "ck.npz", smaller)


def test_optimizer_mismatch_leaves_the_model_untouched(tmp_path):
    model = small_cnn(0)
    save_checkpoint(tmp_path / "ck.npz", model, tc.SGD(model.parameters(), lr=0.1))
    fresh = small_cnn(3)
    before = fresh.state_dict()
    with pytest.raises(ValueError, match="belongs to a 'SGD' optimizer, not Adam"):
        load_checkpoint(tmp_path / "ck.npz", fresh, tc.Adam(fresh.parameters()))
    assert_states_equal(fresh.state_dict(), before)
    save_checkpoint(tmp_path / "plain.npz", small_cnn(0))                 # weights only
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_checkpoint(tmp_path / "plain.npz", fresh, tc.SGD(fresh.parameters(), 0.1))
    assert_states_equal(fresh.state_dict(), before)


def test_not_a_checkpoint_and_bad_extra(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable tinycnn checkpoint"):
        load_checkpoint(junk)
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="no 'meta' member"):
        load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(TypeError, match="must be JSON-serializable"):
        save_checkpoint(tmp_path / "x.npz", small_cnn(0), extra={"f": object()})
    assert not (tmp_path / "x.npz").exists() and leftovers(tmp_path) == []


def test_a_failed_write_removes_its_temporary_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, small_cnn(0), epoch=1)
    calls = []

    def failing_write(fp, arr, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(fp, arr, *args, **kwargs)

    real = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_cnn(1), epoch=2)
    assert leftovers(tmp_path) == []
    assert load_checkpoint(path)["epoch"] == 1


# -- a real process killed in the middle of a save -------------------------------------------------

CHILD_HOOKED = textwrap.dedent("""
    import sys, time
    import numpy as np
    import tinycnn as tc
    from tinycnn.checkpoint import save_checkpoint

    path = sys.argv[1]
    model = tc.Sequential(tc.Dense(1000, 1000, dtype=np.float64, rng=np.random.default_rng(2)))  # 8 MB
    real = np.lib.format.write_array
    calls = []

    def hooked(fp, arr, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:        # the 8 MB weight is written, the zip's directory is not
            print("mid-write", flush=True)
            time.sleep(120)
        return real(fp, arr, *args, **kwargs)

    np.lib.format.write_array = hooked
    save_checkpoint(path, model, epoch=2)
""")


posix_only = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL and a POSIX process table")


@posix_only
def test_save_killed_mid_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "ck.npz"
    old_model = tc.Sequential(tc.Dense(1000, 1000, dtype=np.float64, rng=np.random.default_rng(1)))
    save_checkpoint(path, old_model, epoch=1)
    script = tmp_path / "child.py"
    script.write_text(CHILD_HOOKED)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "mid-write", f"child did not reach the hook: {line!r} {proc.stderr.read()}"
        [tmp_name] = leftovers(tmp_path)
        tmp_file = tmp_path / tmp_name
        assert tmp_file.stat().st_size > 8_000_000                 # the big array is on disk ...
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(tmp_file)                              # ... in a file that is not a checkpoint
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    meta = load_checkpoint(path, old_fresh := tc.Sequential(tc.Dense(1000, 1000, dtype=np.float64)))
    assert meta["epoch"] == 1
    assert_states_equal(old_fresh.state_dict(), old_model.state_dict())
    # the dead process's temporary is recognised as stale and removed by the next save
    assert stale_temporaries(path) == [str(tmp_file)]
    save_checkpoint(path, old_model, epoch=3)
    assert leftovers(tmp_path) == []
    assert load_checkpoint(path)["epoch"] == 3


CHILD_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    import tinycnn as tc
    from tinycnn.checkpoint import save_checkpoint

    path = sys.argv[1]
    model = tc.Sequential(tc.Dense(700, 700, dtype=np.float64, rng=np.random.default_rng(0)))   # 3.9 MB
    version = 0
    while True:                    # save version after version, each array filled with its number
        version += 1
        for p in model.parameters():
            p.data[...] = version
        save_checkpoint(path, model, epoch=version)
        if version == 1:
            print("ready", flush=True)
""")


@posix_only
def test_save_killed_at_an_arbitrary_moment_leaves_one_whole_version(tmp_path):
    # No hook: the child saves in a loop and is killed after a delay, wherever it happens to be.
    path = tmp_path / "ck.npz"
    script = tmp_path / "child.py"
    script.write_text(CHILD_LOOP)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ckpt = read_checkpoint(path)                  # whatever version is there is complete
    version = ckpt["meta"]["epoch"]
    assert version >= 1
    for key, arr in ckpt["model"].items():
        assert np.all(arr == version), f"{key} mixes versions: {np.unique(arr)[:5]} in checkpoint {version}"
    assert all(n.startswith(".ck.npz.tmp-") for n in leftovers(tmp_path))
    save_checkpoint(path, tc.Sequential(tc.Dense(2, 2)), epoch=0)
    assert leftovers(tmp_path) == []


def test_extra_holds_a_schedule_and_json_values(tmp_path):
    opt = tc.SGD(small_cnn(0).parameters(), lr=0.1)
    sched = StepLR(opt, 2)
    extra = {"scheduler": sched.state_dict(), "history": [1.5, float("nan")], "tag": None}
    save_checkpoint(tmp_path / "a.npz", small_cnn(0), extra=extra)
    back = load_checkpoint(tmp_path / "a.npz")["extra"]
    assert back["scheduler"] == json.loads(json.dumps(sched.state_dict()))
    assert back["history"][0] == 1.5 and np.isnan(back["history"][1]) and back["tag"] is None


def test_optimizer_load_state_dict_checks_before_changing_anything():
    model = small_cnn(0)
    opt = tc.Adam(model.parameters(), lr=1e-3)
    train(model, opt, np.random.default_rng(0), 2)
    state = opt.state_dict()
    other = tc.Adam(small_cnn(0, out=5).parameters(), lr=0.5)    # last two params (5, 36), (5,)
    with pytest.raises(ValueError, match=r"exp_avg\[2\]: parameter \(5, 36\) vs given \(3, 36\)"):
        other.load_state_dict(state)
    assert other.lr == 0.5 and other.step_count == 0             # unchanged
    with pytest.raises(ValueError, match="'exp_avg' holds 3 arrays but the optimizer has 4 parameters"):
        opt.load_state_dict({**state, "exp_avg": state["exp_avg"][:3]})
    with pytest.raises(ValueError, match=r"missing keys \['step_count'\]"):
        opt.load_state_dict({k: v for k, v in state.items() if k != "step_count"})
    # the state holds copies: stepping on does not change a saved state
    saved = [m.copy() for m in state["exp_avg"]]
    train(model, opt, np.random.default_rng(1), 1)
    assert all(np.array_equal(a, b) for a, b in zip(saved, state["exp_avg"]))
