"""Hostile and broken checkpoint files: every one is refused with a CheckpointError naming the file and
the field -- quickly, without allocating what the file claims, and never as a NaN model."""
import json
import os
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from checkpoint_files import members, npy_bytes, rewrite_meta, run_checkpoint, with_meta, write_zip

import tinycnn as tc
from tinycnn import zoo
from tinycnn.checkpoint import (
    CheckpointError,
    finite_state_problem,
    load_checkpoint,
    model_shapes,
    read_checkpoint,
    read_meta,
    save_checkpoint,
)
from tinycnn.cli import main as cli
from tinycnn.commands._saved_run import check_run_meta, load_run

MB = 1 << 20


@pytest.fixture(scope="module")
def run_ck(tmp_path_factory):
    """A lenet checkpoint on 1x28x28 (the embedded MNIST's shape) laid out as `tinycnn train` writes it."""
    return run_checkpoint(tmp_path_factory.mktemp("run") / "checkpoint.npz")


def refused(fn, field_match, problem_match=None, *, path=None):
    """fn() raises CheckpointError whose field matches ``field_match`` (a regex); returns the error."""
    with pytest.raises(CheckpointError) as info:
        fn()
    err = info.value
    import re
    assert re.search(field_match, err.field), f"field {err.field!r} does not match {field_match!r}: {err}"
    if problem_match is not None:
        assert re.search(problem_match, err.problem), f"{err.problem!r} does not match {problem_match!r}"
    if path is not None:
        assert str(path) in str(err)
    assert "allow_pickle" not in str(err)
    return err


def peak_bytes(fn) -> int:
    """Peak traced allocation (bytes) while fn() runs; fn's exception (if any) is swallowed."""
    tracemalloc.start()
    try:
        fn()
    except CheckpointError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# -- 3. recorded shapes and .npy headers cannot choose the memory -----------------------------------

@pytest.mark.parametrize("shape", [[1, 4000, 4000], [1, 20000, 20000], [1, 16384, 16384]])
def test_tampered_input_shape_is_refused_before_building(run_ck, tmp_path, shape):
    bad = rewrite_meta(run_ck, tmp_path / "big.npz",
                       lambda m: (m["extra"]["model"].update(input_shape=shape),
                                  m["extra"]["data"].update(image_shape=shape)))
    start = time.perf_counter()
    peak = peak_bytes(lambda: zoo.load_model(bad))
    assert time.perf_counter() - start < 5
    assert peak < 4 * os.path.getsize(run_ck) + 2 * MB        # the real Dense(3136 -> 10) alone is 125 kB
    refused(lambda: zoo.load_model(bad), r"^extra\.model\.input_shape$", path=bad)
    refused(lambda: load_run(bad), r"^extra\.model\.input_shape$")


def test_tampered_channel_count_and_width_are_refused(tmp_path):
    path = tmp_path / "v.npz"
    model = zoo.build("vgg-bn", (3, 16, 16), 4, np.random.default_rng(0), width=4)
    tc.save_checkpoint(path, model, extra={"model": zoo.describe("vgg-bn", (3, 16, 16), 4, width=4)})
    assert zoo.load_model(path)[0].state_dict().keys() == model.state_dict().keys()
    wide = rewrite_meta(path, tmp_path / "wide.npz", lambda m: m["extra"]["model"]["options"].update(width=1000))
    refused(lambda: zoo.load_model(wide), r"^extra\.model\.options\.width$", "4 filters")
    chans = rewrite_meta(path, tmp_path / "c.npz", lambda m: m["extra"]["model"].update(input_shape=[3000, 16, 16]))
    refused(lambda: zoo.load_model(chans), r"^extra\.model\.input_shape$", "take 3")


