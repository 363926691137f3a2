"""Bad inputs end in ONE line naming the flag or file, the field and what is allowed; exit code 2;
nothing written. Every case is refused before any training starts (no case here trains)."""

import dataclasses
import gzip
import pickle
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from bitswarm.boards import SshSpec, load_board
from bitswarm.cli import main
from bitswarm.errors import ConfigError

CNN = str(Path(__file__).parent / "fixtures" / "byom_cnn.py") + ":build"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Checkpoints would go to the cache: keep it in tmp_path so 'nothing written' can be checked."""
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))


def _one_line_error(capsys, *names) -> str:
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.startswith("bitswarm: error: ") and "\n" not in err and "Traceback" not in err, cap.err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def _nothing_written(tmp_path, *dirs) -> None:
    for d in dirs:
        assert not d.exists(), d
    assert not (tmp_path / "cache").exists()


# 1. counts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, flag", [
    (["train", "--fp-epochs", "0"], "--fp-epochs"),
    (["train", "--epochs", "-1"], "--epochs"),
    (["search", "--budget", "0"], "--budget"),
    (["search", "--particles", "0"], "--particles"),
    (["compare", "--particles", "-2"], "--particles"),
    (["compare", "--fp-epochs", "0"], "--fp-epochs"),
    (["compare", "--budget", "-1"], "--budget"),
    (["deploy", "--fp-epochs", "0"], "--fp-epochs"),
    (["deploy", "--epochs", "0"], "--epochs"),
    (["deploy", "--particles", "0"], "--particles"),
    (["prune", "--fp-epochs", "0"], "--fp-epochs"),
    (["cluster", "--qat-epochs", "-3"], "--qat-epochs"),
    (["finetune", "--budget", "0"], "--budget"),
    (["finetune", "--fp-epochs", "zero"], "--fp-epochs"),
])
def test_counts_must_be_positive(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    extra = {"search": ["--run-dir", str(out)], "compare": ["--out", str(out)], "deploy": ["--out", str(out)],
             "prune": ["--out", str(out)], "cluster": ["--out", str(out)], "finetune": ["--out", str(out)]}
    # a data dir that does not exist: without the check the command fails differently (and fast)
    assert main([*argv, "--data-dir", str(tmp_path / "no-data"), *extra.get(argv[0], [])]) == 2
    _one_line_error(capsys, f"argument {flag}", "is not a positive integer", "allowed: an integer >= 1")
    _nothing_written(tmp_path, out)


@pytest.mark.parametrize("argv, flag", [
    (["search", "--eval-train-samples", "-1"], "--eval-train-samples"),
    (["compare", "--val-samples", "all"], "--val-samples"),
])
def test_sample_counts_take_zero_for_all_not_negatives(tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    extra = ["--run-dir", str(out)] if argv[0] == "search" else ["--out", str(out)]
    assert main([*argv, "--data-dir", str(tmp_path / "no-data"), *extra]) == 2
    _one_line_error(capsys, f"argument {flag}", "is not a count", "allowed: an integer >= 1, or 0 for all")
    _nothing_written(tmp_path, out)


@pytest.mark.parametrize("argv, flag, allowed", [
    (["search", "--val-samples", "-5"], "--val-samples", "or 0 for all"),
    (["search", "--beta", "2"], "--beta", "a number in [0.5, 1]"),
    (["search", "--beta", "nan"], "--beta", "a number in [0.5, 1]"),
    (["search", "--max-avg-bits", "nan"], "--max-avg-bits", "a number in (0, inf]"),
    (["search", "--max-lut", "-1"], "--max-lut", "a number in (0, inf]"),
    (["search", "--final-epochs", "-1"], "--final-epochs", "or 0 to skip"),
    (["search", "--gamma", "0"], "--gamma", "an integer >= 1"),
    (["search", "--threads", "-3"], "--threads", "an integer >= 1"),
    (["search", "--seed", "123456789012345678901"], "--seed", "an integer in 0..4294967295"),
    (["search", "--fitness", "magic"], "--fitness", "auto"),
    (["compare", "--final-epochs", "-2"], "--final-epochs", "or 0 to skip"),
    (["compare", "--eval-train-samples", "-1"], "--eval-train-samples", "or 0 for all"),
    (["cluster", "--sparsity", "1.5"], "--sparsity", "a number in [0, 0.99]"),
    (["finetune", "--rate", "2"], "--rate", "a number in (0, 1]"),
    (["supernet", "--stop-after", "0"], "--stop-after", "an integer >= 1"),
    (["train", "--model", "tfc", "--weights", "w.pt"], "--weights", "a user model"),
    (["search", "--model", "tfc", "--dataset", "cifar10"], "--dataset", "built for mnist"),
    (["train", "--model", "cnv", "--dataset", "d.npz"], "--dataset", "built for cifar10"),
    (["deploy", "--config", "b.yaml", "--qonnx", "m.onnx", "--out", "o"], "--config", "not both"),
    (["compare", "--algos", "random,nosuch"], "--algos", "nosuch"),
    (["supernet", "--device", "tpu"], "--device", "auto"),
    (["score", "--bits", "w2a2", "--val-samples", "-1"], "--val-samples", "or 0 for all"),
])
def test_values_out_of_their_documented_range_are_refused(tmp_path, capsys, argv, flag, allowed):
    out = tmp_path / "out"
    extra = {"search": ["--run-dir", str(out)], "compare": ["--out", str(out)], "cluster": ["--out", str(out)],
             "finetune": ["--out", str(out)]}
    assert main([*argv, "--data-dir", str(tmp_path / "no-data"), *extra.get(argv[0], [])]) == 2
    _one_line_error(capsys, flag, allowed)
    _nothing_written(tmp_path, out)


@pytest.mark.parametrize("value", ["true", "yes", "2.0", "'2'"])
def test_a_bits_file_value_that_is_not_an_integer_is_refused(tmp_path, capsys, value):
    """YAML's true/yes would pass as 1 bit (True == 1), 2.0 as 2: neither is a bit-width."""
    bits = tmp_path / "bits.yaml"
    rows = ["input_quant: {w: null, a: 2}", f"fc0: {{w: {value}, a: 2}}", "fc1: {w: 2, a: 2}", "fc2: {w: 2, a: 2}",
            "fc3: {w: 2, a: null}"]
    bits.write_text("layers:\n" + "".join(f"  {r}\n" for r in rows))
    assert main(["train", "--bits", str(bits), "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, str(bits), "layers.fc0.w", "not in candidate set", "allowed: 1, 2")
    _nothing_written(tmp_path)


# 2. boards --------------------------------------------------------------------------------------

def _board(tmp_path, mutate):
    from test_boards import _write  # pytest puts tests/ on sys.path (no package)

    return _write(tmp_path, mutate)


@pytest.mark.parametrize("mutate, field, allowed", [
    (lambda d: d["fpga"]["resources"].update(lut=0), "fpga.resources.lut", "an integer >= 1"),
    (lambda d: d["fpga"]["resources"].update(bram18=-4), "fpga.resources.bram18", "an integer >= 1"),
    (lambda d: d["fpga"]["resources"].update(dsp=0), "fpga.resources.dsp", "an integer >= 1"),
    (lambda d: d["fpga"]["resources"].update(uram=-1), "fpga.resources.uram", "an integer >= 0"),
    (lambda d: d["fpga"].update(clock="0 MHz"), "fpga.clock", "a number > 0"),
    (lambda d: d["cpu"].update(clock="0 GHz"), "cpu.clock", "a number > 0"),
    (lambda d: d["cpu"].update(memory="0 MB"), "cpu.memory", "a number > 0"),
    (lambda d: d["cpu"].update(cores=0), "cpu.cores", "an integer >= 1"),
    (lambda d: d["cpu"]["tvm_target"].update(kind="vulkan"), "cpu.tvm_target.kind", "llvm, cuda"),
    (lambda d: d["ssh"].update(port=0), "ssh.port", "1..65535"),
    (lambda d: d["ssh"].update(port=70000), "ssh.port", "1..65535"),
    (lambda d: d["ssh"].update(port="22"), "ssh.port", "int"),
    (lambda d: d["rpc"].update(port=65536), "rpc.port", "1..65535"),
    (lambda d: d["ssh"].update(host="-oProxyCommand=touch /tmp/x"), "ssh.host", "no leading '-'"),
    (lambda d: d["ssh"].update(host="board local"), "ssh.host", "no whitespace"),
    (lambda d: d["ssh"].update(user="-lroot"), "ssh.user", "no leading '-'"),
    (lambda d: d["ssh"].update(user="x y"), "ssh.user", "no whitespace"),
    (lambda d: d["ssh"].update(python="python3 -c evil"), "ssh.python", "no whitespace"),
    (lambda d: d["ssh"].update(python="~/venv/bin/python3"), "ssh.python", "no ~"),
    (lambda d: d["ssh"].update(workdir="/home/x/$(reboot)"), "ssh.workdir", "letters, digits"),
])
def test_bad_board_values(tmp_path, capsys, mutate, field, allowed):
    p = _board(tmp_path, mutate)
    assert main(["train", "--board", str(p), "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, p, f"field '{field}'", allowed)


# 3. data ----------------------------------------------------------------------------------------

def _npz(**arrays):
    def write(tmp_path):
        p = tmp_path / "user.npz"
        np.savez(p, **arrays)
        return p
    return write


def _garbage_npz(tmp_path):
    p = tmp_path / "user.npz"
    p.write_bytes(b"PK\x03\x04 not really a zip archive")
    return p


X = np.zeros((20, 8, 8, 3), np.uint8)


@pytest.mark.parametrize("make, expected", [
    (_npz(x=X, y=np.zeros(19, np.int64)), "field 'y' has 19 labels for 20 images"),
    (_npz(x=X, y=np.r_[np.zeros(19, np.int64), -1]), "field 'y' has label -1; allowed: class indices 0..K-1"),
    (_npz(x=X[:0], y=np.zeros(0, np.int64)), "0 images; allowed: at least 3"),
    (_npz(x=X, y=np.zeros(20), x_test=X[:5], y_test=np.zeros(4)), "field 'y_test' has 4 labels for 5 images"),
    (_npz(x=X, y=np.full(20, 0.5)), "field 'y' has shape (20,), dtype float64; allowed: one integer class label"),
    (_npz(x=X, y=np.zeros(20), x_test=X[:5]), "only one of x_test / y_test"),
    (_garbage_npz, "cannot read as .npz (BadZipFile"),
    (_npz(x=np.zeros((20, 32, 32, 3), np.uint8), y=np.r_[np.zeros(19, np.int64), 99]),
     "labels go up to 99 but the model"),
])
def test_bad_npz_is_one_error_naming_the_file(tmp_path, capsys, make, expected):
    p, run = make(tmp_path), tmp_path / "run"
    assert main(["search", "--model", CNN, "--dataset", str(p), "--run-dir", str(run), "--cost", "bitops"]) == 2
    _one_line_error(capsys, p, expected)
    _nothing_written(tmp_path, run)


def _truncate(path, keep=0.5):
    raw = path.read_bytes()
    path.unlink()
    path.write_bytes(raw[: int(len(raw) * keep)])


def _mnist_copy(src, dst, corrupt):
    d = dst / "mnist"
    shutil.copytree(src / "mnist", d)
    corrupt(d)
    return dst


def _official_md5_names(name):
    from bitswarm.data import MNIST_FILES

    return f"expected the official file (md5 {MNIST_FILES[name]})"


def _rewrite_gz(path, mutate):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    path.unlink()
    with gzip.open(path, "wb") as f:
        f.write(mutate(raw))


def _bad_label(raw):
    return raw[:-1] + b"\x0c"  # label 12


MNIST_CASES = [
    ("train-images-idx3-ubyte.gz", lambda d: _truncate(d / "train-images-idx3-ubyte.gz"), "truncated or corrupt gzip"),
    ("t10k-labels-idx1-ubyte.gz", lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage"),
     "truncated or corrupt gzip"),
    ("t10k-images-idx3-ubyte.gz", lambda d: _rewrite_gz(d / "t10k-images-idx3-ubyte.gz", lambda r: r[:-100]),
     "truncated: header says [1000, 28, 28]"),
    ("train-labels-idx1-ubyte.gz", lambda d: _rewrite_gz(d / "train-labels-idx1-ubyte.gz", _bad_label),
     "label 12 out of range 0..9"),
]


@pytest.mark.parametrize("name, corrupt, expected", MNIST_CASES, ids=[c[0] for c in MNIST_CASES])
def test_corrupt_mnist_file_names_it_and_its_checksum(tmp_path, capsys, tiny_mnist_dir, name, corrupt, expected):
    data, out = _mnist_copy(tiny_mnist_dir, tmp_path / "data", corrupt), tmp_path / "out"
    assert main(["prune", "--model", "smallcnn", "--data-dir", str(data), "--out", str(out)]) == 2
    _one_line_error(capsys, data / "mnist" / name, expected, _official_md5_names(name))
    _nothing_written(tmp_path, out)


def _cifar_copy(src, dst, name, corrupt):
    d = dst / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for f in (src / "cifar-10-batches-py").iterdir():
        (d / f.name).symlink_to(f) if f.name != name else shutil.copy(f, d / f.name)
    corrupt(d / name)
    return dst


def _repickle(path, mutate):
    with open(path, "rb") as f:
        b = pickle.load(f, encoding="bytes")
    mutate(b)
    path.unlink()
    with open(path, "wb") as f:
        pickle.dump(b, f, protocol=2)


CIFAR_CASES = [
    ("data_batch_3", _truncate, "truncated or not a CIFAR-10 python batch"),
    ("test_batch", lambda p: p.write_bytes(b"\x80\x02garbage"), "truncated or not a CIFAR-10 python batch"),
    ("data_batch_1", lambda p: _repickle(p, lambda b: b[b"labels"].pop()), "field 'labels' has 1199 values"),
    ("data_batch_5", lambda p: _repickle(p, lambda b: b[b"labels"].__setitem__(0, -1)), "allowed: one label 0..9"),
]


@pytest.mark.parametrize("name, corrupt, expected", CIFAR_CASES, ids=[c[0] for c in CIFAR_CASES])
def test_corrupt_cifar_batch_names_it(tmp_path, capsys, tiny_cifar_dir, name, corrupt, expected):
    data, out = _cifar_copy(tiny_cifar_dir, tmp_path / "data", name, corrupt), tmp_path / "out"
    assert main(["prune", "--model", "cifar-smallcnn", "--data-dir", str(data), "--out", str(out)]) == 2
    err = _one_line_error(capsys, data / "cifar-10-batches-py" / name, expected)
    if "not a CIFAR-10" in expected:  # no per-batch checksum is known: the archive's is given
        assert "md5 c58f30108f718f92721af3b95e74349a" in err
    _nothing_written(tmp_path, out)


# 4. run ids -------------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", ".hidden", "/abs", "a b", "-x", "x;rm", ""])
def test_run_id_must_be_a_plain_name(tmp_path, capsys, run_id):
    out = tmp_path / "deploy"
    assert main(["deploy", f"--run-id={run_id}", "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, "argument --run-id", repr(run_id), "allowed: letters, digits")
    _nothing_written(tmp_path, out)


# 5. weights and user model code -----------------------------------------------------------------

def _write(name, text):
    def make(tmp_path):
        p = tmp_path / name
        p.write_text(text)
        return p
    return make


def _torch_save(obj):
    def make(tmp_path):
        p = tmp_path / "w.pt"
        torch.save(obj, p)
        return p
    return make


BUILD_RAISES = "from torch import nn\n\ndef build():\n    raise ValueError('no such layer size')\n"
IMPORT_RAISES = "import torch\nSIZE = 1 // 0\n\ndef build():\n    return torch.nn.Linear(2, 2)\n"
SYNTAX = "def build(:\n    pass\n"


@pytest.mark.parametrize("model, weights, names", [
    (None, _write("w.pt", "this is not a torch file"), ["w.pt", "field 'weights': not a torch state_dict ("]),
    (None, _torch_save([1, 2, 3]), ["w.pt", "holds a list, not a state_dict of tensors"]),
    (None, _torch_save({"features.0.weight": torch.zeros(1)}), ["w.pt", "cannot load into", "RuntimeError"]),
    (_write("m.py", BUILD_RAISES), None, ["m.py:4", "raised ValueError: no such layer size", "building the model"]),
    (_write("m.py", IMPORT_RAISES), None, ["m.py:2", "raised ZeroDivisionError", "while importing it"]),
    (_write("m.py", SYNTAX), None, ["m.py:1", "raised SyntaxError"]),
    (_write("m.py", "import sys\nsys.exit(3)\n"), None, ["m.py:2", "raised SystemExit: 3", "while importing it"]),
    (_write("m.py", "import sys\n\ndef build():\n    sys.exit(4)\n"), None, ["m.py:4", "raised SystemExit: 4"]),
])
def test_bad_weights_or_user_model_names_file_and_exception(tmp_path, capsys, model, weights, names):
    spec = f"{model(tmp_path)}:build" if model else CNN
    argv = ["search", "--model", spec, "--dataset", "cifar10", "--run-dir", str(tmp_path / "run"),
            "--data-dir", str(tmp_path / "no-data"), "--cost", "bitops"]
    if weights:
        argv += ["--weights", str(weights(tmp_path))]
    assert main(argv) == 2
    err = _one_line_error(capsys, str(tmp_path), *names)
    assert "no-data" not in err  # refused before any data is looked for
    _nothing_written(tmp_path, tmp_path / "run")


# 6. unknown zoo model ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nosuch", "TFC"])
def test_models_layers_unknown_lists_the_zoo(capsys, name):
    from bitswarm.models import ZOO

    assert main(["models", "--layers", name]) == 2
    err = _one_line_error(capsys, "--layers", f"unknown model {name!r}", "allowed: " + ", ".join(ZOO))
    assert err and not capsys.readouterr().out  # no half-printed table


# 7. corrupt journal -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["search", "compare", "journal-garbage", "journal-bad-body"])
def test_corrupt_journal_names_file_and_what_to_do(tmp_path, capsys, tiny_mnist_dir, how):
    from bitswarm.search.journal import Journal

    run = tmp_path / ("cmp" if how == "compare" else "run")
    journal = run / ("bbpso-q-s0" if how == "compare" else "") / "journal.sqlite"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200 if how == "journal-bad-body" else b"not sqlite")
    if how.startswith("journal"):
        with pytest.raises(ConfigError) as ei:
            Journal(journal, {"seed": 0})
        err = str(ei.value)
        assert "\n" not in err and str(journal) in err
    else:
        common = ["--data-dir", str(tiny_mnist_dir), "--cost", "bitops", "--max-avg-bits", "4"]
        argv = (["search", "--run-dir", str(run)] if how == "search" else
                ["compare", "--out", str(run), "--algos", "bbpso-q", "--seeds", "1", "--fp-epochs", "1"])
        assert main(argv + common) == 2
        err = _one_line_error(capsys, journal)
        assert not (tmp_path / "cache").exists()  # refused before the float model is trained
    assert "not a readable bitswarm journal" in err and f"delete the run dir {run}" in err
    assert "new --run-dir" in err


# 8. ssh argv ------------------------------------------------------------------------------------

@pytest.mark.parametrize("python, lib, workdir", [
    ("/opt/py 3/bin/python3", "tvm/model.so", "/w"),
    ("python3; touch /tmp/pwned", "tvm/$(reboot).so", "/home/u/bitswarm"),
    ("python3", "tvm/a'b c.so", "rel/dir"),
])
def test_ssh_argv_ends_options_and_quotes_remote_args(tmp_path, monkeypatch, python, lib, workdir):
    from bitswarm.flows import ssh

    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout='{"latency_ms_mean": 1.0}\n', stderr="")

    monkeypatch.setattr(ssh.subprocess, "run", fake_run)
    spec = SshSpec(host="board", user="me", port=2222, python=python, workdir=workdir)
    board = dataclasses.replace(load_board("pynq-z2"), ssh=spec)
    pkg = tmp_path / "run1"
    pkg.mkdir()
    r = ssh.run_on_board(board, pkg, {"tvm": [{"lib": lib}], "input_shape": [1, 28, 28]}, repeat=3)
    assert r["latency_ms_mean"] == 1.0
    for cmd in calls:  # the destination is never read as an option
        assert cmd[cmd.index("--") + 1] == (str(pkg) if cmd[0] == "scp" else "me@board")
    assert calls[1][0] == "scp" and calls[1][-1] == f"me@board:{workdir}/.incoming-run1"
    remote = calls[-1][-1]
    assert shlex.split(remote) == ["cd", f"{workdir}/run1", "&&", python, "runner/tvm_runner.py", lib,
                                   "--shape", "1,1,28,28", "--repeat", "3"]
    assert shlex.split(calls[0][-1]) == ["mkdir", "-p", "--", workdir, "&&", "rm", "-rf", "--",
                                         f"{workdir}/.incoming-run1"]


def test_a_second_search_on_a_locked_run_dir_is_refused_at_once(tmp_path):
    """Two searches on one run dir: the second gets one line naming the dir, not an IntegrityError later."""
    from bitswarm.search.runner import lock_run_dir

    held = lock_run_dir(tmp_path)
    try:
        with pytest.raises(ConfigError, match=r"run dir'.*another search is running in it.*another --run-dir"):
            lock_run_dir(tmp_path)
    finally:
        held.close()
    lock_run_dir(tmp_path).close()  # free again once the first has ended


def test_a_read_only_out_dir_is_one_line_and_the_step_error_is_not_hidden(tmp_path, capsys, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores the mode bits: make mkdir fail the way a read-only mount does
            from pathlib import Path as P

            real = P.mkdir

            def refuse(self, *a, **k):
                if str(self).startswith(str(ro)):
                    raise PermissionError(13, "Read-only file system", str(self))
                return real(self, *a, **k)

            monkeypatch.setattr(P, "mkdir", refuse)
        rc = main(["deploy", "--board", "pynq-z2", "--config", "nosuch.yaml", "--out", str(ro)])
    finally:
        os.chmod(ro, 0o700)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--out" in err[0] and "Read-only file system" in err[0]
    assert not list(ro.iterdir())


# issue 30: files too large, too deep or malformed -------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("layers:\n  x: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ("layers:\n" + "".join(f"  l{i}: {{w: 2, a: 2}}\n" for i in range(60000)), "too large for a configuration file"),
    ("layers: {fc0: {w: 2, a: 2}\n", "not valid YAML"),
])
def test_a_bits_file_too_deep_too_large_or_malformed_is_one_line(tmp_path, capsys, content, expected):
    bits = tmp_path / "bits.yaml"
    bits.write_text(content)
    assert main(["train", "--bits", str(bits), "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, str(bits), expected)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("content, expected", [
    ('{"accuracy": [1, 2', "not valid JSON"),
    ("[1, 2, 3]", "a list, not a run summary"),
    ('{"board": 3, "finn": 7}', "malformed run summary"),
])
def test_report_on_a_malformed_summary_names_the_file(tmp_path, capsys, content, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(content)
    assert main(["report", str(run)]) == 2
    _one_line_error(capsys, str(run / "summary.json"), expected)
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


def _image_folder(tmp_path, classes=2, per_class=3, bad=None):
    from PIL import Image

    root = tmp_path / "images"
    for c in range(classes):
        (root / f"c{c:02d}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((32, 32, 3), 10 * i, np.uint8)).save(root / f"c{c:02d}" / f"{i}.png")
    if bad is not None:
        bad(root / "c00" / "bad.png")
    return root


def _png_bomb(path):
    from PIL import Image

    Image.new("1", (5000, 5000)).save(path)  # 25 M pixels in a few kB


@pytest.mark.parametrize("make, expected", [
    (lambda d: _image_folder(d, classes=12), "labels go up to 11 but the model"),
    (lambda d: _image_folder(d, bad=lambda p: p.write_bytes(b"not an image")), "bad.png: not a readable image"),
    (lambda d: _image_folder(d, bad=_png_bomb), "bad.png: 5000x5000 pixels; allowed: at most 16,000,000"),
])
def test_a_bad_image_folder_is_one_error_naming_it(tmp_path, capsys, make, expected):
    root, run = make(tmp_path), tmp_path / "run"
    assert main(["search", "--model", CNN, "--dataset", str(root), "--run-dir", str(run), "--cost", "bitops"]) == 2
    _one_line_error(capsys, expected)
    _nothing_written(tmp_path, run)


def test_deploy_start_at_a_later_step_of_a_fresh_run_is_one_line_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["deploy", "--start-at", "finn", "--run-id", "fresh", "--out", str(out),
                 "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, "--start-at", "step 'finn' needs the state of bits, train, export")
    assert not any(out.rglob("*.json")) and not list((out / "pynq-z2").glob(".partial-*"))


@pytest.mark.parametrize("command", ["prune", "cluster", "finetune"])
def test_an_out_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):  # an existing file; a path under a file
        assert main([command, "--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 2
        _one_line_error(capsys, "--out", str(blocker), "allowed: a directory that is (or can be created) writable")
    _nothing_written(tmp_path)


def test_a_cache_dir_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    assert main(["train", "--data-dir", str(tmp_path / "no-data")]) == 2
    _one_line_error(capsys, "BITSWARM_CACHE_DIR", "cannot be created", "a-file is a file")
