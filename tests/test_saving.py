"""save_model / load_model: every layer class round-trips bit for bit, optimizers continue exactly,
and a hostile file is refused (by name, field and numbers) before anything is allocated."""
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from layer_examples import EXAMPLES, NESTABLE, exported_layer_classes, has_class
from optional_packages import require

import tinycnn as tc
from tinycnn import saving, zoo
from tinycnn.layers import Layer
from tinycnn.saving import ModelFileError


def _save_load(model, tmp_path, **kw):
    path = tmp_path / "model.npz"
    saving.save_model(model, path, **kw)
    return saving.load_model(path), path


def _perturb_buffers(model, rng):
    """Running statistics away from their initial 0 / 1, so a forgotten buffer shows."""
    for _, layer in saving.walk(model):
        for buf in (dict(layer.named_buffers()).values() if hasattr(layer, "named_buffers") else []):
            if buf is not None and buf.dtype.kind == "f":
                buf[...] = rng.uniform(0.5, 1.5, buf.shape)


# -- the registry covers everything --------------------------------------------------------------

def test_every_exported_layer_class_has_a_registry_entry():
    classes = exported_layer_classes()
    assert {"Conv2D", "Dense", "BatchNorm2D", "Sequential"} <= set(classes)
    missing = sorted(set(classes) - set(saving.REGISTRY))
    assert not missing, (f"layer classes exported from tinycnn without an entry in tinycnn.saving.REGISTRY "
                         f"(save_model cannot write them): {missing}")
    known = saving._classes()
    wrong = sorted(n for n, cls in classes.items() if known.get(n) is not cls)
    assert not wrong, f"registry names that resolve to another class than tinycnn's: {wrong}"


def test_every_exported_class_has_an_example():
    missing = sorted(set(exported_layer_classes()) - set(EXAMPLES))
    assert not missing, f"add a round-trip example to tests/test_saving.py EXAMPLES for: {missing}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_class_round_trips_bit_for_bit(name, tmp_path):
    if not has_class(name):
        pytest.skip(f"tinycnn has no {name} yet")
    if name in ("Sequential", "Residual", "Concat") and not NESTABLE:
        pytest.skip("a Sequential cannot be nested in this tinycnn yet (it has no named_buffers)")
    factory, shape = EXAMPLES[name]
    rng = np.random.default_rng(1)
    model = tc.Sequential(*factory(rng), input_shape=shape)
    _perturb_buffers(model, rng)
    for p in model.parameters():                      # weights away from their init (BN's ones and zeros)
        p.data[...] = rng.standard_normal(p.data.shape)
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    loaded, _ = _save_load(model, tmp_path)
    assert saving.architecture(loaded) == saving.architecture(model)
    assert repr(loaded) == repr(model)
    before, after = model.state_dict(), loaded.state_dict()
    assert list(before) == list(after)
    for k in before:
        assert before[k].dtype == after[k].dtype and np.array_equal(before[k], after[k]), k
    assert not loaded.training
    model.eval()
    assert np.array_equal(model(x), loaded(x))
    model.train(), loaded.train()                     # training mode too: dropout masks from restored rngs
    assert np.array_equal(model(x), loaded(x))


@pytest.mark.parametrize("name, options", [("lenet", {}), ("seed-keras", {}), ("vgg-bn", {"width": 8})])
def test_zoo_networks_round_trip_bit_for_bit(name, options, tmp_path):
    rng = np.random.default_rng(2)
    shape = (3, 32, 32)
    model = zoo.build(name, shape, 10, rng, **options)
    _perturb_buffers(model, rng)
    loaded, path = _save_load(model, tmp_path)
    x = rng.standard_normal((5, *shape)).astype(np.float32)
    model.eval()
    assert np.array_equal(model(x), loaded(x))
    assert loaded.input_shape == shape
    meta = json.loads(np.load(path)["meta"].tobytes())   # the architecture is plain JSON, no code
    assert meta["extra"]["architecture"]["class"] == "Sequential"


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_float64_models_round_trip(nested, tmp_path):
    if nested and not NESTABLE:
        pytest.skip("a Sequential cannot be nested in this tinycnn yet (it has no named_buffers)")
    rng = np.random.default_rng(3)
    body = [tc.Conv2D(2, 3, 3, padding=1, dtype=np.float64, rng=rng), tc.BatchNorm2D(3, dtype=np.float64), tc.Tanh()]
    if nested:
        body = [tc.Sequential(body[0], tc.Sequential(*body[1:]))]
    model = tc.Sequential(*body, tc.Flatten(), tc.Dense(3 * 4 * 4, 2, dtype=np.float64, rng=rng), input_shape=(2, 4, 4))
    _perturb_buffers(model, rng)
    loaded, _ = _save_load(model, tmp_path)
    assert all(p.data.dtype == np.float64 for p in loaded.parameters())
    x = rng.standard_normal((3, 2, 4, 4))
    assert np.array_equal(model.eval()(x), loaded(x))