def test_npy_header_claiming_a_huge_shape_is_refused_unread(run_ck, tmp_path):
    items = members(run_ck)
    name = "model/7.weight.npy"
    lie = npy_bytes(descr="<f4", shape=(100000, 100000), data=dict(items)[name][128:])
    bad = write_zip(tmp_path / "lie.npz", [(n, lie if n == name else d) for n, d in items])
    peak = peak_bytes(lambda: zoo.load_model(bad))
    assert peak < 4 * os.path.getsize(run_ck) + 2 * MB
    refused(lambda: zoo.load_model(bad), r"^model/7\.weight$", r"\(100000, 100000\)")
    refused(lambda: read_checkpoint(bad), r"^model/7\.weight$", r"100000")


def test_npy_header_lies_consistently_with_the_zip_entry(run_ck, tmp_path):
    """A deflated member whose header claims (4000, 4000) and that really holds 64 MB of zeros:
    with the architecture known, refused on the header before the data is decompressed."""
    items = members(run_ck)
    name = "model/7.weight.npy"
    big = npy_bytes(descr="<f4", shape=(4000, 4000), data=bytes(4000 * 4000 * 4))
    bad = tmp_path / "zeros.npz"
    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, d in items:
            z.writestr(n, big if n == name else d)
    assert os.path.getsize(bad) < 2 * MB
    peak = peak_bytes(lambda: zoo.load_model(bad))
    assert peak < 8 * MB
    refused(lambda: zoo.load_model(bad), r"^model$", r"7\.weight: model \(10, 3136\) vs given \(4000, 4000\)")
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(0))
    assert peak_bytes(lambda: load_checkpoint(bad, model)) < 8 * MB


# -- 4. zip bombs and undefined members ----------------------------------------------------------

def _append_deflated(path, name: str, n_bytes: int):
    """Add a deflated member holding an .npy header for n_bytes uint8 zeros, then the zeros (streamed,
    zlib level 1: a 256 MB member costs the test a fraction of a second and a few hundred kB)."""
    zero = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open(name, "w", force_zip64=True) as member:
            member.write(npy_bytes(descr="|u1", shape=(n_bytes,), data=b""))
            for _ in range(n_bytes >> 20):
                member.write(zero)


@pytest.mark.parametrize("name", ["junk.npy", "model/99.weight.npy", "optim/exp_avg/99.npy", "meta"])
def test_zip_bomb_member_is_refused_unread(run_ck, tmp_path, name):
    bad = tmp_path / "bomb.npz"
    bad.write_bytes(run_ck.read_bytes())
    _append_deflated(bad, name, 128 * MB)
    assert os.path.getsize(bad) < 2 * MB
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(0))
    start = time.perf_counter()
    peak = peak_bytes(lambda: load_checkpoint(bad, model, tc.Adam(model.parameters())))
    assert time.perf_counter() - start < 2 and peak < 8 * MB
    loads = [lambda: load_checkpoint(bad, model), lambda: zoo.load_model(bad), lambda: read_checkpoint(bad)]
    if name == "model/99.weight.npy":              # a well-formed name: only reading the metadata ignores it
        assert peak_bytes(lambda: read_meta(bad)) < 8 * MB and read_meta(bad)["epoch"] == 1
    else:
        loads.append(lambda: read_meta(bad))
    for load in loads:
        refused(load, r"member|model|optim|meta",
                r"not part of the checkpoint format|unexpected keys|not referred|more than the \d+ allowed|"
                r"appears twice")
        assert peak_bytes(load) < 8 * MB


def test_bomb_in_a_defined_member_is_bounded_without_a_model(run_ck, tmp_path):
    """model/7.weight replaced by 128 MB of zeros whose header says so: read_checkpoint, knowing no
    architecture, refuses it by its budget (8 x the file + 16 MB) before decompressing."""
    items = [(n, d) for n, d in members(run_ck) if n != "model/7.weight.npy"]
    bad = write_zip(tmp_path / "b.npz", items)
    _append_deflated(bad, "model/7.weight.npy", 128 * MB)
    peak = peak_bytes(lambda: read_checkpoint(bad))
    assert peak < 8 * MB
    refused(lambda: read_checkpoint(bad), r"^model/7\.weight$", "more than the .* allowed")


