"""Shape inference at build time, its error messages, and summary()'s numbers.

The numbers summary() reports are checked against independent sources: parameter counts against
torch's, MACs against the sizes of the matrix products a forward pass actually performs, memory
against the nbytes of the arrays a forward pass actually allocates.
"""
import re

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.shapes import infer_shapes, layer_stats


def seed_pytorch_layers(rng, dense_in=128):
    """The seed article's PyTorch model as written: three padded 3x3 convs, no pooling, Linear(128, 10)."""
    return [tc.Conv2D(3, 32, 3, padding=1, rng=rng), tc.ReLU(),
            tc.Conv2D(32, 64, 3, padding=1, rng=rng), tc.ReLU(),
            tc.Conv2D(64, 128, 3, padding=1, rng=rng), tc.ReLU(),
            tc.Flatten(), tc.Dense(dense_in, 10, rng=rng)]


SEED_BUG = (r"layer 7, Dense\(128, 10\).*expected 128 input features, got 131072(.|\n)*"
            r"The 131072 features come from the Flatten\(\) at layer 6, which flattens the \(128, 32, 32\) "
            r"output of layer 4, Conv2D\(64, 128, (.|\n)*128\*32\*32 = 131072")


def test_seed_pytorch_bug_is_rejected_at_build_time_with_the_whole_story():
    rng = np.random.default_rng(0)
    with pytest.raises(tc.ShapeError, match=SEED_BUG) as info:
        tc.Sequential(*seed_pytorch_layers(rng), input_shape=(3, 32, 32))
    msg = str(info.value)
    assert "Fix: make it Dense(131072, 10)" in msg
    assert "[6] Flatten()  ->  (131072,)" in msg                   # the chain of shapes is shown
    assert isinstance(info.value, ValueError)                      # catchable as a ValueError too


def test_seed_pytorch_bug_without_input_shape_is_rejected_at_the_first_forward_before_any_work():
    rng = np.random.default_rng(0)
    layers = seed_pytorch_layers(rng)
    model = tc.Sequential(*layers)                                 # no shape yet: nothing to check
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with pytest.raises(tc.ShapeError, match=SEED_BUG):
        model(x)
    assert all(getattr(layer, "_cache", None) is None for layer in layers), "a layer ran before the check"


