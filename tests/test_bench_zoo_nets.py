"""The benchmark suite's zoo nets (benchmarks/nets.py: resnet20 and mobilenet, built by tinycnn.zoo): their
FLOP count against a hand count, tinycnn's and PyTorch's agreement at batch 2 within the suite's float32
bound, and the report for a result set in which the plain-NumPy contender is missing."""
import numpy as np
import pytest
from conftest import import_torch

U = 2.0 ** -24                     # float32 unit roundoff


def resnet20_layers():
    """ResNet-20 on 3x32x32 (widths 16, 32, 64; 10 classes), written out from He et al.'s description:
    convs as (output side, C_in, C_out, kernel, groups), the stem first; dense layers as (in, out)."""
    convs = [(32, 3, 16, 3, 1)]                                   # stem
    c = 16
    for side, width in ((32, 16), (16, 32), (8, 64)):
        for _ in range(3):                                        # three basic blocks per stage
            convs += [(side, c, width, 3, 1), (side, width, width, 3, 1)]
            if c != width:                                        # projection shortcut where a stage starts
                convs.append((side, c, width, 1, 1))
            c = width
    return convs, [(64, 10)]


def mobilenet_layers():
    """The zoo's MobileNet-style net on 3x32x32 (width 32; 10 classes): a stem, then seven blocks of a
    depthwise 3x3 conv (groups = C_in, carrying the stride) and a pointwise 1x1 conv."""
    convs = [(32, 3, 32, 3, 1)]
    side = 32
    for c_in, c_out, stride in ((32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                                (256, 512, 2), (512, 512, 1)):
        side //= stride
        convs += [(side, c_in, c_in, 3, c_in), (side, c_in, c_out, 1, 1)]
    return convs, [(512, 10)]


def hand_macs(layers) -> list[int]:
    """MACs per image of each layer, first layer first: a conv's OH*OW*C_out*(C_in/groups)*K*K."""
    convs, dense = layers
    return [side * side * c_out * (c_in // groups) * k * k for side, c_in, c_out, k, groups in convs] + \
           [n_in * n_out for n_in, n_out in dense]


HAND = {"resnet20": resnet20_layers, "mobilenet": mobilenet_layers}


def hand_flops(name: str) -> dict[str, int]:
    macs = hand_macs(HAND[name]())
    return {"forward": 2 * sum(macs), "train": 2 * (2 * macs[0] + 3 * sum(macs[1:]))}


def test_hand_counts_are_the_documented_figures():
    """The hand counts themselves: resnet20 40,813,184 MACs (tinycnn's summary), mobilenet 22.9 M, of which
    its seven depthwise convs 1.07 M (benchmarks/PERFORMANCE.md); 21 convs in resnet20, 15 in mobilenet."""
    assert sum(hand_macs(resnet20_layers())) == 40_813_184
    assert len(resnet20_layers()[0]) == 21
    convs, _ = mobilenet_layers()
    assert len(convs) == 15
    assert round(sum(hand_macs(mobilenet_layers())) / 1e6, 1) == 22.9
    depthwise = sum(s * s * co * (ci // g) * k * k for s, ci, co, k, g in convs if g > 1)
    assert round(depthwise / 1e6, 2) == 1.07


@pytest.mark.parametrize("name", ["resnet20", "mobilenet"])
def test_flops_of_zoo_nets_match_the_hand_count(name):
    """forward = 2 * MACs; train = forward + weight gradient + input gradient, without the stem's input
    gradient (2 * (2 * stem + 3 * rest))."""
    from benchmarks.nets import NETS, flops_per_image

    assert flops_per_image(NETS[name]) == hand_flops(name)


@pytest.mark.parametrize("name", ["resnet20", "mobilenet"])
def test_hand_count_matches_the_torch_twin_counted_with_hooks(name):
    """A third count, from what the PyTorch twin's Conv2d and Linear modules really produce on one image:
    output elements x (C_in / groups) x KH x KW, and in x out."""
    torch = import_torch()
    from benchmarks.nets import NETS, build_net, build_torch_net

    info = NETS[name]
    tmodel = build_torch_net(info, build_net(info, np.random.default_rng(0)).state_dict())
    counted = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            counted.append(output[0].numel() * (module.in_channels // module.groups) * kh * kw)
        else:
            counted.append(module.in_features * module.out_features)

    for m in tmodel.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        tmodel.eval()(torch.zeros(1, *info.input_shape))
    assert sum(counted) == sum(hand_macs(HAND[name]()))
    assert counted[0] == hand_macs(HAND[name]())[0]                      # the stem runs first


def test_reduction_lengths_of_zoo_nets_count_grouped_convolutions_per_group():
    """The stem's three sums (fan-in 3*9, batch x positions, fan-out 16*9 / 32*9), and a depthwise conv's:
    9 products forward and 9 for the input gradient (one channel per group), not C*9."""
    from benchmarks.nets import NETS, reduction_lengths

    batch = 2
    res = reduction_lengths(NETS["resnet20"], batch)
    assert res[:3] == [27, batch * 32 * 32, 16 * 9]
    mob = reduction_lengths(NETS["mobilenet"], batch)
    assert mob[:3] == [27, batch * 32 * 32, 32 * 9]
    assert mob[3:7] == [batch * 32 * 32] * 4                             # the stem's batch norm
    assert mob[7:10] == [9, batch * 32 * 32, 9]                          # the first depthwise conv
    assert reduction_lengths(NETS["resnet20"], 4) != res                 # the batch enters


def test_zoo_batchnorm_state_covers_every_batch_norm_with_non_trivial_values():
    from benchmarks.nets import NETS, build_net, zoo_batchnorm_state

    for name, count in (("resnet20", 21), ("mobilenet", 15)):
        state = build_net(NETS[name], np.random.default_rng(0)).state_dict()
        bn = zoo_batchnorm_state(state, np.random.default_rng(2))
        means = [k for k in bn if k.endswith(".running_mean")]
        assert len(means) == count and set(bn) <= set(state), name
        assert all(bn[k].shape == state[k].shape and bn[k].dtype == state[k].dtype for k in bn), name
        assert all(np.all(bn[k] != 0) for k in means)                  # not the fresh zeros
        assert all(np.all(bn[k.replace("running_mean", "running_var")] != 1) for k in means)


@pytest.mark.parametrize("name", ["resnet20", "mobilenet"])
def test_zoo_nets_agree_with_pytorch_at_batch_2(name):
    """Logits, first-step loss, gradients, running statistics and evaluation logits within the suite's bound
    2 * u * (sum of the lengths of all the sums a step forms); no NumPy contender."""
    import_torch()
    from benchmarks.nets import NETS, reduction_lengths
    from benchmarks.throughput import agreement

    info = NETS[name]
    per = agreement(info, 2, use_torch=True)
    bound = 2 * U * sum(reduction_lengths(info, batch=2))
    assert set(per) == {"pytorch"}
    d = per["pytorch"]
    assert set(d) == {"logits", "loss", "gradients", "buffers", "eval_logits"}
    assert max(d.values()) <= bound, (d, bound)
    assert d["buffers"] > 0                                              # the batch norms' statistics moved


def test_agreement_sees_a_wrong_running_statistic(monkeypatch):
    """The check can fail: a PyTorch twin given one batch norm's running mean + 1 trains alike (training
    mode ignores running statistics) but disagrees in its updated buffers and its evaluation logits."""
    import_torch()
    from benchmarks import throughput
    from benchmarks.nets import NETS, reduction_lengths

    info = NETS["resnet20"]
    right = throughput.build_torch_net
    key = "11.block.4.running_mean"                                     # the last block's second batch norm

    def wrong(net, state):
        return right(net, {**state, key: state[key] + 1})

    monkeypatch.setattr(throughput, "build_torch_net", wrong)
    d = throughput.agreement(info, 2, use_torch=True)["pytorch"]
    bound = 2 * U * sum(reduction_lengths(info, batch=2))
    assert max(d["logits"], d["loss"], d["gradients"]) <= bound, d
    assert d["buffers"] > 10 * bound and d["eval_logits"] > 10 * bound, d            # order 1


def test_contenders_of_a_zoo_net_are_tinycnn_and_pytorch():
    import_torch()
    from benchmarks.nets import NETS
    from benchmarks.throughput import contenders

    for mode in ("train", "infer"):
        fns = contenders(NETS["mobilenet"], 2, mode, use_torch=True)
        assert set(fns) == {"tinycnn", "pytorch"}
        for fn in fns.values():
            fn()


def test_chain_nets_build_as_before():
    """build_net of a chain is build_tinycnn of its spec: same layers, same weights from the same seed."""
    from benchmarks.nets import CHAIN_NETS, NETS, build_net, build_tinycnn

    assert CHAIN_NETS == ("seed_cnn", "lenet", "vgg_bn")
    for name in CHAIN_NETS:
        a = build_net(NETS[name], np.random.default_rng(4)).state_dict()
        b = build_tinycnn(NETS[name].spec, np.random.default_rng(4)).state_dict()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name


def _record(net, mode, ips: dict, threads=2, batch=64):
    return {"net": net, "batch": batch, "threads": threads, "mode": mode,
            "contenders": {k: {"median_s": batch / v, "images_per_s": v, "iqr_over_median": 0.0, "samples": 5}
                           for k, v in ips.items()}}


def _table_row(md: str, net: str, mode: str) -> list[str]:
    # the train table's rows (11 cells), not the targets table's rows that start alike
    rows = [line for line in md.splitlines() if line.startswith(f"| {net} | {mode} |") and line.count("|") == 12]
    assert len(rows) == 1, rows
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_report_renders_a_result_set_without_the_numpy_contender(tmp_path):
    """resnet20 rows (tinycnn and PyTorch only) render with '—' for NumPy and its ratio, and their GFLOP/s
    from the hand count; a footnote says why; a chain's row keeps its NumPy figures."""
    from benchmarks import machine, report

    records = [_record("seed_cnn", "train", {"tinycnn": 2000.0, "pytorch": 1000.0, "numpy": 500.0}),
               _record("resnet20", "train", {"tinycnn": 1000.0, "pytorch": 800.0}),
               _record("resnet20", "infer", {"tinycnn": 4000.0, "pytorch": 2000.0})]
    train_flops = hand_flops("resnet20")["train"]                       # 243,994,368 per image
    results = {"quick": False, "machine": machine.facts(), "suite_seconds": 1.0, "train": records,
               "matmul": {2: {"gflops": train_flops * 1000.0 / 1e9 * 4, "size": 2048}},
               "agreement": {"resnet20": {"pytorch": {"logits": 1e-7, "loss": 0.0, "gradients": 1e-6,
                                                      "buffers": 1e-7, "eval_logits": 1e-7}}}}
    md_path, _ = report.write(results, tmp_path)
    md = md_path.read_text()
    cells = _table_row(md, "resnet20", "train")
    # net, mode, batch, threads, tinycnn, PyTorch, NumPy, tc/PyTorch, tc/NumPy, GFLOP/s, of peak
    assert cells[4:] == ["1000", "800", "—", "1.25x", "—", f"{train_flops * 1000 / 1e9:.0f}", "25%"]
    assert _table_row(md, "resnet20", "infer")[9] == f"{hand_flops('resnet20')['forward'] * 4000 / 1e9:.0f}"
    assert _table_row(md, "seed_cnn", "train")[6:9] == ["500", "2.00x", "4.00x"]
    footnote = [line for line in md.splitlines() if line.startswith("—:")]
    assert len(footnote) == 1 and "resnet20" in footnote[0] and "seed_cnn" not in footnote[0]
    assert "only the chains" in footnote[0]
    assert "| resnet20 | PyTorch |" in md

    chains_only = report.train_md(records[:1], None)
    assert not any(line.startswith("—:") for line in chains_only)


@pytest.mark.parametrize("contender", ["tinycnn", "pytorch"])
def test_the_memory_child_trains_a_zoo_net(contender):
    """The peak-memory section measures the zoo nets too: a child process trains resnet20 and
    reports a peak at or above its base."""
    if contender == "pytorch":
        import_torch()
    from benchmarks.startup import child

    r = child(contender, "resnet20", 2, 2, warmup=True)
    assert (r["contender"], r["net"], r["batch"]) == (contender, "resnet20", 2)
    assert r["peak_mib"] >= r["base_mib"] > 0


def test_the_memory_child_refuses_a_zoo_net_for_the_numpy_engine():
    from benchmarks.startup import child

    with pytest.raises(RuntimeError, match="plain-NumPy engine runs only the chains"):
        child("numpy", "mobilenet", 2, 1)