def _central_entry(raw: bytes, name: bytes) -> int:
    """Offset of ``name``'s central-directory entry (signature PK 01 02, name at +46)."""
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        n = int.from_bytes(raw[pos + 28:pos + 30], "little")
        if raw[pos + 46:pos + 46 + n] == name:
            return pos
        pos = raw.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"no central entry for {name!r}")


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("delta", [-100, 100])
def test_member_sizes_that_lie_in_the_zip_directory(run_ck, tmp_path, compress, delta):
    """meta.npy's declared uncompressed size made smaller or larger than its data: decompression
    stops at the declared size, and the mismatch is refused (never read past, never a raw error)."""
    bad = write_zip(tmp_path / "liar.npz", members(run_ck), compress=compress)
    raw = bytearray(bad.read_bytes())
    pos = _central_entry(bytes(raw), b"meta.npy")
    size = int.from_bytes(raw[pos + 24:pos + 28], "little")
    raw[pos + 24:pos + 28] = (size + delta).to_bytes(4, "little")
    if not compress:                                 # stored: compressed size = size as well
        raw[pos + 20:pos + 24] = (size + delta).to_bytes(4, "little")
    bad.write_bytes(bytes(raw))
    refused(lambda: read_meta(bad), r"^meta$|^file$")


def test_not_a_checkpoint_says_so(tmp_path, run_ck):
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    metrics = json.dumps({"config": {}, "history": {}}).encode()
    cases = {"random.npz": np.random.default_rng(0).bytes(4096), "text.npz": b"hello, this is text\n",
             "image.png": png, "metrics.json": metrics, "empty.npz": b"",
             "array.npy": npy_bytes(np.zeros(3)), "pickle.pkl": b"\x80\x04\x95" + bytes(20)}
    expect = {"random.npz": "not a zip", "text.npz": "text file", "image.png": "PNG image",
              "metrics.json": "JSON text file", "empty.npz": "empty file", "array.npy": "single .npy array",
              "pickle.pkl": "pickle"}
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        err = refused(lambda p=p: load_checkpoint(p), r"^file$", "not a readable tinycnn checkpoint", path=p)
        assert expect[name] in err.problem, (name, err.problem)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    refused(lambda: load_checkpoint(tmp_path / "plain.npz"), r"^meta$", "no 'meta' member")
    refused(lambda: load_checkpoint(tmp_path / "absent.npz"), r"^file$", "no such file")
    refused(lambda: load_checkpoint(tmp_path), r"^file$", "folder")


def test_not_a_checkpoint_through_the_cli(tmp_path, capsys):
    p = tmp_path / "metrics.json"
    p.write_text('{"history": {}}')
    for command in (["evaluate", str(p)], ["predict", str(p), str(p)]):
        assert cli(command) == 2
        err = capsys.readouterr().err
        assert "not a readable tinycnn checkpoint: a JSON text file" in err and "allow_pickle" not in err
        assert "Traceback" not in err


# -- metadata: one error class naming the file and the field ----------------------------------------

def _set(path_in_meta, value):
    def change(meta):
        *parents, last = path_in_meta
        node = meta
        for k in parents:
            node = node[k]
        node[last] = value
    return change


def _drop(path_in_meta):
    def change(meta):
        *parents, last = path_in_meta
        node = meta
        for k in parents:
            node = node[k]
        del node[last]
    return change


