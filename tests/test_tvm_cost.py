"""``--cost tvm``: a real TVM RPC server on loopback, latency through it, constraints, cache, bad addresses."""

import dataclasses
import socket
import time

import pytest

pytest.importorskip("tvm")

from bitswarm.boards import RpcSpec, load_board  # noqa: E402
from bitswarm.hw.cost import Constraint, get_cost_model  # noqa: E402
from bitswarm.hw.tvm_rpc import RpcUnreachableError, free_port, port_is_free  # noqa: E402
from bitswarm.models import get_model  # noqa: E402

pytestmark = pytest.mark.tvm


def test_latency_through_a_real_loopback_rpc_server(tmp_path):
    entry = get_model("tfc")
    bits = entry.uniform_bits(4, 4, keep_first_last=True)
    with socket.socket() as taken:  # the configured port is busy: bitswarm picks a free one
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        board = dataclasses.replace(load_board("host"), rpc=RpcSpec("127.0.0.1", busy, True))
        with get_cost_model("tvm", cache_dir=tmp_path, repeat=5) as cost_model:
            cost = cost_model(entry, bits, board)
            server_port = int(cost.meta["rpc"].split(":")[1])
            assert server_port != busy and not port_is_free("127.0.0.1", server_port)
            again = cost_model(entry, bits, board)
        for _ in range(100):  # the server bitswarm started is stopped (its socket closes with it)
            if port_is_free("127.0.0.1", server_port):
                break
            time.sleep(0.1)
        assert port_is_free("127.0.0.1", server_port)
    assert cost.source == "tvm-rpc" and cost["latency_ms"] > 0 and cost.meta["cached"] is False
    assert again.meta["cached"] is True and again["latency_ms"] == cost["latency_ms"]
    assert Constraint("latency_ms", cost["latency_ms"] * 2).violation(cost) == 0
    assert Constraint("latency_ms", cost["latency_ms"] / 4).violation(cost) == pytest.approx(3.0)
    assert len(list((tmp_path / "tvm-cost").glob("*.json"))) == 1
    assert not list((tmp_path / "tvm-cost").glob(".*"))


def test_unreachable_rpc_address_is_one_clear_error_and_caches_nothing(tmp_path):
    entry = get_model("tfc")
    port = free_port()
    board = dataclasses.replace(load_board("host"), rpc=RpcSpec("127.0.0.1", port, False))
    with pytest.raises(RpcUnreachableError, match=f"board host at 127.0.0.1:{port} is unreachable"):
        get_cost_model("tvm", cache_dir=tmp_path, timeout=2)(entry, entry.default_bits(), board)
    assert not (tmp_path / "tvm-cost").exists() or not list((tmp_path / "tvm-cost").iterdir())


def test_board_without_rpc_address_is_a_config_error(tmp_path):
    from bitswarm.errors import ConfigError

    entry = get_model("tfc")
    with pytest.raises(ConfigError, match="field 'rpc.host': empty"):
        get_cost_model("tvm", cache_dir=tmp_path)(entry, entry.default_bits(), load_board("pynq-z2"))


def test_cli_unreachable_board_exits_non_zero_with_one_line(tmp_path):
    import subprocess
    import sys

    import yaml

    from bitswarm.boards import board_dir

    data = yaml.safe_load((board_dir() / "host.yaml").read_text())
    port = free_port()
    data["rpc"] = {"host": "127.0.0.1", "port": port, "start_local": False}
    path = tmp_path / "far.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "far"}))
    env = {"BITSWARM_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "bitswarm", "tvm", "measure", "--board", str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].endswith(f"board far at 127.0.0.1:{port} is unreachable "
                                                         "(Connection refused; waited <= 5 s)")
    assert not (tmp_path / "cache" / "tvm-cost").exists()


def test_latency_constrained_search_with_tvm_cost_on_host(tmp_path, tiny_mnist_dir, monkeypatch, capsys):
    """`bitswarm search --cost tvm --board host --max-latency-ms`: each evaluation measured through a
    loopback RPC server that bitswarm starts and stops."""
    import json

    from bitswarm.cli import main

    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    rc = main(["search", "--data-dir", str(tiny_mnist_dir), "--board", "host", "--cost", "tvm", "--max-latency-ms", "5",
               "--particles", "2", "--iters", "1", "--eval-epochs", "1", "--eval-train-samples", "300",
               "--val-samples", "200", "--final-epochs", "0", "--run-dir", str(tmp_path / "run")])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "run" / "result.json").read_text())
    assert r["evaluations"] >= 2 and 0 < r["best"]["cost"]["latency_ms"] <= 5 and r["best"]["violation"] == 0
    import psutil  # the search's worker processes stopped the servers they started (one outlived them before)

    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if "tvm.exec.rpc_server" in " ".join(p.info["cmdline"] or [])]
    assert not left, f"RPC server(s) {left} outlived the search"


def test_a_server_bitswarm_starts_itself_must_listen_on_loopback(tmp_path, monkeypatch, capsys):
    """``start_local: true`` with a network address would serve code uploads to the network: refused
    (one line naming the board file's ``rpc.host``) before any server is started."""
    import yaml

    import bitswarm.hw.tvm_rpc as tvm_rpc
    from bitswarm.boards import board_dir
    from bitswarm.cli import main

    def no_server(*a, **k):
        raise AssertionError("an RPC server was started")

    monkeypatch.setattr(tvm_rpc.subprocess, "Popen", no_server)
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    data = yaml.safe_load((board_dir() / "host.yaml").read_text())
    data["rpc"] = {"host": "0.0.0.0", "port": 9090, "start_local": True}
    path = tmp_path / "open.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "open"}))
    assert main(["tvm", "measure", "--board", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: field 'rpc.host': '0.0.0.0' is not a loopback address" in err[0], err
    assert "allowed: 127.0.0.1, localhost, ::1" in err[0]
    for host in ("127.0.0.1", "localhost", "::1"):
        tvm_rpc.check_loopback(dataclasses.replace(load_board("host"), rpc=RpcSpec(host, 9090, True)))
    try:  # an IPv6 loopback server gets a port as an IPv4 one does
        port = free_port("::1")
    except OSError:
        return  # no IPv6 on this host
    assert port_is_free("::1", port)


def test_the_loopback_server_bitswarm_starts_gets_a_patient_handshake_and_a_board_does_not():
    """A board's server that does not answer within ``--timeout`` is reported as such; the server
    bitswarm started itself only answers slowly under load, so its handshake waits longer."""
    from bitswarm.hw.tvm_rpc import LOCAL_HANDSHAKE_S, handshake_timeout

    host = load_board("host")
    assert host.rpc.start_local and handshake_timeout(host, 2.0) == LOCAL_HANDSHAKE_S > 2.0
    assert handshake_timeout(host, 90.0) == 90.0
    remote = dataclasses.replace(host, rpc=RpcSpec("192.0.2.1", 9090, False))
    assert handshake_timeout(remote, 2.0) == 2.0
