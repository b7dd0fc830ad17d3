"""What-if measurements: speed-ups that need changes in files the speed work does not own.

Each variant is a *benchmark-only* subclass of a tinycnn layer, defined here and used nowhere else,
timed interleaved against the shipped layers on the seed CNN training step:

* ``fused ReLU``: ReLU through ``tinycnn.kernels.elementwise`` (one pass forward, a branch-free select
  backward) instead of ``np.maximum`` + ``x > 0`` and ``np.where``. Needs a change in
  tinycnn/layers/activation.py.
* ``ReLU/pool fused`` (on top of the two above): each ReLU followed by MaxPool2D(2) replaced by one
  fused pass each way (``benchmarks/fused.py``). Needs Sequential to recognise the pattern.
* ``no input gradient for layer 0``: the first Conv2D skips computing the gradient of the network's
  input (nobody uses it; PyTorch skips it because the input does not require grad). Needs Sequential
  (tinycnn/model.py) to tell its first layer, e.g. ``layer.backward(g, need_input_grad=False)``.

It also times the shipped step under each split of the cores between Numba's and OpenBLAS's thread
pools (both pools all cores; Numba 1; BLAS 1), the "deliberate split" the issue asks about.

The subclasses compute the same values as the shipped layers (the ReLU kernels are property-tested
against np.maximum / np.where in tests/test_fast_kernels.py); they exist to put a measured number on
each proposal in NOTES.md.
"""
from __future__ import annotations

import numpy as np

import tinycnn as tc
from tinycnn.kernels import elementwise as E
from tinycnn.layers.layout import is_channel_major

from .nets import LR, MOMENTUM, NETS, build_tinycnn
from .throughput import contenders, make_batch
from .timing import interleave, median, thread_count


def _flat(a, channel_major: bool):
    """Memory-order flat copy-free view of a C-ordered or channel-major array (copies other layouts)."""
    a = np.asarray(a)
    if channel_major:
        return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).reshape(-1)
    return np.ascontiguousarray(a).reshape(-1)


def _unflat(f, shape, channel_major: bool):
    if channel_major:
        return f.reshape(shape[1], shape[0], *shape[2:]).transpose(1, 0, 2, 3)
    return f.reshape(shape)


class FusedReLU(tc.ReLU):
    def forward(self, x):
        x = np.asarray(x)
        self._cm, self._shape = is_channel_major(x), x.shape
        y, self._positive = E.relu_forward(_flat(x, self._cm))
        return _unflat(y, self._shape, self._cm)

    def backward(self, grad_y):
        g = E.relu_backward(self._positive, _flat(grad_y, self._cm))
        return _unflat(g, self._shape, self._cm)


def _skip_first_input_grad(model):
    """Make layer 0 (a Conv2D) return None from backward after computing its weight gradients."""
    conv = model.layers[0]
    cls = conv.__class__

    class NoInputGrad(cls):
        def backward(self, grad_y):
            cache = self._need_cache(self._cache)
            g2d = np.ascontiguousarray(np.asarray(grad_y).transpose(1, 0, 2, 3), dtype=self.dtype).reshape(
                self.out_channels, -1)
            k = self.weight.data[0].size
            dw = g2d @ cache.cols.T
            self.weight.grad = np.ascontiguousarray(dw[:, :k]).reshape(self.weight.data.shape)
            if self.bias is not None:
                self.bias.grad = dw[:, k].copy()
            return None

    conv.__class__ = NoInputGrad
    return model


def _fuse_relu_pool(layers):
    """Replace each ReLU followed by MaxPool2D(2) (stride 2, no padding) by one fused layer."""
    from .fused import FusedReLUMaxPool2x2

    out, i = [], 0
    while i < len(layers):
        a, b = layers[i], layers[i + 1] if i + 1 < len(layers) else None
        if (isinstance(a, tc.ReLU) and isinstance(b, tc.MaxPool2D) and b.kernel_size == (2, 2)
                and b.stride == (2, 2) and b.padding == (0, 0)):
            out.append(FusedReLUMaxPool2x2())
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def variant_step(info, batch, fused_relu: bool, skip_input_grad: bool, fuse_pool: bool = False):
    x, labels = make_batch(info, batch)
    model = build_tinycnn(info.spec, np.random.default_rng(0))
    if fuse_pool:
        model.layers = _fuse_relu_pool(model.layers)
    if fused_relu:
        model.layers = [FusedReLU() if isinstance(layer, tc.ReLU) else layer for layer in model.layers]
    if skip_input_grad:
        _skip_first_input_grad(model)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step():
        loss_fn(model(x), labels)
        g = loss_fn.backward()
        for layer in reversed(model.layers):
            g = layer.backward(g)
        opt.step()
    return step, model


def check_same_values(info, batch):
    """The variants must train exactly like the shipped layers: compare weights after two steps."""
    params = []
    for flags in ((False, False, False), (True, True, False), (True, True, True)):
        step, model = variant_step(info, batch, *flags)
        step()
        step()
        params.append([p.data for p in model.parameters()])
    return max(float(np.max(np.abs(a - b))) for other in params[1:] for a, b in zip(params[0], other))


def split_variants(step, cores: int) -> dict:
    """The shipped step under each split of ``cores`` between Numba's and OpenBLAS's thread pools."""
    import numba
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()

    def with_split(numba_threads, blas_threads):
        def run():
            numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
            with ctl.limit(limits=blas_threads, user_api="blas"):
                step()
        return run

    return {f"Numba {a} + BLAS {b} threads": with_split(a, b)
            for a, b in ((cores, cores), (1, cores), (cores, 1))}


def run(threads: list[int], batch: int, rounds: int, reps: int, use_torch: bool, log, net: str = "seed_cnn") -> dict:
    info = NETS[net]
    diff = check_same_values(info, min(batch, 8))
    fns = {
        "tinycnn as shipped": variant_step(info, batch, False, False)[0],
        "+ fused ReLU": variant_step(info, batch, True, False)[0],
        "+ fused ReLU + no layer-0 input grad": variant_step(info, batch, True, True)[0],
        "+ both + ReLU/pool fused": variant_step(info, batch, True, True, True)[0],
    }
    if use_torch:
        fns["pytorch"] = contenders(info, batch, "train", True)["pytorch"]
    out = {"net": net, "batch": batch, "max_weight_diff_after_two_steps": diff, "rows": [], "splits": None}
    log(f"  variants train identically: max |weight difference| after two steps = {diff:.1e}")
    for n in threads:
        with thread_count(n):
            times = interleave(fns, rounds, reps)
        row = {"threads": n, "ms": {k: 1e3 * median(v) for k, v in times.items()}}
        out["rows"].append(row)
        log(f"  {n} thread(s): " + "  ".join(f"{k} {v:.1f} ms" for k, v in row["ms"].items()))
    cores = max(threads)
    if cores > 1:                   # the deliberate split of the cores between the two thread pools
        times = interleave(split_variants(variant_step(info, batch, False, False)[0], cores), rounds, reps)
        out["splits"] = {"cores": cores, "ms": {k: 1e3 * median(v) for k, v in times.items()}}
        log("  thread splits: " + "  ".join(f"{k} {v:.1f} ms" for k, v in out["splits"]["ms"].items()))
    return out