def test_the_shape_free_model_keeps_no_input_shape(tmp_path):
    model = tc.Sequential(tc.ReLU())
    loaded, _ = _save_load(model, tmp_path)
    assert loaded.input_shape is None


# -- optimizers continue exactly ----------------------------------------------------------------

def _small_net(rng):
    return tc.Sequential(tc.Conv2D(1, 4, 3, padding=1, rng=rng), tc.BatchNorm2D(4), tc.ReLU(), tc.MaxPool2D(2),
                         tc.Flatten(), tc.Dropout(0.25, rng=np.random.default_rng(9)), tc.Dense(4 * 4 * 4, 3, rng=rng),
                         input_shape=(1, 8, 8))


def _step(model, opt, x, y):
    loss_fn = tc.SoftmaxCrossEntropy()
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward(), input_grad=False)
    opt.step()
    return loss


@pytest.mark.parametrize("make_opt", [
    lambda p: tc.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda p: tc.SGD(p, lr=0.05),
    lambda p: tc.Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-4),
], ids=["sgd-nesterov", "sgd-plain", "adam"])
def test_the_optimizer_continues_with_an_identical_step(make_opt, tmp_path):
    rng = np.random.default_rng(4)
    model = _small_net(rng)
    opt = make_opt(model.parameters())
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    for _ in range(2):
        _step(model, opt, x, y)
    path = tmp_path / "m.npz"
    saving.save_model(model, path, optimizer=opt)
    loaded = saving.load_model(path).train()
    opt2 = saving.load_optimizer(path, loaded)
    assert type(opt2) is type(opt)
    assert _step(model, opt, x, y) == _step(loaded, opt2, x, y)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert np.array_equal(a, b), k


