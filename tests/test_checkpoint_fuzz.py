"""Checkpoint fuzzing: hypothesis mutates valid checkpoints and every load either gives the model the
file describes or raises CheckpointError -- never another exception, never a NaN model, never more
memory than a small multiple of a clean load's.

Mutations: raw byte flips anywhere in the file (the zip's CRC-32 guards member data, so the result
must be the identical model or an error); member-level edits re-zipped with fresh CRCs (flip bytes
inside a member, drop, add, rename, duplicate, swap members); every JSON field of the metadata
replaced by values of other types and extreme values, deleted, or joined by unknown fields; and
.npy headers that lie (other shapes, dtypes, order, data cut or padded).

Where a mutated file loads, the oracle is NumPy itself: the model must hold exactly the arrays
``np.load(path, allow_pickle=False)`` reads from that file (and so, for byte flips and metadata
edits, the original model). Examples: the ``ci`` profile runs ``EXAMPLES["ci"]`` per strategy in a
few seconds; ``TINYCNN_PROFILE=thorough`` runs ``EXAMPLES["thorough"]``.
"""
import io
import os
import tracemalloc
import warnings

import numpy as np
import pytest
from checkpoint_files import members, meta_of, npy_bytes, run_checkpoint, with_meta, write_zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinycnn.commands._saved_run import load_run

PROFILE = os.environ.get("TINYCNN_PROFILE", "ci")
EXAMPLES = {"ci": 50, "thorough": 1000}.get(PROFILE, 50)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=PROFILE == "ci",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
MEMORY_FACTOR = 4          # a load may peak at this many times a clean load's peak (+ the file's size)
ONE_TIME_SLACK = 256 << 10 # + interpreter caches a first call may fill (compiled regexes, dtypes, zlib)


def small_model(seed: int):
    """x: (N, 1, 8, 8) -> Conv(1->3, 3) (3, 6, 6) -> BN -> ReLU -> pool (3, 3, 3) -> 27 -> Dropout -> 4."""
    rng = np.random.default_rng(seed)
    return tc.Sequential(tc.Conv2D(1, 3, 3, rng=rng), tc.BatchNorm2D(3), tc.ReLU(), tc.MaxPool2D(2),
                         tc.Flatten(), tc.Dropout(0.25, rng=np.random.default_rng(seed + 1)),
                         tc.Dense(27, 4, rng=rng))


def fresh():
    model = small_model(99)
    return model, tc.Adam(model.parameters()), np.random.default_rng(12345)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model, opt, rng = small_model(0), None, np.random.default_rng(7)
    opt = tc.Adam(model.parameters(), lr=3e-3)
    loss = tc.SoftmaxCrossEntropy()
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    for _ in range(2):
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()
    path = folder / "base.npz"
    save_checkpoint(path, model, opt, epoch=3, rng=rng, extra={"note": "fuzz", "values": [1, 2.5, None]})
    clean_model, clean_opt, clean_rng = fresh()
    load_checkpoint(path, clean_model, clean_opt, clean_rng)
    deflated = write_zip(folder / "deflated.npz", members(path), compress=True)     # warm the other paths
    load_checkpoint(deflated, *fresh())
    clean_peak = _peak(lambda: load_checkpoint(path, *fresh()))
    return {"path": path, "folder": folder, "items": members(path), "state": model.state_dict(),
            "opt": opt.state_dict(), "peak": clean_peak, "size": os.path.getsize(path)}


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    except CheckpointError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _np_oracle(path) -> dict | None:
    """The arrays NumPy reads from ``path`` (None if NumPy cannot read it either)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:                                   # the oracle may fail in any way; we may not
        return None


def check_load(base, path, *, identical: bool):
    """Load ``path``: a CheckpointError leaves everything unchanged; a success gives finite arrays equal
    to NumPy's reading of the file (and to the original model when ``identical``). Memory bounded."""
    model, opt, rng = fresh()
    before, opt_before, rng_before = model.state_dict(), opt.state_dict(), rng.bit_generator.state
    size = os.path.getsize(path)
    tracemalloc.start()
    try:
        load_checkpoint(path, model, opt, rng)
        ok = True
    except CheckpointError as err:
        ok = False
        assert "allow_pickle" not in str(err) and str(path) in str(err)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= MEMORY_FACTOR * base["peak"] + 2 * size + ONE_TIME_SLACK, f"peak {peak} B for a {size} B file"
    state = model.state_dict()
    if not ok:
        assert all(np.array_equal(v, state[k]) for k, v in before.items())
        assert opt.step_count == opt_before["step_count"] and rng.bit_generator.state == rng_before
        return False
    assert all(np.isfinite(v).all() for v in state.values() if v.dtype.kind == "f")
    opt_state = opt.state_dict()
    assert all(np.isfinite(a).all() for a in opt_state["exp_avg"] + opt_state["exp_avg_sq"])
    assert all(np.all(a >= 0) for a in opt_state["exp_avg_sq"])
    assert all(np.isfinite(v) for v in (opt.lr, opt.eps, opt.weight_decay, *opt.betas))
    oracle = _np_oracle(path)
    assert oracle is not None, "tinycnn loaded a file NumPy cannot read"
    for k, v in state.items():
        assert np.array_equal(v, oracle[f"model/{k}"].astype(v.dtype)), k
    if identical:
        assert all(np.array_equal(v, state[k]) for k, v in base["state"].items())
    return True


