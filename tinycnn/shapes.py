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

from dataclasses import dataclass, field

import numpy as np

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
        return int(np.prod(r.out_shape)) * layer.in_channels * kh * kw        # O*OH*OW * C*KH*KW
    if isinstance(layer, Dense):
        return layer.in_features * layer.out_features
    return 0


def macs_per_sample(layers, input_shape) -> int:
    """Multiply-accumulates of one sample's forward pass through ``layers`` (Conv2D and Dense)."""
    return sum(_macs(r.layer, r) for r in infer_shapes(layers, tuple(input_shape)))


def _one_stats(r: LayerShape, batch_size: int, itemsize: int, path: str = "") -> LayerStats:
    layer = r.layer
    params = sum(int(p.data.size) for p in layer.parameters())
    buffers = sum(int(np.size(b)) for b in dict(layer.named_buffers()).values()) if hasattr(layer, "named_buffers") else 0
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


def summary_text(records: list[LayerShape], input_shape: tuple, batch_size: int, dtype) -> str:
    """The table ``Sequential.summary()`` prints, and its totals."""
    dtype = np.dtype(dtype)
    stats = layer_stats(records, batch_size, dtype.itemsize)
    rows = _memory_rows(stats)                       # the stack's layers, each container's layers after it

    def label(s):                                    # nested layers indented by their depth
        return "  " * s.path.count(".") + s.name

    name_w = max([len("layer")] + [len(label(s)) for s in rows]) + 2
    idx_w = max([3] + [len(s.path) for s in rows])
    head = (f"{'#':>{idx_w}}  {'layer':<{name_w}}{'output shape':<18}{'params':>12}{'MACs':>16}"
            f"{'activations':>14}{'im2col':>12}")
    rule = "-" * len(head)
    lines = [f"Sequential summary: input {tuple(input_shape)} per sample, {dtype.name}, batch size {batch_size}",
             rule, head, rule]
    for s in rows:
        lines.append(f"{s.path:>{idx_w}}  {label(s):<{name_w}}{str(s.out_shape):<18}{s.params:>12,}{s.macs:>16,}"
                     f"{human_bytes(s.activation_bytes):>14}{(human_bytes(s.im2col_bytes) if s.im2col_bytes else '-'):>12}")
    if any(s.nested for s in stats):
        lines.append("  (a container's row counts the params and MACs of the layers indented under it)")
    total_params = sum(s.params for s in stats)      # containers include their layers: top rows only
    total_buffers = sum(s.buffers for s in stats)
    macs = sum(s.macs for s in stats)
    act = sum(s.activation_bytes for s in rows)      # every output is an array of its own: all rows
    cols = sum(s.im2col_bytes for s in rows)
    input_bytes = int(np.prod(input_shape)) * batch_size * dtype.itemsize
    lines += [
        rule,
        f"Total params:            {total_params:,} ({human_bytes(total_params * dtype.itemsize)}; "
        f"gradients take as much again)",
        f"Non-trainable buffers:   {total_buffers:,}",
        f"MACs:                    {macs:,} per sample, {macs * batch_size:,} per batch of {batch_size}",
        f"Activation memory:       {human_bytes(act)} for a batch of {batch_size} (layer outputs), "
        f"plus {human_bytes(input_bytes)} of input",
        f"im2col buffers:          {human_bytes(cols)} for a batch of {batch_size} "
        f"(each Conv2D keeps its columns for backward)",
        f"Forward memory in all:   {human_bytes(act + cols + input_bytes)} for a batch of {batch_size}",
    ]
    return "\n".join(lines)
