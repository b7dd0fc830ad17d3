"""Checkpoints: one ``.npz`` file, no pickle, written atomically, read as a hostile file.

File format (``format`` "tinycnn-checkpoint", ``format_version`` 1)
-------------------------------------------------------------------

A zip archive (stored or deflated members, nothing else) of ``.npy`` arrays; ``np.load(path,
allow_pickle=False)`` reads it, but ``load_checkpoint`` reads it with its own checks
(``tinycnn.safe_npz``). The members, and nothing else::

    meta.npy               uint8 (n,), n <= 4 MiB: UTF-8 JSON, the schema below
    model/<key>.npy        model.state_dict()[key], e.g. model/0.weight float32 (out, in, kh, kw),
                           model/5.num_batches_tracked int64 (); key: letters, digits, "_", ".", "-"
    optim/<key>/<i>.npy    the i-th array of the optimizer's array list <key>, shape of parameter i,
                           e.g. optim/exp_avg/3; absent where the list holds None (an SGD momentum
                           buffer not created yet)
    optim/<key>.npy        an optimizer array that is not a list (no tinycnn optimizer has one)

Array rules: dtype a plain number (float16/32/64, int8..64, uint8..64, bool; little- or
big-endian); no objects, strings or structured types. With a model to load into, every
``model/<key>`` must exist for each of its state_dict keys and no other, with exactly its shape and
the same kind (float for float, integer for integer); with an optimizer, each ``optim/<key>/<i>``
has the shape of parameter ``i``. Every float is finite; ``*running_var`` and
``optim/exp_avg_sq/*`` (Adam's second moments) are >= 0; ``*num_batches_tracked`` >= 0.

The JSON in ``meta`` (version 1), an object with exactly these keys (``layer_rngs`` may be absent)::

    format          "tinycnn-checkpoint"
    format_version  1 (an integer; a larger one is refused: written by a newer tinycnn)
    epoch           null or an integer >= 0
    extra           any JSON (NaN and infinity allowed): what the caller saved, e.g. a schedule's
                    state_dict, the zoo record of ``tinycnn train`` (see tinycnn.zoo, and
                    tinycnn.commands._saved_run for the run record it checks)
    layers          a list of strings, the model's layers as text (shown in mismatch errors)
    optimizer       null, or the optimizer's state_dict with its arrays replaced by references:
                    {"__arrays__": n} for a list of n arrays (members optim/<key>/<i>),
                    {"__array__": true} for one array (member optim/<key>); the other values are
                    JSON scalars or lists of numbers or nulls, and "param_groups": a list of objects of
                    such scalars, each with "params" a list of parameter indices. "type" "SGD": lr,
                    momentum, weight_decay
                    finite >= 0, dampening finite, nesterov a boolean, initial_lr null or >= 0,
                    momentum_buffers a reference. "Adam": lr, eps, weight_decay finite >= 0, betas
                    two numbers in [0, 1), step_count an integer >= 0, exp_avg and exp_avg_sq
                    references whose every member exists.
    rng             null, or a np.random bit generator's ``state`` (PCG64, PCG64DXSM, MT19937,
                    Philox, SFC64); arrays in it as {"__ndarray__": [ints], "dtype": "<u4" | "<u8"}
                    (at most 1024 values). It must be a state numpy accepts and gives back unchanged,
                    with positions in range (MT19937 pos <= 624, Philox buffer_pos <= 4).
    layer_rngs      {"<layer index>": bit generator state}: the generators of layers that draw
                    random numbers (Dropout's masks); restored into the model's layers of that index

What is refused, and why: a tampered or damaged file must not choose how much memory or time
loading takes, nor produce a model that silently computes NaN. So before anything is allocated the
zip directory is parsed and checked (one archive, no encryption, no overlapping or out-of-file
members, at most ``MAX_MEMBERS``), members the format does not define are refused unread, and each
member's ``.npy`` header is parsed and checked against what the model and optimizer need (or,
reading without a model, against a budget of ``GENERIC_BUDGET_FACTOR`` x the file's size +
``GENERIC_BUDGET_SLACK`` bytes for all members together) before its data is decompressed, which
then never yields more bytes than the header claims. Every metadata problem -- not a zip, not UTF-8,
not JSON, a wrong type, a missing or unknown field, a value out of range -- is a ``CheckpointError``
(a ValueError) naming the file and the field; NumPy's and zipfile's own exceptions never escape.

Reading: ``load_checkpoint(path, model, optimizer, rng)`` reads only what it loads into;
``read_meta(path)`` the checked metadata alone; ``model_shapes(path)`` the weights' shapes from their
.npy headers alone (to check an architecture record before building it, see ``tinycnn.zoo``);
``read_checkpoint(path)`` everything, within the budget above. ``CheckpointError.field`` is
``file``, ``meta``, ``meta.<key>[.<key>...]``, ``model`` (the weights do not fit the model: keys,
shapes or dtype kinds), ``model/<key>``, ``optim/<key>/<i>`` or ``member '<name>'``.

Layer generators are not part of ``model.state_dict()`` (torch keeps none there either), but a run
with dropout resumes bit for bit only if the masks continue where they stopped: ``load_checkpoint``
restores them into the model's layers of the same index.

Atomic write: the file is written under a temporary name in the same folder
(``.<name>.tmp-<pid>-<random hex>``), flushed and fsynced, then ``os.replace``d over ``path``
(and the folder fsynced), so ``path`` always holds either the previous complete checkpoint or the
new one. A process killed mid-save leaves its temporary file behind; the next save to the same
path removes temporaries whose process is gone (``stale_temporaries`` lists them; on Windows, where
a process cannot be probed safely, they are kept for you to delete).

A failed load leaves model, optimizer and rng as they were: everything is read and checked before
anything is written; if the optimizer's state or the rng's kind does not fit afterwards, the
model's previous weights are put back. ``finite_state_problem`` tells a training loop whether a
state is worth saving (finite weights, optimizer state and losses).
``extra`` must be JSON-serializable (Python's json: NaN and infinity round-trip).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
import secrets
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import safe_npz
from ._typing import PathLike
from .safe_npz import NpzError

if TYPE_CHECKING:
    from .model import Sequential
    from .optim import Optimizer

FORMAT = "tinycnn-checkpoint"
FORMAT_VERSION = 1


# -- JSON encoding of bit-generator states (they may hold ndarrays, e.g. MT19937's key) ------------

def _to_json(value):
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- optimizer state <-> (JSON scalars, named arrays) ------------------------------------------------

def _split_optimizer_state(state: dict) -> tuple[dict, dict]:
    """Lists holding arrays become ``{"__arrays__": n}`` in JSON plus members ``optim/<key>/<i>``."""
    scalars, arrays = {}, {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[f"optim/{key}"] = value
            scalars[key] = {"__array__": True}
        elif isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
            for i, v in enumerate(value):
                if v is not None:
                    arrays[f"optim/{key}/{i}"] = v
            scalars[key] = {"__arrays__": len(value)}
        else:
            scalars[key] = value
    return scalars, arrays


# -- temporary files -------------------------------------------------------------------------------

def _tmp_pattern(path: str):
    return re.compile(rf"^\.{re.escape(os.path.basename(path))}\.tmp-(\d+)-[0-9a-f]+$")


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":            # os.kill(pid, 0) would *terminate* the process on Windows: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # exists, owned by someone else
        return True
    except OSError:                # e.g. a platform without signal 0: assume alive, keep the file
        return True
    return True


def stale_temporaries(path: PathLike) -> list[str]:
    """Temporary files of unfinished saves to ``path`` whose writing process no longer runs."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    pattern = _tmp_pattern(path)
    found = []
    for name in os.listdir(folder):
        m = pattern.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            found.append(os.path.join(folder, name))
    return sorted(found)