META_CASES = {   # name: (change to the metadata, field regex)
    "format_version string": (_set(["format_version"], "x"), r"^meta\.format_version$"),
    "format_version newer": (_set(["format_version"], 99), r"^meta\.format_version$"),
    "format wrong": (_set(["format"], "keras"), r"^meta\.format$"),
    "epoch string": (_set(["epoch"], "2"), r"^meta\.epoch$"),
    "epoch negative": (_set(["epoch"], -1), r"^meta\.epoch$"),
    "epoch bool": (_set(["epoch"], True), r"^meta\.epoch$"),
    "epoch missing": (_drop(["epoch"]), r"^meta\.epoch$"),
    "layers missing": (_drop(["layers"]), r"^meta\.layers$"),
    "layers not strings": (_set(["layers"], [1, 2]), r"^meta\.layers$"),
    "unknown field": (_set(["payload"], 1), r"^meta\.payload$"),
    "rng state garbage": (_set(["rng", "state"], "garbage"), r"^meta\.rng"),
    "rng state huge int": (_set(["rng", "state", "state"], 2 ** 200), r"^meta\.rng"),
    "rng kind unknown": (_set(["rng", "bit_generator"], "RANDU"), r"^meta\.rng\.bit_generator$"),
    "rng has_uint32 5": (_set(["rng", "has_uint32"], 5), r"^meta\.rng\.has_uint32$"),
    "rng not an object": (_set(["rng"], [1, 2, 3]), r"^meta\.rng$"),
    "optimizer lr nan": (_set(["optimizer", "lr"], float("nan")), r"^meta\.optimizer\.lr$"),
    "optimizer lr string": (_set(["optimizer", "lr"], "0.1"), r"^meta\.optimizer\.lr$"),
    "optimizer betas": (_set(["optimizer", "betas"], [0.9, 1.5]), r"^meta\.optimizer\.betas$"),
    "optimizer step_count": (_set(["optimizer", "step_count"], -3), r"^meta\.optimizer\.step_count$"),
    "optimizer type": (_set(["optimizer", "type"], 7), r"^meta\.optimizer\.type$"),
    "optimizer too many arrays": (_set(["optimizer", "exp_avg"], {"__arrays__": 7}), r"^optim/exp_avg/6$"),
    "optimizer ref garbage": (_set(["optimizer", "exp_avg"], {"__arrays__": "4"}), r"^meta\.optimizer\.exp_avg$"),
    "layer_rngs garbage": (_set(["layer_rngs"], {"0": {"bit_generator": "PCG64", "state": 3}}),
                           r"^meta\.layer_rngs\.0"),
    "layer_rngs key": (_set(["layer_rngs"], {"x": {}}), r"^meta\.layer_rngs\.x$"),
}


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_bad_metadata_field_is_named(run_ck, tmp_path, case):
    change, field = META_CASES[case]
    bad = rewrite_meta(run_ck, tmp_path / "bad.npz", change)
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(5))
    opt, rng = tc.Adam(model.parameters()), np.random.default_rng(3)
    before, rng_before = model.state_dict(), rng.bit_generator.state
    refused(lambda: load_checkpoint(bad, model, opt, rng), field, path=bad)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert opt.step_count == 0 and rng.bit_generator.state == rng_before
    refused(lambda: read_checkpoint(bad), field)


def test_mt19937_position_out_of_range_is_refused(tmp_path):
    rng = np.random.Generator(np.random.MT19937(3))
    model = tc.Sequential(tc.Flatten(), tc.Dense(4, 2, rng=np.random.default_rng(0)))
    save_checkpoint(tmp_path / "mt.npz", model, rng=rng)
    bad = rewrite_meta(tmp_path / "mt.npz", tmp_path / "bad.npz", _set(["rng", "state", "pos"], 10**6))
    refused(lambda: load_checkpoint(bad, rng=np.random.Generator(np.random.MT19937(0))), r"^meta\.rng\.state\.pos$")
    bad = rewrite_meta(tmp_path / "mt.npz", tmp_path / "bad2.npz",
                       _set(["rng", "state", "key"], {"__ndarray__": [1, 2], "dtype": "<U100000000"}))
    refused(lambda: load_checkpoint(bad, rng=np.random.Generator(np.random.MT19937(0))), r"^meta\.rng\.state\.key$")


@pytest.mark.parametrize("raw, problem", [(b"\xff\xfe{not utf-8", "not UTF-8"), (b'{"format": ', "not valid JSON"),
                                          (b"[1, 2, 3]", "JSON object"), (b"[" * 100000, "not valid JSON"),
                                          (b'{"format": "tinycnn-checkpoint", "format_version": 1' + b"1" * 5000 + b"}",
                                           "not valid JSON|format_version")])
