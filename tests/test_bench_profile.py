"""The op-by-op step profiler (benchmarks/profile.py)."""
import numpy as np

import tinycnn as tc
from benchmarks.profile import OpTimer, profile


def test_op_timer_counts_conv_and_dense_multiply_adds_by_hand():
    plan = tc.fast.compile(tc.Sequential(tc.Conv2D(3, 8, 3, padding=1, rng=np.random.default_rng(0)),
                                         tc.Flatten(), tc.Dense(8 * 8 * 8, 5, rng=np.random.default_rng(1))))
    timers = [OpTimer(op) for op in plan.lanes[0]]
    plan.forward(np.zeros((2, 3, 8, 8), dtype=np.float32))
    by_kind = {type(t.op.layer).__name__: t.macs() for t in timers}
    assert by_kind["Conv2D"] == 2 * 8 * 8 * 8 * (3 * 3 * 3)      # output values x (C_in x KH x KW)
    assert by_kind["Dense"] == 2 * 5 * 512                         # rows x out x in
    assert by_kind["Flatten"] == 0
    assert all(len(t.fwd) == 1 for t in timers)


def test_profile_prints_one_row_per_op_and_a_remainder():
    text = profile("lenet", batch=4, threads=1, warmup=1, steps=1)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    ops = [r for r in rows if "remainder" not in r]
    assert len(ops) == len(tc.fast.compile(tc.zoo.build("lenet", input_shape=(1, 28, 28), num_classes=10,
                                                        rng=np.random.default_rng(0))).lanes[0])
    shares = [float(r.split("|")[6].strip().rstrip(" %")) for r in rows]
    assert 0 < sum(shares) <= 100.5
    assert "of the machine's matmul rate" in text
