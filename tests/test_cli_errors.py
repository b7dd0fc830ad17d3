"""`tinycnn train` speaks in flags: every data error names the option it is about and the flags that
fix it (never a Python keyword the command line cannot pass), one "tinycnn train: error:" prefix,
`--image-size 32` is 32x32, and a run too short to learn anything says so."""
import numpy as np
import pytest

from tinycnn.cli import main
from tinycnn.commands import _train_config as cfg

Image = pytest.importorskip("PIL.Image", reason="folder datasets are read with Pillow (the images extra)")


def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def folder(tmp_path, name, per_class=4, shape=(12, 12), classes="ab"):
    """A folder dataset of ``per_class`` noise images of ``shape`` per class."""
    rng = np.random.default_rng(0)
    root = tmp_path / name
    for c in classes:
        for i in range(per_class):
            write(root / c / f"{i}.png", rng.integers(0, 256, shape).astype(np.uint8))
    return root


def broken_folders(tmp_path):
    """{what is wrong: (root, flag the fix needs or None)}."""
    cases = {}
    cases["not a folder"] = (tmp_path / "missing", None)
    one = folder(tmp_path, "one", classes="a")
    cases["one class"] = (one, None)
    empty = folder(tmp_path, "empty")
    (empty / "c").mkdir()
    cases["empty class"] = (empty, None)
    loose = tmp_path / "loose"
    write(loose / "x.png", np.zeros((4, 4), np.uint8))
    cases["no class folders"] = (loose, None)
    mixed = folder(tmp_path, "mixed")
    write(mixed / "a" / "colour.png", np.zeros((12, 12, 3), np.uint8))
    cases["grey and colour"] = (mixed, "--color RGB")
    sizes = folder(tmp_path, "sizes")
    write(sizes / "b" / "big.png", np.zeros((20, 16), np.uint8))
    cases["sizes"] = (sizes, "--image-size H,W")
    bad = folder(tmp_path, "bad")
    (bad / "a" / "broken.png").write_bytes(b"not a png")
    cases["unreadable"] = (bad, None)
    return cases


def test_every_folder_error_under_train_names_the_flags(tmp_path, capsys):
    for what, (root, fix) in broken_folders(tmp_path).items():
        status = main(["train", "--dataset", f"folder:{root}", "--epochs", "1", "--out", str(tmp_path / "run")])
        err = capsys.readouterr().err
        assert status == 2, (what, err)
        assert err.startswith(f"tinycnn train: error: --dataset folder:{root}: "), (what, err)
        assert err.count("tinycnn train") == 1, (what, err)
        assert "load_folder" not in err and "mode=" not in err and "size=(" not in err, (what, err)
        if fix:
            assert fix in err, (what, err)
        assert "Traceback" not in err


def test_the_fixing_flags_work(tmp_path, capsys):
    cases = broken_folders(tmp_path)
    mixed, sizes = cases["grey and colour"][0], cases["sizes"][0]
    assert main(["train", "--dataset", f"folder:{mixed}", "--color", "RGB", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "rgb")]) == 0
    assert main(["train", "--dataset", f"folder:{sizes}", "--image-size", "16", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "sq")]) == 0
    capsys.readouterr()
    assert main(["train", "--dataset", f"folder:{sizes}", "--image-size", "16", "--epochs", "1",
                 "--out", str(tmp_path / "sq2")]) == 0
    assert "1x16x16 (C x H x W)" in capsys.readouterr().out           # one number: a square


@pytest.mark.parametrize("text, expected", [("32", [32, 32]), ("32,48", [32, 48]), ("32x48", [32, 48]),
                                            ("64X64", [64, 64])])
def test_image_size_forms(text, expected):
    assert cfg.parse_image_size(text) == expected


@pytest.mark.parametrize("argv, message", [
    (["--image-size", "big"], "argument --image-size: expected H,W or one number for a square"),
    (["--image-size", "0"], "argument --image-size: expected H,W"),
    (["--color", "CMYK"], "argument --color: expected L (grey) or RGB, got 'CMYK'"),
])
def test_bad_option_values_are_explained_by_argparse(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "invalid" not in err


def test_config_errors_have_one_prefix(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    for argv in (["--epochs", "0"], ["--image-size", "8", "--dataset", "embedded"],
                 ["--color", "L"], ["--out", str(tmp_path / "taken")], ["--dataset", "nosuch"]):
        assert main(["train", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tinycnn train: error: ") and err.count("tinycnn train") == 1, (argv, err)


def test_a_run_too_short_to_learn_warns_and_says_what_to_do(tmp_path, capsys):
    root = folder(tmp_path, "tiny", per_class=10)
    assert main(["train", "--dataset", f"folder:{root}", "--epochs", "1", "--quiet", "--out",
                 str(tmp_path / "r")]) == 0
    err = " ".join(capsys.readouterr().err.split())                      # undo the wrapping
    assert "tinycnn train: warning: " in err and "make only 1 optimizer step," in err
    assert "near chance (50 %)" in err                                   # two classes
    suggested = int(err.split("Try --epochs ")[1].split()[0])
    # 16 training images (80 % of 20) less the 10 % validation hold-out, batch 64: one step per epoch
    assert suggested == cfg.MIN_STEPS
    assert cfg.too_little_training(cfg.fresh(_Args(epochs=3)), 13500, 211) is None


class _Args:
    """What argparse would give for `tinycnn train` with only these options."""

    def __init__(self, **given):
        self.__dict__.update(given)

    def __getattr__(self, name):
        return None


def test_named_dataset_errors_under_train_speak_in_flags(tmp_path, capsys):
    from tinycnn.data import registry
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for f in registry.DATASETS["mnist"].files:
        (folder / f.name).write_bytes(b"not the original")
    for argv, says in ((["--data-dir", str(tmp_path / "absent")], f"--data-dir {tmp_path / 'absent'} is not a folder"),
                       (["--data-dir", str(tmp_path / "data")], "the command line always checks the SHA-256"),
                       (["--data-dir", str(tmp_path)], "(or into a folder you pass as data_dir / --data-dir)")):
        assert main(["train", "--dataset", "mnist", *argv, "--out", str(tmp_path / "run")]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tinycnn train: error: --dataset mnist: ") and says in err, (argv, err)
        assert "pass verify=False" not in err and "load('mnist')" not in err, err
