"""Reading a user's JSON/YAML file: one clear error for a file too large, unreadable, malformed or too deeply nested."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bitswarm.errors import ConfigError

#: the largest configuration file read (a bit config of a 1,000-layer model is ~40 kB)
MAX_CONFIG_BYTES = 1 << 20


def read_structured(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> object:
    """The parsed content of a ``.json`` (JSON) or other (YAML) file; refused before parsing when too large."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(str(path), "-", f"{size:,} bytes is too large for a configuration file",
                              f"at most {max_bytes:,} bytes")
        text = path.read_text()
    except OSError as e:
        raise ConfigError(str(path), "-", f"cannot read ({e.strerror})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), "-", f"not a text file ({e.reason})") from e
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        return json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(str(path), "-", f"not valid {kind}: {' '.join(str(e).split())}") from e
    except RecursionError as e:
        raise ConfigError(str(path), "-", f"{kind} nested too deeply", "a plain mapping of a few levels") from e
