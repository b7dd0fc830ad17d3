"""Shape inference for a stack of layers: every layer's input checked before any data flows.

Shapes here are PER SAMPLE (the batch axis left off): a CIFAR image is (3, 32, 32), a flat feature
vector (2048,). ``infer_shapes(layers, (C, H, W))`` walks the stack with each layer's
``output_shape(in_shape)`` (Conv2D, the pools, Flatten, Dense, Softmax have one, and raise a clear
error when the input cannot fit). A layer without ``output_shape`` (ReLU, Sigmoid, Tanh) is taken to
keep the shape; a custom layer that changes the shape must define ``output_shape``, or the check
here goes wrong for the layers after it (their own forward still rejects a misfit, less helpfully).

When a layer rejects its input, the error says which layer (index and repr), what it expected and got
(the layer's own message), where the offending shape comes from (e.g. "the Flatten at layer 6 of the
(128, 32, 32) output of layer 4, Conv2D(...)"), and the whole chain of shapes up to that point.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ._terminal import columns
from .layers.dense import Dense, Flatten


class ShapeError(ValueError):
    """A layer of a Sequential cannot take the shape the layers before it produce."""


@dataclass
class LayerShape:
    index: int                # position in the Sequential
    layer: object
    in_shape: tuple           # per sample, e.g. (3, 32, 32)
    out_shape: tuple          # per sample


def layer_output_shape(layer, in_shape: tuple) -> tuple:
    """Per-sample output shape of ``layer`` for per-sample input ``in_shape`` (raises if it cannot fit)."""
    in_shape = tuple(int(d) for d in in_shape)
    if hasattr(layer, "kernel_size") and len(in_shape) != 3:
        hint = ("; for grayscale images add a channel axis, e.g. x[:, None] for (N, H, W) input"
                if len(in_shape) == 2 else "")
        raise ValueError(f"{layer!r}: expects a (C, H, W) image per sample (input (N, C, H, W)), "
                         f"got per-sample shape {in_shape}{hint}")
    rule = getattr(layer, "output_shape", None)
    if rule is None:                       # elementwise layers (ReLU, Sigmoid, ...) keep the shape
        return in_shape
    return tuple(int(d) for d in rule(in_shape))


def _shape_setter(records: list[LayerShape], upto: int) -> str:
    """Describe who produced the output of layer ``upto``: the last layer at or before it that
    changed the shape (shape-keeping layers such as ReLU just pass it on), or the model input."""
    j = upto
    while j >= 0 and records[j].out_shape == records[j].in_shape:
        j -= 1
    if j < 0:
        return "the model input"
    if j == upto:
        return f"layer {j}, {records[j].layer!r}"
    return f"layer {j}, {records[j].layer!r} (passed on unchanged by layer{'s' if upto - j > 1 else ''} " \
           f"{', '.join(str(k) for k in range(j + 1, upto + 1))})"


def _provenance(records: list[LayerShape], index: int, in_shape: tuple, source: str) -> str:
    """Where the input of layer ``index`` comes from, in words."""
    if index == 0:
        return f"Its input {in_shape} is the model input ({source})."
    prev = records[index - 1]
    if isinstance(prev.layer, Flatten):
        dims = "*".join(str(d) for d in prev.in_shape)
        origin = _shape_setter(records, index - 2) if index >= 2 else "the model input"
        return (f"The {in_shape[0]} features come from the Flatten() at layer {index - 1}, which flattens "
                f"the {prev.in_shape} output of {origin}: {dims} = {in_shape[0]}.")
    return f"Its input {in_shape} is the output of {_shape_setter(records, index - 1)}."


def _trace(records: list[LayerShape], input_shape: tuple, failing: int, failing_layer) -> str:
    lines = [f"    input             {input_shape}"]
    for r in records:
        lines.append(f"    [{r.index}] {r.layer!r}  ->  {r.out_shape}")
    lines.append(f"    [{failing}] {failing_layer!r}  <-  rejects {records[-1].out_shape if records else input_shape}")
    return "\n".join(lines)


def _hint(layer, in_shape: tuple, prev) -> str:
    if isinstance(layer, Dense) and len(in_shape) == 1 and isinstance(prev, Flatten):
        return (f"\n  Fix: make it Dense({in_shape[0]}, {layer.out_features}), or shrink the feature map "
                f"before the Flatten (e.g. a MaxPool2D(2) after each convolution) until it has "
                f"{layer.in_features} features.")
    return ""


def infer_shapes(layers, input_shape, *, source: str = "input_shape") -> list[LayerShape]:
    """Walk ``layers`` from the per-sample ``input_shape``; return one ``LayerShape`` per layer.

    Raises ``ShapeError`` naming the first layer that cannot take its input, with where that input
    comes from. ``source`` says where ``input_shape`` came from, for that message.
    """
    input_shape = tuple(int(d) for d in input_shape)
    records: list[LayerShape] = []
    shape = input_shape
    for i, layer in enumerate(layers):
        try:
            out = layer_output_shape(layer, shape)
        except (ValueError, TypeError) as err:
            prev = records[-1].layer if records else None
            reason = str(err).removeprefix(f"{layer!r}: ")           # the layer's own words, repr once
            raise ShapeError(
                f"Sequential: layer {i}, {layer!r}, cannot take its per-sample input of shape {shape}: "
                f"{reason}\n  {_provenance(records, i, shape, source)}{_hint(layer, shape, prev)}\n"
                f"  Shapes so far (per sample):\n{_trace(records, input_shape, i, layer)}"
            ) from None
        records.append(LayerShape(index=i, layer=layer, in_shape=shape, out_shape=out))
        shape = out
    return records


# -- summary ---------------------------------------------------------------------------------------

@dataclass
class LayerStats:
    index: int
    name: str                 # the layer's repr
    out_shape: tuple          # per sample
    params: int               # trainable parameter count
    buffers: int              # non-trainable state (e.g. batch-norm running statistics), element count
    macs: int                 # multiply-accumulates per sample (Conv2D, Dense; 0 for the rest)
    activation_bytes: int     # the layer's output for the whole batch
    im2col_bytes: int         # Conv2D's column buffer (C*KH*KW, N*OH*OW) for the whole batch; else 0
    # Containers (Residual, Concat): params and macs above include their nested layers; the nested
    # layers' own rows (path "block.0", ...; their activations and im2col buffers) are listed here.
    path: str = ""
    nested: list = field(default_factory=list)


def _is_container(layer) -> bool:
    return hasattr(layer, "child_shapes")


def _nested_records(layer, in_shape: tuple):
    """[(path, LayerShape)] of the layers inside a container, depth first (paths relative to it)."""
    rows = []
    for c in layer.child_shapes(in_shape):
        rows.append((c.path, LayerShape(index=-1, layer=c.layer, in_shape=c.in_shape, out_shape=c.out_shape)))
        if _is_container(c.layer):
            rows += [(f"{c.path}.{p}", r) for p, r in _nested_records(c.layer, c.in_shape)]
    return rows


def _macs(layer, r: LayerShape) -> int:
    """Multiply-accumulates per sample: one per weight use (a container: its layers' sum)."""
    if _is_container(layer):
        return sum(_macs(rec.layer, rec) for _, rec in _nested_records(layer, r.in_shape)
                   if not _is_container(rec.layer))
    if hasattr(layer, "in_channels") and hasattr(layer, "kernel_size"):      # Conv2D
        kh, kw = layer.kernel_size
        cg = layer.in_channels // getattr(layer, "groups", 1)                 # channels each filter sees
        return int(np.prod(r.out_shape)) * cg * kh * kw                       # O*OH*OW * (C/G)*KH*KW
    if isinstance(layer, Dense):
        return layer.in_features * layer.out_features
    return 0


def macs_per_sample(layers, input_shape) -> int:
    """Multiply-accumulates of one sample's forward pass through ``layers`` (Conv2D and Dense)."""
    return sum(_macs(r.layer, r) for r in infer_shapes(layers, tuple(input_shape)))


def _one_stats(r: LayerShape, batch_size: int, itemsize: int, path: str = "") -> LayerStats:
    layer = r.layer
    params = sum(int(p.data.size) for p in layer.parameters())
    buffers = (sum(int(np.size(b)) for b in dict(layer.named_buffers()).values())
               if hasattr(layer, "named_buffers") else 0)
    im2col = 0
    if hasattr(layer, "in_channels") and hasattr(layer, "kernel_size"):
        kh, kw = layer.kernel_size
        _, oh, ow = r.out_shape
        rows = layer.in_channels * kh * kw
        im2col = rows * batch_size * oh * ow * itemsize    # cols: (C*KH*KW, N*OH*OW)
    return LayerStats(r.index, repr(layer), r.out_shape, params, buffers, _macs(layer, r),
                      int(np.prod(r.out_shape)) * batch_size * itemsize, im2col, path=path)


def layer_stats(records: list[LayerShape], batch_size: int, itemsize: int) -> list[LayerStats]:
    """One row per layer of the stack; a container's row carries its nested layers' rows in ``nested``."""
    stats = []
    for r in records:
        row = _one_stats(r, batch_size, itemsize, path=str(r.index))
        if _is_container(r.layer):
            row.nested = [_one_stats(rec, batch_size, itemsize, path=f"{r.index}.{p}")
                          for p, rec in _nested_records(r.layer, r.in_shape)]
        stats.append(row)
    return stats


def _memory_rows(stats: list[LayerStats]) -> list[LayerStats]:
    """Every row whose output is an array of its own: the stack's layers and every nested layer."""
    return [s for top in stats for s in [top, *top.nested]]


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def short_name(layer) -> str:
    """A layer's repr made compact for a narrow table: ``Conv2D(1, 32, kernel_size=(3, 3), stride=(1, 1),
    padding=(1, 1))`` -> ``Conv2D(1, 32, k=3, p=1)``: square pairs written once, keywords shortened,
    default strides and zero padding left out."""
    return _short_text(repr(layer))


def _short_text(text: str) -> str:
    """``short_name`` on a repr's text."""
    text = re.sub(r"\((\d+), \1\)", r"\1", text)
    for word, short in (("kernel_size", "k"), ("stride", "s"), ("padding", "p")):
        text = text.replace(f"{word}=", f"{short}=")
    text = re.sub(r", p=0\b", "", text)                        # no padding: the default everywhere
    text = text.replace(", eps=1e-05", "").replace(", momentum=0.1", "")   # batch norm's defaults
    if text.startswith("Conv2D("):
        text = re.sub(r", s=1\b", "", text)                    # a convolution's default stride
    else:
        text = re.sub(r"k=(\d+), s=\1\b", r"k=\1", text)       # a pool's default stride: its kernel
    return text


def _si(n: int) -> str:
    """3869824 -> "3.87 M" (for the MACs column of a narrow table)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return str(n)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 1)] + "~"


def _wrapped(label: str, text: str, width: int) -> list[str]:
    """``label`` then ``text``, broken between words so that no line is longer than ``width``;
    continuation lines are indented under the text."""
    lines, line = [], label
    for word in text.split(" "):
        if len(line) > len(label) and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = " " * len(label) + word
        else:
            line = f"{line}{'' if len(line) == len(label) else ' '}{word}"
    return lines + [line]


def summary_text(records: list[LayerShape], input_shape: tuple, batch_size: int, dtype,
                 width: int | None = None, frozen_params: int = 0) -> str:
    """The table ``Sequential.summary()`` prints, and its totals, in at most ``width`` columns
    (default: the terminal's width, or ``COLUMNS`` when set; no limit when the output is not a
    terminal). When the layers' full reprs do not fit, the table uses compact names (``short_name``)
    and MACs in k / M / G, and cuts what still does not fit. ``frozen_params``: how many of the
    parameters' numbers have ``requires_grad`` False (a "Frozen params" line when > 0)."""
    if width is None:
        width = columns()
    width = 10**9 if width is None else max(int(width), 40)
    dtype = np.dtype(dtype)
    stats = layer_stats(records, batch_size, dtype.itemsize)
    rows = _memory_rows(stats)                       # the stack's layers, each container's layers after it

    def label(s, name):                              # nested layers indented by their depth
        return "  " * s.path.count(".") + name

    def table(names, macs):
        cells = [(s.path, n, str(s.out_shape), f"{s.params:,}", m, human_bytes(s.activation_bytes),
                  human_bytes(s.im2col_bytes) if s.im2col_bytes else "-") for s, n, m in zip(rows, names, macs)]
        heads = ("#", "layer", "output shape", "params", "MACs", "activations", "im2col")
        widths = [max([len(h)] + [len(c[k]) for c in cells]) for k, h in enumerate(heads)]
        return heads, cells, widths

    full_names = [label(s, s.name) for s in rows]
    short_names = [label(s, _short_text(s.name)) for s in rows]
    full_macs, short_macs = [f"{s.macs:,}" for s in rows], [_si(s.macs) for s in rows]
    for names, macs, sep in ((full_names, full_macs, "  "), (short_names, full_macs, "  "),
                             (short_names, short_macs, "  "), (short_names, short_macs, " ")):
        heads, cells, widths = table(names, macs)
        if sum(widths) + len(sep) * (len(widths) - 1) <= width:
            break
    else:                                                   # cut the names to what is left
        widths[1] = max(8, width - (sum(widths) - widths[1]) - len(sep) * (len(widths) - 1))
        cells = [(c[0], _cut(c[1], widths[1]), *c[2:]) for c in cells]

    def row(values):
        left = {0: ">", 1: "<", 2: "<"}
        return sep.join(f"{v:{left.get(k, '>')}{widths[k]}}" for k, v in enumerate(values)).rstrip()

    head = row(heads)
    rule = "-" * min(width, max(len(head), *(len(row(c)) for c in cells)) if cells else len(head))
    lines = _wrapped("", f"Sequential summary: input {tuple(input_shape)} per sample, {dtype.name}, "
                         f"batch size {batch_size}", width)
    lines += [rule, head, rule, *(row(c) for c in cells)]
    if any(s.nested for s in stats):
        lines += _wrapped("", "(a container's row counts the params and MACs of the layers indented under it)", width)
    total_params = sum(s.params for s in stats)      # containers include their layers: top rows only
    total_buffers = sum(s.buffers for s in stats)
    macs = sum(s.macs for s in stats)
    act = sum(s.activation_bytes for s in rows)      # every output is an array of its own: all rows
    cols = sum(s.im2col_bytes for s in rows)
    input_bytes = int(np.prod(input_shape)) * batch_size * dtype.itemsize
    lines.append(rule)
    for label, text in (
        ("Total params:", f"{total_params:,} ({human_bytes(total_params * dtype.itemsize)}; gradients take as "
                          f"much again)"),
        *((("Frozen params:", f"{frozen_params:,} of them (requires_grad False: the optimizers leave "
                               f"them alone)"),) if frozen_params else ()),
        ("Non-trainable buffers:", f"{total_buffers:,}"),
        ("MACs:", f"{macs:,} per sample, {macs * batch_size:,} per batch of {batch_size}"),
        ("Activation memory:", f"{human_bytes(act)} for a batch of {batch_size} (layer outputs), plus "
                               f"{human_bytes(input_bytes)} of input"),
        ("im2col buffers:", f"{human_bytes(cols)} for a batch of {batch_size} (each Conv2D keeps its columns "
                            f"for backward)"),
        ("Forward memory in all:", f"{human_bytes(act + cols + input_bytes)} for a batch of {batch_size}"),
    ):
        lines += _wrapped(f"{label:<25}", text, width)
    return "\n".join(lines)
