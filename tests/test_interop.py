"""PyTorch interop: tinycnn -> torch.nn.Sequential -> tinycnn, weights exact, outputs equal."""
import sys

import numpy as np
import pytest
from tolerances import TORCH_F64_REL_TOL, assert_rel_close

import tinycnn as tc
from tinycnn.interop import from_torch_module, load_torch_state_dict, to_torch_module, to_torch_state_dict

F64 = np.float64


def every_layer_model(dtype=F64, dropout=True, seed=0):
    """One of each layer, with the awkward cases: non-square kernel and stride, padding, overlapping
    max-pool windows with padding, a bias-free conv, avg-pool with padding.

    x: (N, 3, 11, 9) -> conv (5, 6, 8) -> maxpool k3 s2 p1 (5, 3, 4) -> conv p1 (4, 3, 4)
      -> avgpool k2 s1 p1 (4, 4, 5) -> flatten 80 -> dense 6
    """
    rng = np.random.default_rng(seed)
    layers = [
        tc.Conv2D(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), dtype=dtype, rng=rng),
        tc.BatchNorm2D(5, dtype=dtype),
        tc.ReLU(),
        tc.MaxPool2D(3, stride=2, padding=1),
        tc.Conv2D(5, 4, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        tc.Tanh(),
        tc.AvgPool2D(2, stride=1, padding=1),
        tc.Sigmoid(),
    ]
    if dropout:
        layers.append(tc.Dropout(0.3, rng=rng))
    layers += [tc.Flatten(), tc.Dense(80, 6, dtype=dtype, rng=rng), tc.Softmax()]
    model = tc.Sequential(*layers)
    bn = model[1]
    bn.weight.data[...] = rng.uniform(0.5, 1.5, 5)
    bn.bias.data[...] = rng.normal(size=5)
    for _ in range(3):                                   # non-trivial running statistics
        model(rng.normal(size=(4, 3, 11, 9)).astype(dtype))
    return model


def inputs(dtype=F64, seed=1):
    return np.random.default_rng(seed).normal(size=(2, 3, 11, 9)).astype(dtype)   # (N, C, H, W)


def test_round_trip_eval_mode_outputs_and_states(torch):
    model = every_layer_model().eval()
    x = inputs()
    seq = to_torch_module(model)
    assert not seq.training
    assert [type(m).__name__ for m in seq] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "Tanh",
                                              "AvgPool2d", "Sigmoid", "Dropout", "Flatten", "Linear", "Softmax"]
    with torch.no_grad():
        theirs = seq(torch.from_numpy(x)).numpy()
    ours = model(x)
    assert theirs.dtype == np.float64
    assert_rel_close(ours, theirs, TORCH_F64_REL_TOL, name="tinycnn vs torch output")

    # torch's state dict holds exactly tinycnn's numbers, under the same keys
    ts = seq.state_dict()
    ours_state = model.state_dict()
    assert list(ts) == list(ours_state)
    for k, v in ts.items():
        assert np.array_equal(v.numpy(), ours_state[k]) and v.numpy().dtype == ours_state[k].dtype, k
    assert ts["1.num_batches_tracked"].item() == 3 and ts["1.num_batches_tracked"].dtype == torch.int64

    # and back: the same layers, the same numbers, the same outputs bit for bit
    back = from_torch_module(seq)
    assert [repr(a) for a in back] == [repr(b) for b in model]
    assert not back.training
    back_state = back.state_dict()
    for k in ours_state:
        assert np.array_equal(back_state[k], ours_state[k]) and back_state[k].dtype == ours_state[k].dtype, k
    assert np.array_equal(back(x), ours)


def test_train_mode_batchnorm_forward_and_running_stats_match(torch):
    model = every_layer_model(dropout=False).train()
    seq = to_torch_module(model)
    assert seq.training
    x = inputs(seed=3)
    ours = model(x)
    theirs = seq(torch.from_numpy(x)).detach().numpy()
    assert_rel_close(ours, theirs, TORCH_F64_REL_TOL, name="train-mode output")
    for key in ("1.running_mean", "1.running_var"):
        assert_rel_close(model.state_dict()[key], seq.state_dict()[key].numpy(), TORCH_F64_REL_TOL, name=key)
    assert model.state_dict()["1.num_batches_tracked"] == seq.state_dict()["1.num_batches_tracked"].item() == 4


def test_load_weights_trained_in_torch(torch):
    model = every_layer_model()
    seq = to_torch_module(model)
    opt = torch.optim.SGD(seq.parameters(), lr=0.1)
    loss = seq(torch.from_numpy(inputs())).square().sum()       # any loss: the weights just have to move
    loss.backward()
    opt.step()
    fresh = every_layer_model(seed=7)
    load_torch_state_dict(fresh, seq)                            # an nn.Module works, as does a dict
    for k, v in seq.state_dict().items():
        assert np.array_equal(fresh.state_dict()[k], v.numpy()), k
    assert not np.array_equal(fresh.state_dict()["0.weight"], model.state_dict()["0.weight"])
    exported = to_torch_state_dict(fresh)
    assert all(torch.equal(exported[k], v) for k, v in seq.state_dict().items())