def test_a_compiled_model_continues_fit_exactly(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = _small_net(rng).compile(optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path) if hasattr(model, "save") else saving.save_model(model, path)
    loaded = saving.load_model(path)
    assert type(loaded.compiled.optimizer) is tc.Adam and loaded.compiled.loss_name == model.compiled.loss_name
    h1 = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    h2 = loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert h1.history == h2.history
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert np.array_equal(a, b), k


def test_a_function_metric_is_left_out_with_a_warning(tmp_path):
    def hits(y, p):
        return float((p.argmax(1) == y).sum())
    model = _small_net(np.random.default_rng(6)).compile(optimizer="sgd", metrics=["accuracy", hits])
    path = tmp_path / "m.npz"
    saving.save_model(model, path)
    with pytest.warns(UserWarning, match="metric 'hits' was a function"):
        loaded = saving.load_model(path)
    assert [m.name for m in loaded.compiled.metrics] == ["accuracy"]


def test_without_an_optimizer_nothing_is_compiled(tmp_path):
    model = _small_net(np.random.default_rng(6)).compile(optimizer="sgd")
    path = tmp_path / "m.npz"
    saving.save_model(model, path, include_optimizer=False)
    assert saving.load_model(path).compiled is None
    with pytest.raises(ModelFileError, match="no optimizer state"):
        saving.load_optimizer(path, saving.load_model(path))


# -- what save_model refuses --------------------------------------------------------------------

class Doubler(Layer):
    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return 2 * g


class MyConv(tc.Conv2D):
    pass


@pytest.mark.parametrize("layer, name", [(Doubler(), "Doubler"), (MyConv(1, 1, 1), "MyConv")])
def test_save_refuses_a_class_without_an_entry_naming_its_path(layer, name, tmp_path):
    model = tc.Sequential(tc.ReLU(), tc.Sequential(tc.ReLU(), layer))
    with pytest.raises(ModelFileError, match=rf"layer 1\.1 \({name}\).*REGISTRY"):
        saving.save_model(model, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_an_optimizer_of_other_parameters(tmp_path):
    rng = np.random.default_rng(7)
    model = _small_net(rng)
    with pytest.raises(ModelFileError, match="not the model's"):
        saving.save_model(model, tmp_path / "m.npz", optimizer=tc.SGD(model.parameters()[::-1], lr=0.1))


# -- hostile files -------------------------------------------------------------------------------

def _members(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write(path, members: dict, compress=False, raw: dict | None = None):
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=mode) as zf:
        for key, arr in members.items():
            with zf.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
        for name, data in (raw or {}).items():
            zf.writestr(name, data)


def _with_meta(members, change):
    meta = json.loads(members["meta"].tobytes())
    change(meta)
    out = dict(members)
    out["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    return out


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(8)
    model = _small_net(rng)
    opt = tc.Adam(model.parameters())
    path = tmp_path / "good.npz"
    saving.save_model(model, path, optimizer=opt)
    return path


def _tree(meta):
    return meta["extra"]["architecture"]


def _refused(path, *patterns):
    with pytest.raises(ModelFileError) as info:
        saving.load_model(path)
    text = str(info.value)
    assert str(path) in text, text
    for p in patterns:
        assert p in text, text
    return text


@pytest.mark.parametrize("change, patterns", [
    (lambda m: _tree(m)["children"][0].update({"class": "Conv9D"}), ["layer 0", "unknown layer class 'Conv9D'"]),
    (lambda m: _tree(m)["children"][0].update({"class": 7}), ["layer 0", "'class' must be a string"]),
    (lambda m: _tree(m).update({"class": "os.system"}), ["unknown layer class 'os.system'"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"in_channels": "1"}), ["layer 0", "'in_channels'"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"in_channels": True}), ["'in_channels'", "True"]),
    (lambda m: _tree(m)["children"][1]["args"].update({"eps": float("nan")}), ["layer 1", "'eps'", "finite"]),
    (lambda m: _tree(m)["children"][0]["args"].pop("kernel_size"), ["'kernel_size' is missing"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"evil": 1}), ["unknown argument(s) ['evil']"]),
    (lambda m: _tree(m)["children"][0].update({"code": "x"}), ["unexpected field(s) ['code']"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"kernel_size": [3]}), ["'kernel_size'", "2"]),
    (lambda m: _tree(m).update({"children": {"a": 1}}), ["'children' list"]),
    (lambda m: _tree(m)["args"].update({"input_shape": [1, 100000, 100000]}), ["input_shape", "elements per sample"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"in_channels": 2 ** 40}), ["'in_channels'", "integer in"]),
    (lambda m: _tree(m)["children"][0]["args"].update({"out_channels": 5}), ["allocates", "holds"]),
    (lambda m: _tree(m)["children"][3]["args"].update({"padding": [2, 2]}), ["layer 3", "MaxPool2D refuses"]),
    (lambda m: m["extra"].update({"format_version": 99}), ["version 99", "upgrade"]),
    (lambda m: m["extra"].update({"format_version": "1"}), ["format_version"]),
    (lambda m: m["extra"].update({"compile": {"loss": 3}}), ["extra.compile"]),
    (lambda m: m["extra"].update({"layer_rngs": {"0": {"state": 1}}}), ["layer_rngs", "'0'"]),
    (lambda m: m["extra"].update({"layer_rngs": {"5": {"bit_generator": "PCG64", "state": 1}}}), ["layer_rngs['5']"]),
    (lambda m: m["optimizer"].update({"type": "Evil"}), ["unknown optimizer type 'Evil'"]),
    (lambda m: m["extra"].pop("format"), ["without a model architecture", "load_checkpoint"]),
])
def test_a_tampered_architecture_is_refused_by_field(saved, tmp_path, change, patterns):
    bad = tmp_path / "bad.npz"
    _write(bad, _with_meta(_members(saved), change))
    _refused(bad, *patterns)


def test_a_huge_layer_is_refused_before_any_allocation(saved, tmp_path):
    """A Conv2D of 2**31 x 2**31 x 3 x 3 would need 1.6e20 bytes: refused from its count, and nothing
    near it is allocated (peak traced memory below 5 MB, the file itself is ~10 KB)."""
    bad = tmp_path / "bad.npz"

    def huge(m):
        _tree(m)["children"][0]["args"].update({"in_channels": 2 ** 31, "out_channels": 2 ** 31})
    _write(bad, _with_meta(_members(saved), huge))
    tracemalloc.start()
    try:
        _refused(bad, "allocates", "weight elements")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, peak


def test_nesting_too_deep_is_refused(saved, tmp_path):
    def deep(m):
        node = {"class": "Sequential", "args": {"input_shape": None}, "children": []}
        for _ in range(saving.MAX_DEPTH + 5):
            node = {"class": "Sequential", "args": {"input_shape": None}, "children": [node]}
        m["extra"]["architecture"]["children"].append(node)
    bad = tmp_path / "bad.npz"
    _write(bad, _with_meta(_members(saved), deep))
    _refused(bad, "nested deeper than")


