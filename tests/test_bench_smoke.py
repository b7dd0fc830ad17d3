"""The benchmark suite runs end to end in its quick mode (`tinycnn bench --quick`). No speed is asserted:
only that every section produces its results, that the contenders compute the same function, and that
each rung of the convolution ladder agrees with the one before."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    for rec in results["train"]:
        assert set(rec["contenders"]) == contenders
        assert all(c["images_per_s"] > 0 for c in rec["contenders"].values())
    # All contenders start from the same weights and compute the same function. Scale of the check:
    # two correct float32 engines differ by about 2 * u * (sum of the lengths of all the sums a step
    # forms) relative to the tensors' size (first order, Higham's gamma_n; u = 2**-24): about 1e-3 here,
    # while a wrong layer, weight, layout or gradient gives differences of order 1.
    from benchmarks.nets import NETS, reduction_lengths
    u = 2.0 ** -24
    for net, per in results["agreement"].items():
        bound = 2 * u * sum(reduction_lengths(NETS[net], batch=2))
        for name, d in per.items():
            assert max(d["logits"], d["loss"], d["gradients"]) <= bound, (net, name, d, bound)
    assert all(r["agrees"].startswith(("yes", "(first")) for r in results["ladder"]["rungs"]), results["ladder"]
    assert results["whatif"]["max_weight_diff_after_two_steps"] == 0.0
    blas = [p for p in results["machine"]["threadpools"] if p["user_api"] == "blas"]
    assert blas, "threadpoolctl found no BLAS"


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
