"""Whole training steps and inference, every contender side by side, interleaved.

A training step is: forward, softmax cross-entropy, backward, SGD with momentum 0.9 (lr 0.01), on one
fixed float32 batch. Inference is one forward pass (torch under ``inference_mode``). Before timing,
``agreement`` checks that the contenders, loaded with the same weights, give the same logits and the
same first-step loss and parameter gradients, so the race is between implementations of one function.
"""
from __future__ import annotations

import numpy as np

import tinycnn as tc

from . import numpy_engine as npe
from .nets import LR, MOMENTUM, NetInfo, build_numpy, build_tinycnn, build_torch
from .timing import interleave, median, spread, thread_count


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_batch(info: NetInfo, batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *info.input_shape), dtype=np.float32)   # (N, C, H, W)
    labels = rng.integers(0, info.classes, batch)                            # (N,) int64
    return x, labels


def contenders(info: NetInfo, batch: int, mode: str, use_torch: bool, seed: int = 0):
    """name -> zero-argument function running one training step (mode "train") or one forward ("infer")."""
    x, labels = make_batch(info, batch)
    model = build_tinycnn(info.spec, np.random.default_rng(seed))
    state = model.state_dict()
    fns = {}

    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    if mode == "train":
        def tinycnn_step():
            loss_fn(model(x), labels)
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
        fns["tinycnn"] = tinycnn_step
    else:
        fns["tinycnn"] = lambda: model(x)

    if use_torch:
        import torch
        import torch.nn.functional as F

        tmodel = build_torch(info.spec, state)
        topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
        if mode == "train":
            def torch_step():
                topt.zero_grad(set_to_none=True)
                F.cross_entropy(tmodel(tx), tl).backward()
                topt.step()
            fns["pytorch"] = torch_step
        else:
            def torch_infer():
                with torch.inference_mode():
                    tmodel(tx)
            fns["pytorch"] = torch_infer

    net = build_numpy(info.spec, state)
    nopt = npe.SGDMomentum(net, LR, MOMENTUM)
    if mode == "train":
        fns["numpy"] = lambda: npe.train_step(net, nopt, x, labels)
    else:
        fns["numpy"] = lambda: net.forward(x)
    return fns


def agreement(info: NetInfo, batch: int, use_torch: bool) -> dict:
    """Max relative differences to tinycnn of the logits, the loss and every parameter gradient."""
    x, labels = make_batch(info, batch)
    model = build_tinycnn(info.spec, np.random.default_rng(0))
    state = model.state_dict()
    loss_fn = tc.SoftmaxCrossEntropy()
    logits = np.array(model(x), dtype=np.float64)                  # (N, classes)
    loss = loss_fn(model(x), labels)
    model.backward(loss_fn.backward(), input_grad=False)
    grads = {k: p.grad for k, p in model.named_parameters()}      # "0.weight", ... as torch

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))

    out = {}
    n_logits = build_numpy(info.spec, state).forward(x)
    net = build_numpy(info.spec, state)
    n_loss, n_grad = npe.softmax_cross_entropy(net.forward(x), labels)
    net.backward(n_grad)
    n_grads = {}
    for i, layer in enumerate(net.layers):
        if layer.params:
            n_grads[f"{i}.weight"], n_grads[f"{i}.bias"] = layer.grads
    out["numpy"] = {"logits": rel(n_logits, logits), "loss": abs(n_loss - loss) / abs(loss),
                    "gradients": max(rel(n_grads[k], grads[k]) for k in grads)}
    if use_torch:
        import torch
        import torch.nn.functional as F

        tmodel = build_torch(info.spec, state)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
        t_logits = tmodel(tx)
        t_loss = F.cross_entropy(t_logits, tl)
        t_loss.backward()
        t_grads = {k: p.grad.numpy() for k, p in tmodel.named_parameters()}
        out["pytorch"] = {"logits": rel(t_logits.detach().numpy(), logits),
                          "loss": abs(t_loss.item() - loss) / abs(loss),
                          "gradients": max(rel(t_grads[k], grads[k]) for k in grads)}
    return out


def run(nets: list[NetInfo], batches, threads, modes, rounds: int, reps: dict, use_torch: bool, log) -> list[dict]:
    """One record per (net, batch, threads, mode): median seconds per call and images/s per contender."""
    records = []
    for info in nets:
        for mode in modes:
            for batch in batches:
                fns = contenders(info, batch, mode, use_torch)
                for n in threads:
                    with thread_count(n):
                        times = interleave(fns, rounds, reps[batch])
                    rec = {"net": info.name, "batch": batch, "threads": n, "mode": mode, "contenders": {}}
                    for name, ts in times.items():
                        m = median(ts)
                        rec["contenders"][name] = {"median_s": m, "images_per_s": batch / m,
                                                   "iqr_over_median": spread(ts), "samples": len(ts)}
                    records.append(rec)
                    log(format_record(rec))
    return records


def format_record(rec: dict) -> str:
    parts = [f"{rec['net']:8s} {rec['mode']:5s} batch {rec['batch']:3d} threads {rec['threads']}:"]
    for name, c in rec["contenders"].items():
        parts.append(f"{name} {c['images_per_s']:8.0f} img/s")
    return "  ".join(parts)
