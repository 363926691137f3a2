import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _idx(path: Path, arr: np.ndarray) -> None:
    magic = (0x08 << 8) | arr.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> Path:
    """A generated MNIST-layout directory: 6,000 train / 1,000 test images of learnable digits."""
    d = tmp_path_factory.mktemp("data") / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(y):  # a class-specific bright bar: learnable by a small MLP
            x[i, 2 + 2 * c: 5 + 2 * c, 4:24] = 250
        return x.astype(np.uint8), y.astype(np.uint8)

    xtr, ytr = make(6000)
    xte, yte = make(1000)
    _idx(d / "train-images-idx3-ubyte.gz", xtr)
    _idx(d / "train-labels-idx1-ubyte.gz", ytr)
    _idx(d / "t10k-images-idx3-ubyte.gz", xte)
    _idx(d / "t10k-labels-idx1-ubyte.gz", yte)
    return d.parent


@pytest.fixture(scope="session")
def tiny_cifar_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data") / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (1200, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, 1200).tolist()),
                 b"filenames": [f"train/x/{i:04d}.jpg".encode() for i in range(1200)]}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return d.parent


@pytest.fixture(scope="session")
def runner_cache(tmp_path_factory) -> Path:
    """A cache directory shared by the tests that build native TVM runners (a build takes minutes)."""
    return tmp_path_factory.mktemp("runner-cache")


@pytest.fixture
def fresh_cache(tmp_path, runner_cache) -> Path:
    """An empty cache directory for one test, except that its native TVM runners are the session's:
    ``tvm-runner/`` links to ``runner_cache`` (a runner is keyed by its sources and compiler, and
    compiling one takes minutes, so every deploy test compiling its own made CI load-sensitive)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shared = runner_cache / "tvm-runner"
    shared.mkdir(exist_ok=True)
    (cache / "tvm-runner").symlink_to(shared, target_is_directory=True)
    return cache
