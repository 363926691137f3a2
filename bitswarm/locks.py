"""One exclusive lock per run: a second invocation on the same run is refused at once, naming the holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bitswarm.errors import ConfigError


def hold_lock(path: Path, field: str, what: str, allowed: str):
    """An exclusive ``flock`` on ``path`` (created), with this process's PID in it; the open file holds the lock
    until it is closed (or the process ends, even by kill -9). Refused with the holder's PID when taken."""
    f = open(path, "a+")  # noqa: SIM115 - held for the life of the run
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise ConfigError(str(path.parent), field, f"{what} (process {holder} holds {path.name})", allowed) from e
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
