"""Push a deploy package to a board over SSH, run its on-board benchmark, bring the figures back.

Uses the system ``ssh``/``scp`` with the board's key and ``known_hosts`` and
``StrictHostKeyChecking=yes`` (an unknown or changed host key is refused); passwords are never
used (``BatchMode=yes``) and never stored. The package is copied to a temporary directory on the
board and renamed there, so the board never holds half a package.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from bitswarm.boards import Board
from bitswarm.errors import BitswarmError

CONNECT_TIMEOUT_S = 10


class BoardUnreachableError(BitswarmError):
    """The board named in the config cannot be reached or refused the login."""


def _opts(board: Board) -> list[str]:
    s = board.ssh
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
    if s.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={s.known_hosts}"]
    if s.key_file:
        opts += ["-i", s.key_file, "-o", "IdentitiesOnly=yes"]
    return opts


def _target(board: Board) -> str:
    return f"{board.ssh.user}@{board.ssh.host}" if board.ssh.user else board.ssh.host


def _run(cmd: list[str], board: Board, what: str, timeout: float = 600) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise BoardUnreachableError(f"board {board.name}: {what} needs the OpenSSH client ({cmd[0]} not found); "
                                    "install it, or deploy with --no-board") from e
    except subprocess.TimeoutExpired as e:
        raise BoardUnreachableError(f"board {board.name} ({_target(board)}:{board.ssh.port}): {what} timed out") from e
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise BoardUnreachableError(f"board {board.name} ({_target(board)}:{board.ssh.port}): {what} failed: {err} "
                                    f"(check ssh.host/port/user/key_file/known_hosts in {board.source})")
    return r.stdout


def ssh(board: Board, remote_cmd: str, what: str = "command", timeout: float = 600) -> str:
    """``remote_cmd`` runs in the board's shell: every argument in it must be ``shlex.quote``d."""
    cmd = ["ssh", "-p", str(board.ssh.port), *_opts(board), "--", _target(board), remote_cmd]
    return _run(cmd, board, what, timeout)


def push_package(board: Board, pkg: Path) -> str:
    """Copy ``pkg`` to ``<workdir>/<name>`` on the board (temp dir, then rename). Returns the remote path."""
    work = board.ssh.workdir or "bitswarm"
    final, tmp = f"{work}/{pkg.name}", f"{work}/.incoming-{pkg.name}"
    ssh(board, f"mkdir -p -- {shlex.quote(work)} && rm -rf -- {shlex.quote(tmp)}", "prepare")
    _run(["scp", "-q", "-r", "-P", str(board.ssh.port), *_opts(board), "--", str(pkg), f"{_target(board)}:{tmp}"],
         board, "copy")
    ssh(board, f"rm -rf -- {shlex.quote(final)} && mv -- {shlex.quote(tmp)} {shlex.quote(final)}", "rename")
    return final


def _board_command(pkg: Path, state: dict, repeat: int, python: str) -> tuple[str, list[str]] | None:
    """``(runner kind, command line)`` of the on-board benchmark, run in the pushed package: the package's
    native runner (no Python or TVM on the board) with a seeded random input it writes into the package,
    else the Python runner on ``python`` (needs TVM on the board). ``None`` when there is no model library."""
    items = state.get("tvm") or []
    if not items:
        return None
    item = items[0]  # the deploy's own board comes first
    dims = [1, *state["input_shape"]]
    shape = ",".join(str(int(d)) for d in dims)
    native = item.get("native_runner")
    if native and (pkg / native["runner"]).exists():
        import numpy as np

        x = np.random.default_rng(0).standard_normal(dims).astype("<f4")
        x.tofile(pkg / "runner" / "input.bin")
        return "native", ["sh", "-c", 'chmod +x "$0" && exec "$0" "$@"', native["runner"], item["lib"],
                          "runner/input.bin", "runner/output.bin", "--shape", shape, "--repeat", str(int(repeat))]
    return "python", [python, "runner/tvm_runner.py", item["lib"], "--shape", shape, "--repeat", str(int(repeat))]


def run_on_board(board: Board, pkg: Path, state: dict, repeat: int = 50) -> dict:
    """Push the package and run its TVM runner on the board; returns the measured figures."""
    command = _board_command(pkg, state, repeat, board.ssh.python)
    remote = push_package(board, pkg)
    if command is None:
        return {"pushed_to": remote, "note": "no on-board benchmark in this package"}
    runner, argv = command
    cmd = f"cd {shlex.quote(remote)} && {shlex.join(argv)}"
    out = ssh(board, cmd, "on-board benchmark")
    try:
        figures = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as e:
        raise BoardUnreachableError(f"board {board.name}: the runner printed no JSON result: {out[-200:]!r}") from e
    return {"pushed_to": remote, "runner": runner, **figures}


def check_reachable(board: Board, timeout: float = 60) -> None:
    """Log in and run ``true`` on the board, before a deploy does any work that needs it."""
    ssh(board, "true", "the reachability check (before any work; --no-board skips the board step)", timeout)