def test_meta_not_json(run_ck, tmp_path, raw, problem):
    bad = write_zip(tmp_path / "bad.npz", with_meta(members(run_ck), raw))
    refused(lambda: read_meta(bad), r"^meta", problem, path=bad)


def test_meta_member_of_the_wrong_dtype(run_ck, tmp_path):
    items = [(n, npy_bytes(np.zeros((2, 3))) if n == "meta.npy" else d) for n, d in members(run_ck)]
    refused(lambda: read_meta(write_zip(tmp_path / "b.npz", items)), r"^meta$", "1-D uint8")


# -- arrays: finite, sane, plain -----------------------------------------------------------------

def _replace_array(src, dst, name, fn):
    items = members(src)
    arr = np.lib.format.read_array(__import__("io").BytesIO(dict(items)[name]), allow_pickle=False)
    return write_zip(dst, [(n, npy_bytes(fn(arr.copy())) if n == name else d) for n, d in items])


def _nan_at_0(a):
    a.flat[0] = np.nan
    return a


ARRAY_CASES = {
    "NaN weight": ("model/7.weight.npy", _nan_at_0, r"^model/7\.weight$", "non-finite"),
    "inf bias": ("model/0.bias.npy", lambda a: a + np.inf, r"^model/0\.bias$", "non-finite"),
    "negative second moment": ("optim/exp_avg_sq/0.npy", lambda a: a - 1, r"^optim/exp_avg_sq/0$", ">= 0"),
    "NaN first moment": ("optim/exp_avg/2.npy", _nan_at_0, r"^optim/exp_avg/2$", "non-finite"),
    "float64 copy loads": ("model/0.bias.npy", lambda a: a.astype(np.float64), None, None),   # same kind
    "float64 overflowing float32": ("model/0.bias.npy", lambda a: a.astype(np.float64) + 1e300,
                                    r"^model/0\.bias$", "non-finite"),
    "int weight": ("model/0.bias.npy", lambda a: a.astype(np.int64), r"^model$", "dtype mismatch"),
    "complex weight": ("model/0.bias.npy", lambda a: a.astype(np.complex64), r"^model/0\.bias$", "not a plain numeric"),
    "string weight": ("model/0.bias.npy", lambda a: a.astype("U3"), r"^model/0\.bias$", "not a plain numeric"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_bad_arrays_are_refused(run_ck, tmp_path, case):
    name, fn, field, problem = ARRAY_CASES[case]
    bad = _replace_array(run_ck, tmp_path / "bad.npz", name, fn)
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(5))
    opt = tc.Adam(model.parameters())
    if field is None:                                   # a float64 copy of float32 weights loads, as float32
        load_checkpoint(bad, model, opt)
        assert model.layers[0].bias.data.dtype == np.float32
        return
    before = model.state_dict()
    refused(lambda: load_checkpoint(bad, model, opt), field, problem, path=bad)
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_batchnorm_negative_running_variance_is_refused(tmp_path):
    model = tc.Sequential(tc.BatchNorm2D(3), tc.Flatten(), tc.Dense(12, 2, rng=np.random.default_rng(0)))
    save_checkpoint(tmp_path / "bn.npz", model)
    bad = _replace_array(tmp_path / "bn.npz", tmp_path / "bad.npz", "model/0.running_var.npy", lambda a: a - 2)
    refused(lambda: load_checkpoint(bad, model), r"^model/0\.running_var$", ">= 0")
    bad = _replace_array(tmp_path / "bn.npz", tmp_path / "bad2.npz", "model/0.num_batches_tracked.npy", lambda a: a - 5)
    refused(lambda: load_checkpoint(bad, model), r"^model/0\.num_batches_tracked$", ">= 0")


def test_fortran_order_and_big_endian_members_load_the_same_values(run_ck, tmp_path):
    items = members(run_ck)
    name = "model/7.weight.npy"
    w = np.lib.format.read_array(__import__("io").BytesIO(dict(items)[name]))
    swapped = npy_bytes(w.astype(">f4"))
    fortran = npy_bytes(descr="<f4", shape=w.shape, fortran=True, data=np.asfortranarray(w).tobytes(order="F"))
    for member in (swapped, fortran):
        path = write_zip(tmp_path / "x.npz", [(n, member if n == name else d) for n, d in items])
        model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(5))
        load_checkpoint(path, model)
        assert np.array_equal(model.layers[7].weight.data, w)


