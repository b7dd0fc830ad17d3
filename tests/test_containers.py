"""Residual and Concat: gradients routed by hand through forks, checked four ways.

* finite differences and the adjoint identity (float64) on every parameter and the input;
* torch as the oracle: a residual/inception network written here as a torch module tree imports with
  ``interop.from_torch_module``, gives the same forward and every gradient within 1e-10 (float64),
  and exports back to an equal state dict; hypothesis draws the block configurations;
* float32 against torch within a derived reduction bound;
* shape inference, summary rows, state_dict keys, train/eval propagation and empty batches.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tolerances import ADJOINT_REL_TOL, FD_REL_TOL, TORCH_F64_REL_TOL, assert_close_reduction, assert_rel_close

import tinycnn as tc
from tinycnn.gradcheck import check_layer
from tinycnn.interop import from_torch_module, to_torch_module
from tinycnn.layers.containers import Concat, Residual

F64 = np.float64


# -- torch module trees of the same structure -------------------------------------------------------

def torch_modules(torch):
    nn, F = torch.nn, torch.nn.functional

    class BasicBlock(nn.Module):
        """He et al.'s basic block, as commonly written: out += shortcut; F.relu(out)."""

        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                                       nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                       nn.BatchNorm2d(c_out))
            self.shortcut = None
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            out = self.block(x)
            out += x if self.shortcut is None else self.shortcut(x)
            return F.relu(out)

    class PostBlock(nn.Module):
        """post(block(x) + x) with the post a child module."""

        def __init__(self, c):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.Tanh())
            self.post = nn.Sigmoid()

        def forward(self, x):
            return self.post(self.block(x) + x)

    class Inception(nn.ModuleList):
        def __init__(self, branches, dim=1):
            super().__init__(branches)
            self.dim = dim

        def forward(self, x):
            return torch.cat([b(x) for b in self], dim=self.dim)

    return BasicBlock, PostBlock, Inception


def torch_resnet(torch, seed=0, widths=(4, 6), c_in=3):
    BasicBlock, PostBlock, Inception = torch_modules(torch)
    nn = torch.nn
    torch.manual_seed(seed)
    a, b = widths
    net = nn.Sequential(
        nn.Conv2d(c_in, a, 3, padding=1, bias=False), nn.BatchNorm2d(a), nn.ReLU(),
        BasicBlock(a, a, 1),                       # identity shortcut
        BasicBlock(a, b, 2),                       # projection shortcut, stride 2
        PostBlock(b),
        Inception([nn.Conv2d(b, 2, 1), nn.Sequential(nn.Conv2d(b, 3, 3, padding=1), nn.ReLU()),
                   nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(b, 1, 1))]),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
    for m in net.modules():                        # batch norm away from its 1, 0 start
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.double()