# -- 1. raw byte flips: identical model or CheckpointError ---------------------------------------

@FUZZ
@given(data=st.data())
def test_flipped_bytes_anywhere(base, data):
    raw = bytearray(base["path"].read_bytes())
    n = data.draw(st.integers(1, 4), label="flips")
    for _ in range(n):
        i = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    path = base["folder"] / "flipped.npz"
    path.write_bytes(bytes(raw))
    check_load(base, path, identical=True)


@FUZZ
@given(data=st.data())
def test_truncated_or_extended_file(base, data):
    raw = base["path"].read_bytes()
    cut = data.draw(st.integers(0, len(raw)), label="keep")
    tail = data.draw(st.binary(max_size=64), label="append")
    path = base["folder"] / "cut.npz"
    path.write_bytes(raw[:cut] + tail)
    check_load(base, path, identical=True)


# -- 2. member-level edits, re-zipped with fresh CRCs --------------------------------------------

NAMES = st.one_of(st.sampled_from(["meta.npy", "model/0.weight.npy", "model/6.bias.npy", "optim/exp_avg/0.npy",
                                   "optim/exp_avg_sq/5.npy", "optim/step.npy", "junk.npy", "model/0.weight",
                                   "model/../meta.npy", "optim/exp_avg/99.npy", "model/1.running_var.npy"]),
                  st.text(min_size=1, max_size=20))


@FUZZ
@given(data=st.data())
def test_member_edits(base, data):
    items = list(base["items"])
    op = data.draw(st.sampled_from(["flip", "drop", "add", "rename", "duplicate", "swap"]), label="op")
    i = data.draw(st.integers(0, len(items) - 1), label="member")
    name, blob = items[i]
    if op == "flip":
        blob = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 3))):
            j = data.draw(st.integers(0, len(blob) - 1))
            blob[j] ^= data.draw(st.integers(1, 255))
        items[i] = (name, bytes(blob))
    elif op == "drop":
        del items[i]
    elif op == "add":
        new = data.draw(NAMES, label="name")
        content = data.draw(st.one_of(st.binary(max_size=200),
                                      st.builds(lambda s: npy_bytes(np.zeros(s, np.float32)),
                                                st.integers(0, 50))), label="content")
        items.append((new, content))
    elif op == "rename":
        items[i] = (data.draw(NAMES, label="name"), blob)
    elif op == "duplicate":
        items.append((name, blob))
    else:
        k = data.draw(st.integers(0, len(items) - 1), label="other")
        items[i], items[k] = (name, items[k][1]), (items[k][0], blob)
    compress = data.draw(st.booleans(), label="deflate")
    path = base["folder"] / "edited.npz"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # zipfile warns about the duplicates we make
            write_zip(path, items, compress=compress)
    except (ValueError, UnicodeEncodeError):          # zipfile refuses some names itself
        return
    check_load(base, path, identical=False)


# -- 3. metadata: every field, other types, extreme values ----------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(),
              st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
              st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 30]),
              st.floats(allow_nan=True, allow_infinity=True),
              st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 5e-324]),
              st.text(max_size=30), st.sampled_from(["PCG64", "MT19937", "Adam", "SGD", "tinycnn-checkpoint"])),
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.text(max_size=10), children, max_size=5)),
    max_leaves=12)


