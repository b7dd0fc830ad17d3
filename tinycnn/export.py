"""ONNX export: ``to_onnx(model, path)`` writes the model's inference graph with the ``onnx`` package.

    import tinycnn.export
    tinycnn.export.to_onnx(model, "model.onnx")       # input "input" (N, C, H, W), output "output"

    import onnxruntime as ort                         # any ONNX runtime runs it, no tinycnn needed
    y = ort.InferenceSession("model.onnx").run(None, {"input": x})[0]

The graph computes the model in **eval mode** whatever mode it is in: Dropout is the identity and
batch norm uses its running statistics. The batch axis is dynamic (``N``); the per-sample shape is
the model's ``input_shape`` (or the ``input_shape`` argument). Weights are stored in the model's
dtype (float32 by default; a float64 model gives a float64 graph, which onnx.reference runs but
onnxruntime's CPU Conv does not); the operator set is ONNX opset 17. Graphs over 2 GB (protobuf's
limit; ONNX's external-data files) are not written.

Every layer maps to standard operators (``CONVERTERS``, by class name)::

    Conv2D -> Conv          MaxPool2D -> MaxPool     AvgPool2D -> AveragePool     Dense -> Gemm (or MatMul + Add)
    ReLU -> Relu   Sigmoid -> Sigmoid   Tanh -> Tanh   Flatten -> Flatten(axis 1)   Softmax -> Softmax
    BatchNorm2D, BatchNorm1D -> BatchNormalization (running statistics)   Dropout, Dropout2D, Identity -> Identity
    LeakyReLU -> LeakyRelu   SiLU -> x * Sigmoid(x)   GELU -> 0.5 x (1 + Erf(x / sqrt 2)) or its tanh form
    LogSoftmax -> LogSoftmax   LayerNorm -> LayerNormalization   GroupNorm -> Reshape, normalise, Reshape
    AdaptiveAvgPool2D / AdaptiveMaxPool2D -> Global*Pool (output 1x1) or a pool (input divisible by output)
    Sequential -> its layers in order   Residual -> block(x) + shortcut(x) (Add)   Concat -> Concat(axis 1)

What a graph cannot express the same way is refused with a ``ExportError`` naming the layer's path
(``3``, ``2.block.1``) and the reason: batch norm without running statistics (it would normalise
over the inference batch), pooling whose ``ceil_mode`` windows ONNX and PyTorch count differently,
adaptive pooling with overlapping bins, and any layer class without a converter.

``onnx`` is an optional extra (``pip install 'tinycnn[onnx]'``); it is imported only here.
"""
from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._typing import PathLike, Shape
from .shapes import layer_output_shape

if TYPE_CHECKING:
    import onnx

    from .model import Sequential

OPSET = 17                 # LayerNormalization needs 17; ReduceMean takes axes as an attribute up to 17
INPUT, OUTPUT, BATCH = "input", "output", "N"


class ExportError(ValueError):
    """A model (or one of its layers, named by path) that the ONNX exporter cannot write faithfully."""


def _onnx():
    try:
        import onnx
    except ImportError as err:
        raise ImportError("tinycnn.export needs the onnx package: pip install 'tinycnn[onnx]'") from err
    return onnx


@dataclass
class _Graph:
    onnx: object
    dtype: np.dtype
    nodes: list
    initializers: list
    used: set
    layer_outputs: list               # (path, tensor name, per-sample shape) of every converted layer

    def name(self, hint: str) -> str:
        base = hint.replace(".", "_") or "t"
        name, i = base, 1
        while name in self.used:
            name, i = f"{base}_{i}", i + 1
        self.used.add(name)
        return name

    def const(self, hint: str, array) -> str:
        """An initializer holding ``array`` (cast to the graph's dtype unless it is integer)."""
        arr = np.asarray(array)
        if arr.dtype.kind == "f":
            arr = arr.astype(self.dtype)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list, hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=self.name(f"{hint}_{op}"), **attrs))
        return out


def _pair(v) -> tuple:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else tuple(int(d) for d in v)


def _refuse(path: str, layer, reason: str):
    raise ExportError(f"to_onnx: layer {path or '(the model)'} ({layer!r}) cannot be exported: {reason}")


def _params(layer) -> dict:
    return {k: p.data for k, p in dict(layer.named_parameters()).items()}


# -- converters: (graph, layer, input name, per-sample input shape, path) -> (output name, out shape) --

