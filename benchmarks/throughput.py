"""Whole training steps and inference, every contender side by side, interleaved.

A training step is: forward, softmax cross-entropy, backward, SGD with momentum 0.9 (lr 0.01), on one
fixed float32 batch, every model in training mode (batch norm on batch statistics, dropout with the
net's p). Inference is one forward pass in evaluation mode (batch norm on running statistics, dropout
off; torch under ``inference_mode``). Before timing, ``agreement`` checks that the contenders, loaded
with the same weights, give the same logits and the same first-step loss and parameter gradients, so
the race is between implementations of one function (see ``agreement`` for how dropout is handled).

The zoo nets (``NetInfo.zoo``: resnet20, mobilenet) have two contenders, tinycnn and PyTorch: the
plain-NumPy baseline implements only chains of layer specs.

Only the plain ``tinycnn`` API is used here (no ``tinycnn.fast``), so this file also runs against
older tinycnn versions (for the chains; the zoo nets need ``tinycnn.zoo.resnet20`` / ``mobilenet`` and
``tinycnn.interop.to_torch_module`` with Residual).
"""
from __future__ import annotations

import numpy as np

import tinycnn as tc

from . import numpy_engine as npe
from .nets import (
    LR,
    MOMENTUM,
    NetInfo,
    batchnorm_state,
    build_net,
    build_numpy,
    build_torch_net,
    layer_walk,
    without_dropout,
    zoo_batchnorm_state,
)
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
    """name -> zero-argument function running one training step (mode "train") or one forward ("infer");
    no "numpy" entry for a zoo net."""
    x, labels = make_batch(info, batch)
    model = build_net(info, np.random.default_rng(seed))
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
        model.eval()
        fns["tinycnn"] = lambda: model(x)

    if use_torch:
        import torch
        import torch.nn.functional as F

        tmodel = build_torch_net(info, state)
        topt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
        if mode == "train":
            def torch_step():
                topt.zero_grad(set_to_none=True)
                F.cross_entropy(tmodel(tx), tl).backward()
                topt.step()
            fns["pytorch"] = torch_step
        else:
            tmodel.eval()

            def torch_infer():
                with torch.inference_mode():
                    tmodel(tx)
            fns["pytorch"] = torch_infer

    if info.zoo is not None:                    # the plain-NumPy engine implements only chains
        return fns
    net = build_numpy(info.spec, state)
    nopt = npe.SGDMomentum(net, LR, MOMENTUM)
    if mode == "train":
        fns["numpy"] = lambda: npe.train_step(net, nopt, x, labels)
    else:
        net.eval()
        fns["numpy"] = lambda: net.forward(x)
    return fns


def agreement(info: NetInfo, batch: int, use_torch: bool) -> dict:
    """Max relative differences to tinycnn, per contender, of one training-mode step and of evaluation.

    All engines start from tinycnn's weights, with random batch-norm parameters and running statistics
    (``nets.batchnorm_state``) in place of the fresh ones and zeros. Each engine draws its own dropout
    masks, so the training-mode check runs the net with every dropout's p set to 0 (``without_dropout``;
    nets without dropout are unchanged). It compares, after one forward and backward in training mode:
    ``logits``, ``loss``, ``gradients`` (the largest over all parameters) and ``buffers`` (the running
    statistics that forward updated; 0 for a net without batch norm). Then, in evaluation mode and
    with the net's own p (dropout is the identity there): ``eval_logits`` from those updated running
    statistics.

    A zoo net is compared with PyTorch only (no "numpy" entry; PyTorch's twin is
    ``tinycnn.interop.to_torch_module`` of the model, loaded with the same state). Its batch norms get
    the same kind of random parameters and statistics (``nets.zoo_batchnorm_state``); one with a
    dropout layer is refused, since its masks could not agree.
    """
    x, labels = make_batch(info, batch)
    train_info = without_dropout(info)
    model = build_net(train_info, np.random.default_rng(0))
    state = model.state_dict()
    if info.zoo is None:
        state.update(batchnorm_state(info.spec, np.random.default_rng(2)))
    else:
        dropouts = [path for path, layer, _, _ in layer_walk(model, info.input_shape)
                    if type(layer).__name__.startswith("Dropout")]
        if dropouts:
            raise ValueError(f"throughput.agreement({info.name}): dropout layers {dropouts}: each engine draws "
                             "its own masks, so training outputs cannot agree")
        state.update(zoo_batchnorm_state(state, np.random.default_rng(2)))
    model.load_state_dict(state)
    loss_fn = tc.SoftmaxCrossEntropy()
    out_y = model(x)                                                # one forward: running stats move once
    logits = np.array(out_y, dtype=np.float64)                      # (N, classes), copied before reuse
    loss = loss_fn(out_y, labels)
    model.backward(loss_fn.backward(), input_grad=False)
    # dict(): older tinycnn returns a dict, newer yields (name, Parameter) pairs; "0.weight", ... as torch
    grads = {k: np.array(p.grad) for k, p in dict(model.named_parameters()).items()}
    buffers = {k: v for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    eval_model = build_net(info, np.random.default_rng(0))
    eval_model.load_state_dict(model.state_dict())
    eval_model.eval()
    eval_logits = np.array(eval_model(x), dtype=np.float64)

    def rel(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))

    def compare(c_logits, c_loss, c_grads, c_buffers, c_eval_logits) -> dict:
        if set(c_grads) != set(grads) or set(c_buffers) != set(buffers):
            raise RuntimeError(f"throughput.agreement({info.name}): the contenders' parameters differ: tinycnn "
                               f"{sorted(grads)} {sorted(buffers)}, other {sorted(c_grads)} {sorted(c_buffers)}")
        return {"logits": rel(c_logits, logits), "loss": abs(c_loss - loss) / abs(loss),
                "gradients": max(rel(c_grads[k], grads[k]) for k in grads),
                "buffers": max((rel(c_buffers[k], buffers[k]) for k in buffers), default=0.0),
                "eval_logits": rel(c_eval_logits, eval_logits)}

    out = {}
    if info.zoo is None:                        # the plain-NumPy engine implements only chains
        net = build_numpy(train_info.spec, state)
        n_out = net.forward(x)
        n_logits = n_out.copy()
        n_loss, n_grad = npe.softmax_cross_entropy(n_out, labels)
        net.backward(n_grad)
        n_buffers = {f"{i}.{name}": getattr(layer, name) for i, layer in enumerate(net.layers)
                     if isinstance(layer, npe.BatchNorm) for name in ("running_mean", "running_var")}
        n_eval = build_numpy(info.spec, {**state, **n_buffers}).eval().forward(x)
        out["numpy"] = compare(n_logits, n_loss, net.named_grads(), n_buffers, n_eval)
    if use_torch:
        import torch
        import torch.nn.functional as F

        tmodel = build_torch_net(train_info, state)
        tx, tl = torch.from_numpy(x), torch.from_numpy(labels)
        t_logits = tmodel(tx)
        t_loss = F.cross_entropy(t_logits, tl)
        t_loss.backward()
        t_grads = {k: p.grad.numpy() for k, p in dict(tmodel.named_parameters()).items()}
        t_state = {k: v.numpy() for k, v in tmodel.state_dict().items()}
        t_buffers = {k: v for k, v in t_state.items() if k.endswith(("running_mean", "running_var"))}
        t_eval_model = build_torch_net(info, t_state).eval()
        with torch.inference_mode():
            t_eval = t_eval_model(tx).numpy()
        out["pytorch"] = compare(t_logits.detach().numpy(), t_loss.item(), t_grads, t_buffers, t_eval)
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
