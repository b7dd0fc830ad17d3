"""ONNX export: the graph onnxruntime runs equals tinycnn's network, layer by layer within each
layer's float32 bound and end to end (same argmax on the whole embedded test set); every converter's
semantics checked in float64 against onnx's reference evaluator; refusals name the layer path."""
import json

import numpy as np
import pytest
from layer_examples import EXAMPLES, NESTABLE, exported_layer_classes, has_class
from optional_packages import require
from tolerances import (
    TORCH_F64_REL_TOL,
    assert_rel_close,
    assert_within,
    layer_forward_atol,
    network_forward_atol,
)

import tinycnn as tc
from tinycnn import data, export, saving, zoo
from tinycnn.cli import main as cli_main
from tinycnn.export import ExportError

LAYERWISE_IMAGES = 64            # images for the layer-by-layer check (the argmax check uses all 5000)


def _session(path, optimize: bool):
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1          # a shared 2-core machine
    if not optimize:                          # the graph as written: no fused or rewritten nodes
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _logits(model, x, batch=500):
    model.eval()
    return np.concatenate([model(x[i:i + batch]) for i in range(0, len(x), batch)])


@pytest.fixture(scope="module")
def embedded():
    ds = data.load("embedded")
    norm = data.Normalizer.fit(ds.x_train)
    return ds, norm


@pytest.fixture(scope="module", params=["lenet", "vgg-bn"])
def trained(request, embedded):
    """A zoo network after one short epoch (vgg-bn's batch norms then hold real running statistics)."""
    ds, norm = embedded
    n = 1024 if request.param == "lenet" else 512
    model = zoo.build(request.param, (1, 28, 28), 10, np.random.default_rng(0))
    model.compile(optimizer="adam", lr=2e-3)
    model.fit(norm(ds.x_train[:n]), ds.y_train[:n], epochs=1, batch_size=64, verbose=0)
    return request.param, model.eval()


def test_zoo_network_matches_onnxruntime_layer_by_layer(trained, embedded, tmp_path):
    """Each layer of the exported graph, fed the runtime's own output of the layer before, equals
    tinycnn's layer on that same input within the layer's float32 bound (tests/tolerances.py);
    the end-to-end output lies within the propagated bound."""
    require("onnx", "onnx")
    name, model = trained
    ds, norm = embedded
    x = norm(ds.x_test[:LAYERWISE_IMAGES])
    path = tmp_path / "layers.onnx"
    proto = export.build_onnx(model, layer_outputs=True)
    path.write_bytes(proto.SerializeToString())
    session = _session(path, optimize=False)
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, {"input": x})))
    assert names[1:] == [f"layer.{i}" for i in range(len(model.layers))]
    layer_in = x
    for i, layer in enumerate(model.layers):
        ours = np.asarray(layer.forward(layer_in))
        theirs = outs[f"layer.{i}"]
        assert theirs.dtype == np.float32 and theirs.shape == ours.shape, (i, theirs.shape, ours.shape)
        assert_within(theirs, ours, layer_forward_atol(layer, layer_in), name=f"{name} layer {i} {layer!r}")
        layer_in = theirs
    assert_within(outs["output"], model(x), network_forward_atol(model.layers, x), name=f"{name} output")


def test_zoo_network_same_argmax_on_the_embedded_test_set(trained, embedded, tmp_path):
    """The file as users get it (default runtime optimisations) classifies all 5000 embedded test
    images as tinycnn does."""
    require("onnx", "onnx")
    name, model = trained
    ds, norm = embedded
    x = norm(ds.x_test)
    path = tmp_path / "model.onnx"
    export.to_onnx(model, path)
    session = _session(path, optimize=True)
    theirs = np.concatenate([session.run(None, {"input": x[i:i + 500]})[0] for i in range(0, len(x), 500)])
    ours = _logits(model, x)
    differ = np.flatnonzero(theirs.argmax(1) != ours.argmax(1))
    assert differ.size == 0, (f"{name}: {differ.size} of {len(x)} test images classified differently, "
                              f"first {differ[:5]}, max |logit diff| {np.abs(theirs - ours).max():.3e}")
    assert (ours.argmax(1) == ds.y_test).mean() > 0.5              # a trained network, not a constant one


