"""Atomic file writing: every file bitswarm writes appears whole or not at all (temporary name, then rename)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix, so tools that look at it still work); it is
    renamed to ``path`` when the block ends without an error and removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data, **dump_options) -> Path:
    """``json.dumps(data, indent=1, **dump_options)`` written atomically."""
    return write_text(path, json.dumps(data, **{"indent": 1, **dump_options}))


def save_torch(obj, path: str | Path) -> Path:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def check_writable_dir(path: str | Path, source: str, field: str) -> Path:
    """That a directory can be written at ``path`` (existing, or creatable under its nearest existing ancestor),
    checked before any work and without creating anything; else one ``ConfigError`` naming ``source``/``field``."""
    from bitswarm.errors import ConfigError

    path = Path(path)
    allowed = "a directory that is (or can be created) writable"
    if path.exists() and not path.is_dir():
        raise ConfigError(source, field, f"{path} is a file, not a directory", allowed)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(source, field, f"{path} cannot be created: {probe} is a file", allowed)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(source, field, f"{probe} is not writable", allowed)
    return path
