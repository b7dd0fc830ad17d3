"""``tinycnn export CHECKPOINT OUT.onnx``: write a saved network as an ONNX graph.

    tinycnn export runs/20250101-120000/checkpoint.npz lenet.onnx
    tinycnn export model.npz model.onnx --input-shape 3,32,32

CHECKPOINT is a ``tinycnn train`` checkpoint (its network rebuilt through ``tinycnn.zoo``) or a file
written by ``tinycnn.save_model`` (any network of tinycnn layers). The graph (``tinycnn.export``) is
the network in eval mode with a dynamic batch axis: input ``input`` (N, C, H, W) float32, output
``output`` (the logits). For a ``tinycnn train`` checkpoint the graph takes the images as the run
normalised them, ``(pixels - mean) / std`` with the training statistics, unless ``--raw-pixels``
puts that step into the graph (then it takes pixel values 0..255 as floats); the class names and the
statistics are stored in the model's metadata. Exit status 2 for a file that cannot be read or a
network with a layer ONNX cannot express (named by its path).
"""
from __future__ import annotations

import json
import sys


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint.npz from `tinycnn train`, or a file from tinycnn.save_model")
    parser.add_argument("out", help="the .onnx file to write")
    parser.add_argument("--input-shape", help="per-sample input shape C,H,W, for a saved model that does not "
                        "record one")
    parser.add_argument("--raw-pixels", action="store_true", help="put the training run's normalisation into "
                        "the graph, so it takes pixel values 0..255 (tinycnn train checkpoints only)")


def _shape(text):
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input-shape must be three positive integers C,H,W, got {text!r}")
    return shape


def _load(path):
    """(model, metadata for the ONNX file, (mean, std) or None)."""
    from .. import saving
    try:
        return saving.load_model(path, compile=False), {"tinycnn.source": "save_model"}, None
    except saving.NoArchitectureError:
        pass
    from ._saved_run import load_run
    run = load_run(path)
    norm = (run.normalizer.mean.tolist(), run.normalizer.std.tolist())
    meta = {"tinycnn.source": "tinycnn train", "tinycnn.classes": json.dumps(list(run.classes)),
            "tinycnn.normalization": json.dumps({"mean": norm[0], "std": norm[1]}),
            "tinycnn.model": str(run.config.get("model", "?"))}
    return run.model, meta, norm


def run(args) -> int:
    try:
        from .. import export
        input_shape = _shape(args.input_shape) if args.input_shape else None
        model, meta, norm = _load(args.checkpoint)
        if input_shape is None and getattr(model, "input_shape", None) is None:
            raise ValueError(f"{args.checkpoint} records no input shape (the model was saved before it saw "
                             f"any input); give it with --input-shape C,H,W")
        if args.raw_pixels and norm is None:
            raise ValueError("--raw-pixels needs a `tinycnn train` checkpoint (a save_model file holds no "
                             "normalisation statistics)")
        export.to_onnx(model, args.out, input_shape=input_shape, metadata=meta,
                       normalize=norm if args.raw_pixels else None)
    except (ValueError, ImportError, OSError) as err:
        print(f"tinycnn export: error: {err}", file=sys.stderr)
        return 2
    shape = input_shape or model.input_shape
    print(f"wrote {args.out}: input 'input' (N, {', '.join(map(str, shape))}) float32, output 'output' (logits)")
    if norm is not None and not args.raw_pixels:
        print(f"the graph takes normalised images, (pixels - mean) / std per channel, mean {norm[0]}, std {norm[1]} "
              f"(--raw-pixels puts this step into the graph)")
    return 0
