"""The named datasets: their original files, where to download them, and their published checksums.

Sources of the SHA-256 values (each found in at least two independent public projects; the size in
bytes is the published one and is checked too):

* MNIST -- the four ``*-ubyte.gz`` files as served by yann.lecun.com and its two well-known mirrors
  (TensorFlow's ``storage.googleapis.com/cvdf-datasets/mnist`` and PyTorch's
  ``ossci-datasets.s3.amazonaws.com/mnist``); the same SHA-256 values are pinned by Keras/TFDS users
  and torchvision's dataset prototypes. The MD5s torchvision publishes for these files are
  f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d... (listed beside each entry).
* Fashion-MNIST -- the files of zalandoresearch/fashion-mnist (official MD5s in its README:
  8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...); SHA-256 as pinned by torchvision's prototype
  datasets.
* CIFAR-10 / CIFAR-100 -- ``cifar-{10,100}-python.tar.gz`` from www.cs.toronto.edu/~kriz; the SHA-256
  values are the ``file_hash`` Keras passes to ``get_file``; the page's own MD5s are
  c58f30108f718f92721af3b95e74349a and eb9058c3a382ffc7106e4002c42a8d85.

A mirror is only a second address: every file is checked against the same SHA-256 whichever
address served it.
"""
from __future__ import annotations

from dataclasses import dataclass

MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/",                        # canonical
              "https://storage.googleapis.com/cvdf-datasets/mnist/",       # TensorFlow's mirror
              "https://ossci-datasets.s3.amazonaws.com/mnist/")            # PyTorch's mirror
FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",   # canonical
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
CIFAR_URLS = ("https://www.cs.toronto.edu/~kriz/",)


@dataclass(frozen=True)
class RemoteFile:
    """One original file: its name on disk, addresses to try in order, size and SHA-256."""

    name: str
    urls: tuple            # full addresses, tried in order
    size: int              # bytes
    sha256: str


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset. ``reader`` is "idx" (four MNIST-style files) or "cifar"."""

    name: str
    folder: str            # sub-folder in the cache and in a data_dir (also the .npz layout's name)
    files: tuple           # RemoteFile, ...
    reader: str
    classes: tuple | None  # None: read from the archive's meta member (CIFAR)
    augment: bool          # recommended default for random crop + flip
    label_key: str = ""    # CIFAR only: "labels", "fine_labels" or "coarse_labels"
    about: str = ""        # authors, licence, citation


def _files(urls, table):
    return tuple(RemoteFile(name, tuple(u + name for u in urls), size, sha)
                 for name, size, sha in table)


MNIST_FILES = _files(MNIST_URLS, (
    ("train-images-idx3-ubyte.gz", 9_912_422,      # md5 f68b3c2dcbeaaa9fbdd348bbdeb94873
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train-labels-idx1-ubyte.gz", 28_881,         # md5 d53e105ee54ea40749a09fcbcd1e9432
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("t10k-images-idx3-ubyte.gz", 1_648_877,       # md5 9fb629c4189551a2d022fa330f9573f3
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte.gz", 4_542,           # md5 ec29112dd5afa0611ce80d1b7f02629c
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
))
FASHION_FILES = _files(FASHION_URLS, (
    ("train-images-idx3-ubyte.gz", 26_421_880,     # md5 8d4fb7e6c68d591d4c3dfef9ec88bf0d
     "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    ("train-labels-idx1-ubyte.gz", 29_515,         # md5 25c81989df183df01b3e8a0aad5dffbe
     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    ("t10k-images-idx3-ubyte.gz", 4_422_102,       # md5 bef4ecab320f06d8554ea6380940ec79
     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    ("t10k-labels-idx1-ubyte.gz", 5_148,           # md5 bb300cfdad3c16e7a12a480ee83cd310
     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
))
CIFAR10_FILES = _files(CIFAR_URLS, (
    ("cifar-10-python.tar.gz", 170_498_071,        # md5 c58f30108f718f92721af3b95e74349a
     "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
))
CIFAR100_FILES = _files(CIFAR_URLS, (
    ("cifar-100-python.tar.gz", 169_001_437,       # md5 eb9058c3a382ffc7106e4002c42a8d85
     "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),
))

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

_MNIST_ABOUT = ("MNIST, Yann LeCun and Corinna Cortes (with Christopher J.C. Burges); "
                "licence CC BY-SA 3.0. http://yann.lecun.com/exdb/mnist/")
_CIFAR_ABOUT = ("Alex Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images', tech. "
                "report, University of Toronto, 2009. https://www.cs.toronto.edu/~kriz/cifar.html")

DATASETS = {
    "mnist": DatasetSpec("mnist", "mnist", MNIST_FILES, "idx", DIGITS, False, about=_MNIST_ABOUT),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "fashion_mnist", FASHION_FILES, "idx", FASHION_CLASSES, False,
        about="Fashion-MNIST, Han Xiao, Kashif Rasul, Roland Vollgraf (Zalando Research), "
              "arXiv:1708.07747; licence MIT. https://github.com/zalandoresearch/fashion-mnist"),
    "cifar10": DatasetSpec("cifar10", "cifar10", CIFAR10_FILES, "cifar", CIFAR10_CLASSES, True,
                           label_key="labels", about=_CIFAR_ABOUT),
    "cifar100": DatasetSpec("cifar100", "cifar100", CIFAR100_FILES, "cifar", None, True,
                            label_key="fine_labels", about=_CIFAR_ABOUT + " (100 fine classes)"),
    "cifar100_coarse": DatasetSpec("cifar100_coarse", "cifar100", CIFAR100_FILES, "cifar", None,
                                   True, label_key="coarse_labels",
                                   about=_CIFAR_ABOUT + " (20 coarse superclasses)"),
}
ALIASES = {"fashion-mnist": "fashion_mnist", "fashion": "fashion_mnist", "cifar-10": "cifar10",
           "cifar-100": "cifar100", "cifar100-coarse": "cifar100_coarse"}
