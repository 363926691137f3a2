"""SSH round trip against a real OpenSSH server on 127.0.0.1 (throwaway host and user keys)."""

import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bitswarm.boards import SshSpec, load_board
from bitswarm.flows.ssh import BoardUnreachableError, run_on_board

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
pytestmark = pytest.mark.skipif(SSHD is None or shutil.which("ssh") is None,
                                reason="openssh-server/client not installed (make install installs them)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture
def sshd(tmp_path):
    d = tmp_path / "sshd"
    d.mkdir(mode=0o700)
    _keygen(d / "host_key")
    _keygen(d / "user_key")
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = _free_port()
    cfg = d / "sshd_config"
    cfg.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'pid'}\n"
                   f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\n"
                   "KbdInteractiveAuthentication no\n"
                   "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
                   "Subsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    import getpass

    spec = SshSpec(host="127.0.0.1", port=port, user=getpass.getuser(), key_file=str(d / "user_key"),
                   known_hosts=str(d / "known_hosts"), workdir=str(tmp_path / "board_home"), python=sys.executable)
    yield dataclasses.replace(load_board("pynq-z2"), ssh=spec)
    proc.terminate()
    proc.wait(timeout=10)


def _tiny_tvm_library(path: Path, shape: tuple[int, ...]) -> None:
    import onnx
    import tvm
    from onnx import TensorProto, helper
    from tvm.relax.frontend.onnx import from_onnx

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")]
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g", io[:1], io[1:], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    tvm.compile(from_onnx(model), tvm.target.Target({"kind": "llvm"})).export_library(str(path))


def _package(tmp_path) -> Path:
    pkg = tmp_path / "pkg" / "run1"
    (pkg / "runner").mkdir(parents=True)
    (pkg / "tvm").mkdir()
    (pkg / "tvm" / "model.so").write_bytes(b"lib")
    runner = Path(__file__).parents[1] / "hw" / "tvm_runner.py"
    if runner.exists():  # the real runner needs a real library: a one-op Relax module (y = x + 1)
        _tiny_tvm_library(pkg / "tvm" / "model.so", (1, 1, 28, 28))
        shutil.copy(runner, pkg / "runner" / "tvm_runner.py")
    else:  # test double until the TVM runner lands: same command line, same JSON line
        (pkg / "runner" / "tvm_runner.py").write_text(
            "import json, sys\nprint(json.dumps({'runner': 'stand-in', 'lib': sys.argv[1], 'latency_ms_mean': 0.5}))\n")
    return pkg


def test_push_run_and_measure_over_real_ssh(tmp_path, sshd):
    pkg = _package(tmp_path)
    state = {"tvm": [{"lib": "tvm/model.so"}], "input_shape": [1, 28, 28]}
    result = run_on_board(sshd, pkg, state, repeat=3)
    remote = Path(result["pushed_to"])
    assert remote == tmp_path / "board_home" / "run1"
    assert (remote / "tvm" / "model.so").read_bytes() == (pkg / "tvm" / "model.so").read_bytes()
    assert not list((tmp_path / "board_home").glob(".incoming-*"))
    assert "latency_ms_mean" in result


def test_the_board_step_runs_the_packages_native_runner_without_python(tmp_path, sshd):
    """A package with a native runner (runner/<target>/runner) is measured with it: no Python or TVM on the
    board. The runner here is a stand-in script that checks its arguments and the input file it is given
    (the real runners are checked under qemu in tests/test_tvm_native.py)."""
    import numpy as np

    pkg = _package(tmp_path)
    fake = pkg / "runner" / "armv7" / "runner"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1" = tvm-pynq-z2/model.so ] && [ "$2" = runner/input.bin ] || exit 3\n'
                    'size=$(wc -c < "$2")\n'
                    'echo "{\\"latency_ms_median\\": 1.5, \\"input_bytes\\": $size, \\"shape\\": \\"$5\\"}"\n')
    fake.chmod(0o644)  # the step makes it executable on the board
    (pkg / "tvm-pynq-z2").mkdir()
    state = {"tvm": [{"lib": "tvm-pynq-z2/model.so", "native_runner": {"runner": "runner/armv7/runner"}}],
             "input_shape": [1, 28, 28]}
    board = dataclasses.replace(sshd, ssh=dataclasses.replace(sshd.ssh, python="/nonexistent/python"))
    result = run_on_board(board, pkg, state, repeat=3)
    assert result["runner"] == "native" and result["latency_ms_median"] == 1.5 and result["shape"] == "1,1,28,28"
    assert result["input_bytes"] == 4 * 28 * 28
    x = np.fromfile(Path(result["pushed_to"]) / "runner" / "input.bin", "<f4")
    assert x.size == 28 * 28 and x.std() > 0.5  # a spread of inputs, not zeros


def test_unknown_host_key_is_refused(tmp_path, sshd):
    Path(sshd.ssh.known_hosts).write_text("")
    with pytest.raises(BoardUnreachableError, match=r"board pynq-z2 .*prepare failed: .*Host key verification"):
        run_on_board(sshd, _package(tmp_path), {"tvm": [], "input_shape": [1]})


def test_unreachable_board_is_one_clear_error(tmp_path):
    board = dataclasses.replace(load_board("pynq-z2"), ssh=SshSpec(host="127.0.0.1", port=_free_port(), user="x"))
    with pytest.raises(BoardUnreachableError, match=r"board pynq-z2 \(x@127.0.0.1:\d+\): prepare failed: .*refused"):
        run_on_board(board, _package(tmp_path), {"tvm": [], "input_shape": [1]})
    assert json.dumps({"ok": 1})


def test_a_deploy_to_an_unreachable_board_is_refused_before_any_work_unless_no_board(tmp_path, monkeypatch):
    from bitswarm.env import Environment
    from bitswarm.flows import deploy as D

    board = dataclasses.replace(load_board("pynq-z2"), ssh=SshSpec(host="127.0.0.1", port=_free_port(), user="x"))
    env = Environment(data_dir=tmp_path / "no-data", cache_dir=tmp_path / "cache", vivado=None, vitis_hls=None,
                      ray_address=None)
    cfg = D.DeployConfig(board=board, env=env, out_root=tmp_path / "deploy", run_id="r1")
    with pytest.raises(BoardUnreachableError, match=r"reachability check \(before any work; --no-board skips"):
        D.deploy(cfg)
    assert not (tmp_path / "deploy").exists() and not (tmp_path / "cache").exists()
    ran = []
    monkeypatch.setattr(D, "STEPS", [D.Step(s.name, lambda st, c, _n=s.name: ran.append(_n) or st) for s in D.STEPS])
    D.deploy(dataclasses.replace(cfg, board_step=False))  # --no-board: no check, every step runs
    assert ran == [s.name for s in D.STEPS]
