"""Save a whole model -- architecture, weights, optionally the optimizer -- and load it back.

    tc.save_model(model, "model.npz")                  # also: optimizer=opt
    model = tc.load_model("model.npz")                 # the same layers and weights, in eval mode
    opt = tc.saving.load_optimizer("model.npz", model) # the saved optimizer, over model.parameters()

    tc.saving.save_safetensors(model, "weights.safetensors")     # state_dict only (extra: safetensors)
    model.load_state_dict(tc.saving.load_safetensors("weights.safetensors"))

The file is a tinycnn checkpoint (``tinycnn.checkpoint``: an ``.npz`` of plain ``.npy`` arrays, no
pickle, written atomically) whose ``extra`` holds::

    {"format": "tinycnn-model", "format_version": 1,
     "architecture": NODE,                 # the model as a tree of layers
     "compile": {"loss": str, "metrics": [str, ...]} or null,   # set when the compiled optimizer is saved
     "layer_rngs": {PATH: bit-generator state}}  # every Dropout's generator, nested ones too

    NODE = {"class": "Conv2D", "args": {"in_channels": 1, "out_channels": 8, "kernel_size": [3, 3], ...}}
         | {"class": "Sequential", "args": {"input_shape": [1, 28, 28] or null}, "children": [NODE, ...]}
         | {"class": "Residual", "args": {}, "slots": {"block": NODE, "shortcut": NODE or null, "post": NODE or null}}

No code is stored: ``class`` is looked up in ``REGISTRY`` (below), which says, per class, which
constructor arguments to read from the layer's public attributes (``Conv2D.in_channels``,
``BatchNorm2D.eps``, ...), of what kind, and which children a container holds. A class not in the
registry is refused when saving and when loading, by name. Adding a layer class is one entry.

Layer paths (in errors and in ``layer_rngs``) are the torch-style dotted names: ``3`` is the fourth
layer of the top Sequential, ``2.block.1`` the second layer of the block of the Residual at index 2.

Loading treats the file as hostile, and checks before it allocates anything:

* the zip holds only ``meta``, ``model/<key>`` and ``optim/...`` members, each stored uncompressed
  (as ``save_model`` writes them), so what is read is at most the file's own size; every ``.npy``
  header is read first and its shape times its item size must equal the member's size, and no
  member may hold Python objects;
* ``meta`` is UTF-8 JSON of at most ``MAX_META_BYTES``; the architecture is checked against the
  schema: known class names, every argument of the right kind and range, depth at most
  ``MAX_DEPTH``, at most ``MAX_LAYERS`` layers;
* the number of weight elements the architecture would allocate (counted from its arguments, per
  class) must equal the number the file holds, and only then is the model built and the weights
  loaded (``load_checkpoint``: strict keys and shapes, nothing changed on error).

Every refusal is a ``ModelFileError`` (a ValueError) naming the file and the field; a valid
checkpoint without an architecture (``save_checkpoint``, ``tinycnn train``) raises its subclass
``NoArchitectureError``, whose message says how to load it instead.

The optimizer's arrays go through ``load_checkpoint`` and ``Optimizer.load_state_dict`` (type,
count and every shape checked against the model's parameters). The file is checked, then read
again to load: a file replaced between the two by another process is not guarded against.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from . import checkpoint, optim
from . import layers as layer_module
from ._typing import PathLike
from .model import Sequential
from .training import _metric

# a value in the JSON architecture: what json.loads gives
JSONValue: TypeAlias = "None | bool | int | float | str | list | dict"

FORMAT = "tinycnn-model"
FORMAT_VERSION = 1
MAX_META_BYTES = 16 << 20          # the JSON text of a model file
MAX_DEPTH = 32                     # containers nested in containers
MAX_LAYERS = 100_000               # layers and containers in one model
MAX_INT = 1 << 31                  # any integer argument (a channel count, a kernel size)
MAX_SAMPLE_ELEMENTS = 1 << 28      # product of a recorded input_shape


class ModelFileError(ValueError):
    """A model file that cannot be read as one, or a model that cannot be saved: names the file and
    the field."""


class NoArchitectureError(ModelFileError):
    """A valid tinycnn checkpoint that holds weights but no architecture (``save_checkpoint``,
    ``tinycnn train``): it loads into a model built in code, or through ``tinycnn.zoo``."""


# -- argument kinds: how a constructor argument is read from a layer and checked from JSON -------

def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_int(v, where, minimum):
    if not _is_int(v) or not minimum <= v <= MAX_INT:
        raise ModelFileError(f"{where} must be an integer in [{minimum}, {MAX_INT}], got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Arg:
    """One constructor argument. ``kind``: 'int' (>= 1), 'count' (>= 0), 'pair' ([h, w] of ints >= 0),
    'ints' (a list of ints >= 1), 'shape' (like 'ints', or null), 'float' (finite), 'float?' (finite
    or null), 'bool', 'dtype' ('float32' | 'float64'), 'str', 'padding' ('pair', or a string such as
    'same'), 'int|pair' (an int or a pair, or null), 'index' (an axis: an int in [-8, 8], or null).

    ``attr``: the public attribute holding it (default: the argument's name); ``get``: a function
    of the layer for arguments not stored as such (Conv2D's ``bias`` is ``layer.bias is not None``).
    ``optional``: recorded only when the layer has the attribute (options added to a class later).
    """
    name: str
    kind: str
    attr: str | None = None
    get: Callable | None = None
    optional: bool = False

    def present(self, layer: object) -> bool:
        return self.get is not None or not self.optional or hasattr(layer, self.attr or self.name)

    def read(self, layer: object) -> JSONValue:
        value = self.get(layer) if self.get is not None else getattr(layer, self.attr or self.name)
        return _to_json_value(value, self.kind, f"{type(layer).__name__}.{self.attr or self.name}")

    def parse(self, v: JSONValue, where: str) -> object:
        k = self.kind
        if k in ("int", "count"):
            return _check_int(v, where, 1 if k == "int" else 0)
        if k in ("pair", "ints") or (k in ("shape", "int|pair") and v is not None and not _is_int(v)):
            if not isinstance(v, list) or (k == "pair" and len(v) != 2) or not 1 <= len(v) <= 8:
                raise ModelFileError(f"{where} must be a list of {'2' if k == 'pair' else '1 to 8'} integers, "
                                     f"got {v!r}")
            return tuple(_check_int(x, f"{where}[{i}]", 0 if k == "pair" else 1) for i, x in enumerate(v))
        if k in ("shape", "int|pair"):
            return None if v is None else _check_int(v, where, 1)
        if k in ("float", "float?"):
            if v is None and k == "float?":
                return None
            if not _is_real(v) or not math.isfinite(v):
                raise ModelFileError(f"{where} must be a finite number{' or null' if k == 'float?' else ''}, got {v!r}")
            return float(v)
        if k == "index":
            if v is not None and (not _is_int(v) or not -8 <= v <= 8):
                raise ModelFileError(f"{where} must be an axis, an integer in [-8, 8], or null, got {v!r}")
            return v
        if k == "bool":
            if not isinstance(v, bool):
                raise ModelFileError(f"{where} must be true or false, got {v!r}")
            return v
        if k == "dtype":
            if v not in ("float32", "float64"):
                raise ModelFileError(f"{where} must be 'float32' or 'float64', got {v!r}")
            return np.dtype(v)
        if k == "str":
            if not isinstance(v, str) or len(v) > 64:
                raise ModelFileError(f"{where} must be a short string, got {v!r:.80}")
            return v
        if k == "padding":
            if isinstance(v, str):
                if len(v) > 16:
                    raise ModelFileError(f"{where} must be a pair of integers or a padding mode, got {v!r:.80}")
                return v
            return Arg(self.name, "pair").parse(v, where)
        raise AssertionError(f"unknown argument kind {k!r}")      # a registry entry is wrong


def _to_json_value(value, kind, where):
    """A layer attribute as plain JSON (tuples become lists, dtypes their names)."""
    if kind == "dtype":
        return np.dtype(value).name
    if isinstance(value, (tuple, list)):
        return [int(x) for x in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ModelFileError(f"save_model: {where} = {value!r} cannot be written as JSON")


# -- the registry --------------------------------------------------------------------------------

def _no_state(args) -> int:
    return 0


@dataclass(frozen=True)
class Entry:
    """How to save and rebuild one class.

    args:      constructor arguments, read from public attributes, passed back by keyword.
    children:  for a container called as ``Cls(*children, **args)``: the attribute holding the list
               of children (Sequential: ``layers``).
    slots:     for a container called as ``Cls(slot=child, ...)``: attributes each holding one child or
               None (Residual: ``block``, ``shortcut``).
    state_size: args -> number of parameter and buffer elements the constructor allocates (checked
               against the file before building; children are counted separately).
    """
    args: tuple = ()
    children: str | None = None
    slots: tuple = ()
    state_size: Callable[[dict], int] = _no_state


def _conv_size(a):
    kh, kw = a["kernel_size"]
    return a["out_channels"] * (a["in_channels"] // a.get("groups", 1)) * kh * kw + a["out_channels"] * a["bias"]


def _dense_size(a):
    return a["out_features"] * a["in_features"] + a["out_features"] * a["bias"]


def _norm_size(a):                 # BatchNorm: weight, bias if affine; running mean, var and a count if tracked
    c = a["num_features"]
    return 2 * c * a.get("affine", True) + (2 * c + 1) * a.get("track_running_stats", True)


def _layernorm_size(a):
    n = math.prod(a["normalized_shape"])
    return n * (a.get("elementwise_affine", True)) * (1 + a.get("bias", True))


def _groupnorm_size(a):
    return 2 * a["num_channels"] * a.get("affine", True)


_DTYPE = Arg("dtype", "dtype", optional=True)
_POOL = (Arg("kernel_size", "pair"), Arg("stride", "pair"), Arg("padding", "pair"),
         Arg("dilation", "pair", optional=True), Arg("ceil_mode", "bool", optional=True))
_NORM = (Arg("num_features", "int"), Arg("eps", "float"), Arg("momentum", "float?"), Arg("affine", "bool"),
         Arg("track_running_stats", "bool"), _DTYPE)

# class name -> Entry. Options a class may gain later are marked optional: they are recorded only
# when the layer has the attribute, so the entry works before and after.
REGISTRY: dict[str, Entry] = {
    "Sequential": Entry(args=(Arg("input_shape", "shape"),), children="layers"),
    "Residual": Entry(slots=("block", "shortcut", "post")),
    "Concat": Entry(args=(Arg("dim", "index", optional=True),), children="branches"),
    "Conv2D": Entry(args=(Arg("in_channels", "int"), Arg("out_channels", "int"), Arg("kernel_size", "pair"),
                          Arg("stride", "pair"), Arg("padding", "padding"),
                          Arg("dilation", "pair", optional=True), Arg("groups", "int", optional=True),
                          Arg("padding_mode", "str", optional=True),
                          Arg("bias", "bool", get=lambda layer: layer.bias is not None), _DTYPE),
                    state_size=_conv_size),
    "Dense": Entry(args=(Arg("in_features", "int"), Arg("out_features", "int"),
                         Arg("bias", "bool", get=lambda layer: layer.bias is not None), _DTYPE),
                   state_size=_dense_size),
    "MaxPool2D": Entry(args=_POOL),
    "AvgPool2D": Entry(args=(*_POOL[:3], Arg("ceil_mode", "bool", optional=True),
                             Arg("count_include_pad", "bool", optional=True),
                             Arg("divisor_override", "int|pair", optional=True))),
    "AdaptiveAvgPool2D": Entry(args=(Arg("output_size", "int|pair"),)),
    "AdaptiveMaxPool2D": Entry(args=(Arg("output_size", "int|pair"),)),
    "ReLU": Entry(), "Sigmoid": Entry(), "Tanh": Entry(), "Identity": Entry(), "SiLU": Entry(),
    "Flatten": Entry(args=(Arg("start_dim", "index", optional=True), Arg("end_dim", "index", optional=True))),
    "LeakyReLU": Entry(args=(Arg("negative_slope", "float"),)),
    "GELU": Entry(args=(Arg("approximate", "str"),)),
    "Softmax": Entry(args=(Arg("dim", "index", optional=True),)),
    "LogSoftmax": Entry(args=(Arg("dim", "index", optional=True),)),
    "Dropout": Entry(args=(Arg("p", "float"),)),
    "Dropout2D": Entry(args=(Arg("p", "float"),)),
    "BatchNorm2D": Entry(args=_NORM, state_size=_norm_size),
    "BatchNorm1D": Entry(args=_NORM, state_size=_norm_size),
    "LayerNorm": Entry(args=(Arg("normalized_shape", "ints"), Arg("eps", "float"),
                             Arg("elementwise_affine", "bool"),
                             Arg("bias", "bool",
                                 get=lambda layer: layer.bias is not None or not layer.elementwise_affine),
                             _DTYPE),
                       state_size=_layernorm_size),
    "GroupNorm": Entry(args=(Arg("num_groups", "int"), Arg("num_channels", "int"), Arg("eps", "float"),
                             Arg("affine", "bool"), _DTYPE),
                       state_size=_groupnorm_size),
}


def _classes() -> dict[str, type]:
    """Registered class names -> the classes tinycnn has (an entry for a class not written yet is idle)."""
    import tinycnn
    found = {}
    for name in REGISTRY:
        cls = getattr(tinycnn, name, None) or getattr(layer_module, name, None)
        if cls is None and name == "Sequential":
            cls = Sequential
        if isinstance(cls, type):
            found[name] = cls
    return found


def _optimizer_classes() -> dict[str, type]:
    """Optimizer type names (``state_dict()["type"]``) -> classes, for every optimizer in ``tinycnn.optim``."""
    return {name: cls for name, cls in vars(optim).items()
            if isinstance(cls, type) and issubclass(cls, optim.Optimizer) and cls is not optim.Optimizer}


# -- model -> JSON ---------------------------------------------------------------------------------

def _join(prefix: str, name) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def architecture(model: Sequential) -> dict:
    """The model as a JSON-able tree (see the module docstring). Raises ModelFileError naming the
    path of a layer whose class is not in ``REGISTRY``."""
    classes = _classes()
    return _describe(model, "", classes)


def _describe(layer, path: str, classes) -> dict:
    name = type(layer).__name__
    where = f"layer {path or '(the model)'} ({name})"
    if name not in REGISTRY or classes.get(name) is not type(layer):
        raise ModelFileError(
            f"save_model: {where} is not a tinycnn layer class with an entry in tinycnn.saving.REGISTRY, "
            f"so it cannot be rebuilt from a file; register it (one Entry saying which constructor "
            f"arguments to read from its attributes) or save its weights with save_checkpoint")
    entry = REGISTRY[name]
    try:
        node = {"class": name, "args": {a.name: a.read(layer) for a in entry.args if a.present(layer)}}
    except (AttributeError, TypeError) as err:
        raise ModelFileError(f"save_model: {where}: its entry in tinycnn.saving.REGISTRY does not fit the "
                             f"layer's attributes ({type(err).__name__}: {err}); the entry needs updating") from None
    if entry.children is not None:
        node["children"] = [_describe(child, _join(path, i), classes)
                            for i, child in enumerate(getattr(layer, entry.children))]
    if entry.slots:
        node["slots"] = {slot: (None if getattr(layer, slot) is None
                                else _describe(getattr(layer, slot), _join(path, slot), classes))
                         for slot in entry.slots}
    return node


def walk(model: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Yield (path, layer) for the model and every layer inside it, depth first, containers first."""
    yield path, model
    entry = REGISTRY.get(type(model).__name__)
    if entry is None:
        return
    if entry.children is not None:
        for i, child in enumerate(getattr(model, entry.children)):
            yield from walk(child, _join(path, i))
    for slot in entry.slots:
        child = getattr(model, slot)
        if child is not None:
            yield from walk(child, _join(path, slot))


# -- JSON -> model ---------------------------------------------------------------------------------

@dataclass
class _Spec:
    cls: type
    args: dict
    children: list = field(default_factory=list)
    slots: dict = field(default_factory=dict)
    path: str = ""


def _parse(node, path: str, classes, depth: int, counter: list, where: str) -> _Spec:
    at = f"{where}: architecture at layer {path or '(the model)'}"
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{at}: containers nested deeper than {MAX_DEPTH}")
    counter[0] += 1
    if counter[0] > MAX_LAYERS:
        raise ModelFileError(f"{where}: the architecture has more than {MAX_LAYERS} layers")
    if not isinstance(node, dict):
        raise ModelFileError(f"{at}: expected an object {{\"class\": ..., \"args\": ...}}, got {type(node).__name__}")
    name = node.get("class")
    if not isinstance(name, str):
        raise ModelFileError(f"{at}: 'class' must be a string, got {name!r:.80}")
    if name not in REGISTRY:
        raise ModelFileError(f"{at}: unknown layer class {name!r:.80}; this tinycnn knows "
                             f"{', '.join(sorted(classes))}")
    if name not in classes:
        raise ModelFileError(f"{at}: layer class {name!r} is not part of this tinycnn version; upgrade tinycnn")
    entry = REGISTRY[name]
    allowed = {"class", "args"} | ({"children"} if entry.children is not None else set()) | (
        {"slots"} if entry.slots else set())
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise ModelFileError(f"{at}: unexpected field(s) {unknown} for a {name}")
    raw = node.get("args", {})
    if not isinstance(raw, dict):
        raise ModelFileError(f"{at}: 'args' must be an object, got {type(raw).__name__}")
    known = {a.name: a for a in entry.args}
    extra = sorted(set(raw) - set(known))
    if extra:
        raise ModelFileError(f"{at}: unknown argument(s) {extra} for {name}; it takes {sorted(known)}")
    args = {}
    for a in entry.args:
        if a.name not in raw:
            if a.optional:
                continue
            raise ModelFileError(f"{at}: {name} argument {a.name!r} is missing")
        args[a.name] = a.parse(raw[a.name], f"{at}: {name} argument {a.name!r}")
    spec = _Spec(classes[name], args, path=path)
    if entry.children is not None:
        kids = node.get("children")
        if not isinstance(kids, list):
            raise ModelFileError(f"{at}: a {name} needs a 'children' list, got {type(kids).__name__}")
        spec.children = [_parse(k, _join(path, i), classes, depth + 1, counter, where) for i, k in enumerate(kids)]
    if entry.slots:
        slots = node.get("slots")
        if not isinstance(slots, dict) or set(slots) != set(entry.slots):
            raise ModelFileError(f"{at}: a {name} needs 'slots' with exactly {list(entry.slots)}, got "
                                 f"{sorted(slots) if isinstance(slots, dict) else type(slots).__name__}")
        spec.slots = {s: None if slots[s] is None else _parse(slots[s], _join(path, s), classes, depth + 1,
                                                               counter, where)
                      for s in entry.slots}
    if (name == "Sequential" and args.get("input_shape") is not None
            and math.prod(args["input_shape"]) > MAX_SAMPLE_ELEMENTS):
        raise ModelFileError(f"{at}: input_shape {args['input_shape']} has more than "
                             f"{MAX_SAMPLE_ELEMENTS} elements per sample")
    return spec


def _state_size(spec: _Spec) -> int:
    own = REGISTRY[spec.cls.__name__].state_size(spec.args)
    return own + sum(_state_size(c) for c in spec.children) + sum(
        _state_size(c) for c in spec.slots.values() if c is not None)


def _build(spec: _Spec, where: str):
    children = [_build(c, where) for c in spec.children]
    slots = {s: None if c is None else _build(c, where) for s, c in spec.slots.items()}
    try:
        return spec.cls(*children, **slots, **spec.args)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{where}: architecture at layer {spec.path or '(the model)'}: "
                             f"{spec.cls.__name__} refuses the recorded arguments {spec.args}: {err}") from err


def from_architecture(node: dict) -> object:
    """Build the model a tree from ``architecture`` describes (fresh weights)."""
    where = "from_architecture"
    spec = _parse(node, "", _classes(), 0, [0], where)
    return _build(spec, where)


# -- bit-generator states as JSON (MT19937's key is an ndarray) ------------------------------------

def _rng_to_json(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, dict):
        return {k: _rng_to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rng_from_json(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _rng_from_json(v) for k, v in value.items()}
    return value


# -- save ------------------------------------------------------------------------------------------

def save_model(model: Sequential, path: PathLike, optimizer: optim.Optimizer | None = None, *,
               include_optimizer: bool = True) -> None:
    """Write ``model`` (architecture, weights, every layer generator's state) to ``path`` atomically.

    optimizer: an optimizer built on ``model.parameters()`` (in that order), whose state is saved too;
    by default the one ``model.compile`` chose, if the model is compiled (``include_optimizer=False``
    leaves it out). A compiled model saved with its own optimizer also keeps its loss, string metrics
    and shuffling generator, so ``load_model(path).fit(...)`` continues where this one stopped.
    """
    path = os.fspath(path)
    where = f"save_model({path!r})"
    tree = architecture(model)
    compiled = getattr(model, "compiled", None)
    if optimizer is None and include_optimizer and compiled is not None:
        optimizer = compiled.optimizer
    if not include_optimizer:
        optimizer = None
    if optimizer is not None:
        if type(optimizer).__name__ not in _optimizer_classes():
            raise ModelFileError(f"{where}: the optimizer is a {type(optimizer).__name__}, not one of tinycnn's "
                                 f"({', '.join(_optimizer_classes())}); it cannot be rebuilt from a file")
        mine = [id(p) for p in model.parameters()]
        theirs = [id(p) for p in getattr(optimizer, "params", [])]
        if mine != theirs:
            raise ModelFileError(f"{where}: the optimizer holds {len(theirs)} parameters that are not the model's "
                                 f"{len(mine)} parameters in model.parameters() order; build it with "
                                 f"model.parameters() (or parameter groups that, one after another, list "
                                 f"them in that order) so its state can be matched on loading")
    compile_record = None                 # recompiling is exact only with the optimizer's state
    if compiled is not None and optimizer is compiled.optimizer:
        names = [m.name for m in compiled.metrics]
        compile_record = {"loss": compiled.loss_name, "metrics": names}
    rngs = {path_: _rng_to_json(layer.rng.bit_generator.state) for path_, layer in walk(model)
            if isinstance(getattr(layer, "rng", None), np.random.Generator)}
    extra = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": tree,
             "compile": compile_record, "layer_rngs": rngs}
    checkpoint.save_checkpoint(path, model, optimizer,
                               rng=None if compiled is None else compiled.rng, extra=extra, compress=False)


# -- the hostile-file checks -----------------------------------------------------------------------

@dataclass
class _Checked:
    meta: dict
    spec: _Spec
    has_optimizer: bool
    optimizer_type: str | None


def _read_header(zf, info, where):
    """(shape, dtype) from an ``.npy`` member's header, checking it against the member's size."""
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            reader = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if reader is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = reader(f)
        except (ValueError, OSError, EOFError, SyntaxError) as err:
            raise ModelFileError(f"{where}: member {info.filename!r} has no valid .npy header ({err})") from None
        header = f.tell()
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: member {info.filename!r} holds dtype {dtype}; only numbers are allowed")
    need = math.prod(shape) * dtype.itemsize
    if info.file_size - header != need:
        raise ModelFileError(f"{where}: member {info.filename!r} claims shape {shape} of {dtype} "
                             f"({need} bytes) but holds {info.file_size - header} bytes")
    return shape, dtype


def _check_file(path, where) -> _Checked:
    try:
        size = os.path.getsize(path)
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise ModelFileError(f"{where}: not a readable model file ({type(err).__name__}: {err})") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ModelFileError(f"{where}: the file holds duplicate members")
        by_name = {}
        for info in infos:
            name = info.filename
            ok = name.endswith(".npy") and (name == "meta.npy" or name.startswith(("model/", "optim/")))
            if not ok:
                raise ModelFileError(f"{where}: unexpected member {name!r:.120}; a model file holds only meta, "
                                     f"model/<key> and optim/<key> arrays")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ModelFileError(f"{where}: member {name!r} is compressed; save_model stores arrays "
                                     f"uncompressed, and a compressed member could expand without bound")
            by_name[name[:-4]] = info
        if sum(i.file_size for i in infos) > size:       # stored members: their bytes are in the file
            raise ModelFileError(f"{where}: its members claim more bytes than the file holds")
        if "meta" not in by_name:
            raise ModelFileError(f"{where}: no 'meta' member; not a tinycnn model file")
        shape, dtype = _read_header(zf, by_name["meta"], where)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
            raise ModelFileError(f"{where}: 'meta' must be uint8 text of at most {MAX_META_BYTES} bytes, "
                                 f"got {dtype} {shape}")
        weights = 0
        for key, info in by_name.items():
            if key.startswith("model/"):
                weights += math.prod(_read_header(zf, info, where)[0])
            elif key.startswith("optim/"):
                _read_header(zf, info, where)
        with zf.open(by_name["meta"]) as f:
            text = np.lib.format.read_array(f, allow_pickle=False).tobytes()
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ModelFileError(f"{where}: 'meta' is not UTF-8 JSON ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != checkpoint.FORMAT:
        raise ModelFileError(f"{where}: not a tinycnn checkpoint ('meta' format is "
                             f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r})")
    extra = meta.get("extra")
    if not isinstance(extra, dict) or extra.get("format") != FORMAT:
        raise NoArchitectureError(f"{where}: a tinycnn checkpoint without a model architecture (written by "
                             f"save_checkpoint or `tinycnn train`, not save_model); load it with "
                             f"tinycnn.load_checkpoint(path, model) into the model it was saved from, "
                             f"or with tinycnn.zoo.load_model(path) if `tinycnn train` wrote it")
    version = extra.get("format_version")
    if not _is_int(version) or version < 1:
        raise ModelFileError(f"{where}: extra.format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where}: model format version {version} is newer than this tinycnn reads "
                             f"({FORMAT_VERSION}); upgrade tinycnn")
    spec = _parse(extra.get("architecture"), "", _classes(), 0, [0], where)
    expected = _state_size(spec)
    if expected != weights:
        raise ModelFileError(f"{where}: the architecture allocates {expected} weight elements but the file "
                             f"holds {weights}; the architecture and the weights do not belong together")
    rec = extra.get("compile")
    if rec is not None and (not isinstance(rec, dict) or not isinstance(rec.get("loss"), str)
                            or not isinstance(rec.get("metrics"), list)
                            or not all(isinstance(m, str) for m in rec["metrics"])):
        raise ModelFileError(f"{where}: extra.compile must be null or {{\"loss\": str, \"metrics\": [str]}}, "
                             f"got {rec!r:.200}")
    rngs = extra.get("layer_rngs", {})
    if not isinstance(rngs, dict) or not all(isinstance(v, dict) for v in rngs.values()):
        raise ModelFileError(f"{where}: extra.layer_rngs must map layer paths to generator states")
    opt = meta.get("optimizer")
    opt_type = opt.get("type") if isinstance(opt, dict) else None
    if opt is not None and opt_type not in _optimizer_classes():
        raise ModelFileError(f"{where}: unknown optimizer type {opt_type!r:.80}; this tinycnn has "
                             f"{', '.join(_optimizer_classes())}")
    return _Checked(meta, spec, opt is not None, opt_type)


def _new_optimizer(checked: _Checked, model, where):
    cls = _optimizer_classes()[checked.optimizer_type]
    lr = checked.meta["optimizer"].get("lr")
    if not _is_real(lr) or not math.isfinite(lr) or lr < 0:
        raise ModelFileError(f"{where}: optimizer lr must be a finite number >= 0, got {lr!r:.80}")
    params = model.parameters()
    groups = checked.meta["optimizer"].get("param_groups")
    try:
        if isinstance(groups, list) and len(groups) > 1:      # indices into model.parameters() (save_model)
            try:
                params = [{"params": [params[i] for i in g["params"]]} for g in groups]
            except (IndexError, KeyError, TypeError):
                raise ValueError(f"param_groups name parameters the model does not have (it has {len(params)})") \
                    from None
        return cls(params, lr=float(lr))
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{where}: cannot rebuild the {checked.optimizer_type} optimizer: {err}") from err


def _restore_layer_rngs(model, rngs: dict, where) -> None:
    layers = dict(walk(model))
    for path_, state in rngs.items():
        layer = layers.get(path_)
        rng = getattr(layer, "rng", None)
        if not isinstance(rng, np.random.Generator):
            raise ModelFileError(f"{where}: extra.layer_rngs names layer {path_!r:.80}, which has no generator")
        try:
            rng.bit_generator.state = _rng_from_json(state)
        except (TypeError, ValueError, KeyError) as err:
            raise ModelFileError(f"{where}: extra.layer_rngs[{path_!r}] is not a {type(rng.bit_generator).__name__} "
                                 f"state: {err}") from None


# -- load ------------------------------------------------------------------------------------------

def load_model(path: PathLike, *, compile: bool = True) -> Sequential:
    """The model ``save_model`` wrote to ``path``: same layers, weights and generator states, in eval
    mode (``model.train()`` or ``fit`` switches back). With ``compile`` and a model that was compiled
    when saved, it is compiled again with the same loss and metrics, and its optimizer and shuffling
    generator continue from the saved state. Raises ModelFileError naming the file and the field."""
    path = os.fspath(path)
    where = f"load_model({path!r})"
    checked = _check_file(path, where)
    model = _build(checked.spec, where)
    if not isinstance(model, Sequential):
        raise ModelFileError(f"{where}: the architecture's top is a {type(model).__name__}, not a Sequential")
    rec = checked.meta["extra"].get("compile")
    optimizer = rng = None
    if compile and rec is not None:
        metrics = []
        for name in rec["metrics"]:
            try:
                _metric(name)
                metrics.append(name)
            except ValueError:
                warnings.warn(f"{where}: metric {name!r} was a function when saved; functions are not "
                              f"stored, so it is left out (pass it to model.compile again)", stacklevel=2)
        if not checked.has_optimizer:
            raise ModelFileError(f"{where}: extra.compile is set but the file holds no optimizer state")
        optimizer = _new_optimizer(checked, model, where)
        try:
            model.compile(optimizer=optimizer, loss=rec["loss"], metrics=metrics)
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{where}: extra.compile {rec} does not compile: {err}") from err
        rng = model.compiled.rng if checked.meta.get("rng") is not None else None
    try:
        checkpoint.load_checkpoint(path, model, optimizer, rng)
    except ValueError as err:
        raise ModelFileError(f"{where}: {err}") from err
    _restore_layer_rngs(model, checked.meta["extra"].get("layer_rngs", {}), where)
    return model.eval()


def load_optimizer(path: PathLike, model: Sequential) -> optim.Optimizer:
    """The optimizer saved in ``path``, rebuilt over ``model.parameters()`` with its saved state (for the
    PyTorch-style loop: ``save_model(model, path, optimizer=opt)``, then ``load_model`` and this)."""
    path = os.fspath(path)
    where = f"load_optimizer({path!r})"
    checked = _check_file(path, where)
    if not checked.has_optimizer:
        raise ModelFileError(f"{where}: the file holds no optimizer state (save it with "
                             f"save_model(model, path, optimizer=opt))")
    opt = _new_optimizer(checked, model, where)
    try:
        checkpoint.load_checkpoint(path, None, opt)
    except ValueError as err:
        raise ModelFileError(f"{where}: {err}") from err
    return opt


# -- safetensors -----------------------------------------------------------------------------------

def _safetensors():
    try:
        from safetensors import numpy as st
    except ImportError as err:
        raise ImportError("tinycnn.saving's safetensors functions need the safetensors package: "
                          "pip install 'tinycnn[safetensors]'") from err
    return st


def save_safetensors(model_or_state: Sequential | dict[str, np.ndarray], path: PathLike) -> None:
    """Write a model's ``state_dict()`` (or a state dict) to a ``.safetensors`` file, keys unchanged
    (torch.nn's keys, so ``safetensors.torch.load_file`` feeds the same torch module)."""
    st = _safetensors()
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else dict(model_or_state)
    # np.asarray, not ascontiguousarray: that would turn 0-d num_batches_tracked into shape (1,)
    st.save_file({k: np.asarray(v, order="C") for k, v in state.items()}, os.fspath(path))


def load_safetensors(path: PathLike) -> dict[str, np.ndarray]:
    """A state dict read from a ``.safetensors`` file (the format holds only a JSON header and raw
    numbers; the library checks the header's offsets against the file). Give it to
    ``model.load_state_dict``, which checks every key and shape."""
    st = _safetensors()
    from safetensors import SafetensorError
    path = os.fspath(path)
    try:
        return dict(st.load_file(path))
    except (SafetensorError, OSError) as err:
        raise ModelFileError(f"load_safetensors({path!r}): not a readable safetensors file "
                             f"({type(err).__name__}: {err})") from None
