"""The report's verdicts against the speed targets (benchmarks/report.py, targets_md)."""
from benchmarks import report


def _rec(net, mode, batch, threads, tiny, torch):
    return {"net": net, "mode": mode, "batch": batch, "threads": threads,
            "contenders": {"tinycnn": {"images_per_s": tiny}, "pytorch": {"images_per_s": torch}}}


def _row(lines, net, mode, batch, threads):
    prefix = f"| {net} | {mode} | {batch} | {threads} |"
    (row,) = [line for line in lines if line.startswith(prefix)]
    return [cell.strip() for cell in row.split("|")[5:-1]]


def test_verdicts_follow_the_ratio_and_the_thread_rule():
    records = [_rec("lenet", "train", 64, 1, 1300, 1000),      # 1.30x: must met exactly, aim missed
               _rec("lenet", "train", 64, 2, 1200, 1000),      # 1.20x, and slower than one thread
               _rec("lenet", "infer", 64, 1, 3100, 1000),      # 3.10x: no aim for inference
               _rec("lenet", "infer", 64, 2, 1400, 1000)]      # 1.40x < 1.5x
    lines = report.targets_md(records, None)
    assert _row(lines, "lenet", "train", 64, 1) == ["1.30x", "met", "missed", "-"]
    assert _row(lines, "lenet", "train", 64, 2) == ["1.20x", "**missed**", "missed", "**no** (1300 img/s on 1)"]
    assert _row(lines, "lenet", "infer", 64, 1) == ["3.10x", "met", "-", "-"]
    assert _row(lines, "lenet", "infer", 64, 2) == ["1.40x", "**missed**", "-", "**no** (3100 img/s on 1)"]
    assert "Must met in 2 of 4 rows; training aim met in 0 of 2." in lines


def test_matmul_share_line_for_the_named_nets_at_batch_256():
    flops = report.flops_per_image(report.NETS["resnet20"])["train"]
    ips = 100e9 / flops                                       # exactly 100 GFLOP/s of counted work
    lines = report.targets_md([_rec("resnet20", "train", 256, 2, ips, ips / 2)], {2: {"gflops": 200.0}})
    assert any("resnet20 training, batch 256, 2 thread(s): 100 GFLOP/s = 50 % of the matmul rate" in line
               for line in lines)