def test_seed_pytorch_model_fixed_two_ways_builds_and_runs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    wide = tc.Sequential(*seed_pytorch_layers(rng, dense_in=128 * 32 * 32), input_shape=(3, 32, 32))
    assert wide(x).shape == (2, 10)
    pooled = tc.Sequential(
        tc.Conv2D(3, 32, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(32, 64, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(64, 128, 3, padding=1, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(128 * 4 * 4, 10, rng=rng), input_shape=(3, 32, 32))
    assert pooled(x).shape == (2, 10)


def test_wrong_channels_at_the_first_layer_names_the_model_input():
    model = tc.Sequential(tc.Conv2D(3, 4, 3), tc.ReLU())
    with pytest.raises(tc.ShapeError, match=r"layer 0, Conv2D\(3, 4,.*expected 3 input channels, got 1(.|\n)*"
                                            r"Its input \(1, 28, 28\) is the model input \(the batch of shape "
                                            r"\(5, 1, 28, 28\) passed to forward\)"):
        model(np.zeros((5, 1, 28, 28), np.float32))


def test_grayscale_batch_without_channel_axis_gets_a_hint():
    model = tc.Sequential(tc.Conv2D(1, 4, 3), tc.ReLU())
    with pytest.raises(tc.ShapeError, match=r"expects a \(C, H, W\) image per sample.*got per-sample shape "
                                            r"\(28, 28\); for grayscale images add a channel axis, "
                                            r"e\.g\. x\[:, None\]"):
        model(np.zeros((5, 28, 28), np.float32))


def test_kernel_too_large_deep_in_the_net_names_the_layer_that_shrank_the_map():
    # 12 -> conv k5 -> 8 -> pool 2 -> 4 -> conv k5: the kernel no longer fits.
    layers = [tc.Conv2D(1, 2, 5), tc.ReLU(), tc.MaxPool2D(2), tc.Conv2D(2, 2, 5)]
    with pytest.raises(tc.ShapeError, match=r"layer 3, Conv2D\(2, 2, .*kernel height 5 is larger than the padded "
                                            r"input height 4(.|\n)*Its input \(2, 4, 4\) is the output of layer 2, "
                                            r"MaxPool2D"):
        tc.Sequential(*layers, input_shape=(1, 12, 12))


def test_shape_keeping_layers_are_named_as_passing_the_shape_on():
    layers = [tc.Conv2D(1, 2, 3), tc.ReLU(), tc.Sigmoid(), tc.Dense(5, 2)]
    with pytest.raises(tc.ShapeError, match=r"output of layer 0, Conv2D\(1, 2, .*\(passed on unchanged by "
                                            r"layers 1, 2\)"):
        tc.Sequential(*layers, input_shape=(1, 6, 6))


def test_inferred_shapes_equal_the_shapes_a_forward_produces():
    rng = np.random.default_rng(1)
    layers = [tc.Conv2D(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), rng=rng), tc.ReLU(),
              tc.MaxPool2D(3, stride=2, padding=1), tc.AvgPool2D(2), tc.BatchNorm2D(4), tc.Dropout(0.5),
              tc.Tanh(), tc.Flatten(), tc.Dense(4 * 2 * 3, 6, rng=rng), tc.Softmax()]
    records = infer_shapes(layers, (3, 17, 13))
    x = rng.standard_normal((2, 3, 17, 13))
    for layer, r in zip(layers, records):
        x = layer.forward(x)
        assert x.shape[1:] == r.out_shape, f"{layer!r}: forward gave {x.shape[1:]}, inferred {r.out_shape}"


def small_model(rng):
    return tc.Sequential(
        tc.Conv2D(3, 8, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),         # (8, 8, 8) -> (8, 4, 4)
        tc.Conv2D(8, 6, (3, 2), padding=1, rng=rng), tc.BatchNorm2D(6),  # (6, 4, 5)
        tc.Flatten(), tc.Dense(120, 5, rng=rng), tc.Softmax(), input_shape=(3, 10, 10))


def test_layer_stats_match_hand_counts_and_what_a_forward_allocates():
    rng = np.random.default_rng(2)
    model = small_model(rng)
    batch = 3
    stats = layer_stats(model.build((3, 10, 10)), batch, 4)
    # Hand-worked: conv0 out (8, 8, 8), 8*8*8 outputs x 3*3*3 weights each.
    assert stats[0].out_shape == (8, 8, 8) and stats[0].params == 8 * 27 + 8 and stats[0].macs == 512 * 27
    assert stats[3].out_shape == (6, 4, 5) and stats[3].params == 6 * 8 * 6 + 6 and stats[3].macs == 120 * 48
    assert stats[4].params == 12 and stats[4].buffers == 6 + 6 + 1   # BatchNorm2D: weight, bias; running stats, count
    assert stats[6].params == 120 * 5 + 5 and stats[6].macs == 600
    assert [s.macs for s in stats if s.index not in (0, 3, 6)] == [0] * 5
    # Against the arrays a real forward allocates (float32, batch 3).
    x = rng.standard_normal((batch, 3, 10, 10)).astype(np.float32)
    for layer, s in zip(model.layers, stats):
        x = layer.forward(x)
        assert s.activation_bytes == x.nbytes, repr(layer)
        if isinstance(layer, tc.Conv2D):
            cols = layer._cache.cols                                         # (C*KH*KW [+1], N*OH*OW)
            assert s.im2col_bytes == cols.nbytes, repr(layer)
            # MACs = the size of the product w2d (O, C*KH*KW) @ cols (the bias not counted), per sample
            assert s.macs * batch == layer.weight.data.size * cols.shape[1]
        else:
            assert s.im2col_bytes == 0


def test_summary_text_shows_every_layer_and_totals(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")                  # wide enough for the layers' full reprs
    rng = np.random.default_rng(3)
    model = small_model(rng)
    text = model.summary(batch_size=4)
    assert capsys.readouterr().out.strip() == text.strip()                  # printed, and returned
    total = sum(p.data.size for p in model.parameters())
    assert f"Total params:            {total:,}" in text
    assert f"{(512 * 27 + 120 * 48 + 600):,} per sample" in text
    for i, layer in enumerate(model.layers):
        assert f"{i}  {layer!r}" in text
    assert "im2col buffers:" in text and "for a batch of 4" in text


@pytest.mark.parametrize("name, shape", [("lenet", (1, 28, 28)), ("vgg-bn", (3, 32, 32)),
                                         ("seed-keras", (3, 32, 32))])
def test_summary_fits_an_80_column_terminal_and_keeps_its_numbers(monkeypatch, name, shape):
    from tinycnn import zoo
    from tinycnn.shapes import short_name
    monkeypatch.setenv("COLUMNS", "80")
    model = zoo.build(name, shape, 10, np.random.default_rng(0))
    text = model.summary(batch_size=64, print_fn=None)
    assert max(len(line) for line in text.splitlines()) <= 80
    monkeypatch.setenv("COLUMNS", "300")
    wide = model.summary(batch_size=64, print_fn=None)
    total = sum(p.data.size for p in model.parameters())
    for t in (text, wide):
        assert f"Total params:            {total:,}" in t
    for i, layer in enumerate(model.layers):
        assert re.search(rf"^ *{i} +{re.escape(short_name(layer))} ", text, re.M), (i, short_name(layer))
        assert f"{i}  {layer!r}" in wide


def test_without_a_terminal_the_summary_keeps_whole_lines():
    import os
    import subprocess
    import sys
    code = ("import numpy as np\nfrom tinycnn import zoo\n"
            "zoo.build('lenet', (1, 28, 28), 10, np.random.default_rng(0)).summary(batch_size=64)\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "Conv2D(32, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in out      # a pipe: no limit
    assert "3,612,672" in out and max(len(line) for line in out.splitlines()) > 80


def test_short_names_keep_what_differs_from_the_defaults():
    from tinycnn.shapes import short_name
    assert short_name(tc.Conv2D(3, 8, 3, stride=2, padding=1)) == "Conv2D(3, 8, k=3, s=2, p=1)"
    assert short_name(tc.Conv2D(3, 8, 3)) == "Conv2D(3, 8, k=3)"
    assert short_name(tc.MaxPool2D(3, stride=1)) == "MaxPool2D(k=3, s=1)"
    assert short_name(tc.MaxPool2D(2)) == "MaxPool2D(k=2)"
    assert short_name(tc.BatchNorm2D(16)) == "BatchNorm2D(16)"


def test_summary_parameter_count_matches_torch(torch):
    rng = np.random.default_rng(4)
    model = tc.Sequential(
        tc.Conv2D(3, 32, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(32, 64, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Conv2D(64, 128, 3, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
        tc.Flatten(), tc.Dense(512, 10, rng=rng), input_shape=(3, 32, 32))
    nn = torch.nn
    ref = nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(512, 10))
    want = sum(p.numel() for p in ref.parameters())
    assert f"Total params:            {want:,}" in model.summary(print_fn=None)
    # and the per-sample shapes torch computes
    out = torch.zeros(1, 3, 32, 32)
    for layer, r in zip(ref, model.build((3, 32, 32))):
        out = layer(out)
        assert tuple(out.shape[1:]) == r.out_shape


def test_summary_needs_a_shape_and_learns_it_from_the_first_forward():
    rng = np.random.default_rng(5)
    model = tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng))
    with pytest.raises(ValueError, match=r"summary: the input shape is not known yet; pass input_shape"):
        model.summary()
    assert "input (1, 6, 6)" in model.summary(input_shape=(1, 6, 6), print_fn=None)
    model2 = tc.Sequential(tc.Conv2D(1, 2, 3, rng=rng), tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng))
    model2(np.zeros((2, 1, 6, 6), np.float32))
    assert model2.input_shape == (1, 6, 6)
    assert "input (1, 6, 6)" in model2.summary(print_fn=None)


def test_state_dict_keys_are_torch_sequential_keys_with_shape_checks_and_softmax():
    rng = np.random.default_rng(6)
    model = small_model(rng)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "4.weight", "4.bias",
                                        "4.running_mean", "4.running_var", "4.num_batches_tracked",
                                        "6.weight", "6.bias"]