def torch_grads(torch, net, x, u):
    xt = torch.tensor(x, requires_grad=True)
    yt = net(xt)
    yt.backward(torch.tensor(u))
    return yt.detach().numpy(), xt.grad.numpy(), {k: p.grad.numpy() for k, p in net.named_parameters()}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_torch_residual_network_imports_matches_and_exports_back(torch, mode):
    net = torch_resnet(torch)
    model = from_torch_module(net)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 3, 8, 8))
    if mode == "eval":                              # running statistics that are not 0 and 1
        net.train()
        with torch.no_grad():
            net(torch.tensor(rng.standard_normal((4, 3, 8, 8))))
        model = from_torch_module(net)
        net.eval(), model.eval()
    assert model.training == (mode == "train")
    assert all(layer.training == (mode == "train") for layer in model.layers)
    assert model.layers[3].block.layers[1].training == (mode == "train")      # nested layers follow
    y = model(x)
    u = rng.standard_normal(y.shape)
    y_t, gx_t, gp_t = torch_grads(torch, net, x, u)
    gx = model.backward(u)
    assert_rel_close(y, y_t, TORCH_F64_REL_TOL, "y")
    assert_rel_close(gx, gx_t, TORCH_F64_REL_TOL, "grad x")
    ours = dict(model.named_parameters())
    assert list(ours) == list(gp_t)                 # same keys, same order
    for key, g in gp_t.items():
        assert_rel_close(ours[key].grad, g, TORCH_F64_REL_TOL, f"grad {key}")
    # running statistics after the training forward: both sides updated them the same way
    theirs = net.state_dict()
    mine = model.state_dict()
    assert sorted(mine) == sorted(theirs)          # same keys (Sequential lists a container's buffers last)
    for key, v in theirs.items():
        assert_rel_close(mine[key], v.numpy(), TORCH_F64_REL_TOL, key)
    # and back: an equal state dict, an equal forward
    back = to_torch_module(model)
    assert list(back.state_dict()) == list(theirs)   # the exported tree: torch's own order
    for key, v in back.state_dict().items():
        assert np.array_equal(v.numpy(), mine[key]), key
    assert back.training == model.training
    with torch.no_grad():
        back.eval(), net.eval()
        xt = torch.tensor(x)
        assert_rel_close(back(xt).numpy(), net(xt).numpy(), TORCH_F64_REL_TOL, "exported forward")


@st.composite
def residual_configs(draw):
    return dict(c=draw(st.integers(1, 4)), c_out=draw(st.integers(1, 4)), stride=draw(st.sampled_from([1, 2])),
                size=draw(st.integers(3, 6)), n=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**31)),
                post=draw(st.sampled_from(["none", "relu", "module"])))


def build_torch_residual(torch, cfg):
    """A one-block network from a drawn configuration: shortcut identity when it can be."""
    nn = torch.nn
    c, o, s = cfg["c"], cfg["c_out"], cfg["stride"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(c, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.Tanh())
            self.shortcut = None if (c == o and s == 1) else nn.Conv2d(c, o, 1, s)
            if cfg["post"] == "module":
                self.post = nn.Sigmoid()

        def forward(self, x):
            z = self.block(x) + (x if self.shortcut is None else self.shortcut(x))
            if cfg["post"] == "relu":
                return torch.relu(z)
            return self.post(z) if cfg["post"] == "module" else z

    torch.manual_seed(cfg["seed"] % 2**31)
    return nn.Sequential(Block()).double()


@given(cfg=residual_configs())
def test_residual_blocks_match_torch_over_drawn_configurations(torch, cfg):
    net = build_torch_residual(torch, cfg)
    model = from_torch_module(net)
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["size"], cfg["size"]))
    y = model(x)
    u = rng.standard_normal(y.shape)
    y_t, gx_t, gp_t = torch_grads(torch, net, x, u)
    assert_rel_close(y, y_t, TORCH_F64_REL_TOL, "y")
    assert_rel_close(model.backward(u), gx_t, TORCH_F64_REL_TOL, "grad x")
    ours = dict(model.named_parameters())
    for key, g in gp_t.items():
        assert_rel_close(ours[key].grad, g, TORCH_F64_REL_TOL, f"grad {key}")


@given(widths=st.lists(st.integers(1, 3), min_size=1, max_size=4), dim=st.sampled_from([1, 2, 3, -1, -2, -3]),
       seed=st.integers(0, 2**31))
