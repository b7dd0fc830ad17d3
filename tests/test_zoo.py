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
from tolerances import TORCH_F64_REL_TOL, assert_rel_close


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
    (("resnet", (3, 32, 32), 10), r"zoo.build: unknown model 'resnet'; known: lenet, seed-keras, vgg-bn, resnet20"),
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


def test_resnet20_structure_and_parameter_count():
    """He et al.'s CIFAR ResNet-20 with projection (option B) shortcuts, counted by hand:
    stem conv 3->16 + BN; 9 basic blocks of two 3x3 convs + two BNs; a 1x1 conv + BN projection where
    stages 2 and 3 start; Dense(64 -> 10). The paper's ~0.27 M (option A: 269,722) plus 2,752."""
    model = zoo.build("resnet20", (3, 32, 32), 10, rng())
    bn = lambda c: 2 * c                                        # noqa: E731
    block = lambda cin, cout: conv(cin, cout, bias=False) + conv(cout, cout, bias=False) + 2 * bn(cout)  # noqa: E731
    projection = lambda cin, cout: conv(cin, cout, k=1, bias=False) + bn(cout)                          # noqa: E731
    expected = (conv(3, 16, bias=False) + bn(16)
                + 3 * block(16, 16)
                + block(16, 32) + projection(16, 32) + 2 * block(32, 32)
                + block(32, 64) + projection(32, 64) + 2 * block(64, 64)
                + dense(64, 10))
    assert n_params(model) == expected == 272_474
    assert kinds(model) == ["Conv2D", "BatchNorm2D", "ReLU"] + ["Residual"] * 9 + [
        "AdaptiveAvgPool2D", "Flatten", "Dense"]
    blocks = model.layers[3:12]
    assert [b.shortcut is None for b in blocks] == [True, True, True, False, True, True, False, True, True]
    assert all(type(b.post).__name__ == "ReLU" for b in blocks)
    shapes = [r.out_shape for r in model.build((3, 32, 32))]
    assert shapes[3] == (16, 32, 32) and shapes[6] == (32, 16, 16) and shapes[9] == (64, 8, 8)
    assert shapes[-3:] == [(64, 1, 1), (64,), (10,)]
    # 20 weighted layers: 19 3x3 convs and the dense layer (the projections are not counted, as in the paper)
    convs3 = [k for k in model.state_dict() if k.endswith("weight") and model.state_dict()[k].ndim == 4
              and model.state_dict()[k].shape[-1] == 3]
    assert len(convs3) + 1 == 20
    x = rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert model(x).shape == (2, 10)
    assert zoo.build("resnet20", (1, 28, 28), 10, rng()).layers[-1].in_features == 64   # 28 -> 14 -> 7


def test_resnet20_state_dict_is_the_torch_module_trees(torch):
    """The network exports to a torch module tree with the same keys and the same forward (eval)."""
    from tinycnn.interop import from_torch_module, to_torch_module
    model = zoo.build("resnet20", (3, 8, 8), 10, rng(), width=2).eval()
    back = to_torch_module(model)
    assert sorted(back.state_dict()) == sorted(model.state_dict())
    assert "6.shortcut.0.weight" in model.state_dict() and "3.block.4.running_var" in model.state_dict()
    again = from_torch_module(back)
    assert [repr(a) for a in again.layers] == [repr(b) for b in model.layers]
    # the same weights in float64 on both sides: equal forward within 1e-10
    back64 = back.double().eval()
    model64 = from_torch_module(back64).eval()
    x = rng(2).standard_normal((3, 3, 8, 8))
    with torch.no_grad():
        theirs = back64(torch.from_numpy(x)).numpy()
    assert_rel_close(model64(x), theirs, TORCH_F64_REL_TOL, "resnet20 forward")


def test_resnet20_learns_a_small_batch(one_thread):
    """Eight SGD steps on 8 fixed 8x8 images (width 4) lower the loss clearly: the network trains."""
    r = rng(3)
    model = zoo.build("resnet20", (3, 8, 8), 4, r, width=4)
    x = r.standard_normal((8, 3, 8, 8)).astype(np.float32)
    y = np.arange(8) % 4
    loss_fn, opt = tc.SoftmaxCrossEntropy(), tc.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        losses.append(loss_fn(model(x), y))
        model.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.25 * losses[0], losses