def _conv(g, layer, x, shape, path):
    kh, kw = _pair(layer.kernel_size)
    dh, dw = _pair(getattr(layer, "dilation", 1))
    groups = int(getattr(layer, "groups", 1))
    if getattr(layer, "padding_mode", "zeros") != "zeros":
        _refuse(path, layer, f"padding_mode {layer.padding_mode!r}; only zero padding is exported")
    padding = layer.padding
    if isinstance(padding, str):
        if padding == "valid":
            pads = [0, 0, 0, 0]
        elif padding == "same":        # torch's rule: the odd pixel of an even total goes after
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        else:
            _refuse(path, layer, f"padding {padding!r}")
    else:
        ph, pw = _pair(padding)
        pads = [ph, pw, ph, pw]
    p = _params(layer)
    inputs = [x, g.const(f"{path}.weight", p["weight"])]
    if "bias" in p:
        inputs.append(g.const(f"{path}.bias", p["bias"]))
    y = g.node("Conv", inputs, path, kernel_shape=[kh, kw], strides=list(_pair(layer.stride)), pads=pads,
               dilations=[dh, dw], group=groups)
    return y, layer_output_shape(layer, shape)


def _pool_sizes(layer, shape, ceil_mode):
    """tinycnn's output size (its own rule) and ONNX's for the same settings (they can differ only with
    ``ceil_mode``: PyTorch drops a last window that starts in the right padding, ONNX keeps it)."""
    out = layer_output_shape(layer, shape)
    (kh, kw), (sh, sw), (ph, pw) = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
    dh, dw = _pair(getattr(layer, "dilation", 1))
    rnd = math.ceil if ceil_mode else math.floor
    onnx_hw = tuple(rnd((n + 2 * p - d * (k - 1) - 1) / s) + 1
                    for n, k, s, p, d in ((shape[1], kh, sh, ph, dh), (shape[2], kw, sw, pw, dw)))
    floor_hw = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                     for n, k, s, p, d in ((shape[1], kh, sh, ph, dh), (shape[2], kw, sw, pw, dw)))
    return out, onnx_hw, floor_hw


def _pool_attrs(layer):
    (kh, kw), (sh, sw), (ph, pw) = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
    return {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [ph, pw, ph, pw]}


def _maxpool(g, layer, x, shape, path):
    ceil_mode = bool(getattr(layer, "ceil_mode", False))
    out, onnx_hw, _ = _pool_sizes(layer, shape, ceil_mode)
    if tuple(out[1:]) != onnx_hw:
        _refuse(path, layer, f"with ceil_mode its output is {out[1:]} but an ONNX MaxPool's would be {onnx_hw} "
                             f"(ONNX keeps a last window that starts in the padding)")
    attrs = _pool_attrs(layer)
    attrs["dilations"] = list(_pair(getattr(layer, "dilation", 1)))
    if ceil_mode:
        attrs["ceil_mode"] = 1
    return g.node("MaxPool", [x], path, **attrs), out


def _avgpool(g, layer, x, shape, path):
    ceil_mode = bool(getattr(layer, "ceil_mode", False))
    out, _, floor_hw = _pool_sizes(layer, shape, ceil_mode)
    if tuple(out[1:]) != floor_hw:
        _refuse(path, layer, "ceil_mode adds partial windows whose divisor ONNX's AveragePool and PyTorch "
                             "compute differently")
    include_pad = bool(getattr(layer, "count_include_pad", True))
    divisor = getattr(layer, "divisor_override", None)
    attrs = _pool_attrs(layer)
    if divisor is not None:               # window sum / divisor = (mean with padded zeros) * KH*KW / divisor
        y = g.node("AveragePool", [x], path, count_include_pad=1, **attrs)
        kh, kw = attrs["kernel_shape"]
        return g.node("Mul", [y, g.const(f"{path}.scale", np.array(kh * kw / divisor))], path), out
    return g.node("AveragePool", [x], path, count_include_pad=int(include_pad), **attrs), out


def _adaptive(op: str):
    def convert(g, layer, x, shape, path):
        out = layer_output_shape(layer, shape)
        (_, h, w), (oh, ow) = shape, out[1:]
        if (oh, ow) == (1, 1):
            return g.node(f"Global{op}Pool", [x], path), out
        if h % oh or w % ow:
            _refuse(path, layer, f"input {h}x{w} is not a multiple of the output {oh}x{ow}: the bins overlap "
                                 f"or differ in size, which no single ONNX pool expresses")
        kh, kw = h // oh, w // ow
        return g.node(f"{op}Pool", [x], path, kernel_shape=[kh, kw], strides=[kh, kw]), out
    return convert