def test_concat_matches_torch_along_any_dim(torch, widths, dim, seed):
    """Branches with different sizes along the concatenation axis (channels, height or width)."""
    _, _, Inception = torch_modules(torch)
    nn = torch.nn
    axis = dim % 4                                  # of (N, C, H, W)
    branches = []
    for w in widths:                                # each branch changes only the size along `axis`
        if axis == 1:
            branches.append(nn.Conv2d(2, w, 1))
        elif axis == 2:
            branches.append(nn.Sequential(nn.Conv2d(2, 3, (w, 1), padding=(w, 0)), nn.Tanh()))
        else:
            branches.append(nn.Sequential(nn.Conv2d(2, 3, (1, w), padding=(0, w)), nn.Tanh()))
    torch.manual_seed(seed)
    net = nn.Sequential(Inception(branches, dim=dim)).double()
    model = from_torch_module(net)
    assert model.layers[0].dim == dim
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 4, 3))
    y = model(x)
    u = rng.standard_normal(y.shape)
    y_t, gx_t, gp_t = torch_grads(torch, net, x, u)
    assert_rel_close(y, y_t, TORCH_F64_REL_TOL, "y")
    assert_rel_close(model.backward(u), gx_t, TORCH_F64_REL_TOL, "grad x")
    for key, g in gp_t.items():
        assert_rel_close(dict(model.named_parameters())[key].grad, g, TORCH_F64_REL_TOL, f"grad {key}")


# -- finite differences and the adjoint test --------------------------------------------------------

def small_graphs(rng):
    """Residual (identity, projection, post) and Concat (mixed branches), float64."""
    conv = lambda c, o, k=3, **kw: tc.Conv2D(c, o, k, dtype=F64, rng=rng, **kw)   # noqa: E731
    bn = tc.BatchNorm2D(3, dtype=F64)
    bn.weight.data[...] = rng.uniform(0.5, 1.5, 3)
    return {
        "identity": Residual(tc.Sequential(conv(3, 3, padding=1, bias=False), bn, tc.Tanh(), conv(3, 3, padding=1))),
        "projection+post": Residual(tc.Sequential(conv(3, 2, stride=2, padding=1), tc.Sigmoid()),
                                    shortcut=conv(3, 2, 1, stride=2), post=tc.Tanh()),
        "concat": Concat(conv(3, 2, 1), tc.Sequential(conv(3, 1, padding=1), tc.Tanh()), tc.Sigmoid()),
        "nested": Concat(Residual(conv(3, 3, padding=1)), conv(3, 1, padding=1, bias=False), dim=-3),
    }


@pytest.mark.parametrize("name", ["identity", "projection+post", "concat", "nested"])
def test_containers_pass_finite_differences_and_the_adjoint_test(name):
    rng = np.random.default_rng(3)
    layer = small_graphs(rng)[name]
    report = check_layer(layer, rng.standard_normal((2, 3, 4, 5)), rng=rng, tol=min(FD_REL_TOL, ADJOINT_REL_TOL),
                         adjoint=True)
    assert report.ok, report.table()
    assert {r.tensor for r in report.rows} >= {f"grad {k}" for k in dict(layer.named_parameters())}


def test_the_fork_sums_both_branches_gradients():
    """y = x + x (identity block and identity shortcut): dL/dx = 2 g, not g."""
    layer = Residual(tc.Sequential())
    g = np.random.default_rng(0).standard_normal((2, 3))
    layer.forward(np.ones((2, 3)))
    assert np.array_equal(layer.backward(g), 2 * g)
    cat = Concat(tc.Sigmoid(), tc.Sequential(), dim=-1)           # x fed to both branches
    x = np.random.default_rng(1).standard_normal((2, 3))
    cat.forward(x)
    g2 = np.random.default_rng(2).standard_normal((2, 6))
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(cat.backward(g2), g2[:, :3] * s * (1 - s) + g2[:, 3:], rtol=1e-14)


# -- float32 against torch, derived bound -----------------------------------------------------------

