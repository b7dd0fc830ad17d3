"""Checkpoints: one ``.npz`` file, no pickle, written atomically.

Members of the file (each a plain ``.npy`` array inside the zip; ``np.load(path, allow_pickle=False)``
reads it)::

    model/<key>          model.state_dict()[key]      e.g. model/0.weight  (out, in, kh, kw)
    optim/<key>/<i>      the i-th array of the optimizer state's list <key>, e.g. optim/exp_avg/3
                         (absent where the list holds None: a momentum buffer not created yet)
    meta                 uint8 (n_bytes,): UTF-8 JSON with format, format_version, epoch, extra,
                         layers (the model's layers, as text), optimizer (its scalars, and where
                         its arrays are), rng (``rng.bit_generator.state``), layer_rngs (the state
                         of each layer's own generator, e.g. Dropout's, by layer index)

Layer generators are not part of ``model.state_dict()`` (torch keeps none there either), but a run
with dropout resumes bit for bit only if the masks continue where they stopped: ``load_checkpoint``
restores them into the model's layers of the same index.

Atomic write: the file is written under a temporary name in the same folder
(``.<name>.tmp-<pid>-<random hex>``), flushed and fsynced, then ``os.replace``d over ``path``
(and the folder fsynced), so ``path`` always holds either the previous complete checkpoint or the
new one. A process killed mid-save leaves its temporary file behind; the next save to the same
path removes temporaries whose process is gone (``stale_temporaries`` lists them; on Windows, where
a process cannot be probed safely, they are kept for you to delete).

A failed load leaves model, optimizer and rng as they were: the model's load checks every key
and shape before writing; if the optimizer's state or the rng's kind does not fit afterwards, the
model's previous weights are put back.
``extra`` must be JSON-serializable (Python's json: NaN and infinity round-trip).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import zipfile

import numpy as np

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


def _from_json(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
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


def _join_optimizer_state(scalars: dict, members) -> dict:
    state = {}
    for key, value in scalars.items():
        if isinstance(value, dict) and "__array__" in value:
            state[key] = members[f"optim/{key}"]
        elif isinstance(value, dict) and "__arrays__" in value:
            state[key] = [members.get(f"optim/{key}/{i}") for i in range(value["__arrays__"])]
        else:
            state[key] = value
    return state


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


def stale_temporaries(path) -> list[str]:
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


def save_checkpoint(path, model, optimizer=None, *, epoch=None, rng=None, extra=None,
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


def read_checkpoint(path) -> dict:
    """Everything in a checkpoint, changing nothing: ``{"meta": dict, "model": state_dict,
    "optimizer": state dict or None, "rng": bit-generator state or None}``."""
    path = os.fspath(path)
    owner = f"load_checkpoint({path!r})"
    try:
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"{owner}: not a readable tinycnn checkpoint ({type(err).__name__}: {err})") from err
    if "meta" not in members:
        raise ValueError(f"{owner}: no 'meta' member; not a tinycnn checkpoint (members: {sorted(members)[:8]})")
    meta = json.loads(members.pop("meta").tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{owner}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{owner}: format version {meta['format_version']} is newer than this tinycnn "
                         f"reads ({FORMAT_VERSION}); upgrade tinycnn")
    model_state = {k[len("model/"):]: v for k, v in members.items() if k.startswith("model/")}
    optim = None if meta.get("optimizer") is None else _join_optimizer_state(meta["optimizer"], members)
    rng_state = None if meta.get("rng") is None else _from_json(meta["rng"])
    return {"meta": meta, "model": model_state, "optimizer": optim, "rng": rng_state}


def load_checkpoint(path, model=None, optimizer=None, rng=None) -> dict:
    """Load into whichever of ``model``, ``optimizer``, ``rng`` are given; return the metadata.

    The metadata dict: ``epoch``, ``extra``, ``format_version``, ``layers`` (the saved model's
    layers as text), ``has_optimizer``, ``has_rng``. On a mismatch a ValueError names the keys and
    shapes that differ (and lists both models' layers), and model, optimizer and rng are left as
    they were (see the module docstring).
    """
    path = os.fspath(path)
    owner = f"load_checkpoint({path!r})"
    ckpt = read_checkpoint(path)
    meta = ckpt["meta"]

    # 1. the model: Sequential.load_state_dict checks every key and shape before writing any
    before = model.state_dict() if model is not None else None
    if model is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except (ValueError, KeyError) as err:
            saved = "\n  ".join(meta.get("layers", [])) or "(not recorded)"
            here = "\n  ".join(repr(layer) for layer in getattr(model, "layers", [])) or "(unknown)"
            raise ValueError(f"{owner}: the checkpoint's weights do not fit this model: {err}\n"
                             f"checkpoint layers:\n  {saved}\nmodel layers:\n  {here}") from err
    # 2. rng and optimizer; on any failure, model and optimizer get their previous state back
    opt_before = optimizer.state_dict() if optimizer is not None else None
    try:
        if rng is not None:
            if ckpt["rng"] is None:
                raise ValueError(f"{owner}: an rng was given but the checkpoint holds no rng state")
            saved_kind, ours = ckpt["rng"].get("bit_generator"), type(rng.bit_generator).__name__
            if saved_kind != ours:
                raise ValueError(f"{owner}: the checkpoint's rng is a {saved_kind}, the given one a {ours}; "
                                 f"create it with np.random.Generator(np.random.{saved_kind}())")
        saved_layer_rngs = meta.get("layer_rngs", {}) if model is not None else {}
        for i, layer_rng in (_layer_rngs(model) if model is not None else []):
            saved_kind = saved_layer_rngs.get(str(i), {}).get("bit_generator")
            if saved_kind is not None and saved_kind != type(layer_rng.bit_generator).__name__:
                raise ValueError(f"{owner}: layer {i}'s rng is a {type(layer_rng.bit_generator).__name__}, "
                                 f"the checkpoint's a {saved_kind}")
        if optimizer is not None:
            if ckpt["optimizer"] is None:
                raise ValueError(f"{owner}: an optimizer was given but the checkpoint holds no optimizer state")
            try:
                optimizer.load_state_dict(ckpt["optimizer"])     # tc optimizers check before writing
            except (ValueError, TypeError, KeyError) as err:
                raise ValueError(f"{owner}: the optimizer state does not fit: {err}") from err
        if rng is not None:
            rng.bit_generator.state = ckpt["rng"]
        if model is not None:
            for i, layer_rng in _layer_rngs(model):
                if str(i) in saved_layer_rngs:
                    layer_rng.bit_generator.state = _from_json(saved_layer_rngs[str(i)])
    except BaseException:
        if model is not None:
            model.load_state_dict(before)
        if optimizer is not None:
            optimizer.load_state_dict(opt_before)
        raise
    return {"epoch": meta.get("epoch"), "extra": meta.get("extra"),
            "format_version": meta.get("format_version"), "layers": meta.get("layers", []),
            "has_optimizer": ckpt["optimizer"] is not None, "has_rng": ckpt["rng"] is not None}
