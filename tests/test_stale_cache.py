"""Caches key by content: an edited model file, new weights under the same name, changed search
settings or another process never get a stale result (``bitswarm/cachekey.py``)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bitswarm.cachekey import entry_digest
from bitswarm.cli import main
from bitswarm.models import get_model

MODEL = """from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.{pool}(2))
        self.classifier = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1){extra})


def build():
    return Net()
"""


def _write_model(path: Path, pool: str = "MaxPool2d", extra: str = "") -> str:
    path.write_text(MODEL.format(pool=pool, extra=extra))
    return f"{path}:build"


def _checkpoints(cache: Path) -> set[str]:
    return {p.name for p in (cache / "checkpoints").iterdir() if (p / "final.pt").exists()}


def _train(spec: str, data_dir: Path, *extra: str) -> None:
    argv = ["train", "--model", spec, "--dataset", "mnist", "--data-dir", str(data_dir), "--fp-epochs", "1",
            "--bits", "fp", "--threads", "1", *extra]
    assert main(argv) == 0


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("edit", [{"pool": "AvgPool2d"}, {"extra": " * 2.0"}], ids=["layer", "forward-only"])
def test_edited_model_file_under_the_same_name_is_retrained(tmp_path, tiny_mnist_dir, cache, edit):
    """MaxPool -> AvgPool (a structural edit), or an edit to ``forward`` only (same layers and weights)."""
    path = tmp_path / "net.py"
    spec = _write_model(path)
    _train(spec, tiny_mnist_dir)
    first = _checkpoints(cache)
    _train(spec, tiny_mnist_dir)  # unchanged: served from the cache
    assert _checkpoints(cache) == first and len(first) == 1
    _write_model(path, **edit)
    _train(spec, tiny_mnist_dir)
    after = _checkpoints(cache)
    assert len(after) == 2 and first < after  # a new checkpoint: trained, not the stale one


def test_changed_weights_file_under_the_same_name_changes_the_key_and_retrains(tmp_path, tiny_mnist_dir, cache):
    spec = _write_model(tmp_path / "net.py")
    weights = tmp_path / "w.pt"

    def save(value: float) -> str:
        torch.save({k: torch.full_like(v, value) for k, v in _float_state(spec).items()}, weights)
        return entry_digest(get_model(spec, weights=str(weights), dataset="mnist"))

    a = save(0.01)
    _train(spec, tiny_mnist_dir, "--weights", str(weights))
    _train(spec, tiny_mnist_dir, "--weights", str(weights))  # the same file: served from the cache
    assert len(_checkpoints(cache)) == 1
    b = save(-0.02)
    assert a != b
    _train(spec, tiny_mnist_dir, "--weights", str(weights))
    assert len(_checkpoints(cache)) == 2


def _float_state(spec: str) -> dict:
    from bitswarm.models.custom import load_user_model

    return load_user_model(spec).state_dict()


def test_search_rerun_with_other_val_samples_is_refused_naming_it(tmp_path, tiny_mnist_dir, cache, capsys):
    run = tmp_path / "run"

    def search(val_samples: int) -> int:
        return main(["search", "--data-dir", str(tiny_mnist_dir), "--cost", "bitops", "--max-avg-bits", "8",
                     "--particles", "1", "--iters", "1", "--budget", "1", "--eval-epochs", "1",
                     "--eval-train-samples", "100", "--val-samples", str(val_samples), "--final-epochs", "0",
                     "--threads", "1", "--run-dir", str(run)])

    assert search(100) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert search(200) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "journal.sqlite: field 'run settings'" in err[0] and "['val_samples']" in err[0]


DIGEST = """import sys, torch
torch.rand(int(sys.argv[2]))  # whatever the process did before does not matter
from bitswarm.cachekey import entry_digest
from bitswarm.models import get_model
print(entry_digest(get_model(sys.argv[1], dataset="mnist")))
"""


def test_entry_digest_of_a_user_model_is_the_same_in_two_processes(tmp_path):
    """What makes FINN estimates (and float checkpoints) of user models reusable across runs."""
    spec = _write_model(tmp_path / "net.py")
    script = tmp_path / "digest.py"
    script.write_text(DIGEST)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "BITSWARM_CACHE_DIR": str(tmp_path / "cache")}
    out = [subprocess.run([sys.executable, str(script), spec, str(n)], capture_output=True, text=True, env=env,
                          check=True, timeout=300).stdout.strip() for n in (0, 7)]
    assert out[0] == out[1] == entry_digest(get_model(spec, dataset="mnist")), json.dumps(out)


def test_an_edit_in_a_helper_module_the_model_calls_changes_its_key(tmp_path):
    """The model's own file is unchanged; its forward calls a helper in another module, which is edited."""
    (tmp_path / "helper.py").write_text("def scale(x):\n    return x\n")
    spec = _write_model(tmp_path / "net.py", extra=" * __import__('helper').scale(1.0)")
    script = tmp_path / "digest.py"
    script.write_text(DIGEST)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
           "BITSWARM_CACHE_DIR": str(tmp_path / "cache")}

    def key():
        return subprocess.run([sys.executable, str(script), spec, "0"], capture_output=True, text=True, env=env,
                              check=True, timeout=300).stdout.strip()

    before = key()
    assert key() == before  # stable while nothing changes
    (tmp_path / "helper.py").write_text("def scale(x):\n    return 3 * x\n")
    assert key() != before


def test_model_file_edited_within_the_same_second_is_not_run_from_stale_bytecode(tmp_path, monkeypatch):
    """With bytecode caching on (the default outside this test run), ``__pycache__`` is keyed by the
    source's mtime in whole seconds and its size: MaxPool2d -> AvgPool2d keeps the size."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "net.py"
    spec = _write_model(path)
    old = get_model(spec, dataset="mnist")
    assert "MaxPool2d" in repr(old.build(old.uniform_bits(32, 32)))
    _write_model(path, pool="AvgPool2d")
    new = get_model(spec, dataset="mnist")
    assert "AvgPool2d" in repr(new.build(new.uniform_bits(32, 32)))
    assert entry_digest(new) != entry_digest(old)