def _fsync_folder(folder: str) -> None:
    if not hasattr(os, "O_DIRECTORY"):          # Windows: folders cannot be opened for fsync
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npz(file, arrays: dict, compress: bool) -> None:
    """Write ``arrays`` as an .npz (a zip of .npy members) into the open binary ``file``."""
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, "w", compression=mode, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)   # 0-d stays 0-d


# -- save / load -----------------------------------------------------------------------------------

def _layer_rngs(model) -> list:
    """(index, Generator) for layers that draw random numbers while training (Dropout's masks)."""
    return [(i, layer.rng) for i, layer in enumerate(getattr(model, "layers", []))
            if isinstance(getattr(layer, "rng", None), np.random.Generator)]


def save_checkpoint(path: PathLike, model: Sequential, optimizer: Optimizer | None = None, *, epoch: int | None = None,
                    rng: np.random.Generator | None = None, extra: dict | None = None,
                    compress: bool = False) -> None:
    """Save model weights (+ optimizer state, epoch, rng state, extra) to ``path`` atomically.

    model: anything with ``state_dict() -> dict[str, ndarray]`` (a ``Sequential``).
    optimizer: ``tc.SGD`` / ``tc.Adam`` (anything with ``state_dict()``) or None.
    rng: a ``np.random.Generator`` whose ``bit_generator.state`` is stored, or None.
    extra: any JSON-serializable value (e.g. a schedule's ``state_dict()``, metrics so far).
    """
    path = os.fspath(path)
    owner = f"save_checkpoint({path!r})"
    arrays = {f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    optim_meta = None
    if optimizer is not None:
        scalars, optim_arrays = _split_optimizer_state(optimizer.state_dict())
        arrays.update(optim_arrays)
        optim_meta = scalars
    if rng is not None and not hasattr(rng, "bit_generator"):
        raise TypeError(f"{owner}: rng must be a np.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "epoch": epoch, "extra": extra,
        "layers": [repr(layer) for layer in getattr(model, "layers", [])],
        "optimizer": optim_meta,
        "rng": None if rng is None else _to_json(rng.bit_generator.state),
        "layer_rngs": {str(i): _to_json(r.bit_generator.state) for i, r in _layer_rngs(model)},
    }
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{owner}: epoch, extra and the optimizer's scalars must be JSON-serializable: "
                        f"{err}") from None
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    folder = os.path.dirname(path) or "."
    for stale in stale_temporaries(path):
        try:
            os.remove(stale)
        except FileNotFoundError:       # another saver removed it first
            pass
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as f:
            _write_npz(f, arrays, compress)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


