"""The benchmark suite runs end to end in its quick mode (`tinycnn bench --quick`). No speed is asserted:
only that every section produces its results, that the contenders compute the same function, and that
each rung of the convolution ladder agrees with the one before. Then the benchmark nets themselves: the
spec-built vgg_bn is the zoo's network, its FLOP count, and the plain-NumPy engine's batch norm and
dropout against PyTorch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import import_torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / "benchmarks" / "__main__.py").is_file(),
                    reason="no benchmarks/ folder in this checkout")
def test_bench_quick_runs_every_quick_section(tmp_path):
    pytest.importorskip("threadpoolctl", reason="the benchmark suite needs threadpoolctl: pip install -e '.[bench]'")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "tinycnn", "bench", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    md = (tmp_path / "latest.md").read_text()
    assert results["quick"] is True and "Quick smoke run" in md
    for section in ("matmul", "train", "layers", "ladder", "whatif"):
        assert section in results, section
    contenders = {"tinycnn", "numpy"} | ({"pytorch"} if results["torch"] else set())
    zoo_nets = {"resnet20", "mobilenet"}                 # tinycnn.zoo's: no plain-NumPy contender
    assert set(results["agreement"]) == {"seed_cnn", "lenet", "vgg_bn"} | zoo_nets
    assert {(r["net"], r["mode"]) for r in results["train"]} == {
        (net, mode) for net in ("seed_cnn", "vgg_bn", *zoo_nets) for mode in ("train", "infer")}
    for rec in results["train"]:
        assert set(rec["contenders"]) == contenders - ({"numpy"} if rec["net"] in zoo_nets else set())
        assert all(c["images_per_s"] > 0 for c in rec["contenders"].values())
    assert "| resnet20 | train | 4 | 1 |" in md and "—: no NumPy im2col figure for resnet20, mobilenet" in md
    # All contenders start from the same weights and compute the same function. Scale of the check:
    # two correct float32 engines differ by about 2 * u * (sum of the lengths of all the sums a step
    # forms) relative to the tensors' size (first order, Higham's gamma_n; u = 2**-24): about 1e-3 here,
    # while a wrong layer, weight, layout or gradient gives differences of order 1.
    from benchmarks.nets import NETS, reduction_lengths
    u = 2.0 ** -24
    for net, per in results["agreement"].items():
        bound = 2 * u * sum(reduction_lengths(NETS[net], batch=2))
        assert set(per) == contenders - {"tinycnn"} - ({"numpy"} if net in zoo_nets else set())
        for name, d in per.items():
            assert set(d) == {"logits", "loss", "gradients", "buffers", "eval_logits"}, d
            assert max(d.values()) <= bound, (net, name, d, bound)
    assert all(r["agrees"].startswith(("yes", "(first")) for r in results["ladder"]["rungs"]), results["ladder"]
    assert results["whatif"]["max_weight_diff_after_two_steps"] == 0.0
    blas = [p for p in results["machine"]["threadpools"] if p["user_api"] == "blas"]
    assert blas, "threadpoolctl found no BLAS"


def test_vgg_bn_spec_builds_the_zoo_network():
    """benchmarks' vgg_bn is tinycnn.zoo's vgg-bn: same layers, same weights from the same seed, and the
    torch build has the same state_dict keys (batch-norm buffers included)."""
    import numpy as np

    from benchmarks.nets import NETS, build_tinycnn, build_torch
    from tinycnn import zoo

    info = NETS["vgg_bn"]
    ours = build_tinycnn(info.spec, np.random.default_rng(3))
    theirs = zoo.build("vgg-bn", info.input_shape, info.classes, np.random.default_rng(3))
    assert [repr(layer) for layer in ours.layers] == [repr(layer) for layer in theirs.layers]
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(k.endswith("running_var") for k in a) and any(k.endswith("num_batches_tracked") for k in a)
    import_torch()
    assert set(build_torch(info.spec, a).state_dict()) == set(a)


def test_flops_of_vgg_bn_count_convolutions_and_dense_only():
    """3x32x32, width 32: the six convs' H*W*C_in*C_out*9 and the dense 1024*10 multiply-adds, at the
    resolution each conv runs at (a stage's pool comes after its last conv); batch norm and dropout
    add nothing."""
    from benchmarks.nets import NETS, flops_per_image

    convs = [(32, 3, 32), (16, 32, 64), (16, 64, 64), (8, 64, 128), (8, 128, 128), (4, 128, 256)]  # side, in, out
    macs = [s * s * cin * cout * 9 for s, cin, cout in convs] + [1024 * 10]
    f = flops_per_image(NETS["vgg_bn"])
    assert f["forward"] == 2 * sum(macs)
    assert f["train"] == 2 * (2 * macs[0] + 3 * sum(macs[1:]))        # no input gradient for the first conv
    assert round(sum(macs) / 1e6, 1) == 33.9                           # as tinycnn.zoo documents


def test_numpy_engine_batchnorm_matches_torch_in_float64():
    """Training forward, backward and running statistics; then evaluation forward from those statistics.
    float64 throughout, so the two agree to 1e-10 relative (tests/tolerances.py's float64 row)."""
    torch = import_torch()
    import numpy as np

    from benchmarks import numpy_engine as npe

    rng = np.random.default_rng(5)
    c = 3
    x = rng.standard_normal((4, c, 5, 6)) * 2 + 1                      # (N, C, H, W)
    g = rng.standard_normal(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c)
    rmean, rvar = rng.uniform(-0.5, 0.5, c), rng.uniform(0.5, 1.5, c)
    ours = npe.BatchNorm(gamma.copy(), beta.copy(), rmean.copy(), rvar.copy(), np.array(0, dtype=np.int64))
    ref = torch.nn.BatchNorm2d(c, dtype=torch.float64)
    ref.load_state_dict({"weight": torch.tensor(gamma), "bias": torch.tensor(beta), "running_mean": torch.tensor(rmean),
                         "running_var": torch.tensor(rvar), "num_batches_tracked": torch.tensor(0)})
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(g))

    def close(a, b):
        b = np.asarray(b)
        assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(b)), (a, b)

    close(ours.forward(x), ty.detach().numpy())
    close(ours.backward(g), tx.grad.numpy())
    close(ours.grads[0], ref.weight.grad.numpy())
    close(ours.grads[1], ref.bias.grad.numpy())
    close(ours.running_mean, ref.running_mean.numpy())
    close(ours.running_var, ref.running_var.numpy())
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 1
    ours.training = False
    with torch.no_grad():
        close(ours.forward(x), ref.eval()(torch.tensor(x)).numpy())
    with pytest.raises(NotImplementedError, match="BatchNorm"):
        ours.backward(g)