def test_batch_axis_is_dynamic(embedded, tmp_path):
    require("onnx", "onnx")
    ds, norm = embedded
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(1)).eval()
    path = tmp_path / "m.onnx"
    proto = export.to_onnx(model, path)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    session = _session(path, optimize=True)
    for n in (1, 3, 64):
        x = norm(ds.x_test[:n])
        y = session.run(None, {"input": x})[0]
        assert y.shape == (n, 10)
        assert_within(y, model(x), network_forward_atol(model.layers, x), name=f"batch {n}")


# -- every converter, in float64 against onnx's reference evaluator ---------------------------------

def _float64(model):
    """The same network in float64: its architecture with every dtype float64, the weights cast."""
    tree = json.loads(json.dumps(saving.architecture(model)).replace('"float32"', '"float64"'))
    copy = saving.from_architecture(tree)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_converter_computes_the_layer(name):
    """Each example network, exported in float64 and run by onnx.reference (NumPy, float64), equals
    tinycnn's float64 forward to the float64 oracle tolerance."""
    require("onnx", "onnx")
    from onnx.reference import ReferenceEvaluator
    if not has_class(name):
        pytest.skip(f"tinycnn has no {name} yet")
    if name in ("Sequential", "Residual", "Concat") and not NESTABLE:
        pytest.skip("a Sequential cannot be nested in this tinycnn yet (it has no named_buffers)")
    factory, shape = EXAMPLES[name]
    rng = np.random.default_rng(2)
    model = tc.Sequential(*factory(rng), input_shape=shape)
    for _, layer in saving.walk(model):
        for buf in (dict(layer.named_buffers()).values() if hasattr(layer, "named_buffers") else []):
            if buf is not None and buf.dtype.kind == "f":
                buf[...] = rng.uniform(0.5, 1.5, buf.shape)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.data.shape)
    model64 = _float64(model)
    if any(getattr(layer, "track_running_stats", True) is False for _, layer in saving.walk(model64)):
        with pytest.raises(ExportError, match="track_running_stats=False"):
            export.build_onnx(model64)
        model64 = tc.Sequential(*[layer for layer in model64.layers
                                  if getattr(layer, "track_running_stats", True)], input_shape=shape)
    x = rng.standard_normal((3, *shape))
    y = ReferenceEvaluator(export.build_onnx(model64)).run(None, {"input": x})[0]
    assert y.dtype == np.float64
    # onnx.reference evaluates Erf in float32 (np.vectorize(math.erf, otypes=["f"])): for GELU the bar is
    # that rounding, 0.5 |x| u_32 |d erf| <= u_32 max|y|, not float64's
    rel = float(np.finfo(np.float32).eps) if name == "GELU" else TORCH_F64_REL_TOL
    assert_rel_close(y, model64(x), rel, name=name)


def test_every_exported_layer_class_has_a_converter():
    missing = sorted(set(exported_layer_classes()) - set(export.CONVERTERS))
    assert not missing, f"layer classes exported from tinycnn without an ONNX converter: {missing}"


def test_input_normalisation_in_the_graph_equals_the_normalizer(embedded, tmp_path):
    require("onnx", "onnx")
    ds, norm = embedded
    model = tc.Sequential(tc.Flatten(), input_shape=(1, 28, 28))
    path = tmp_path / "m.onnx"
    export.to_onnx(model, path, normalize=(norm.mean, norm.std))
    pixels = ds.x_test[:8].astype(np.float32)
    y = _session(path, optimize=False).run(None, {"input": pixels})[0]
    assert np.array_equal(y, norm(ds.x_test[:8]).reshape(8, -1))     # the same two float32 operations


# -- refusals --------------------------------------------------------------------------------------

class Doubler(tc.Layer):
    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return 2 * g