def test_float32_residual_and_concat_of_dense_within_reduction_bounds(torch):
    """Residual(Dense(d, d)): y_i = sum_j x_j W_ij + b_i + x_i, a sum of d + 2 terms, each side rounding
    it its own way: |ours - torch| <= 2 gamma_{d+2} (|x| |W|^T + |b| + |x|). dx = g W + g (d + 1 terms),
    dW = g^T x and db = sum g (N terms each). Concat of two Dense: each slice is a Dense output."""
    rng = np.random.default_rng(5)
    n, d = 7, 9
    dense = tc.Dense(d, d, rng=rng)
    layer = Residual(dense)
    x = rng.standard_normal((n, d)).astype(np.float32)
    u = rng.standard_normal((n, d)).astype(np.float32)
    y = layer.forward(x)
    gx = layer.backward(u)
    lin = torch.nn.Linear(d, d)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(dense.weight.data))
        lin.bias.copy_(torch.from_numpy(dense.bias.data))
    xt = torch.tensor(x, requires_grad=True)
    yt = lin(xt) + xt
    yt.backward(torch.tensor(u))
    w, b = dense.weight.data.astype(F64), dense.bias.data.astype(F64)
    ax, au = np.abs(x.astype(F64)), np.abs(u.astype(F64))
    assert_close_reduction(y, yt.detach().numpy(), d + 2, np.float32, ax @ np.abs(w).T + np.abs(b) + ax, "y")
    assert_close_reduction(gx, xt.grad.numpy(), d + 1, np.float32, au @ np.abs(w) + au, "grad x")
    assert_close_reduction(dense.weight.grad, lin.weight.grad.numpy(), n, np.float32, au.T @ ax, "grad weight")
    assert_close_reduction(dense.bias.grad, lin.bias.grad.numpy(), n, np.float32, au.sum(0), "grad bias")

    d1, d2 = tc.Dense(d, 3, rng=rng), tc.Dense(d, 4, rng=rng)
    cat = Concat(d1, d2)
    y = cat.forward(x)
    gx = cat.backward(u[:, :7])
    xt = torch.tensor(x, requires_grad=True)
    w1, b1, w2, b2 = (torch.tensor(a, requires_grad=True) for a in
                      (d1.weight.data, d1.bias.data, d2.weight.data, d2.bias.data))
    yt = torch.cat([xt @ w1.T + b1, xt @ w2.T + b2], dim=1)
    yt.backward(torch.tensor(u[:, :7]))
    wcat = np.concatenate([d1.weight.data, d2.weight.data]).astype(F64)
    bcat = np.concatenate([d1.bias.data, d2.bias.data]).astype(F64)
    assert_close_reduction(y, yt.detach().numpy(), d + 1, np.float32, ax @ np.abs(wcat).T + np.abs(bcat), "y")
    # dx = g1 W1 + g2 W2: 7 products summed
    assert_close_reduction(gx, xt.grad.numpy(), 7, np.float32, au[:, :7] @ np.abs(wcat), "grad x")
    assert_close_reduction(d2.weight.grad, w2.grad.numpy(), n, np.float32, au[:, 3:7].T @ ax, "grad weight 2")


# -- names, modes, shapes, summary, empty batches ---------------------------------------------------

