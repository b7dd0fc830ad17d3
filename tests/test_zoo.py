"""The model zoo: the networks have the architectures the issue specifies, adapt to other image
shapes, reject bad arguments by name, and checkpoints rebuild exactly the network they name.

Parameter counts are worked out by hand from the layer list (conv: out*in*k*k + out; dense:
out*in + out; batch norm: 2*C), independently of the code; the seed-keras count on 3x32x32 is also
the total the seed's Keras ``model.summary()`` shows for that network (98,378).
"""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn import zoo


def rng(seed=0):
    return np.random.default_rng(seed)


def n_params(model):
    return sum(p.data.size for p in model.parameters())


def kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def conv(cin, cout, k=3, bias=True):
    return cout * cin * k * k + (cout if bias else 0)


def dense(fin, fout):
    return fout * fin + fout


def test_lenet_on_mnist_is_the_specified_network():
    model = zoo.build("lenet", (1, 28, 28), 10, rng())
    assert kinds(model) == ["Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense"]
    c1, c2, d = model.layers[0], model.layers[3], model.layers[7]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.padding) == (1, 32, (3, 3), (1, 1))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.padding) == (32, 64, (3, 3), (1, 1))
    assert (d.in_features, d.out_features) == (3136, 10)
    assert n_params(model) == conv(1, 32) + conv(32, 64) + dense(3136, 10) == 50_186


def test_lenet_adapts_to_colour_and_size():
    model = zoo.build("lenet", (3, 32, 32), 100, rng())
    assert model.layers[0].in_channels == 3
    assert (model.layers[-1].in_features, model.layers[-1].out_features) == (64 * 8 * 8, 100)
    x = rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert model(x).shape == (2, 100)


def test_seed_keras_on_cifar_is_the_seed_network():
    model = zoo.build("seed-keras", (3, 32, 32), 10, rng())
    assert kinds(model) == ["Conv2D", "ReLU", "MaxPool2D"] * 3 + ["Flatten", "Dense"]
    assert [(c.in_channels, c.out_channels, c.padding) for c in model.layers[0:9:3]] == \
        [(3, 32, (0, 0)), (32, 64, (0, 0)), (64, 128, (0, 0))]
    assert (model.layers[-1].in_features, model.layers[-1].out_features) == (512, 10)
    assert n_params(model) == conv(3, 32) + conv(32, 64) + conv(64, 128) + dense(512, 10) == 98_378


def test_seed_keras_weights_fit_the_seed_example_model():
    """The zoo's seed-keras and examples/seed_keras_style.py's model have the same state_dict layout
    (the example adds a trailing Softmax, which has no parameters)."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "seed_keras_style.py")
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent")
    spec = importlib.util.spec_from_file_location("seed_keras_style", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    theirs = {k: v.shape for k, v in example.build_model(rng()).state_dict().items()}
    ours = {k: v.shape for k, v in zoo.build("seed-keras", (3, 32, 32), 10, rng()).state_dict().items()}
    assert ours == theirs


def test_seed_keras_on_mnist_shrinks_to_one_pixel():
    model = zoo.build("seed-keras", (1, 28, 28), 10, rng())
    # 28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5 -conv-> 3 -pool-> 1
    assert (model.layers[-1].in_features, model.layers[-1].out_features) == (128, 10)


def test_vgg_bn_structure_and_parameter_count():
    model = zoo.build("vgg-bn", (3, 32, 32), 10, rng())
    names = kinds(model)
    assert names.count("BatchNorm2D") == names.count("Conv2D") == 6 and names.count("Dropout") == 1
    assert names[-3:] == ["Flatten", "Dropout", "Dense"]
    assert all(c.bias is None for c in model.layers if isinstance(c, tc.Conv2D))
    expected = (conv(3, 32, bias=False) + conv(32, 64, bias=False) + conv(64, 64, bias=False)
                + conv(64, 128, bias=False) + conv(128, 128, bias=False) + conv(128, 256, bias=False)
                + 2 * (32 + 64 + 64 + 128 + 128 + 256) + dense(256 * 2 * 2, 10))
    assert n_params(model) == expected
    x = rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    assert model(x).shape == (3, 10)
    mnist = zoo.build("vgg-bn", (1, 28, 28), 10, rng())     # 28 -> 14 -> 7 -> 3 -> 1
    assert mnist.layers[-1].in_features == 256


@pytest.fixture
def one_thread():
    """One BLAS and one Numba thread: on the busy shared 2-core machine spinning worker threads made
    these tiny steps ~10x slower (1.4 s vs 0.02 s per step); results do not depend on it."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    numba.set_num_threads(before)