# -- reading: every number checked before it is used -----------------------------------------------

META_MAX_BYTES = 4 << 20            # the JSON metadata
MAX_MEMBERS = 100_000               # zip entries
GENERIC_BUDGET_FACTOR = 8           # reading without a model: all members' data together at most
GENERIC_BUDGET_SLACK = 16 << 20     #   factor x file size + slack bytes
MAX_RNG_ARRAY = 1024                # values in one array of a bit generator's state
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
META_KEYS = ("format", "format_version", "epoch", "extra", "layers", "optimizer", "rng", "layer_rngs")
_KEY = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}"
_MODEL_MEMBER = re.compile(rf"^model/({_KEY})\.npy$")
_OPTIM_LIST_MEMBER = re.compile(r"^optim/([A-Za-z_][A-Za-z0-9_]{0,99})/(0|[1-9][0-9]{0,8})\.npy$")
_OPTIM_MEMBER = re.compile(r"^optim/([A-Za-z_][A-Za-z0-9_]{0,99})\.npy$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: names the file (``path``) and the field (``field``:
    a member such as ``model/0.weight``, or a place in the metadata such as ``meta.epoch``)."""

    def __init__(self, path: PathLike, field: str, problem: str) -> None:
        self.path, self.field, self.problem = os.fspath(path), field, problem
        super().__init__(f"checkpoint {self.path}: {field}: {problem}")


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _sniff(head: bytes) -> str | None:
    """What a file that is not a zip archive looks like, from its first bytes (None: a zip)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None
    if not head:
        return "an empty file"
    known = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
             (b"\x93NUMPY", "a single .npy array (a checkpoint is an .npz archive of them)"),
             (b"\x1f\x8b", "a gzip file"), (b"BZh", "a bzip2 file"), (b"\x7fELF", "an executable")]
    for magic, what in known:
        if head.startswith(magic):
            return what
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (tinycnn never loads pickles)"
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return f"binary data that is not a zip archive (it starts {head[:8].hex(' ')})"
    if text[:1] in ("{", "["):
        return "a JSON text file (for example a run's metrics.json)"
    return "a text file"


@dataclass
class _Archive:
    """An open checkpoint whose zip directory and member names have been checked."""
    path: str
    file: object
    size: int                         # bytes of the file
    meta: "safe_npz.Member"
    model: dict                       # key -> Member
    optim: dict                       # (key, i or None) -> Member

    def fail(self, field: str, problem: str):
        raise CheckpointError(self.path, field, problem)

    def header(self, m) -> tuple:
        try:
            return safe_npz.read_header(self.file, m)
        except NpzError as err:
            self.fail(m.name[:-4], str(err))

    def array(self, m, check) -> np.ndarray:
        try:
            return safe_npz.read_array(self.file, m, check)
        except NpzError as err:
            self.fail(m.name[:-4], str(err))


def _open(path) -> _Archive:
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise CheckpointError(path, "file", "no such file") from None
    except IsADirectoryError:
        raise CheckpointError(path, "file", "is a folder, not a checkpoint file") from None
    except OSError as err:
        raise CheckpointError(path, "file", f"cannot be opened ({err.strerror or err})") from None
    try:
        size = os.fstat(f.fileno()).st_size
        what = _sniff(f.read(8))
        if what is not None:
            raise CheckpointError(path, "file", f"not a readable tinycnn checkpoint: {what}")
        try:
            members = safe_npz.list_members(f, size, MAX_MEMBERS)
        except NpzError as err:
            raise CheckpointError(path, "file", f"not a readable tinycnn checkpoint: {err}") from None
        by_name = {m.name: m for m in members}
        if "meta.npy" not in by_name:
            shown = sorted(n.removesuffix(".npy") for n in by_name)[:8]
            raise CheckpointError(path, "meta", f"no 'meta' member; not a tinycnn checkpoint (members: {shown})")
        model, optim, undefined = {}, {}, []
        for name, m in by_name.items():
            if name == "meta.npy":
                continue
            if (hit := _MODEL_MEMBER.match(name)) is not None:
                model[hit.group(1)] = m
            elif (hit := _OPTIM_LIST_MEMBER.match(name)) is not None:
                optim[(hit.group(1), int(hit.group(2)))] = m
            elif (hit := _OPTIM_MEMBER.match(name)) is not None:
                optim[(hit.group(1), None)] = m
            else:
                undefined.append(name)
        if undefined:
            raise CheckpointError(path, f"member {undefined[0][:100]!r}", f"is not part of the checkpoint format "
                                  f"(meta, model/<key>, optim/<key>/<i>); {len(undefined)} such member(s), "
                                  f"refused unread")
        return _Archive(path, f, size, by_name["meta.npy"], model, optim)
    except BaseException:
        f.close()
        raise


# -- the metadata ------------------------------------------------------------------------------------

