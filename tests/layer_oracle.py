"""One layer against its torch module: forward, input gradient and every parameter gradient.

    run_both(torch, layer, module, x, rng) -> dict name -> (ours, theirs)

The same input x and the same random upstream gradient u (never ones) go through the tinycnn layer
and the torch module; the module's parameters are first set to the layer's values (by name, so the
names are checked too). Keys: "y", "grad x", "grad <param>", and "<buffer>" for buffers after the
forward (running statistics).
"""
from __future__ import annotations

import numpy as np

from tolerances import TORCH_F64_REL_TOL, assert_rel_close


def run_both(torch, layer, module, x, rng, u=None):
    ours_params = dict(layer.named_parameters())
    theirs_params = dict(module.named_parameters())
    assert list(ours_params) == list(theirs_params), (list(ours_params), list(theirs_params))
    with torch.no_grad():
        for name, p in ours_params.items():
            theirs_params[name].copy_(torch.from_numpy(np.array(p.data)))
        for name, b in dict(layer.named_buffers()).items():
            dict(module.named_buffers())[name].copy_(torch.from_numpy(np.array(b)))
    module.train(layer.training)
    module.zero_grad(set_to_none=True)            # torch accumulates .grad; tinycnn overwrites it
    y = layer.forward(x)
    if u is None:
        u = rng.standard_normal(y.shape).astype(y.dtype)
    gx = layer.backward(u)
    xt = torch.tensor(x, requires_grad=True)
    yt = module(xt)
    yt.backward(torch.tensor(u))
    out = {"y": (y, yt.detach().numpy()), "grad x": (gx, xt.grad.numpy())}
    for name, p in ours_params.items():
        out[f"grad {name}"] = (p.grad, theirs_params[name].grad.numpy())
    theirs_buffers = dict(module.named_buffers())
    for name, b in dict(layer.named_buffers()).items():
        out[name] = (b, theirs_buffers[name].numpy())
    return out


def assert_all_close_f64(pairs, rel=TORCH_F64_REL_TOL):
    for name, (ours, theirs) in pairs.items():
        assert np.asarray(ours).shape == np.asarray(theirs).shape, (name, np.shape(ours), np.shape(theirs))
        assert_rel_close(ours, theirs, rel, name)