def _paths(node, prefix=()):
    """Every place in a JSON tree: (path tuple) for dict keys and list indices, the root excluded."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node[:8]):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


def _mutate_json(data, meta):
    paths = _paths(meta)
    where = data.draw(st.sampled_from(paths), label="field")
    op = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]), label="json op")
    parent = meta
    for k in where[:-1]:
        parent = parent[k]
    last = where[-1]
    if op == "replace":
        parent[last] = data.draw(JSON_VALUES, label="value")
    elif op == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12), label="new key")] = data.draw(JSON_VALUES, label="value")
    else:
        parent.append(data.draw(JSON_VALUES, label="value"))
    return where, op


@FUZZ
@given(data=st.data())
def test_metadata_fields(base, data):
    items = base["items"]
    meta = meta_of(items)
    _mutate_json(data, meta)
    path = write_zip(base["folder"] / "meta.npz", with_meta(items, meta))
    loaded = check_load(base, path, identical=True)
    if loaded:                                          # the optimizer's numbers are checked too
        model, opt, rng = fresh()
        load_checkpoint(path, model, opt, rng)
        assert opt.step_count >= 0


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)))
def test_metadata_bytes(base, raw):
    path = write_zip(base["folder"] / "metabytes.npz", with_meta(base["items"], raw))
    check_load(base, path, identical=True)


# -- 4. .npy headers that lie -----------------------------------------------------------------------

DESCRS = st.sampled_from(["<f4", ">f4", "<f8", "<f2", "<i8", "|u1", "|b1", "<c8", "|O", "<U5", "|V8",
                          "<M8[s]", "float32", "'", "<f4', 'x': ('"])
SHAPES = st.one_of(st.lists(st.integers(0, 40), max_size=4).map(tuple),
                   st.lists(st.sampled_from([0, 1, 3, 27, 10 ** 5, 2 ** 31, 2 ** 62, 10 ** 19]), min_size=1,
                            max_size=4).map(tuple))


@FUZZ
@given(data=st.data())
def test_lying_npy_headers(base, data):
    items = list(base["items"])
    i = data.draw(st.integers(0, len(items) - 1), label="member")
    name, blob = items[i]
    arr = np.lib.format.read_array(io.BytesIO(blob), allow_pickle=False)
    payload = arr.tobytes()
    how = data.draw(st.sampled_from(["shape", "descr", "fortran", "cut", "pad", "text"]), label="lie")
    if how == "shape":
        new = npy_bytes(descr=arr.dtype.str, shape=data.draw(SHAPES), data=payload)
    elif how == "descr":
        new = npy_bytes(descr=data.draw(DESCRS), shape=arr.shape, data=payload)
    elif how == "fortran":
        new = npy_bytes(descr=arr.dtype.str, shape=arr.shape, fortran=True, data=payload)
    elif how == "cut":
        new = npy_bytes(arr)[:-data.draw(st.integers(1, max(1, len(payload))))]
    elif how == "pad":
        new = npy_bytes(arr) + data.draw(st.binary(min_size=1, max_size=64))
    else:
        new = npy_bytes(data=payload, header_text=data.draw(st.one_of(
            st.text(st.characters(max_codepoint=255), max_size=80),
            st.sampled_from(["{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'shape': (4,), }",
                             "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,), }",
                             "{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 500 + "}",
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }",
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
                             "__import__('os').system('echo pwned')"]))))
    items[i] = (name, new)
    path = write_zip(base["folder"] / "npy.npz", items, compress=data.draw(st.booleans(), label="deflate"))
    check_load(base, path, identical=how == "fortran" and arr.ndim < 2)


# -- 5. a `tinycnn train` checkpoint through load_run (evaluate / predict) -----------------------------

@pytest.fixture(scope="module")
def run_base(tmp_path_factory):
    path = run_checkpoint(tmp_path_factory.mktemp("run") / "ck.npz", shape=(1, 8, 8), classes=["a", "b", "c"])
    saved = load_run(path)
    tracemalloc.start()
    load_run(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"path": path, "items": members(path), "state": saved.model.state_dict(), "peak": peak,
            "folder": path.parent, "size": os.path.getsize(path)}


@FUZZ
@given(data=st.data())
def test_run_record_fields(run_base, data):
    items = run_base["items"]
    meta = meta_of(items)
    _mutate_json(data, meta)
    path = write_zip(run_base["folder"] / "run.npz", with_meta(items, meta))
    tracemalloc.start()
    try:
        saved = load_run(path)
    except CheckpointError:
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_FACTOR * run_base["peak"] + 2 * run_base["size"] + ONE_TIME_SLACK, peak
    state = saved.model.state_dict()
    assert all(np.array_equal(v, state[k]) for k, v in run_base["state"].items())
    assert np.isfinite(saved.normalizer.mean).all() and np.all(saved.normalizer.std > 0)
    assert len(saved.classes) == saved.model.layers[-1].weight.shape[0]
    assert tuple(saved.image_shape) == saved.model.input_shape