def _decode_rng_value(value, field: str, fail):
    """JSON -> bit-generator state: {"__ndarray__": [...], "dtype": ...} become small integer arrays."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            values, dtype = value.get("__ndarray__"), value.get("dtype")
            if set(value) != {"__ndarray__", "dtype"} or dtype not in ("<u4", "<u8", ">u4", ">u8", "=u4", "=u8"):
                fail(field, f"an array must be {{'__ndarray__': [ints], 'dtype': '<u4' or '<u8'}}, got keys "
                            f"{sorted(value)[:4]} dtype {str(dtype)[:20]!r}")
            if not isinstance(values, list) or len(values) > MAX_RNG_ARRAY or not all(_is_int(v) for v in values):
                fail(field, f"an array must be a list of at most {MAX_RNG_ARRAY} integers")
            top = 2 ** (8 * np.dtype(dtype).itemsize)
            if not all(0 <= v < top for v in values):
                fail(field, f"array values out of range for {dtype}")
            return np.array(values, dtype=np.dtype(dtype))
        return {k: _decode_rng_value(v, f"{field}.{k}", fail) for k, v in value.items()}
    if isinstance(value, list):
        fail(field, "a list where the bit generator's state has a number or an array")
    return value


def _check_rng(value, field: str, fail) -> dict:
    """A bit generator's state that numpy accepts and gives back unchanged; decoded."""
    if not isinstance(value, dict):
        fail(field, f"must be a bit generator's state (a JSON object), got {type(value).__name__}")
    kind = value.get("bit_generator")
    if kind not in BIT_GENERATORS:
        fail(f"{field}.bit_generator", f"must be one of {', '.join(BIT_GENERATORS)}, got {str(kind)[:40]!r}")
    state = _decode_rng_value(value, field, fail)
    inner = state.get("state")
    if kind == "MT19937" and isinstance(inner, dict) and not (_is_int(inner.get("pos")) and 0 <= inner["pos"] <= 624):
        fail(f"{field}.state.pos", f"must be an integer in [0, 624], got {inner.get('pos')!r}")
    if kind == "Philox" and not (_is_int(state.get("buffer_pos")) and 0 <= state["buffer_pos"] <= 4):
        fail(f"{field}.buffer_pos", f"must be an integer in [0, 4], got {state.get('buffer_pos')!r}")
    if "has_uint32" in state and state["has_uint32"] not in (0, 1):
        fail(f"{field}.has_uint32", f"must be 0 or 1, got {state['has_uint32']!r}")
    probe = getattr(np.random, kind)()
    try:
        probe.state = state
        back = _to_json(probe.state)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, AttributeError) as err:
        fail(field, f"not a valid {kind} state ({type(err).__name__}: {str(err)[:200]})")
    if json.dumps(back, sort_keys=True) != json.dumps(_to_json(state), sort_keys=True):
        fail(field, f"not a valid {kind} state: numpy does not keep the values as given (out of range)")
    return state


def _check_ref(value, field: str, fail):
    """An optimizer value: a JSON scalar, a short list of numbers, or an array reference."""
    if isinstance(value, dict):
        if set(value) == {"__arrays__"} and _is_int(value["__arrays__"]) and 0 <= value["__arrays__"] <= MAX_MEMBERS:
            return
        if set(value) == {"__array__"} and value["__array__"] is True:
            return
        fail(field, f"must be {{'__arrays__': n}} (0 <= n <= {MAX_MEMBERS}) or {{'__array__': true}}, "
                    f"got {json.dumps(value)[:80]}")
    if isinstance(value, list):           # betas; or a list of arrays not created yet: all null
        if len(value) > MAX_MEMBERS or not all(v is None or _is_number(v) and math.isfinite(v) for v in value):
            fail(field, f"a list must hold at most {MAX_MEMBERS} finite numbers or nulls")
        return
    if value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 100):
        return
    if _is_number(value) and math.isfinite(value):
        return
    fail(
        field,
        f"must be a finite number, a boolean, null, a short string or an array reference, got "
        f"{json.dumps(value)[:80] if not isinstance(value, str) else 'a string of ' + str(len(value)) + ' characters'}")


def _check_param_groups(groups, field: str, fail) -> None:
    """The optimizer's parameter groups: a list of objects of scalars, each with "params", a list of
    parameter indices. (Whether they fit the optimizer is Optimizer.load_state_dict's check.)"""
    if not isinstance(groups, list) or len(groups) > MAX_MEMBERS:
        fail(field, f"must be a list of at most {MAX_MEMBERS} parameter groups, got {json.dumps(groups)[:60]}")
    for gi, group in enumerate(groups):
        where = f"{field}[{gi}]"
        if not isinstance(group, dict):
            fail(where, f"must be an object (a parameter group), got {json.dumps(group)[:60]}")
        params = group.get("params")
        if not (isinstance(params, list) and len(params) <= MAX_MEMBERS
                and all(_is_int(i) and 0 <= i < MAX_MEMBERS for i in params)):
            fail(f"{where}.params", f"must be a list of parameter indices (integers >= 0), got "
                                    f"{json.dumps(params)[:60]}")
        for key, value in group.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", key):
                fail(f"{where}.{key[:60]}", "is not a valid parameter group key")
            if key != "params":
                if isinstance(value, dict):
                    fail(f"{where}.{key}", "a parameter group holds numbers, booleans and null, not arrays")
                _check_ref(value, f"{where}.{key}", fail)