def _dense(g, layer, x, shape, path):
    p = _params(layer)
    out = layer_output_shape(layer, shape)
    if len(shape) == 1:                                        # (N, in) @ W.T + b in one Gemm
        inputs = [x, g.const(f"{path}.weight", p["weight"])]
        if "bias" in p:
            inputs.append(g.const(f"{path}.bias", p["bias"]))
        return g.node("Gemm", inputs, path, transB=1), out
    y = g.node("MatMul", [x, g.const(f"{path}.weight_t", p["weight"].T)], path)   # (..., in) @ (in, out)
    if "bias" in p:
        y = g.node("Add", [y, g.const(f"{path}.bias", p["bias"])], path)
    return y, out


def _flatten(g, layer, x, shape, path):
    if getattr(layer, "start_dim", 1) != 1 or getattr(layer, "end_dim", -1) != -1:
        _refuse(path, layer, "only Flatten(start_dim=1, end_dim=-1) is exported")
    return g.node("Flatten", [x], path, axis=1), layer_output_shape(layer, shape)


def _elementwise(op: str, **attrs):
    def convert(g, layer, x, shape, path):
        values = {k: (getattr(layer, v) if isinstance(v, str) else v) for k, v in attrs.items()}
        return g.node(op, [x], path, **values), layer_output_shape(layer, shape)
    return convert


def _identity(g, layer, x, shape, path):
    return g.node("Identity", [x], path), layer_output_shape(layer, shape)


def _leaky_relu(g, layer, x, shape, path):
    # PRelu with the slope as a tensor of the graph's dtype: LeakyRelu's ``alpha`` attribute is a float32,
    # which would round the slope of a float64 graph
    slope = g.const(f"{path}.slope", np.array([layer.negative_slope]))
    return g.node("PRelu", [x, slope], path), layer_output_shape(layer, shape)


def _silu(g, layer, x, shape, path):
    return g.node("Mul", [x, g.node("Sigmoid", [x], path)], path), tuple(shape)


def _gelu(g, layer, x, shape, path):
    approximate = getattr(layer, "approximate", "none")
    half, one = g.const(f"{path}.half", np.array(0.5)), g.const(f"{path}.one", np.array(1.0))
    if approximate == "none":                   # 0.5 x (1 + erf(x / sqrt 2))
        inner = g.node("Erf", [g.node("Mul", [x, g.const(f"{path}.rsqrt2", np.array(1 / math.sqrt(2)))], path)], path)
    elif approximate == "tanh":                 # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.node("Mul", [g.node("Mul", [x, x], path), x], path)
        poly = g.node("Add", [x, g.node("Mul", [x3, g.const(f"{path}.c", np.array(0.044715))], path)], path)
        inner = g.node("Tanh", [g.node("Mul", [poly, g.const(f"{path}.k", np.array(math.sqrt(2 / math.pi)))],
                                       path)], path)
    else:
        _refuse(path, layer, f"approximate={approximate!r}")
    y = g.node("Mul", [g.node("Mul", [x, half], path), g.node("Add", [inner, one], path)], path)
    return y, tuple(shape)


def _softmax(op: str):
    def convert(g, layer, x, shape, path):
        return g.node(op, [x], path, axis=int(getattr(layer, "dim", 1))), layer_output_shape(layer, shape)
    return convert


def _batchnorm(g, layer, x, shape, path):
    if not layer.track_running_stats:
        _refuse(path, layer, "track_running_stats=False: it normalises with the statistics of whatever batch "
                             "it gets, also at inference; an ONNX BatchNormalization needs running statistics")
    c = layer.num_features
    p = _params(layer)
    scale = p.get("weight", np.ones(c))
    bias = p.get("bias", np.zeros(c))
    inputs = [x, g.const(f"{path}.weight", scale), g.const(f"{path}.bias", bias),
              g.const(f"{path}.running_mean", layer.running_mean), g.const(f"{path}.running_var", layer.running_var)]
    return g.node("BatchNormalization", inputs, path, epsilon=float(layer.eps)), layer_output_shape(layer, shape)


def _layernorm(g, layer, x, shape, path):
    ns = layer.normalized_shape
    dims = (int(ns),) if isinstance(ns, (int, np.integer)) else tuple(int(d) for d in ns)
    p = _params(layer)
    inputs = [x, g.const(f"{path}.weight", p.get("weight", np.ones(dims)))]
    if "bias" in p:
        inputs.append(g.const(f"{path}.bias", p["bias"]))
    y = g.node("LayerNormalization", inputs, path, axis=-len(dims), epsilon=float(layer.eps))
    return y, layer_output_shape(layer, shape)


