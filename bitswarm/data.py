"""Datasets from a data directory in the standard layout; the test split is kept apart.

Directory resolution (first that applies): ``--data-dir``; the default the Makefile sets
(``BITSWARM_DATA_DIR`` = ../shared/datasets when it exists); else a checksum-verified
download into the cache for a user who is online. Images are kept as uint8 and normalised
to [-1, 1] per batch.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bitswarm.errors import DataError

MNIST_FILES = {  # name -> md5 (the official files)
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
VAL_SIZE = {"mnist": 5000, "cifar10": 5000}
SPLIT_SEED = 20240501  # fixed: the validation split never changes between runs
DATASETS = ("mnist", "cifar10")


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8, (N, C, H, W)
    y: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None) -> Split:
        return self if n is None or n >= len(self) else Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    val: Split  # carved from the training set with a fixed seed
    test: Split  # held out: no search ever sees it
    note: str  # provenance shown in every figure, e.g. "CIFAR-10 (JPEG-derived copy)"
    fingerprint: str  # digest of the files read, for cache keys

    @property
    def num_classes(self) -> int:
        return int(max(self.train.y.max(), self.test.y.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _corrupt(path: Path, problem: str, md5: str | None) -> DataError:
    """One line naming the file; with the official checksum when one is known."""
    if md5 is None:
        return DataError(f"{path}: {problem}")
    return DataError(f"{path}: {problem}; expected the official file (md5 {md5}), this one has md5 {_md5(path)}: "
                     f"replace it")


def _read_idx(path: Path, md5: str | None = None) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"truncated or corrupt gzip ({e})", md5) from e
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else 0
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3) or len(raw) < 4 + 4 * ndim:
        raise _corrupt(path, f"not an IDX ubyte file (magic {magic:#x})", md5)
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    size = len(raw) - 4 - 4 * ndim
    if size != int(np.prod(dims)) or not dims[0]:
        raise _corrupt(path, f"truncated: header says {dims} ({int(np.prod(dims)):,} bytes), data has {size:,} bytes",
                       md5)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _check_labels(path: Path, y: np.ndarray, n: int, md5: str | None = None) -> None:
    if y.ndim != 1:
        raise _corrupt(path, f"shape {y.shape} is not (N,) labels", md5)
    if len(y) != n:
        raise _corrupt(path, f"{len(y):,} labels for {n:,} images", md5)
    if y.size and int(y.max()) > 9:
        raise _corrupt(path, f"label {int(y.max())} out of range 0..9", md5)


def _find(data_dir: Path, candidates: list[str], files: list[str]) -> Path | None:
    for sub in candidates:
        d = data_dir / sub
        if all((d / f).exists() for f in files):
            return d
    return None


def _split_train(name: str, x: np.ndarray, y: np.ndarray) -> tuple[Split, Split]:
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    val_idx, tr_idx = perm[: VAL_SIZE[name]], perm[VAL_SIZE[name]:]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return Split(t(x[tr_idx]), t(y[tr_idx]).long()), Split(t(x[val_idx]), t(y[val_idx]).long())


MNIST_DIRS = [".", "mnist", "MNIST/raw"]
CIFAR_DIRS = ["cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10-jpeg/cifar-10-batches-py"]


def load_mnist(data_dir: Path) -> Dataset:
    d = _find(data_dir, MNIST_DIRS, list(MNIST_FILES))
    if d is None:
        raise DataError(f"MNIST not found under {data_dir} (looked in {', '.join(MNIST_DIRS)}); "
                        f"expected files: {', '.join(MNIST_FILES)}")
    arr = {k: _read_idx(d / k, md5) for k, md5 in MNIST_FILES.items()}
    for images, labels in (("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                           ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        if arr[images].ndim != 3 or arr[images].shape[1:] != (28, 28):
            raise _corrupt(d / images, f"shape {arr[images].shape} is not (N, 28, 28) images", MNIST_FILES[images])
        _check_labels(d / labels, arr[labels], len(arr[images]), MNIST_FILES[labels])
    tr, va = _split_train("mnist", arr["train-images-idx3-ubyte.gz"][:, None], arr["train-labels-idx1-ubyte.gz"])
    test = Split(torch.from_numpy(arr["t10k-images-idx3-ubyte.gz"][:, None].copy()),
                 torch.from_numpy(arr["t10k-labels-idx1-ubyte.gz"].copy()).long())
    sums = {k: _md5(d / k) for k in MNIST_FILES}
    fp = hashlib.sha256("".join(sums.values()).encode()).hexdigest()[:16]
    official = sums == MNIST_FILES
    return Dataset("mnist", tr, va, test, "MNIST (original files)" if official else
                   "MNIST (readable files whose md5 differs from the official ones)", fp)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    try:
        with open(path, "rb") as f:
            b = pickle.load(f, encoding="bytes")
        data, y = np.asarray(b[b"data"], dtype=np.uint8), np.asarray(b[b"labels"], dtype=np.int64)
        jpeg = bool(b.get(b"filenames")) and str(b[b"filenames"][0]).endswith(".jpg'")
    except Exception as e:  # a truncated or foreign pickle raises anything (EOFError, UnpicklingError, TypeError...)
        why = (str(e).strip().splitlines() or [""])[0]
        raise _corrupt(path, f"truncated or not a CIFAR-10 python batch ({type(e).__name__}: {why}); no checksum is "
                       f"known for single batches: re-extract it from {CIFAR_URL.rsplit('/', 1)[1]} (md5 {CIFAR_MD5})",
                       None) from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or not len(data):
        raise _corrupt(path, f"field 'data' has shape {data.shape}; allowed: (N, 3072) uint8 rows", None)
    if y.ndim != 1 or len(y) != len(data) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise _corrupt(path, f"field 'labels' has {y.size} values in {y.min() if y.size else '-'}.."
                       f"{y.max() if y.size else '-'} for {len(data)} images; allowed: one label 0..9 per image", None)
    return data.reshape(-1, 3, 32, 32), y, jpeg


def load_cifar10(data_dir: Path) -> Dataset:
    d = _find(data_dir, CIFAR_DIRS, CIFAR_FILES)
    if d is None:
        raise DataError(f"CIFAR-10 not found under {data_dir} (looked in {', '.join(CIFAR_DIRS)}); "
                        f"expected python batches: {', '.join(CIFAR_FILES)}")
    parts = [_read_cifar_batch(d / f) for f in CIFAR_FILES]
    x = np.concatenate([p[0] for p in parts[:5]])
    y = np.concatenate([p[1] for p in parts[:5]])
    tr, va = _split_train("cifar10", x, y)
    test = Split(torch.from_numpy(parts[5][0].copy()), torch.from_numpy(parts[5][1]).long())
    jpeg = any(p[2] for p in parts) or "jpeg" in str(d).lower()
    note = "CIFAR-10 (JPEG-derived copy, not the original pixels)" if jpeg else "CIFAR-10 (original files)"
    fp = hashlib.sha256("".join(f"{f}:{(d / f).stat().st_size}" for f in CIFAR_FILES).encode()).hexdigest()[:16]
    return Dataset("cifar10", tr, va, test, note, fp)


def download(name: str, dest: Path) -> Path:
    """Checksum-verified download for an online user (never used in tests)."""
    dest.mkdir(parents=True, exist_ok=True)
    if name == "mnist":
        for f, md5 in MNIST_FILES.items():
            _fetch(MNIST_URL + f, dest / "mnist" / f, md5)
    else:
        tgz = dest / "cifar-10-python.tar.gz"
        _fetch(CIFAR_URL, tgz, CIFAR_MD5)
        with tarfile.open(tgz) as t:
            t.extractall(dest, filter="data")
    return dest


def _fetch(url: str, path: Path, md5: str) -> None:
    if path.exists() and _md5(path) == md5:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as e:
        raise DataError(f"cannot download {url} ({e}); pass --data-dir with the files instead") from e
    if _md5(tmp) != md5:
        tmp.unlink()
        raise DataError(f"{url}: checksum mismatch (expected md5 {md5}); nothing was kept")
    tmp.replace(path)


def resolve_data_dir(explicit: str | Path | None, env_default: Path | None, cache_dir: Path,
                     name: str, allow_download: bool = True) -> Path:
    """``--data-dir``, else the Makefile default, else a verified download into the cache."""
    if explicit:
        p = Path(explicit)
        if not p.is_dir():
            raise DataError(f"--data-dir {p}: no such directory")
        return p
    if env_default and Path(env_default).is_dir():
        return Path(env_default)
    if not allow_download:
        raise DataError(f"no data directory for {name}: pass --data-dir DIR (standard layout)")
    return download(name, cache_dir / "datasets")


def load_dataset(name: str, data_dir: Path | None) -> Dataset:
    """``mnist``/``cifar10`` from ``data_dir``; otherwise ``name`` is a user image folder or .npz."""
    if name not in DATASETS:
        from bitswarm.userdata import load_user_dataset

        return load_user_dataset(name)
    if name == "mnist":
        return load_mnist(Path(data_dir))
    if name == "cifar10":
        return load_cifar10(Path(data_dir))