def _number(state: dict, key: str, field: str, fail, *, low=0.0, high=math.inf, high_open=False,
            optional=False):
    if optional and state.get(key) is None:
        return
    v = state.get(key)
    ok = _is_number(v) and math.isfinite(v) and v >= low and (v < high if high_open else v <= high)
    if not ok:
        rng = f"in [{low:g}, {high:g}{')' if high_open else ']'}" if high != math.inf else f">= {low:g}"
        fail(f"{field}.{key}", f"must be a finite number {rng}, got {json.dumps(v)[:60]}")


def _check_optimizer(opt, field: str, fail) -> None:
    if not isinstance(opt, dict):
        fail(field, f"must be null or an optimizer's state (a JSON object), got {type(opt).__name__}")
    if not isinstance(opt.get("type"), str):
        fail(f"{field}.type", f"must be the optimizer's class name, got {json.dumps(opt.get('type'))[:60]}")
    for key, value in opt.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", key):
            fail(f"{field}.{key[:60]}", "is not a valid optimizer state key")
        if key == "param_groups":
            _check_param_groups(value, f"{field}.{key}", fail)
        else:
            _check_ref(value, f"{field}.{key}", fail)
    kind = opt["type"]
    refs = {"SGD": ("momentum_buffers",), "Adam": ("exp_avg", "exp_avg_sq")}.get(kind, ())
    for key in refs:
        value = opt.get(key)
        none_list = kind == "SGD" and isinstance(value, list) and all(v is None for v in value)
        if not (isinstance(value, dict) and "__arrays__" in value or none_list):
            fail(f"{field}.{key}", f"must be an array list reference {{'__arrays__': n}}, got "
                                   f"{json.dumps(value)[:60]}")
    if kind == "SGD":
        for key in ("lr", "momentum", "weight_decay"):
            _number(opt, key, field, fail)
        _number(opt, "dampening", field, fail, low=-math.inf)
        _number(opt, "initial_lr", field, fail, optional=True)
        if not isinstance(opt.get("nesterov"), bool):
            fail(f"{field}.nesterov", f"must be true or false, got {json.dumps(opt.get('nesterov'))[:60]}")
    elif kind == "Adam":
        for key in ("lr", "eps", "weight_decay"):
            _number(opt, key, field, fail)
        _number(opt, "initial_lr", field, fail, optional=True)
        betas = opt.get("betas")
        if not (isinstance(betas, list) and len(betas) == 2
                and all(_is_number(b) and math.isfinite(b) and 0 <= b < 1 for b in betas)):
            fail(f"{field}.betas", f"must be two numbers in [0, 1), got {json.dumps(betas)[:60]}")
        if not (_is_int(opt.get("step_count")) and opt["step_count"] >= 0):
            fail(f"{field}.step_count", f"must be an integer >= 0, got {json.dumps(opt.get('step_count'))[:60]}")