@pytest.mark.parametrize("layers, pattern", [
    ([tc.Conv2D(1, 2, 3), tc.BatchNorm2D(2, track_running_stats=False)], r"layer 1 \(BatchNorm2D.*track_running_stats"),
    ([tc.ReLU(), Doubler()], r"layer 1 .*no ONNX converter for class Doubler"),
    ([tc.Flatten(), tc.Dense(10, 2)], r"layer 1 \(Dense\(10, 2\)\) rejects its per-sample input \(36,\)"),
])
def test_unsupported_layers_are_refused_with_path_and_reason(layers, pattern):
    require("onnx", "onnx")
    with pytest.raises(ExportError, match=pattern):
        export.build_onnx(tc.Sequential(*layers), input_shape=(1, 6, 6))


def test_a_model_without_input_shape_needs_one():
    require("onnx", "onnx")
    with pytest.raises(ExportError, match="pass input_shape"):
        export.build_onnx(tc.Sequential(tc.ReLU()))


# -- tinycnn export ---------------------------------------------------------------------------------

def _train_checkpoint(path, model, norm, classes):
    """A checkpoint with the records `tinycnn train` writes (model record, data, config)."""
    extra = {"model": zoo.describe("lenet", (1, 28, 28), 10), "config": {"model": "lenet"},
             "data": {"classes": list(classes), "image_shape": [1, 28, 28], "dataset": "embedded",
                      "normalization": {k: v.tolist() for k, v in norm.to_dict().items()}}}
    tc.save_checkpoint(path, model, epoch=1, extra=extra)


def test_cli_exports_a_train_checkpoint(embedded, tmp_path, capsys):
    require("onnx", "onnx")
    ds, norm = embedded
    model = zoo.build("lenet", (1, 28, 28), 10, np.random.default_rng(3)).eval()
    ckpt, out, raw = tmp_path / "checkpoint.npz", tmp_path / "lenet.onnx", tmp_path / "raw.onnx"
    _train_checkpoint(ckpt, model, norm, ds.classes)
    assert cli_main(["export", str(ckpt), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "normalised" in printed
    x = norm(ds.x_test[:16])
    y = _session(out, optimize=False).run(None, {"input": x})[0]
    assert_within(y, model(x), network_forward_atol(model.layers, x))
    assert cli_main(["export", str(ckpt), str(raw), "--raw-pixels"]) == 0
    y_raw = _session(raw, optimize=False).run(None, {"input": ds.x_test[:16].astype(np.float32)})[0]
    assert_within(y_raw, model(x), network_forward_atol(model.layers, x))
    import onnx
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["tinycnn.classes"]) == list(ds.classes)


def test_cli_exports_a_save_model_file(tmp_path, capsys):
    require("onnx", "onnx")
    rng = np.random.default_rng(4)
    model = tc.Sequential(tc.Conv2D(3, 4, 3, rng=rng), tc.ReLU(), tc.AvgPool2D(2), tc.Flatten(),
                          tc.Dense(16, 2, rng=rng))
    saved, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    saving.save_model(model, saved)
    assert cli_main(["export", str(saved), str(out)]) == 2           # no input shape recorded yet
    assert "--input-shape C,H,W" in capsys.readouterr().err
    assert cli_main(["export", str(saved), str(out), "--input-shape", "3,6,6"]) == 0
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = _session(out, optimize=False).run(None, {"input": x})[0]
    assert_within(y, model.eval()(x), network_forward_atol(model.layers, x))


@pytest.mark.parametrize("argv, message", [
    (["--input-shape", "3,6"], "--input-shape must be three positive integers"),
    (["--raw-pixels"], "--raw-pixels needs a `tinycnn train` checkpoint"),
])
def test_cli_bad_flags(tmp_path, capsys, argv, message):
    require("onnx", "onnx")
    saved = tmp_path / "m.npz"
    saving.save_model(tc.Sequential(tc.ReLU(), input_shape=(1, 2, 2)), saved)
    assert cli_main(["export", str(saved), str(tmp_path / "o.onnx"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinycnn export: error: ") and message in err


def test_cli_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"hello")
    assert cli_main(["export", str(bad), str(tmp_path / "o.onnx")]) == 2
    assert "not a readable model file" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()