def test_vgg_bn_learns_a_small_batch(one_thread):
    """Six SGD steps on 8 fixed images lower the loss clearly (the network trains at all; seeds 0..4
    all end below 0.03 from above 1.4)."""
    r = rng(3)
    model = zoo.build("vgg-bn", (3, 16, 16), 4, r, dropout=0.0)
    x = r.standard_normal((8, 3, 16, 16)).astype(np.float32)
    y = np.arange(8) % 4
    loss_fn, opt = tc.SoftmaxCrossEntropy(), tc.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.25 * losses[0], losses


def test_same_seed_same_weights_other_seed_other_weights():
    for name in zoo.names():
        a = zoo.build(name, (3, 32, 32), 10, rng(5)).state_dict()
        b = zoo.build(name, (3, 32, 32), 10, rng(5)).state_dict()
        c = zoo.build(name, (3, 32, 32), 10, rng(6)).state_dict()
        assert all(np.array_equal(a[k], b[k]) for k in a), name
        assert not np.array_equal(a["0.weight"], c["0.weight"]), name


@pytest.mark.parametrize("args, match", [
    (("seed-keras", (1, 8, 8), 10), r"zoo.seed_keras: images of shape \(1, 8, 8\).*too small"),
    (("lenet", (1, 28), 10), r"zoo.lenet: input_shape must be \(C, H, W\).*got \(1, 28\)"),
    (("lenet", (1, 28, 28), 1), r"zoo.lenet: num_classes must be an integer >= 2, got 1"),
    (("vgg-bn", (3, 32, 32), 10, None, {"width": 0}), r"zoo.vgg_bn: width must be a positive integer, got 0"),
    (("resnet", (3, 32, 32), 10), r"zoo.build: unknown model 'resnet'; known: lenet, seed-keras, vgg-bn"),
])
def test_bad_arguments_are_named(args, match):
    name, shape, k = args[:3]
    options = args[4] if len(args) > 4 else {}
    with pytest.raises(ValueError, match=match):
        zoo.build(name, shape, k, rng(), **options)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match=r"zoo.lenet: rng must be a np.random.Generator"):
        zoo.build("lenet", (1, 28, 28), 10, 0)


def test_record_rebuilds_the_same_architecture():
    for name in zoo.names():
        record = zoo.describe(name, (3, 32, 32), 7)
        a = zoo.build(name, (3, 32, 32), 7, rng(1))
        b = zoo.from_record(record, rng(2))
        assert [repr(layer) for layer in a.layers] == [repr(layer) for layer in b.layers]
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_load_model_round_trip(tmp_path):
    model = zoo.build("lenet", (1, 12, 12), 3, rng(1))
    path = tmp_path / "m.npz"
    tc.save_checkpoint(path, model, extra={"model": zoo.describe("lenet", (1, 12, 12), 3)})
    loaded, info = zoo.load_model(path)
    assert not loaded.training
    assert all(np.array_equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_load_model_without_a_zoo_record_says_so(tmp_path):
    path = tmp_path / "custom.npz"
    custom = tc.Sequential(tc.Flatten(), tc.Dense(4, 2, rng=rng()))
    tc.save_checkpoint(path, custom)
    with pytest.raises(ValueError, match=r"not written by `tinycnn train`.*load_checkpoint\(path, model\)"):
        zoo.load_model(path)


def test_load_model_whose_weights_belong_to_another_network(tmp_path):
    """A checkpoint whose record says seed-keras but whose weights are lenet's: the error names the
    network the record promises and the keys/shapes that differ."""
    path = tmp_path / "liar.npz"
    lenet = zoo.build("lenet", (3, 32, 32), 10, rng())
    tc.save_checkpoint(path, lenet, extra={"model": zoo.describe("seed-keras", (3, 32, 32), 10)})
    with pytest.raises(ValueError, match=r"holds a 'seed-keras' network.*do not fit(.|\n)*missing keys \['6.weight'"):
        zoo.load_model(path)


def test_load_model_unknown_name(tmp_path):
    path = tmp_path / "future.npz"
    record = {**zoo.describe("lenet", (1, 28, 28), 10), "name": "transformer"}
    tc.save_checkpoint(path, zoo.build("lenet", (1, 28, 28), 10, rng()), extra={"model": record})
    with pytest.raises(ValueError, match=r"unknown model 'transformer'; known: lenet, seed-keras, vgg-bn"):
        zoo.load_model(path)
