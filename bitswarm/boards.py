"""Board configurations: one YAML per board in ``board_configs/``, validated on load.

Every problem is reported as one line naming the file, the field and what is allowed.
Quantities carry units (``clock: 100 MHz``, ``memory: 512 MB``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bitswarm.errors import ConfigError
from bitswarm.files import read_structured

RESOURCES = ("lut", "ff", "bram18", "dsp", "uram")
OPTIONAL_RESOURCES = ("uram",)  # 0 on parts without it (Zynq-7000); every other resource must be > 0
ALL_BITS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)  # every bit-width a layer may use (32 = float)
TVM_TARGET_KINDS = ("llvm", "cuda")  # what hw/tvm_build.py builds for
_SAFE_PATH = re.compile(r"[A-Za-z0-9_.+@,/][A-Za-z0-9_.+@,/-]*")
SHELLS = ("vivado_zynq", "vitis_alveo")
_UNITS = {
    "frequency": {"Hz": 1e-6, "kHz": 1e-3, "MHz": 1.0, "GHz": 1e3},  # -> MHz
    "memory": {"KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0},
}


@dataclass(frozen=True)
class FpgaSpec:
    part: str
    finn_board: str
    shell: str
    clock_mhz: float
    resources: dict[str, int]
    finn_limits: dict[str, float]

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    def limit(self, resource: str) -> float:
        """The FINN utilisation limit of ``resource`` in absolute units."""
        return self.resources[resource] * self.finn_limits[resource]


@dataclass(frozen=True)
class CpuSpec:
    description: str
    cores: int
    clock_mhz: float
    memory_mb: float
    tvm_target: dict[str, Any]
    cross_compiler: str = ""


@dataclass(frozen=True)
class SshSpec:
    host: str = ""
    port: int = 22
    user: str = ""
    key_file: str = ""
    known_hosts: str = ""
    workdir: str = ""
    python: str = "python3"  # the board's Python with the TVM runtime (only for a package without a native runner)


@dataclass(frozen=True)
class RpcSpec:
    host: str = ""
    port: int = 9090
    start_local: bool = False


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    source: str
    cpu: CpuSpec
    bit_candidates: tuple[int, ...]
    fpga: FpgaSpec | None = None
    ssh: SshSpec = field(default_factory=SshSpec)
    rpc: RpcSpec = field(default_factory=RpcSpec)


def _quantity(src: str, fld: str, value: Any, kind: str) -> float:
    units = _UNITS[kind]
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]+)\s*", str(value))
    if not m or m.group(2) not in units:
        raise ConfigError(src, fld, f"{value!r} is not a {kind} with a unit",
                          "a number followed by one of " + ", ".join(units))
    if float(m.group(1)) <= 0:
        raise ConfigError(src, fld, f"{value!r} is not positive", "a number > 0 followed by one of " + ", ".join(units))
    return float(m.group(1)) * units[m.group(2)]


def _positive(r: _Reader, key: str, minimum: int = 1) -> int:
    n = r.get(key, int)
    if n < minimum:
        raise ConfigError(r.src, r.path(key), f"{n} is not a valid count", f"an integer >= {minimum}")
    return n


def _port(r: _Reader, default: int) -> int:
    port = r.get("port", int, default)
    if not 1 <= port <= 65535:
        raise ConfigError(r.src, r.path("port"), f"{port} is not a TCP port", "an integer 1..65535")
    return port


def _ssh_word(r: _Reader, key: str) -> str:
    """``ssh.host`` / ``ssh.user``: one word that ssh cannot take for an option."""
    v = r.get(key, str, "")
    if v.startswith("-") or any(c.isspace() for c in v) or (key == "user" and "@" in v):
        raise ConfigError(r.src, r.path(key), f"{v!r} is not a plain {key} name",
                          "no leading '-', no whitespace" + (", no '@'" if key == "user" else ""))
    return v


def _ssh(r: _Reader) -> SshSpec:
    r.check_keys(tuple(SshSpec.__dataclass_fields__))
    d = SshSpec()
    paths = {k: r.get(k, str, getattr(d, k)) for k in ("key_file", "known_hosts", "workdir", "python")}
    if not _SAFE_PATH.fullmatch(paths["workdir"] or "x"):  # also the scp destination (no shell quoting there)
        raise ConfigError(r.src, r.path("workdir"), f"{paths['workdir']!r} is not a plain path",
                          "letters, digits and ._+@,/- (absolute, or relative to the login's home; no ~, "
                          "no whitespace, no leading -)")
    py = paths["python"]
    if not py or py.startswith(("-", "~")) or any(c.isspace() for c in py):  # quoted: no ~ expansion either
        raise ConfigError(r.src, r.path("python"), f"{py!r} is not one command",
                          "an absolute path or a command on the board's PATH, e.g. python3 (no ~, no whitespace, "
                          "no leading -)")
    return SshSpec(host=_ssh_word(r, "host"), port=_port(r, d.port), user=_ssh_word(r, "user"), **paths)


def _rpc(r: _Reader) -> RpcSpec:
    r.check_keys(tuple(RpcSpec.__dataclass_fields__))
    d = RpcSpec()
    return RpcSpec(host=r.get("host", str, d.host), port=_port(r, d.port),
                   start_local=r.get("start_local", bool, d.start_local))


class _Reader:
    """Reads one mapping, remembering which keys were used so unknown keys are reported."""

    def __init__(self, src: str, prefix: str, data: Any):
        if not isinstance(data, dict):
            raise ConfigError(src, prefix or "<top>", f"must be a mapping, got {type(data).__name__}")
        self.src, self.prefix, self.data = src, prefix, data

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def get(self, key: str, typ: type | tuple, default: Any = ...):
        if key not in self.data:
            if default is ...:
                raise ConfigError(self.src, self.path(key), "missing (required)")
            return default
        value = self.data[key]
        if not isinstance(value, typ) or isinstance(value, bool) and typ is not bool:
            names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise ConfigError(self.src, self.path(key), f"{value!r} has the wrong type", names)
        return value

    def sub(self, key: str, required: bool = True) -> _Reader | None:
        if key not in self.data and not required:
            return None
        return _Reader(self.src, self.path(key), self.get(key, dict))

    def check_keys(self, allowed: tuple[str, ...]) -> None:
        unknown = [k for k in self.data if k not in allowed]
        if unknown:
            raise ConfigError(self.src, self.path(unknown[0]), "unknown key", ", ".join(allowed))


def _fpga(r: _Reader) -> FpgaSpec:
    r.check_keys(("part", "finn_board", "shell", "clock", "resources", "finn_limits"))
    shell = r.get("shell", str)
    if shell not in SHELLS:
        raise ConfigError(r.src, r.path("shell"), f"unknown shell {shell!r}", ", ".join(SHELLS))
    res, lim = r.sub("resources"), r.sub("finn_limits")
    res.check_keys(RESOURCES)
    lim.check_keys(RESOURCES)
    resources_ = {k: _positive(res, k, 0 if k in OPTIONAL_RESOURCES else 1) for k in RESOURCES}
    limits = {k: float(lim.get(k, (int, float))) for k in RESOURCES}
    for k, v in limits.items():
        if not 0 < v <= 1:
            raise ConfigError(r.src, lim.path(k), f"{v} is not a fraction", "0 < limit <= 1")
    return FpgaSpec(r.get("part", str), r.get("finn_board", str), shell,
                    _quantity(r.src, r.path("clock"), r.get("clock", str), "frequency"), resources_, limits)


def _cpu(r: _Reader) -> CpuSpec:
    r.check_keys(("description", "cores", "clock", "memory", "tvm_target", "cross_compiler"))
    target = r.get("tvm_target", dict)
    if "kind" not in target:
        raise ConfigError(r.src, r.path("tvm_target.kind"), "missing (required)", ", ".join(TVM_TARGET_KINDS))
    if target["kind"] not in TVM_TARGET_KINDS:
        raise ConfigError(r.src, r.path("tvm_target.kind"), f"unknown TVM target kind {target['kind']!r}",
                          ", ".join(TVM_TARGET_KINDS))
    return CpuSpec(r.get("description", str), _positive(r, "cores"),
                   _quantity(r.src, r.path("clock"), r.get("clock", str), "frequency"),
                   _quantity(r.src, r.path("memory"), r.get("memory", str), "memory"),
                   target, r.get("cross_compiler", str, ""))


def load_board_file(path: str | Path) -> Board:
    path = Path(path)
    src = str(path)
    data = read_structured(path)
    r = _Reader(src, "", data)
    r.check_keys(("name", "description", "fpga", "cpu", "search", "ssh", "rpc"))
    name = r.get("name", str)
    if name != path.stem:
        raise ConfigError(src, "name", f"{name!r} differs from the file name", repr(path.stem))
    search = r.sub("search")
    search.check_keys(("bit_candidates",))
    cands = search.get("bit_candidates", list)
    bad = [c for c in cands if c not in ALL_BITS]
    if bad or not cands:
        raise ConfigError(src, "search.bit_candidates", f"bad bit-widths {bad or cands}",
                          ", ".join(map(str, ALL_BITS)))
    ssh, rpc = r.sub("ssh", required=False), r.sub("rpc", required=False)
    fpga = r.sub("fpga", required=False)
    return Board(
        name=name, description=r.get("description", str), source=src, cpu=_cpu(r.sub("cpu")),
        bit_candidates=tuple(sorted(cands)), fpga=_fpga(fpga) if fpga else None,
        ssh=_ssh(ssh) if ssh else SshSpec(), rpc=_rpc(rpc) if rpc else RpcSpec(),
    )


def board_dir() -> Path:
    return Path(str(resources.files("bitswarm.board_configs")))


def list_boards() -> list[str]:
    return sorted(p.stem for p in board_dir().glob("*.yaml"))


def load_board(name_or_path: str) -> Board:
    """A board by name (``pynq-z2``) or by the path of a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return load_board_file(p)
    path = board_dir() / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError("--board", "board", f"unknown board {name_or_path!r}", ", ".join(list_boards()))
    return load_board_file(path)