def test_float32_round_trip_keeps_dtype_and_exact_weights(torch):
    model = every_layer_model(dtype=np.float32).eval()
    seq = to_torch_module(model)
    assert seq[0].weight.dtype == torch.float32
    back = from_torch_module(seq)
    assert back[0].weight.data.dtype == np.float32
    for k, v in model.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    x = inputs(np.float32)
    assert np.array_equal(back(x), model(x))


def test_mismatched_state_is_named_and_nothing_changes(torch):
    model = every_layer_model()
    before = model.state_dict()
    state = to_torch_state_dict(model)
    state["10.weight"] = torch.zeros(7, 80, dtype=torch.float64)
    del state["0.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\].*10.weight: model \(6, 80\) vs given \(7, 80\)"):
        load_torch_state_dict(model, state)
    for k, v in model.state_dict().items():
        assert np.array_equal(v, before[k]), k


def test_unsupported_layers_and_options_are_named(torch):
    class Odd(tc.ReLU):
        pass

    with pytest.raises(TypeError, match=r"to_torch_module: layer 1 \(.*\) has no PyTorch equivalent"):
        to_torch_module(tc.Sequential(tc.ReLU(), Odd()))
    nn = torch.nn
    with pytest.raises(ValueError, match=r"module 1 \(MaxPool2d.*\) uses return_indices=True \(a tinycnn layer "
                                         r"returns one array\), which tinycnn does not implement"):
        from_torch_module(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True)))
    # torch builds this module and refuses it only when it runs; tinycnn's layer refuses it at once
    with pytest.raises(ValueError, match=r"module 0 \(AvgPool2d.*\) cannot be built as a tinycnn AvgPool2D: "
                                         r"AvgPool2D.*padding 2 is more than half the kernel height 2"):
        from_torch_module(nn.Sequential(nn.AvgPool2d(2, padding=2)))
    with pytest.raises(TypeError, match=r"module 0 \(ELU.*\) has no tinycnn equivalent"):
        from_torch_module(nn.Sequential(nn.ELU()))
    with pytest.raises(TypeError, match="expected a torch.nn.Sequential, got Linear"):
        from_torch_module(nn.Linear(2, 2))


def test_convolution_and_pooling_options_import_from_torch(torch):
    """groups (depthwise too), dilation, padding 'same' (even kernel) / 'valid' / numbers, every
    padding_mode, ceil_mode, count_include_pad=False and divisor_override: from_torch_module builds the
    same network (forward, input gradient and every weight gradient within 1e-10 in float64), and
    to_torch_module gives back modules with the same options."""
    nn = torch.nn
    torch.manual_seed(0)
    features = [nn.Conv2d(2, 4, (2, 3), padding="same", dilation=(2, 1), groups=2, padding_mode="reflect"),
                nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                nn.Conv2d(4, 4, 3, padding="valid", groups=4, bias=False),
                nn.Conv2d(4, 6, 3, stride=(1, 2), padding=(1, 2), padding_mode="circular"), nn.ReLU(),
                nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(6, 3, 1, padding=1, padding_mode="replicate"),
                nn.AvgPool2d(2, stride=1, padding=1, divisor_override=3), nn.Flatten()]
    x = torch.randn(2, 2, 17, 15, dtype=torch.float64, requires_grad=True)
    width = nn.Sequential(*features).double()(x).shape[1]
    net = nn.Sequential(*features, nn.Linear(width, 2)).double()
    model = from_torch_module(net)
    y = net(x)
    g = torch.randn_like(y)
    y.backward(g)
    assert_rel_close(model(x.detach().numpy()), y.detach().numpy(), TORCH_F64_REL_TOL, "forward")
    assert_rel_close(model.backward(g.numpy()), x.grad.numpy(), TORCH_F64_REL_TOL, "grad x")
    grads = {k: p.grad for k, p in model.named_parameters()}
    for k, p in net.named_parameters():
        assert_rel_close(grads[k], p.grad.numpy(), TORCH_F64_REL_TOL, f"grad {k}")
    back = to_torch_module(model)
    options = ("padding", "dilation", "groups", "padding_mode", "stride", "ceil_mode", "count_include_pad",
               "divisor_override")
    for mine, theirs in zip(back, net):
        assert type(mine) is type(theirs)
        for name in options:
            if hasattr(theirs, name):
                assert _pair_or_str(getattr(mine, name)) == _pair_or_str(getattr(theirs, name)), (theirs, name)


def _pair_or_str(v):
    return (v, v) if isinstance(v, int) and not isinstance(v, bool) else (tuple(v) if isinstance(v, list) else v)


def test_missing_torch_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)          # makes `import torch` raise ImportError
    with pytest.raises(ImportError, match=r"pip install torch"):
        to_torch_state_dict(tc.Sequential(tc.Dense(2, 2)))