def test_an_extra_member_is_refused_by_name(saved, tmp_path):
    bad = tmp_path / "bad.npz"
    _write(bad, _members(saved), raw={"payload.pkl": b"\x80\x04junk"})
    _refused(bad, "unexpected member 'payload.pkl'")


def test_a_compressed_member_is_refused(saved, tmp_path):
    bad = tmp_path / "bad.npz"
    _write(bad, _members(saved), compress=True)
    _refused(bad, "is compressed")


def test_a_lying_npy_header_is_refused(saved, tmp_path):
    members = _members(saved)
    key = next(k for k in members if k.startswith("model/"))
    data = members.pop(key)
    header = {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
    import io
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)          # a valid header (magic included) that lies
    f.write(data.tobytes())
    bad = tmp_path / "bad.npz"
    _write(bad, members, raw={key + ".npy": f.getvalue()})
    _refused(bad, repr(key + ".npy"), "(100000, 100000)")


def test_an_object_array_member_is_refused(saved, tmp_path):
    import io
    f = io.BytesIO()
    np.lib.format.write_array(f, np.array([None, 1], dtype=object), allow_pickle=True)
    bad = tmp_path / "bad.npz"
    _write(bad, _members(saved), raw={"model/evil.npy": f.getvalue()})
    _refused(bad, "'model/evil.npy'", "only numbers")


def test_meta_that_is_not_utf8_json_is_refused(saved, tmp_path):
    members = _members(saved)
    members["meta"] = np.frombuffer(b"\xff\xfe{not json", dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    _write(bad, members)
    _refused(bad, "'meta' is not UTF-8 JSON")


def test_a_missing_weight_is_refused(saved, tmp_path):
    members = _members(saved)
    members.pop(next(k for k in members if k.startswith("model/")))
    bad = tmp_path / "bad.npz"
    _write(bad, members)
    _refused(bad, "allocates", "holds")


def test_swapped_weight_keys_are_refused_with_the_keys(saved, tmp_path):
    members = _members(saved)
    members["model/6.weight_renamed"] = members.pop("model/6.weight")
    bad = tmp_path / "bad.npz"
    _write(bad, members)
    _refused(bad, "6.weight")


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04" + bytes(100)])
def test_a_file_that_is_not_a_model_is_refused(tmp_path, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    _refused(bad, "not a readable model file")


def test_a_plain_checkpoint_is_refused_with_what_to_do(tmp_path):
    model = _small_net(np.random.default_rng(9))
    path = tmp_path / "ckpt.npz"
    tc.save_checkpoint(path, model)
    _refused(path, "without a model architecture", "load_checkpoint(path, model)")


# -- safetensors ------------------------------------------------------------------------------------

def test_state_dict_round_trips_through_safetensors(tmp_path):
    require("safetensors", "safetensors")
    rng = np.random.default_rng(10)
    model = zoo.build("vgg-bn", (3, 16, 16), 4, rng, width=4)
    _perturb_buffers(model, rng)
    path = tmp_path / "w.safetensors"
    saving.save_safetensors(model, path)
    state = saving.load_safetensors(path)
    before = model.state_dict()
    assert list(state) == list(before) or set(state) == set(before)
    for k, v in before.items():
        assert state[k].dtype == v.dtype and state[k].shape == v.shape and np.array_equal(state[k], v), k
    fresh = zoo.build("vgg-bn", (3, 16, 16), 4, np.random.default_rng(11), width=4)
    fresh.load_state_dict(state)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    assert np.array_equal(model.eval()(x), fresh.eval()(x))


def test_safetensors_file_feeds_the_torch_module(tmp_path, torch):
    require("safetensors", "safetensors")
    from safetensors.torch import load_file
    model = zoo.build("lenet", (1, 12, 12), 3, np.random.default_rng(12))
    path = tmp_path / "w.safetensors"
    saving.save_safetensors(model, path)
    module = tc.interop.to_torch_module(model)
    module.load_state_dict(load_file(str(path)))          # strict: torch's keys, shapes and dtypes
    for k, v in model.state_dict().items():
        assert np.array_equal(module.state_dict()[k].numpy(), v), k


def test_a_broken_safetensors_file_is_refused(tmp_path):
    require("safetensors", "safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{junk")
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        saving.load_safetensors(bad)
