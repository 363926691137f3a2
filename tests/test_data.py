import pytest
import torch

from bitswarm.data import load_dataset, resolve_data_dir
from bitswarm.errors import DataError


def test_mnist_loader_and_fixed_split(tiny_mnist_dir):
    a = load_dataset("mnist", tiny_mnist_dir)
    b = load_dataset("mnist", tiny_mnist_dir)
    assert len(a.train) == 1000 and len(a.val) == 5000 and len(a.test) == 1000
    assert a.train.x.shape[1:] == (1, 28, 28) and a.train.x.dtype == torch.uint8
    assert torch.equal(a.val.x, b.val.x)  # the validation split never moves


def test_cifar_loader_flags_jpeg_copy(tiny_cifar_dir):
    d = load_dataset("cifar10", tiny_cifar_dir)
    assert d.train.x.shape[1:] == (3, 32, 32) and len(d.test) == 1200
    assert "JPEG" in d.note


def test_missing_dataset_names_dir_and_files(tmp_path):
    with pytest.raises(DataError, match=r"MNIST not found under .*expected files: train-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match=r"expected python batches: data_batch_1"):
        load_dataset("cifar10", tmp_path)


def test_data_dir_order(tmp_path, tiny_mnist_dir):
    assert resolve_data_dir(tiny_mnist_dir, tmp_path, tmp_path, "mnist") == tiny_mnist_dir
    assert resolve_data_dir(None, tiny_mnist_dir, tmp_path, "mnist") == tiny_mnist_dir
    with pytest.raises(DataError, match="no such directory"):
        resolve_data_dir(tmp_path / "nope", None, tmp_path, "mnist")
    with pytest.raises(DataError, match="pass --data-dir"):
        resolve_data_dir(None, None, tmp_path, "mnist", allow_download=False)
