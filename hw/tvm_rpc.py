"""TVM RPC: a real ``tvm.exec.rpc_server`` on loopback for the ``host`` board, or a board's server.

``rpc_endpoint(board)`` yields the checked address of a TVM RPC server:

* ``rpc.start_local: true`` (the ``host`` board): bitswarm starts ``python -m tvm.exec.rpc_server``
  on ``rpc.host`` (127.0.0.1) at ``rpc.port`` -- or a free port when that one is taken -- and
  stops it when the block ends;
* otherwise it connects to ``rpc.host:rpc.port`` from the board config. An unreachable address
  raises :class:`RpcUnreachableError` within ``timeout`` seconds.

``measure_rpc(addr, lib_path, shape)`` opens a session, uploads a library, runs it with the Relax VM on the
remote CPU and times it with ``time_evaluator``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bitswarm.boards import Board
from bitswarm.errors import BitswarmError, ConfigError


class RpcUnreachableError(BitswarmError, ConnectionError):
    """No TVM RPC server answers at the configured address."""


@dataclass(frozen=True)
class RpcAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free; LISTEN is not
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def connect(addr: RpcAddress, timeout: float = 5.0, who: str = "TVM RPC server"):
    """A session with the server at ``addr``; :class:`RpcUnreachableError` within ``timeout`` s."""
    from tvm import rpc

    try:
        socket.create_connection((addr.host, addr.port), timeout=timeout).close()
    except OSError as e:
        raise RpcUnreachableError(f"{who} at {addr} is unreachable ({e.strerror or e}; waited <= {timeout:g} s)") from e
    box: dict = {}

    def _connect():  # the handshake can block forever on a non-RPC peer: run it in a thread
        try:
            box["session"] = rpc.connect(addr.host, addr.port)
        except Exception as e:  # noqa: BLE001 - reported below
            box["error"] = e

    t = threading.Thread(target=_connect, daemon=True)
    t.start()
    t.join(timeout)
    if "session" in box:
        return box["session"]
    why = str(box["error"]).strip().splitlines()[-1] if "error" in box else f"no RPC handshake within {timeout:g} s"
    raise RpcUnreachableError(f"{who} at {addr} does not answer as a TVM RPC server ({why})")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM (then SIGKILL) the server's process group: the server and its session children."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
        deadline = time.time() + wait  # the session children hold the port too: wait until the group is gone
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@contextlib.contextmanager
def local_rpc_server(host: str = "127.0.0.1", port: int | None = None, timeout: float = 180.0,
                     log_path: Path | None = None) -> Iterator[RpcAddress]:
    """Run ``python -m tvm.exec.rpc_server`` on ``host`` (``port``, or a free one if taken) until exit.

    ``timeout`` bounds the wait for it to listen while it runs (a server that exits is reported at
    once): its ``import tvm`` alone, which imports torch, took 17 s of CPU on a loaded 2-core machine
    without bytecode caches, so the 30 s this used to wait failed a CI run."""
    if port is None or not port_is_free(host, port):
        port = free_port(host)
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "tvm.exec.rpc_server", "--host", host, "--port", str(port),
           "--port-end", str(port + 1)]
    # its own process group: the server forks one child per session, all stopped together below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    addr = RpcAddress(host, port)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RpcUnreachableError(f"local TVM RPC server on {addr} exited with status {proc.returncode} "
                                          f"(command: {' '.join(cmd)})")
            try:
                socket.create_connection((host, port), timeout=1.0).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RpcUnreachableError(f"local TVM RPC server on {addr} not listening after "
                                              f"{timeout:g} s") from None
                time.sleep(0.1)
        yield addr
    finally:
        _stop_group(proc)
        if log_path:
            log.close()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_loopback(board: Board) -> None:
    """A server bitswarm starts itself runs arbitrary uploaded code for whoever connects: loopback only."""
    if board.rpc.host not in LOOPBACK_HOSTS:
        raise ConfigError(board.source, "rpc.host", f"{board.rpc.host!r} is not a loopback address, but "
                          "start_local: true has bitswarm start the TVM RPC server itself, which would accept "
                          "code from the network", ", ".join(LOOPBACK_HOSTS) + " (or start_local: false to "
                          "use a server running on the board)")


LOCAL_HANDSHAKE_S = 30.0


def handshake_timeout(board: Board, timeout: float) -> float:
    """Seconds to wait for an RPC handshake with ``board``'s server: ``timeout`` for a board's server,
    at least ``LOCAL_HANDSHAKE_S`` for the loopback server bitswarm starts itself (it forks one process
    per session; on a loaded machine that alone can take longer than a remote board's timeout)."""
    return max(timeout, LOCAL_HANDSHAKE_S) if board.rpc.start_local else timeout


@contextlib.contextmanager
def rpc_endpoint(board: Board, timeout: float = 5.0) -> Iterator[RpcAddress]:
    """The RPC address for ``board``, checked with a real session (local server started/stopped)."""
    rpc = board.rpc
    if not rpc.host:
        raise ConfigError(board.source, "rpc.host", "empty: no TVM RPC server is configured for this board",
                          "an address, e.g. 192.168.2.99 (or start_local: true with 127.0.0.1)")
    if rpc.start_local:
        check_loopback(board)
        with local_rpc_server(rpc.host, rpc.port) as addr:
            connect(addr, handshake_timeout(board, timeout), f"local TVM RPC server for board {board.name}")
            yield addr
    else:
        addr = RpcAddress(rpc.host, rpc.port)
        connect(addr, timeout, f"TVM RPC server of board {board.name}")
        yield addr


def measure_rpc(addr: RpcAddress, lib_path: str | Path, shape: tuple[int, ...], *, repeat: int = 30,
                number: int = 0, threads: int = 0, seed: int = 0, timeout: float = 5.0) -> dict:
    """Upload ``lib_path`` and time ``main`` on the remote CPU in a fresh session (milliseconds).

    One session per library: loading a second module in the same session crashes TVM 0.27's
    forked server process (kShutdown); a new connection costs a few milliseconds.
    """
    import tvm
    from tvm import relax

    lib_path = Path(lib_path)
    session = connect(addr, timeout)
    session.upload(str(lib_path))
    if threads > 0:
        session.get_function("runtime.config_threadpool")(0, threads)
    dev = session.cpu()
    vm = relax.VirtualMachine(session.load_module(lib_path.name), dev)
    x = tvm.runtime.tensor(np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32"), dev)
    if number <= 0:  # about 1 ms of calls per repeat
        probe = vm.time_evaluator("main", dev, number=3, repeat=1)(x).mean
        number = max(1, min(1000, int(1e-3 / max(probe, 1e-7))))
    res = vm.time_evaluator("main", dev, number=number, repeat=repeat)(x)
    ms = [r * 1e3 for r in res.results]
    return {"latency_ms": float(np.median(ms)), "latency_ms_mean": float(np.mean(ms)),
            "latency_ms_std": float(np.std(ms)), "latency_ms_min": float(min(ms)), "repeat": repeat, "number": number,
            "rpc": str(addr)}