def _parse_meta(ar: _Archive) -> dict:
    def check(name, dtype, shape):
        if dtype != np.uint8 or len(shape) != 1:
            ar.fail("meta", f"must be a 1-D uint8 array of UTF-8 JSON, got {dtype} {shape}")
        return META_MAX_BYTES

    raw = ar.array(ar.meta, check)
    try:
        text = raw.tobytes().decode("utf-8")
    except UnicodeDecodeError as err:
        ar.fail("meta", f"is not UTF-8 text ({err.reason} at byte {err.start})")
    try:
        meta = json.loads(text)
    except RecursionError:
        ar.fail("meta", "is not valid JSON (nested too deeply)")
    except ValueError as err:                 # JSONDecodeError, or an integer of too many digits
        ar.fail("meta", f"is not valid JSON ({str(err)[:200]})")
    if not isinstance(meta, dict):
        ar.fail("meta", f"must be a JSON object, got a JSON {type(meta).__name__}")
    fail = ar.fail
    if meta.get("format") != FORMAT:
        fail("meta.format", f"is {json.dumps(meta.get('format'))[:80]}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        fail("meta.format_version", f"must be an integer >= 1, got {json.dumps(version)[:60]}")
    if version > FORMAT_VERSION:
        fail("meta.format_version", f"{version} is newer than this tinycnn reads ({FORMAT_VERSION}); upgrade tinycnn")
    missing = [k for k in META_KEYS if k not in meta and k != "layer_rngs"]
    if missing:
        fail(f"meta.{missing[0]}", f"missing (the metadata must hold {', '.join(META_KEYS)})")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        fail(f"meta.{unknown[0][:60]}", f"is not a field of format version {FORMAT_VERSION}")
    epoch = meta["epoch"]
    if epoch is not None and not (_is_int(epoch) and epoch >= 0):
        fail("meta.epoch", f"must be null or an integer >= 0, got {json.dumps(epoch)[:60]}")
    layers = meta["layers"]
    if not (isinstance(layers, list) and all(isinstance(t, str) for t in layers)):
        fail("meta.layers", "must be a list of strings (the model's layers as text)")
    if meta["optimizer"] is not None:
        _check_optimizer(meta["optimizer"], "meta.optimizer", fail)
    rng = None if meta["rng"] is None else _check_rng(meta["rng"], "meta.rng", fail)
    layer_rngs = meta.get("layer_rngs", {})
    if not isinstance(layer_rngs, dict):
        fail("meta.layer_rngs", f"must be an object of layer index -> bit generator state, got "
                                f"{type(layer_rngs).__name__}")
    decoded_layer_rngs = {}
    for key, value in layer_rngs.items():
        if not re.fullmatch(r"0|[1-9][0-9]{0,5}", key):
            fail(f"meta.layer_rngs.{key[:40]}", "keys must be layer indices (0, 1, ...)")
        decoded_layer_rngs[int(key)] = _check_rng(value, f"meta.layer_rngs.{key}", fail)
    # the optimizer's references and the optim/ members must match one to one
    referenced = set()
    for key, value in (meta["optimizer"] or {}).items():
        if isinstance(value, dict) and "__arrays__" in value:
            referenced |= {(key, i) for i in range(value["__arrays__"]) if (key, i) in ar.optim}
            if meta["optimizer"]["type"] == "Adam":
                absent = [i for i in range(value["__arrays__"]) if (key, i) not in ar.optim]
                if absent:
                    fail(f"optim/{key}/{absent[0]}", "missing: Adam keeps an array per parameter")
        elif isinstance(value, dict) and "__array__" in value:
            if (key, None) not in ar.optim:
                fail(f"optim/{key}", "missing: the metadata refers to it")
            referenced.add((key, None))
    stray = sorted(set(ar.optim) - referenced, key=str)
    if stray:
        key, i = stray[0]
        fail(f"optim/{key}" + ("" if i is None else f"/{i}"), "is not referred to by meta.optimizer "
             "(an array the optimizer state does not have); refused unread")
    meta = dict(meta)
    meta["_rng"], meta["_layer_rngs"] = rng, decoded_layer_rngs
    return meta


# -- the arrays --------------------------------------------------------------------------------------

def _check_values(ar: _Archive, field: str, arr: np.ndarray) -> None:
    """Finite floats; second moments, running variances and counts >= 0."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        ar.fail(field, f"holds {bad} non-finite value(s) (NaN or infinity) of {arr.size}; a model with them "
                       f"predicts NaN")
    nonneg = field.startswith("optim/exp_avg_sq/") or field.endswith(("running_var", "num_batches_tracked"))
    if nonneg and arr.dtype.kind in "fi" and arr.size and arr.min() < 0:
        ar.fail(field, f"holds negative values (min {arr.min():g}); it must be >= 0")


def _same_kind(stored: np.dtype, target: np.dtype) -> bool:
    kinds = {"f": "f", "i": "iu", "u": "iu", "b": "b"}
    return stored.kind in kinds.get(target.kind, target.kind)


def _read_expected(ar: _Archive, m, field: str, shape: tuple, target: np.dtype) -> np.ndarray:
    """The member as an array of ``target`` dtype; its header must claim ``shape`` and a dtype of the
    same kind, else nothing is decompressed beyond the header."""
    def check(name, dtype, got):
        if tuple(got) != tuple(shape):
            ar.fail(field, f"shape {tuple(got)} in the file, {tuple(shape)} expected")
        if not _same_kind(dtype, target):
            ar.fail(field, f"dtype {dtype} in the file, {target} expected")
        return math.prod(shape) * dtype.itemsize

    arr = ar.array(m, check)
    _check_values(ar, field, arr)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(arr, dtype=target, copy=True, order="C")
    if target.kind in "iu" and not np.array_equal(out, arr):
        ar.fail(field, f"values do not fit {target}")
    _check_values(ar, field, out)                 # float64 1e300 becomes inf in float32
    return out


def _read_any(ar: _Archive, m, field: str, budget: list) -> np.ndarray:
    """Without a model or optimizer to compare with: any shape, within the remaining ``budget[0]`` bytes."""
    def check(name, dtype, shape):
        return budget[0]

    arr = ar.array(m, check)
    budget[0] -= arr.nbytes
    _check_values(ar, field, arr)
    return arr


def _generic_budget(ar: _Archive) -> list:
    return [GENERIC_BUDGET_FACTOR * ar.size + GENERIC_BUDGET_SLACK]


def _model_arrays(ar: _Archive, model, meta: dict) -> dict:
    """The model's state from the file, checked against ``model`` key by key before reading data."""
    ours = model.state_dict()
    shapes = {k: ar.header(m) for k, m in ar.model.items()}             # headers only
    missing = [k for k in ours if k not in shapes]
    extra = [k for k in shapes if k not in ours]
    mis_shaped = [f"{k}: model {ours[k].shape} vs given {tuple(shapes[k][1])}"
                  for k in ours if k in shapes and tuple(shapes[k][1]) != ours[k].shape]
    wrong_kind = [f"{k}: model {ours[k].dtype} vs given {shapes[k][0]}"
                  for k in ours if k in shapes and not _same_kind(shapes[k][0], ours[k].dtype)]
    if missing or extra or mis_shaped or wrong_kind:
        def few(items: list, sep=None):            # a hostile file may hold 100 000 members
            more = f" and {len(items) - 10} more" if len(items) > 10 else ""
            return (str(items[:10]) if sep is None else sep.join(items[:10])) + more

        parts = []
        if missing:
            parts.append(f"missing keys {few(missing)}")
        if extra:
            parts.append(f"unexpected keys {few(extra)}")
        if mis_shaped:
            parts.append("shape mismatch: " + few(mis_shaped, "; "))
        if wrong_kind:
            parts.append("dtype mismatch: " + few(wrong_kind, "; "))
        saved = "\n  ".join(meta.get("layers", [])) or "(not recorded)"
        here = "\n  ".join(repr(layer) for layer in getattr(model, "layers", [])) or "(unknown)"
        ar.fail("model", f"the checkpoint's weights do not fit this model: {', '.join(parts)}\n"
                         f"checkpoint layers:\n  {saved}\nmodel layers:\n  {here}")
    return {k: _read_expected(ar, ar.model[k], f"model/{k}", ours[k].shape, ours[k].dtype) for k in ours}


def _optimizer_state(ar: _Archive, meta: dict, optimizer, budget: list | None) -> dict:
    """meta.optimizer with its references replaced by arrays (checked against ``optimizer``'s
    parameters when given, else read within ``budget``)."""
    params = list(getattr(optimizer, "params", [])) if optimizer is not None else None
    state = {}
    for key, value in meta["optimizer"].items():
        if isinstance(value, dict) and "__arrays__" in value:
            n = value["__arrays__"]
            if params is not None and n != len(params):
                ar.fail(f"meta.optimizer.{key}", f"holds {n} arrays but the optimizer has {len(params)} parameters")
            arrays = []
            for i in range(n):
                m = ar.optim.get((key, i))
                if m is None:
                    arrays.append(None)
                elif params is not None:
                    p = params[i].data
                    arrays.append(_read_expected(ar, m, f"optim/{key}/{i}", p.shape, p.dtype))
                else:
                    arrays.append(_read_any(ar, m, f"optim/{key}/{i}", budget))
            state[key] = arrays
        elif isinstance(value, dict) and "__array__" in value:
            if params is not None:
                ar.fail(f"optim/{key}", f"a {meta['optimizer']['type']} optimizer keeps no single array")
            state[key] = _read_any(ar, ar.optim[(key, None)], f"optim/{key}", budget)
        else:
            state[key] = value
    return state


def read_meta(path: PathLike) -> dict:
    """The checked metadata of a checkpoint (the JSON schema in the module docstring), reading no
    array but ``meta``. Raises CheckpointError."""
    ar = _open(path)
    try:
        meta = _parse_meta(ar)
    finally:
        ar.file.close()
    return {k: v for k, v in meta.items() if not k.startswith("_")}


def model_shapes(path: PathLike) -> dict:
    """``{key: shape}`` of the checkpoint's ``model/<key>`` members, from their .npy headers only
    (nothing else is decompressed): to check a recorded architecture before building it."""
    ar = _open(path)
    try:
        return {k: tuple(ar.header(m)[1]) for k, m in ar.model.items()}
    finally:
        ar.file.close()


def read_checkpoint(path: PathLike) -> dict:
    """Everything in a checkpoint, changing nothing: ``{"meta": dict, "model": state_dict,
    "optimizer": state dict or None, "rng": bit-generator state or None}``. With no model to compare
    with, all arrays together may hold at most ``GENERIC_BUDGET_FACTOR`` x the file's size +
    ``GENERIC_BUDGET_SLACK`` bytes. Raises CheckpointError."""
    ar = _open(path)
    try:
        meta = _parse_meta(ar)
        budget = _generic_budget(ar)
        model_state = {k: _read_any(ar, m, f"model/{k}", budget) for k, m in ar.model.items()}
        optim = None if meta["optimizer"] is None else _optimizer_state(ar, meta, None, budget)
    finally:
        ar.file.close()
    rng_state = meta["_rng"]
    return {"meta": {k: v for k, v in meta.items() if not k.startswith("_")}, "model": model_state,
            "optimizer": optim, "rng": rng_state}


def load_checkpoint(path: PathLike, model: Sequential | None = None, optimizer: Optimizer | None = None,
                    rng: np.random.Generator | None = None) -> dict:
    """Load into whichever of ``model``, ``optimizer``, ``rng`` are given; return the metadata.

    The metadata dict: ``epoch``, ``extra``, ``format_version``, ``layers`` (the saved model's
    layers as text), ``has_optimizer``, ``has_rng``. Only what is needed is read: the model's
    members are checked against ``model`` (keys, shapes, dtype kinds, finite values) and the
    optimizer's against ``optimizer``'s parameters before their data is decompressed. Any problem is
    a CheckpointError (a ValueError) naming the file and the field, and model, optimizer and rng are
    left as they were (see the module docstring).
    """
    ar = _open(path)
    try:
        meta = _parse_meta(ar)
        values = _model_arrays(ar, model, meta) if model is not None else None
        opt_state = None
        if optimizer is not None:
            if meta["optimizer"] is None:
                ar.fail("meta.optimizer", "an optimizer was given but the checkpoint holds no optimizer state")
            if meta["optimizer"]["type"] != type(optimizer).__name__:
                ar.fail("meta.optimizer.type", f"the state belongs to a {meta['optimizer']['type']!r} optimizer, "
                                               f"not {type(optimizer).__name__}")
            opt_state = _optimizer_state(ar, meta, optimizer, None)
    finally:
        ar.file.close()
    fail = ar.fail
    rng_state, saved_layer_rngs = meta["_rng"], meta["_layer_rngs"]
    if rng is not None:
        if rng_state is None:
            fail("meta.rng", "an rng was given but the checkpoint holds no rng state")
        saved_kind, ours = rng_state["bit_generator"], type(rng.bit_generator).__name__
        if saved_kind != ours:
            fail("meta.rng", f"the checkpoint's rng is a {saved_kind}, the given one a {ours}; "
                             f"create it with np.random.Generator(np.random.{saved_kind}())")
    layer_rngs = _layer_rngs(model) if model is not None else []
    if model is not None:
        for i, layer_rng in layer_rngs:
            saved = saved_layer_rngs.get(i)
            if saved is not None and saved["bit_generator"] != type(layer_rng.bit_generator).__name__:
                fail(f"meta.layer_rngs.{i}", f"layer {i}'s rng is a {type(layer_rng.bit_generator).__name__}, "
                                             f"the checkpoint's a {saved['bit_generator']}")
        unused = sorted(set(saved_layer_rngs) - {i for i, _ in layer_rngs})
        if unused:
            fail(f"meta.layer_rngs.{unused[0]}", f"the model's layer {unused[0]} draws no random numbers")

    # everything is read and checked: write, putting the model back if the optimizer refuses
    before = model.state_dict() if model is not None else None
    opt_before = optimizer.state_dict() if optimizer is not None else None
    try:
        if model is not None:
            model.load_state_dict(values)
        if optimizer is not None:
            try:
                optimizer.load_state_dict(opt_state)     # tc optimizers check before writing
            except (ValueError, TypeError, KeyError) as err:
                fail("meta.optimizer", f"the optimizer state does not fit: {err}")
        if rng is not None:
            rng.bit_generator.state = rng_state
        for i, layer_rng in layer_rngs:
            if i in saved_layer_rngs:
                layer_rng.bit_generator.state = saved_layer_rngs[i]
    except BaseException:
        if model is not None:
            model.load_state_dict(before)
        if optimizer is not None:
            optimizer.load_state_dict(opt_before)
        raise
    return {"epoch": meta["epoch"], "extra": meta["extra"], "format_version": meta["format_version"],
            "layers": meta["layers"], "has_optimizer": meta["optimizer"] is not None,
            "has_rng": rng_state is not None}


# -- is a state worth saving? ------------------------------------------------------------------------

def finite_state_problem(model: Sequential, optimizer: Optimizer | None = None, logs: dict | None = None) -> str | None:
    """None if the model's weights and buffers, the optimizer's state (arrays and numbers) and the
    epoch's logged numbers (``logs``: e.g. loss, val_loss) are all finite; else a message naming
    what is not, e.g. ``"val_loss is nan"`` or ``"model 7.weight holds 12 non-finite values"``.
    A training loop saves a checkpoint only when this is None, so the last checkpoint on disk is
    always one a run can resume from."""
    problems = []
    for key, value in (logs or {}).items():
        if _is_number(value) and not math.isfinite(value):
            problems.append(f"{key} is {value}")
    if model is not None:
        for key, arr in model.state_dict().items():
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                problems.append(f"model {key} holds {int(np.count_nonzero(~np.isfinite(arr)))} non-finite values")
    if optimizer is not None:
        state = optimizer.state_dict()
        for gi, group in enumerate(state.get("param_groups", [])):          # every group's rate, momentum, ...
            problems += [f"optimizer param_groups[{gi}].{key} is {v}" for key, v in group.items()
                         if _is_number(v) and not math.isfinite(v)]
        for key, value in state.items():
            if key == "param_groups":
                continue
            items = value if isinstance(value, (list, tuple)) else [value]
            for i, v in enumerate(items):
                where = f"optimizer {key}" + (f"[{i}]" if isinstance(value, (list, tuple)) else "")
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
                    problems.append(f"{where} holds {int(np.count_nonzero(~np.isfinite(v)))} non-finite values")
                elif _is_number(v) and not math.isfinite(v):
                    problems.append(f"{where} is {v}")
    if not problems:
        return None
    shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    return f"the training state is not finite: {shown}"
