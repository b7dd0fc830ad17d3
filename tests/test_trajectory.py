"""The training-trajectory test, as llm.c does for GPT-2: the same network trained in tinycnn and in
PyTorch from the same initial weights on the same batches must follow the same path.

The network is the seed's Keras-style CNN on 3x32x32 input::

    Conv 3->32 k3, ReLU, MaxPool 2, Conv 32->64 k3, ReLU, MaxPool 2, Conv 64->128 k3, ReLU, MaxPool 2,
    Flatten, Dense 512->10

tinycnn initialises it (through a seeded rng); the weights move to torch.nn.Sequential with
``load_state_dict`` (the keys must match torch's as they are). Then 10 steps of SGD (momentum 0.9,
nesterov, weight decay) and, separately from the same start, 10 steps of Adam (with weight decay), in
float64: every loss and every final weight agree within TRAJECTORY_F64_REL_TOL (1e-9, max-norm
relative per tensor).

Why float64 only: a float32 trajectory has no bound that can be derived in advance. The two sides
round differently (by up to 2*gamma_n*S per op, tests/tolerances.py), and max pooling is not
continuous: when two entries of a window are within that rounding difference of each other, the two
sides can pick different winners and route a whole gradient to different pixels, which no rounding
bound covers. Such near-ties in float32 over ~10^5 windows per step are expected, not rare, so any
fixed bound would be a tuned one. In float64 the rounding differences are ~1e-16 and the random data
keeps window entries far further apart than that.
"""
from __future__ import annotations

import numpy as np
import pytest
from tolerances import TRAJECTORY_F64_REL_TOL

import tinycnn as tc

BATCH = 8
STEPS = 10


def tinycnn_model(rng, dtype=np.float64):
    return tc.Sequential(
        tc.Conv2D(3, 32, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(32, 64, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(64, 128, 3, dtype=dtype, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(512, 10, dtype=dtype, rng=rng),
    )


def torch_model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512, 10),
    ).double()


def compare(name, ours, theirs, rel=TRAJECTORY_F64_REL_TOL):
    """Return None if within ``rel`` (max-norm relative), else a line saying which tensor, how far, where."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        return f"{name}: shape {ours.shape} vs torch {theirs.shape}"
    diff = np.abs(ours - theirs)
    scale = float(np.abs(theirs).max()) if theirs.size else 0.0
    worst = float(diff.max()) if diff.size else 0.0
    if worst <= rel * scale:
        return None
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    return (f"{name} NOT OK: max diff {worst:.3e} at {where} (tinycnn {ours[where]:.17g}, "
            f"torch {theirs[where]:.17g}), allowed {rel:.0e} * max|torch| {scale:.3e}")


def make_optimizers(torch, which, ours_params, theirs_params):
    if which == "sgd":
        kw = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return tc.SGD(ours_params, **kw), torch.optim.SGD(theirs_params, **kw)
    kw = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    return tc.Adam(ours_params, **kw), torch.optim.Adam(theirs_params, **kw)


def run_trajectories(torch, which: str, seed: int = 0, steps: int = STEPS, batch: int = BATCH):
    """Train both from the same start on the same batches. Returns (ours, theirs): each a dict with
    the per-step losses and the final state_dict (numpy arrays)."""
    rng = np.random.default_rng(seed)
    ours = tinycnn_model(rng)
    theirs = torch_model(torch)
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}, strict=True)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt, topt = make_optimizers(torch, which, ours.parameters(), theirs.parameters())
    losses, tlosses = [], []
    for _ in range(steps):
        x = rng.standard_normal((batch, 3, 32, 32))                   # the same batch for both
        y = rng.integers(0, 10, batch)
        losses.append(loss_fn(ours(x), y))
        opt.zero_grad()
        ours.backward(loss_fn.backward())
        opt.step()

        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        tlosses.append(tloss.item())
    tstate = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    return ({"losses": np.array(losses), "state": ours.state_dict()},
            {"losses": np.array(tlosses), "state": tstate})


def test_state_dict_keys_match_torch_sequential(torch):
    ours = tinycnn_model(np.random.default_rng(0)).state_dict()
    theirs = torch_model(torch).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


@pytest.mark.parametrize("which", ["sgd", "adam"])
def test_training_trajectory_matches_torch(torch, which):
    ours, theirs = run_trajectories(torch, which)
    problems = []
    for step, (a, b) in enumerate(zip(ours["losses"], theirs["losses"])):
        if abs(a - b) > TRAJECTORY_F64_REL_TOL * abs(b):
            problems.append(f"loss at step {step} NOT OK: tinycnn {a:.17g}, torch {b:.17g}, "
                            f"diff {abs(a - b):.3e}, allowed {TRAJECTORY_F64_REL_TOL:.0e} * |torch|")
    assert list(ours["state"]) == list(theirs["state"])
    for key in theirs["state"]:
        line = compare(f"final weight {key}", ours["state"][key], theirs["state"][key])
        if line:
            problems.append(line)
    assert not problems, f"{which} trajectory differs from torch:\n" + "\n".join(problems)
    # The weights moved: a trajectory test on a model that does not train would prove little.
    start = tinycnn_model(np.random.default_rng(0)).state_dict()
    moved = max(float(np.abs(ours["state"][k] - start[k]).max()) for k in start)
    assert moved > 1e-4, f"weights moved by at most {moved:.2e} in {STEPS} steps"
    assert ours["losses"][-1] != ours["losses"][0]
