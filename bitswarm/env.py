"""The one place bitswarm reads environment variables.

Every other module receives these values as arguments; nothing else touches ``os.environ``.
"""

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Environment:
    data_dir: Path | None  # BITSWARM_DATA_DIR, set by the Makefile to ../shared/datasets
    cache_dir: Path  # BITSWARM_CACHE_DIR, default ~/.cache/bitswarm
    vivado: Path | None  # XILINX_VIVADO, only used to tell whether Vivado is installed
    vitis_hls: Path | None  # XILINX_VITIS / VITIS_PATH / HLS_PATH
    ray_address: str | None  # RAY_ADDRESS, the Ray cluster to use when --executor ray


def _path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


def read_environment() -> Environment:
    """The environment, its cache directory checked writable (nothing created yet)."""
    from bitswarm.atomic import check_writable_dir

    cache = _path("BITSWARM_CACHE_DIR") or Path.home() / ".cache" / "bitswarm"
    check_writable_dir(cache, "BITSWARM_CACHE_DIR", "cache directory")
    vitis = _path("XILINX_VITIS") or _path("VITIS_PATH") or _path("HLS_PATH")
    return Environment(
        data_dir=_path("BITSWARM_DATA_DIR"),
        cache_dir=cache,
        vivado=_path("XILINX_VIVADO"),
        vitis_hls=vitis,
        ray_address=os.environ.get("RAY_ADDRESS") or None,
    )


def process_environment_for_finn(build_dir: Path) -> dict[str, str]:
    """Variables finn-plus reads from the process environment (it offers no other way).

    ``XILINX_VIVADO`` is only written into FINN's metadata by its last estimate step; when Vivado
    is absent a placeholder keeps that step from failing (bitswarm itself checks for Vivado).
    """
    env = {"FINN_BUILD_DIR": str(build_dir)}
    if not os.environ.get("XILINX_VIVADO"):
        env["XILINX_VIVADO"] = "/vivado-not-installed"
    return env


def apply_environment(values: dict[str, str]) -> None:
    """Set variables for a tool that only reads its configuration from the environment."""
    os.environ.update(values)