def test_state_dict_keys_are_the_torch_module_trees(torch):
    net = torch_resnet(torch)
    model = from_torch_module(net)
    assert sorted(model.state_dict()) == sorted(net.state_dict())
    assert "4.shortcut.0.weight" in model.state_dict() and "6.1.0.bias" in model.state_dict()
    # load_state_dict is strict and writes in place through the nested layers
    state = {k: v * 0 + 0.5 if v.dtype.kind == "f" else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert np.all(model.layers[4].shortcut.layers[0].weight.data == 0.5)
    assert np.all(model.layers[4].block.layers[1].running_var == 0.5)
    bad = dict(state)
    del bad["4.block.1.running_mean"]
    with pytest.raises(ValueError, match=r"missing keys \['4.block.1.running_mean'\]"):
        model.load_state_dict(bad)


def test_children_and_modes():
    rng = np.random.default_rng(0)
    conv, bn, relu = tc.Conv2D(2, 2, 1, rng=rng), tc.BatchNorm2D(2), tc.ReLU()
    res = Residual(tc.Sequential(conv, bn), shortcut=tc.Dropout(0.5), post=relu)
    assert [n for n, _ in res.named_children()] == ["block", "shortcut", "post"]
    assert res.children()[2] is relu
    cat = Concat(res, tc.ReLU())
    assert [n for n, _ in cat.named_children()] == ["0", "1"]
    cat.eval()
    assert not bn.training and not res.shortcut.training and not res.training
    cat.train()
    assert bn.training and res.block.training


def test_shape_errors_name_the_branch_the_layer_and_the_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(tc.ShapeError, match=r"block gives \(8, 6, 6\) and the identity shortcut \(x itself\) "
                                            r"gives \(4, 6, 6\).*projection shortcut"):
        tc.Sequential(tc.Conv2D(3, 4, 3, rng=rng), Residual(tc.Conv2D(4, 8, 3, padding=1, rng=rng)),
                      input_shape=(3, 8, 8))
    with pytest.raises(tc.ShapeError, match=r"branch 'shortcut', layer 'shortcut.0' \(Conv2D.*\) cannot take "
                                            r"its per-sample input of shape \(4, 6, 6\): "
                                            r"expected 5 input channels, got 4"):
        tc.Sequential(tc.Conv2D(3, 4, 3, rng=rng),
                      Residual(tc.Conv2D(4, 5, 3, padding=1, rng=rng),
                               shortcut=tc.Sequential(tc.Conv2D(5, 5, 1, rng=rng))), input_shape=(3, 8, 8))
    with pytest.raises(tc.ShapeError, match=r"agree on every axis but the concatenation axis \(dim=1, per-sample "
                                            r"axis 0\): per-sample shapes branch 0: \(4, 6, 6\), "
                                            r"branch 1: \(4, 8, 8\)"):
        tc.Sequential(Concat(tc.Conv2D(3, 4, 3, rng=rng), tc.Conv2D(3, 4, 1, rng=rng)), input_shape=(3, 8, 8))
    with pytest.raises(tc.ShapeError, match=r"dim=4 is out of range for the branches' 4-D outputs"):
        tc.Sequential(Concat(tc.ReLU(), dim=4), input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="Concat: dim=0 is the batch axis"):
        Concat(tc.ReLU(), dim=0)
    with pytest.raises(ValueError, match="Concat: needs at least one branch"):
        Concat()
    with pytest.raises(TypeError, match="Residual: shortcut must be a layer.*got int"):
        Residual(tc.ReLU(), shortcut=3)
    with pytest.raises(TypeError, match="Residual.*input dtype is int64"):
        Residual(tc.ReLU()).forward(np.ones((2, 3), dtype=np.int64))
    res = Residual(tc.ReLU())
    res.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"backward got grad_y of shape \(2, 4\).*\(2, 3\)"):
        res.backward(np.ones((2, 4)))


def test_summary_lists_nested_layers_and_counts_their_macs():
    rng = np.random.default_rng(0)
    model = tc.Sequential(
        tc.Conv2D(3, 4, 3, padding=1, rng=rng),
        Residual(tc.Sequential(tc.Conv2D(4, 4, 3, padding=1, rng=rng), tc.ReLU()),
                 shortcut=tc.Conv2D(4, 4, 1, rng=rng), post=tc.ReLU()),
        Concat(tc.Conv2D(4, 2, 1, rng=rng), tc.Conv2D(4, 3, 3, padding=1, rng=rng)),
        tc.Flatten(), tc.Dense(5 * 8 * 8, 2, rng=rng), input_shape=(3, 8, 8))
    text = model.summary(batch_size=2, print_fn=None)
    hw = 64
    macs = hw * 4 * 27 + hw * 4 * 36 + hw * 4 * 4 + hw * 2 * 4 + hw * 3 * 36 + 320 * 2   # by hand
    assert f"MACs:                    {macs:,} per sample" in text
    assert f"Total params:            {sum(p.data.size for p in model.parameters()):,}" in text
    for path in ("1.block.0", "1.block.1", "1.shortcut", "1.post", "2.0", "2.1"):
        assert any(line.split()[0] == path for line in text.splitlines() if line.strip()), path
    assert tc.shapes.macs_per_sample(model.layers, (3, 8, 8)) == macs