def _groupnorm(g, layer, x, shape, path):
    """(N, C, ...) -> (N, G, C/G * ...) normalised over its last axis -> (N, C, ...) * weight + bias."""
    groups, c = int(layer.num_groups), int(layer.num_channels)
    grouped = g.node("Reshape", [x, g.const(f"{path}.grouped", np.array([0, groups, -1], np.int64))], path)
    mean = g.node("ReduceMean", [grouped], path, axes=[2], keepdims=1)
    centered = g.node("Sub", [grouped, mean], path)
    var = g.node("ReduceMean", [g.node("Mul", [centered, centered], path)], path, axes=[2], keepdims=1)
    std = g.node("Sqrt", [g.node("Add", [var, g.const(f"{path}.eps", np.array(layer.eps))], path)], path)
    normed = g.node("Div", [centered, std], path)
    y = g.node("Reshape", [normed, g.const(f"{path}.shape", np.array([0, *shape], np.int64))], path)
    p = _params(layer)
    if p:
        per_channel = (c,) + (1,) * (len(shape) - 1)
        y = g.node("Mul", [y, g.const(f"{path}.weight", p["weight"].reshape(per_channel))], path)
        y = g.node("Add", [y, g.const(f"{path}.bias", p["bias"].reshape(per_channel))], path)
    return y, tuple(shape)


def _sequential(g, layer, x, shape, path):
    for i, child in enumerate(layer.layers):
        x, shape = _convert(g, child, x, shape, f"{path}.{i}" if path else str(i))
    return x, shape


def _residual(g, layer, x, shape, path):
    y, out = _convert(g, layer.block, x, shape, f"{path}.block")
    if layer.shortcut is None:
        s, s_shape = x, tuple(shape)
    else:
        s, s_shape = _convert(g, layer.shortcut, x, shape, f"{path}.shortcut")
    if tuple(out) != tuple(s_shape):
        _refuse(path, layer, f"the block gives {tuple(out)} but the shortcut {tuple(s_shape)}")
    z = g.node("Add", [y, s], path)
    if getattr(layer, "post", None) is None:
        return z, tuple(out)
    return _convert(g, layer.post, z, out, f"{path}.post")


def _concat(g, layer, x, shape, path):
    outs = [_convert(g, b, x, shape, f"{path}.{i}") for i, b in enumerate(layer.branches)]
    rest = {tuple(o[1:]) for _, o in outs}
    if len(rest) != 1:
        _refuse(path, layer, f"the branches give shapes {[tuple(o) for _, o in outs]}, which differ beyond the "
                             f"channel axis")
    if getattr(layer, "dim", 1) not in (1, -len(shape) - 1):
        _refuse(path, layer, f"dim={layer.dim}: only concatenation along channels (dim=1) is exported")
    out = (sum(o[0] for _, o in outs), *rest.pop())
    return g.node("Concat", [y for y, _ in outs], path, axis=1), out


CONVERTERS = {
    "Sequential": _sequential, "Residual": _residual, "Concat": _concat,
    "Conv2D": _conv, "Dense": _dense, "Flatten": _flatten,
    "MaxPool2D": _maxpool, "AvgPool2D": _avgpool,
    "AdaptiveAvgPool2D": _adaptive("Average"), "AdaptiveMaxPool2D": _adaptive("Max"),
    "ReLU": _elementwise("Relu"), "Sigmoid": _elementwise("Sigmoid"), "Tanh": _elementwise("Tanh"),
    "LeakyReLU": _leaky_relu, "SiLU": _silu, "GELU": _gelu,
    "Softmax": _softmax("Softmax"), "LogSoftmax": _softmax("LogSoftmax"),
    "Identity": _identity, "Dropout": _identity, "Dropout2D": _identity,
    "BatchNorm2D": _batchnorm, "BatchNorm1D": _batchnorm, "LayerNorm": _layernorm, "GroupNorm": _groupnorm,
}