# -- the run record: evaluate, predict, resume --------------------------------------------------------

RUN_CASES = {   # change, field regex, for evaluate/predict (resume=False) or only --resume (True)
    "NaN mean": (_set(["extra", "data", "normalization", "mean"], [float("nan")]), r"normalization\.mean", False),
    "std 0": (_set(["extra", "data", "normalization", "std"], [0.0]), r"normalization\.std", False),
    "mean wrong length": (_set(["extra", "data", "normalization", "mean"], [1.0, 2.0]), r"normalization\.mean", False),
    "classes not strings": (_set(["extra", "data", "classes"], list(range(10))), r"extra\.data\.classes", False),
    "classes count": (_set(["extra", "data", "classes"], ["a", "b"]), r"extra\.data\.classes", False),
    "image_shape differs": (_set(["extra", "data", "image_shape"], [1, 4000, 4000]), r"extra\.data\.image_shape",
                            False),
    "data missing": (_drop(["extra", "data"]), r"^extra\.data$", False),
    "model record name": (_set(["extra", "model", "name"], 5), r"^extra\.model\.name$", False),
    "num_classes string": (_set(["extra", "model", "num_classes"], "10"), r"^extra\.model\.num_classes$", False),
    "options garbage": (_set(["extra", "model", "options"], {"width": -1}), r"^extra\.model\.options$", False),
    "config image_size": (_set(["extra", "config", "image_size"], [20000, 20000]), r"^extra\.config", False),
    "config seed negative": (_set(["extra", "config", "seed"], -4), r"^extra\.config", False),
    "config not an object": (_set(["extra", "config"], "fast"), r"^extra\.config$", False),
    "config.seed missing": (_drop(["extra", "config", "seed"]), r"^extra\.config\.seed$", True),
    "config.lr string": (_set(["extra", "config", "lr"], "fast"), r"^extra\.config\.lr$", True),
    "config.epochs 0": (_set(["extra", "config", "epochs"], 0), r"^extra\.config$", True),
    "schedule null": (None, r"^extra\.schedule$", True),
    "schedule garbage field": (None, r"^extra\.schedule\.last_epoch$", True),
    "history short": (_set(["extra", "history", "loss"], []), r"^extra\.history\.loss$", True),
    "history strings": (_set(["extra", "history", "loss"], ["x"]), r"^extra\.history\.loss$", True),
    "epoch 0": (_set(["epoch"], 0), r"^meta\.epoch$", True),
    "epoch null": (_set(["epoch"], None), r"^meta\.epoch$", True),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_run_record_is_named(run_ck, tmp_path, case):
    change, field, resume_only = RUN_CASES[case]
    if case.startswith("schedule"):
        src = run_checkpoint(tmp_path / "cos.npz", schedule="cosine", optimizer="sgd")
        change = _set(["extra", "schedule"], None) if case == "schedule null" else \
            _set(["extra", "schedule", "last_epoch"], "soon")
    else:
        src = run_ck
    bad = rewrite_meta(src, tmp_path / "bad.npz", change)
    check_run_meta(src, read_meta(src), resume=True)                          # the original passes
    refused(lambda: check_run_meta(bad, read_meta(bad), resume=True), field, path=bad)
    if not resume_only:
        refused(lambda: load_run(bad), field, path=bad)


def test_evaluate_and_predict_refuse_nan_statistics_and_weights(run_ck, tmp_path, capsys):
    nan_mean = rewrite_meta(run_ck, tmp_path / "m.npz",
                            _set(["extra", "data", "normalization", "mean"], [float("nan")]))
    nan_weight = _replace_array(run_ck, tmp_path / "w.npz", "model/7.weight.npy", _nan_at_0)
    png = tmp_path / "digit.png"
    pytest.importorskip("PIL.Image").fromarray(np.zeros((28, 28), np.uint8)).save(png)
    for path, what in ((nan_mean, "normalization.mean"), (nan_weight, "model/7.weight")):
        for command in (["evaluate", str(path)], ["predict", str(path), str(png)]):
            assert cli(command) == 2, command
            out = capsys.readouterr()
            assert what in out.err and "p = nan" not in out.out and "Traceback" not in out.err


def test_a_real_checkpoint_still_evaluates(run_ck, capsys):
    assert cli(["evaluate", str(run_ck), "--subset", "20"]) == 0
    assert "testing on 20 test images" in capsys.readouterr().out


def test_model_shapes_reads_headers_only(run_ck):
    shapes = model_shapes(run_ck)
    assert shapes["7.weight"] == (10, 3136) and shapes["0.weight"] == (32, 1, 3, 3)


# -- a diverged state is not worth saving --------------------------------------------------------------

def test_finite_state_problem_names_what_is_not_finite():
    model = tc.Sequential(tc.Flatten(), tc.Dense(4, 2, rng=np.random.default_rng(0)))
    opt = tc.Adam(model.parameters())
    assert finite_state_problem(model, opt, {"loss": 0.5, "val_loss": 0.7, "lr": 1e-3}) is None
    assert "val_loss is nan" in finite_state_problem(model, opt, {"loss": 0.5, "val_loss": float("nan")})
    assert "loss is inf" in finite_state_problem(model, None, {"loss": float("inf")})
    model.layers[1].weight.data[0, 0] = np.nan
    assert "model 1.weight holds 1 non-finite values" in finite_state_problem(model, opt, {"loss": 0.5})
    model.layers[1].weight.data[0, 0] = 0.0
    opt.exp_avg_sq[1][0] = np.inf
    assert "optimizer exp_avg_sq[1] holds 1 non-finite values" in finite_state_problem(model, opt)
    opt.exp_avg_sq[1][0] = 0.0
    opt.param_groups[0]["lr"] = float("nan")      # (opt.lr = nan is refused by the optimizer itself)
    assert "optimizer lr is nan" in finite_state_problem(model, opt)
    assert "optimizer param_groups[0].lr is nan" in finite_state_problem(model, opt)


def test_finite_state_problem_catches_a_real_divergence():
    """lr 1e20 on SGD: after one step the weights overflow; the state is reported, not saved."""
    rng = np.random.default_rng(0)
    model = tc.Sequential(tc.Flatten(), tc.Dense(16, 3, rng=rng))
    opt = tc.SGD(model.parameters(), lr=1e20)
    loss = tc.SoftmaxCrossEntropy()
    x, y = rng.standard_normal((8, 16)).astype(np.float32) * 1e20, rng.integers(0, 3, 8)
    for _ in range(3):
        opt.zero_grad()
        with np.errstate(all="ignore"):
            value = loss(model(x), y)
            model.backward(loss.backward())
            opt.step()
    problem = finite_state_problem(model, opt, {"loss": float(value)})
    assert problem is not None and "not finite" in problem


def test_an_archive_of_many_members_is_refused_cheaply(run_ck, tmp_path):
    """5 000 extra (well-named) members: the error lists ten of them, and nothing big is allocated."""
    items = members(run_ck) + [(f"model/{i}.junk.npy", npy_bytes(np.zeros(1, np.float32))) for i in range(5_000)]
    bad = write_zip(tmp_path / "many.npz", items)
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(0))
    err = refused(lambda: load_checkpoint(bad, model), r"^model$", r"unexpected keys \[.*\] and 4990 more")
    assert len(str(err)) < 5000
    assert peak_bytes(lambda: load_checkpoint(bad, model)) < 30 * os.path.getsize(bad)
