"""CIFAR python archives: reading, the restricted unpickler, and broken archives."""
import gzip
import pickle

import numpy as np
import pytest
from data_files import cifar10_archive, cifar100_archive, cifar_tar, py2_style_pickle

from tinycnn.data import DataError
from tinycnn.data.cifar import read_cifar, safe_unpickle


def test_cifar10_planar_rows_become_nchw(tmp_path):
    rng = np.random.default_rng(0)
    tr_rows, tr_y, te_rows, te_y, names = cifar10_archive(tmp_path / "c10.tar.gz", rng)
    x_tr, y_tr, x_te, y_te, classes = read_cifar(tmp_path / "c10.tar.gz", "labels")
    assert x_tr.shape == (20, 3, 32, 32) and x_te.shape == (4, 3, 32, 32) and x_tr.dtype == np.uint8
    # row layout: 1024 red values (row-major 32x32), then 1024 green, then 1024 blue
    i, r, c = 7, 5, 30
    assert x_tr[i, 0, r, c] == tr_rows[i, r * 32 + c]
    assert x_tr[i, 1, r, c] == tr_rows[i, 1024 + r * 32 + c]
    assert x_tr[i, 2, r, c] == tr_rows[i, 2048 + r * 32 + c]
    np.testing.assert_array_equal(x_tr.reshape(20, 3072), tr_rows)   # batches 1..5 in order
    np.testing.assert_array_equal(x_te.reshape(4, 3072), te_rows)
    np.testing.assert_array_equal(y_tr, tr_y)
    np.testing.assert_array_equal(y_te, te_y)
    assert classes == tuple(n.decode() for n in names)


@pytest.mark.parametrize("key,which", [("fine_labels", 1), ("coarse_labels", 2)])
def test_cifar100_fine_and_coarse(tmp_path, key, which):
    out, fine, coarse = cifar100_archive(tmp_path / "c100.tar.gz", np.random.default_rng(1))
    x_tr, y_tr, x_te, y_te, classes = read_cifar(tmp_path / "c100.tar.gz", key)
    np.testing.assert_array_equal(x_tr.reshape(-1, 3072), out["train"][0])
    np.testing.assert_array_equal(y_tr, out["train"][which])
    np.testing.assert_array_equal(y_te, out["test"][which])
    assert len(classes) == (100 if which == 1 else 20)
    assert classes[3] == (fine if which == 1 else coarse)[3].decode()


def test_load_through_data_dir(tmp_path):
    from tinycnn import data
    rng = np.random.default_rng(2)
    (tmp_path / "cifar10").mkdir()
    cifar10_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", rng)
    ds = data.load("cifar10", data_dir=tmp_path, verify=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.augment is True
    assert ds.classes[0] == "airplane" and ds.y_train.dtype == np.int64
    with pytest.raises(data.ChecksumError, match=r"cifar-10-python.tar.gz: SHA-256 [0-9a-f]{64} differs "
                                                 r"from the published 6d958be0.*pass verify=False"):
        data.load("cifar10", data_dir=tmp_path)


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = pickle.dumps({"data": Evil(), "labels": [1]}, protocol=4)
    with pytest.raises(DataError, match=r"cannot unpickle evil: refusing to load global (posix|nt|os)\.system"):
        safe_unpickle(payload, "evil")
    assert not (tmp_path / "pwned").exists()
    builtin = pickle.dumps({"f": eval}, protocol=4)
    with pytest.raises(DataError, match=r"refusing to load global builtins\.eval"):
        safe_unpickle(builtin, "b")


def test_restricted_unpickler_reads_arrays_and_bytes_keys():
    rows = np.arange(12, dtype=np.uint8).reshape(2, 6)
    d = safe_unpickle(py2_style_pickle({b"data": rows, b"labels": [3, 4], b"name": b"x"}), "m")
    assert set(d) == {"data", "labels", "name"}
    np.testing.assert_array_equal(d["data"], rows)


def test_evil_member_inside_archive(tmp_path):
    cifar_tar(tmp_path / "e.tar.gz", {
        f"cifar-10-batches-py/{m}": pickle.dumps({"data": Evil()}, protocol=4)
        for m in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch", "batches.meta"]})
    with pytest.raises(DataError, match="refusing to load global"):
        read_cifar(tmp_path / "e.tar.gz")


def test_missing_members(tmp_path):
    cifar_tar(tmp_path / "m.tar.gz", {"cifar-10-batches-py/data_batch_1": b"x"})
    with pytest.raises(DataError, match=r"lacks the member\(s\) \['batches.meta', 'data_batch_2'"):
        read_cifar(tmp_path / "m.tar.gz")


def test_truncated_archive(tmp_path):
    cifar10_archive(tmp_path / "ok.tar.gz", np.random.default_rng(3))
    data = (tmp_path / "ok.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"cut.tar.gz is truncated or not a .tar.gz archive"):
        read_cifar(tmp_path / "cut.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"not a tar file" * 100))
    with pytest.raises(DataError, match="truncated or not a .tar.gz"):
        read_cifar(tmp_path / "junk.tar.gz")


def test_wrong_contents(tmp_path):
    members = {f"cifar-10-batches-py/{m}": py2_style_pickle(
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
        for m in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch", "batches.meta"]}
    cifar_tar(tmp_path / "w.tar.gz", members)
    with pytest.raises(DataError, match=r"data_batch_1\['data'\] should be a uint8 \(n, 3072\) array, "
                                        r"got ndarray uint8 \(2, 100\)"):
        read_cifar(tmp_path / "w.tar.gz")
    members = {k: py2_style_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
               for k in members}
    cifar_tar(tmp_path / "n.tar.gz", members)
    with pytest.raises(DataError, match="has 2 images but 1 labels"):
        read_cifar(tmp_path / "n.tar.gz")


def test_bad_label_key(tmp_path):
    with pytest.raises(ValueError, match="label_key must be one of"):
        read_cifar(tmp_path / "x.tar.gz", "labelz")