def test_empty_batches_keep_torch_shapes(torch):
    net = torch_resnet(torch).eval()
    model = tc.Sequential(*from_torch_module(net).layers[:8]).eval()     # up to the AvgPool2D
    y = model(np.zeros((0, 3, 8, 8)))
    assert y.shape == tuple(net[:8](torch.zeros(0, 3, 8, 8, dtype=torch.float64)).shape) == (0, 6, 2, 2)
    assert model.backward(np.zeros((0, 6, 2, 2))).shape == (0, 3, 8, 8)


def test_empty_batch_through_flatten():
    assert tc.Flatten().forward(np.zeros((0, 6, 2, 2))).shape == (0, 24)


def test_interop_refuses_what_it_cannot_map_with_path_and_reason(torch):
    nn, F = torch.nn, torch.nn.functional

    class Named(nn.Module):                         # torchvision-style names: keys would differ
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return F.relu(self.conv1(x) + x)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return self.block(x) * 0.5 + x

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Conv2d(2, 2, 1)
            self.extra = nn.Linear(2, 2)

        def forward(self, x):
            return self.block(x) + x

    with pytest.raises(ValueError, match=r"module 1 \(Named\) cannot be mapped: .*children named 'block' and "
                                         r"'shortcut'.*\['conv1'\]"):
        from_torch_module(nn.Sequential(nn.ReLU(), Named()))
    with pytest.raises(ValueError, match=r"module 0 \(Scaled\) cannot be mapped: .*mul"):
        from_torch_module(nn.Sequential(Scaled()))
    with pytest.raises(ValueError, match=r"module 0 \(Unused\) cannot be mapped: its children \['extra'\] are "
                                         r"not used"):
        from_torch_module(nn.Sequential(Unused()))
    _, _, Inception = torch_modules(torch)
    with pytest.raises(ValueError, match=r"module 0.1 \(MaxPool2d\(.*\) uses return_indices=True"):
        from_torch_module(nn.Sequential(Inception([nn.Conv2d(2, 1, 1), nn.MaxPool2d(1, return_indices=True)])))
    with pytest.raises(ValueError, match=r"module 0 \(Inception\) cannot be mapped: it concatenates along dim 0"):
        from_torch_module(nn.Sequential(Inception([nn.Conv2d(2, 1, 1)], dim=0)))
    with pytest.raises(ValueError, match=r"module 0 \(Sequential\) cannot be mapped: an nn.Sequential directly"):
        from_torch_module(nn.Sequential(nn.Sequential(nn.ReLU())))


@pytest.mark.parametrize("nesterov", [False, True])
def test_residual_network_sgd_trajectory_matches_torch(torch, nesterov):
    """Ten SGD steps (momentum, weight decay) on the residual/inception network, batch norm in training:
    every loss, every final weight and every running statistic within TRAJECTORY_F64_REL_TOL of torch's."""
    from tolerances import TRAJECTORY_F64_REL_TOL
    net = torch_resnet(torch, seed=4)
    model = from_torch_module(net)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 8, 8))
    labels = rng.integers(0, 5, 6)
    loss_fn = tc.SoftmaxCrossEntropy()
    opt = tc.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    topt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    xt, lt = torch.tensor(x), torch.tensor(labels)
    for step in range(10):
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(xt), lt)
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) <= TRAJECTORY_F64_REL_TOL * abs(tloss.item()), (step, loss, tloss.item())
    mine = model.state_dict()
    for key, v in net.state_dict().items():
        assert_rel_close(mine[key], v.numpy(), TRAJECTORY_F64_REL_TOL, key)