def test_numpy_engine_dropout():
    """Training: every value is 0 or x / (1 - p), backward uses the same mask, and the kept fraction is
    within Hoeffding's bound of 1 - p (failure probability 1e-6); evaluation and p = 0: the identity."""
    import numpy as np

    from benchmarks import numpy_engine as npe

    p, n = 0.25, 200_000
    x = np.random.default_rng(0).uniform(1, 2, n).astype(np.float32)   # no zeros: a 0 means dropped
    layer = npe.Dropout(p, np.random.default_rng(1))
    y = layer.forward(x)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / (1 - p)))
    assert abs(kept.mean() - (1 - p)) < np.sqrt(np.log(2 / 1e-6) / (2 * n))
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(g), np.where(kept, np.float32(1 / (1 - p)), np.float32(0)))
    layer.training = False
    assert layer.forward(x) is x and layer.backward(g) is g
    assert npe.Dropout(0.0, np.random.default_rng(1)).forward(x) is x
    with pytest.raises(ValueError, match="Dropout"):
        npe.Dropout(1.0, np.random.default_rng(1))


def test_random_state_fits_every_net():
    """The engine-free state_dict child processes use has exactly each net's keys, shapes and dtypes."""
    import numpy as np

    from benchmarks.nets import CHAIN_NETS, NETS, build_tinycnn, random_state

    for info in (NETS[name] for name in CHAIN_NETS):
        want = build_tinycnn(info.spec, np.random.default_rng(0)).state_dict()
        got = random_state(info.spec, np.random.default_rng(0))
        assert got.keys() == want.keys(), info.name
        assert all(got[k].shape == want[k].shape and got[k].dtype == want[k].dtype for k in want), info.name


@pytest.mark.skipif(not (ROOT / "benchmarks" / "__main__.py").is_file(),
                    reason="no benchmarks/ folder in this checkout")
def test_runs_never_overwrite_the_published_results_unless_asked():
    from benchmarks import run
    from benchmarks.accuracy import run as accuracy
    parser = run.build_parser()
    default = parser.parse_args(["--quick"])
    assert run.out_dir(default) == run.DEFAULT_OUT != run.PUBLISHED
    assert run.out_dir(parser.parse_args(["--publish"])) == run.PUBLISHED
    for argv in (["--quick", "--publish"], ["--sections", "train", "--publish"], ["--out", "x", "--publish"]):
        assert run.publish_problem(parser.parse_args(argv)), argv
    assert run.publish_problem(parser.parse_args(["--publish"])) is None
    accuracy.use_published(False)
    assert accuracy.RESULTS_JSON.parent == accuracy.LOCAL != accuracy.PUBLISHED_JSON.parent
    accuracy.use_published(True)
    assert accuracy.RESULTS_JSON == accuracy.PUBLISHED_JSON
    accuracy.use_published(False)
    for path in (run.DEFAULT_OUT / "latest.md", accuracy.LOCAL / "results.json"):
        git = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, capture_output=True)
        if git.returncode == 128:
            pytest.skip("not a git checkout: cannot ask git what it ignores")
        assert git.returncode == 0, f"{path}: the default output folders must be ignored by git"


def test_ablation_rows_cover_every_technique_and_the_table_gives_deltas_to_the_full_mean():
    from benchmarks.accuracy import rows
    from benchmarks.accuracy import run as accuracy
    from tinycnn.speedrun import TECHNIQUES

    removed = [r.args[r.args.index("--without") + 1] for r in rows.ABLATION_ROWS if "--without" in r.args]
    assert sorted(removed) == sorted(TECHNIQUES)
    seeds = [r.args[r.args.index("--seed") + 1] for r in rows.ABLATION_ROWS if "--seed" in r.args]
    assert len(set(seeds)) >= 3
    assert not set(rows.ABLATION_ROWS) & set(rows.ROWS)           # not in the README's table

    def fake(row, acc):
        return {"row": row.key, "title": row.title, "command": "tinycnn train x", "accuracy": acc,
                "wall_seconds": 60.0, "exit_status": 0, "date": "2026-01-01T00:00:00", "commit": "abc",
                "load_average_1min": {"before": 0.1, "during": {"mean": 2.0, "max": 2.1}}}
    full = [r for r in rows.ABLATION_ROWS if "_full_" in r.key]
    without = next(r for r in rows.ABLATION_ROWS if r.key.endswith("without_lookahead"))
    runs = [fake(full[0], 0.80), fake(full[1], 0.82), fake(without, 0.78)]
    text = accuracy.markdown(runs)
    assert "mean **81.00%** over 2 seed(s), spread 80.00% to 82.00%" in text
    assert "| 78.00% | -3.00 points |" in text
