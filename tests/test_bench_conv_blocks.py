"""The blocked-Conv2D benchmark (benchmarks/conv_blocks.py): a row per case, the path switched per plan."""
import numpy as np

import tinycnn as tc
from benchmarks import conv_blocks as bench


def test_tables_have_a_row_per_case():
    layers = bench.layers_table(batch=2, rounds=1, reps=1, shapes=[(16, 16, 8, 1), (3, 16, 8, 1)])
    nets = bench.networks_table(batch=2, rounds=1, reps=1, names=["lenet"])
    assert [row.split("|")[1].strip() for row in layers[2:]] == ["16 -> 16, stride 1", "3 -> 16, stride 1"]
    assert [row.split("|")[1].strip() for row in nets[2:]] == ["lenet"]
    assert [row.split("|")[4].strip() for row in layers[2:]] == ["yes", "yes"]   # both within the weight limit
    for row in layers[2:]:
        assert float(row.split("|")[7]) > 0                     # blocks / off
    for row in nets[2:]:
        assert float(row.split("|")[4]) > 0


def test_the_switch_turns_exactly_the_marked_convolutions():
    rng = np.random.default_rng(0)
    plan = tc.fast.compile([tc.Conv2D(3, 8, 3, padding=1, rng=rng), tc.ReLU(), tc.Conv2D(8, 8, 1, rng=rng),
                            tc.Flatten(), tc.Dense(8 * 6 * 6, 2, rng=rng)])
    marked = bench._marked(plan)
    assert [type(op.layer).__name__ for op in marked] == ["Conv2D"] and marked[0].layer.kernel_size == (3, 3)
    bench._switch(marked, False)()
    assert not bench._marked(plan)
    bench._switch(marked, True)()
    assert bench._marked(plan) == marked