def _convert(g, layer, x, shape, path):
    import tinycnn
    name = type(layer).__name__
    ours = getattr(tinycnn, name, None) or getattr(tinycnn.layers, name, None)
    if name not in CONVERTERS or ours is not type(layer):
        _refuse(path, layer, f"no ONNX converter for class {name}" +
                ("" if ours is type(layer) else " (not a tinycnn layer class)") +
                "; tinycnn.export.CONVERTERS lists the classes it can write")
    try:
        y, out_shape = CONVERTERS[name](g, layer, x, tuple(shape), path)
    except ExportError:
        raise
    except ValueError as err:                    # the layer's own shape check
        raise ExportError(f"to_onnx: layer {path or '(the model)'} ({layer!r}) rejects its per-sample input "
                          f"{tuple(shape)}: {err}") from None
    g.layer_outputs.append((path, y, tuple(out_shape)))
    return y, tuple(out_shape)


def build_onnx(model: Sequential, *, input_shape: Shape | None = None, metadata: dict | None = None,
               layer_outputs: bool = False, normalize: tuple[ArrayLike, ArrayLike] | None = None) -> onnx.ModelProto:
    """The ``onnx.ModelProto`` of ``model``'s eval-mode graph (checked with ``onnx.checker``).

    layer_outputs: also output every layer's result, as ``layer.<path>`` (``layer.3``,
    ``layer.2.block.1``), after ``output``: to compare a runtime with tinycnn layer by layer.
    normalize: ``(mean, std)``, one number per channel: the graph then takes pixel values (0..255,
    as floats) and starts with ``(x - mean) / std``, as ``tinycnn.data.Normalizer`` computes it."""
    onnx = _onnx()
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ExportError("to_onnx: the model's input shape is not known; pass input_shape=(C, H, W) or build "
                          "the model with Sequential(..., input_shape=(C, H, W))")
    shape = tuple(int(d) for d in shape)
    params = model.parameters()
    dtype = params[0].data.dtype if params else np.dtype(np.float32)
    if any(p.data.dtype != dtype for p in params):
        raise ExportError("to_onnx: the model mixes parameter dtypes; convert it to one dtype first")
    elem = {np.dtype(np.float32): onnx.TensorProto.FLOAT, np.dtype(np.float64): onnx.TensorProto.DOUBLE}[dtype]
    g = _Graph(onnx, dtype, [], [], {INPUT, OUTPUT}, [])
    x = INPUT
    if normalize is not None:
        mean, std = (np.asarray(v, dtype=np.float64).reshape(-1) for v in normalize)
        if mean.shape != (shape[0],) or std.shape != (shape[0],) or not np.all(std > 0):
            raise ExportError(f"to_onnx: normalize needs a mean and a std > 0 for each of the {shape[0]} channels, "
                              f"got {mean.shape} and {std.shape}")
        per_channel = (shape[0],) + (1,) * (len(shape) - 1)
        x = g.node("Sub", [x, g.const("normalize.mean", mean.reshape(per_channel))], "normalize")
        x = g.node("Div", [x, g.const("normalize.std", std.reshape(per_channel))], "normalize")
    y, out_shape = _convert(g, model, x, shape, "")
    g.nodes.append(onnx.helper.make_node("Identity", [y], [OUTPUT], name=g.name("output_Identity")))
    outputs = [onnx.helper.make_tensor_value_info(OUTPUT, elem, [BATCH, *out_shape])]
    if layer_outputs:
        for path, tensor, per_sample in g.layer_outputs:
            if path:
                name = f"layer.{path}"
                g.nodes.append(onnx.helper.make_node("Identity", [tensor], [name], name=g.name(f"{name}_Identity")))
                outputs.append(onnx.helper.make_tensor_value_info(name, elem, [BATCH, *per_sample]))
    graph = onnx.helper.make_graph(
        g.nodes, "tinycnn", [onnx.helper.make_tensor_value_info(INPUT, elem, [BATCH, *shape])], outputs,
        initializer=g.initializers)
    proto = onnx.helper.make_model(graph, producer_name="tinycnn",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 8)           # IR 8 (ONNX 1.10+): read by every current runtime
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(proto, full_check=True)      # also infers every shape
    return proto


def to_onnx(model: Sequential, path: PathLike, *, input_shape: Shape | None = None, metadata: dict | None = None,
            normalize: tuple[ArrayLike, ArrayLike] | None = None) -> onnx.ModelProto:
    """Write ``model``'s eval-mode inference graph to ``path`` (see the module docstring); returns the
    ``onnx.ModelProto``. ``metadata``: strings stored as the model's metadata_props (e.g. class names);
    ``normalize``: see ``build_onnx``. The file is written under a temporary name and renamed, so
    ``path`` is never half-written."""
    proto = build_onnx(model, input_shape=input_shape, metadata=metadata, normalize=normalize)
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return proto
