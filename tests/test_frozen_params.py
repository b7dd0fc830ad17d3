"""Frozen parameters (``requires_grad`` False): no update, no weight decay, no state change.

torch.optim is the oracle: there a frozen parameter has no gradient and every optimizer skips it.
Drawn by hypothesis: the optimizer, its momentum / weight decay options, and which parameters are
frozen; both sides get the same gradients for the trainable ones (the frozen ones get a gradient
here too -- tinycnn's layers still compute it -- and none in torch), and after every step the frozen
ones must equal their initial values bit for bit, the trainable ones torch's within
TORCH_F64_REL_TOL, and the frozen ones' momentum and moment arrays must be untouched.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_optim import make_problem
from tolerances import TORCH_F64_REL_TOL

import tinycnn as tc

OPTIONS = {
    "SGD": st.fixed_dictionaries({"lr": st.sampled_from([0.01, 0.1]), "momentum": st.sampled_from([0.0, 0.9]),
                                  "weight_decay": st.sampled_from([0.0, 0.1])}),
    "Adam": st.fixed_dictionaries({"lr": st.just(0.01), "weight_decay": st.sampled_from([0.0, 0.1]),
                                   "amsgrad": st.booleans()}),
    "AdamW": st.fixed_dictionaries({"lr": st.just(0.01), "weight_decay": st.sampled_from([0.01, 0.3])}),
    "RMSprop": st.fixed_dictionaries({"lr": st.just(0.01), "momentum": st.sampled_from([0.0, 0.9]),
                                      "weight_decay": st.sampled_from([0.0, 0.1]), "centered": st.booleans()}),
}
STATE_ARRAYS = {"SGD": ["momentum_buffers"], "Adam": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                "AdamW": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                "RMSprop": ["square_avg", "momentum_buffer", "grad_avg"]}


@st.composite
def cases(draw):
    cls = draw(st.sampled_from(sorted(OPTIONS)))
    return cls, draw(OPTIONS[cls]), draw(st.lists(st.booleans(), min_size=3, max_size=3))


@given(case=cases(), decoupled=st.booleans())
def test_frozen_parameters_are_skipped_as_torch_skips_them(torch, case, decoupled):
    cls, options, frozen = case
    if cls == "SGD" and decoupled:
        options = {**options, "decoupled_weight_decay": True}
    params0, grads = make_problem(41, np.float64)
    ours = [tc.Parameter(p.copy(), requires_grad=not f) for p, f in zip(params0, frozen)]
    theirs = [torch.tensor(p.copy(), requires_grad=not f) for p, f in zip(params0, frozen)]
    opt = getattr(tc, cls)(ours, **options)
    topt = None
    if not (cls == "SGD" and decoupled):                    # torch's SGD has no decoupled decay
        topt = getattr(torch.optim, cls)(theirs, **options)
    for step, gs in enumerate(grads):
        for p, tp, g, f in zip(ours, theirs, gs, frozen):
            p.grad = g.copy()                               # frozen too: the layers still compute it
            tp.grad = None if f else torch.tensor(g.copy())
        opt.step()
        if topt is not None:
            with torch.no_grad():
                topt.step()
        for i, (p, tp, f) in enumerate(zip(ours, theirs, frozen)):
            if f:
                np.testing.assert_array_equal(p.data, params0[i], err_msg=f"{cls} {options}: frozen param {i} moved")
            elif topt is not None:
                t = tp.detach().numpy()
                assert np.abs(p.data - t).max() <= TORCH_F64_REL_TOL * np.abs(t).max(), (cls, options, i, step)
            else:
                assert not np.array_equal(p.data, params0[i])
    for key in STATE_ARRAYS[cls]:
        for i, f in enumerate(frozen):
            arr = getattr(opt, key)[i]
            if f:
                assert arr is None or not arr.any(), f"{cls}: {key}[{i}] of a frozen parameter changed"


def test_requires_grad_flag_and_helpers():
    p = tc.Parameter(np.zeros(3))
    assert p.requires_grad is True
    assert p.requires_grad_(False) is p and p.requires_grad is False and "requires_grad=False" in repr(p)
    with pytest.raises(TypeError, match=r"Parameter.requires_grad must be True or False, got 1 \(int\)"):
        p.requires_grad = 1
    with pytest.raises(TypeError, match="Parameter.requires_grad must be True or False, got 'no'"):
        tc.Parameter(np.zeros(2), requires_grad="no")
    rng = np.random.default_rng(0)
    block = tc.Residual(tc.Sequential(tc.Conv2D(2, 2, 3, padding=1, rng=rng), tc.BatchNorm2D(2)))
    model = tc.Sequential(tc.Conv2D(1, 2, 3, padding=1, rng=rng), block, tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng),
                          input_shape=(1, 4, 4))
    assert block.requires_grad_(False) is block
    assert [p.requires_grad for p in block.parameters()] == [False] * 4
    total = model.count_params()
    frozen = sum(p.data.size for p in block.parameters())
    assert model.count_params(trainable_only=True) == total - frozen
    text = model.summary(print_fn=None)
    assert "Frozen params:" in text and f"{frozen:,} of them" in text
    assert model.requires_grad_(True) is model and all(p.requires_grad for p in model.parameters())
    assert "Frozen params" not in model.summary(print_fn=None)


def test_state_dict_keeps_frozen_parameters_and_loading_keeps_the_flags():
    rng = np.random.default_rng(1)
    a = tc.Sequential(tc.Dense(3, 2, rng=rng), tc.BatchNorm1D(2))
    b = tc.Sequential(tc.Dense(3, 2, rng=rng), tc.BatchNorm1D(2))
    a[0].requires_grad_(False)
    b[1].weight.requires_grad = False
    assert set(a.state_dict()) == set(b.state_dict()) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                                          "1.running_var", "1.num_batches_tracked"}
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b[0].weight.data, a[0].weight.data)
    assert [p.requires_grad for p in b.parameters()] == [True, True, False, True]   # the model's, not the file's


@pytest.mark.parametrize("fast", [True, False])
def test_batch_norm_with_a_frozen_scale_trains_end_to_end(fast):
    """fit with SGD, momentum and (coupled) weight decay: the frozen scale stays exactly 1 although its
    gradient is computed; the shift and the convolution move."""
    rng = np.random.default_rng(3)
    model = tc.Sequential(tc.Conv2D(1, 4, 3, padding=1, rng=rng), tc.BatchNorm2D(4), tc.ReLU(), tc.Flatten(),
                          tc.Dense(4 * 6 * 6, 3, rng=rng))
    bn = model[1]
    bn.weight.requires_grad = False
    conv0, bias0 = model[0].weight.data.copy(), bn.bias.data.copy()
    model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1))
    x = rng.standard_normal((16, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    from tinycnn import fast as fast_mod
    ctx = fast_mod.switch.off() if not fast else contextlib.nullcontext()
    with ctx:
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.weight.data, np.ones(4, dtype=np.float32))
    if fast:      # the executor writes no .grad for a frozen parameter (torch leaves its .grad alone too)
        assert np.abs(bn.weight.grad).max() == 0, "the executor wrote a frozen parameter's gradient"
    else:         # the plain layer still computes it; the optimizer skips it
        assert np.abs(bn.weight.grad).max() > 0, "the plain layer's gradient is missing"
    assert not np.array_equal(bn.bias.data, bias0) and not np.array_equal(model[0].weight.data, conv0)
    assert model.optimizer.momentum_buffers[model.parameters().index(bn.weight)] is None

