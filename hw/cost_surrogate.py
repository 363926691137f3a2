"""``--cost surrogate``: the calibrated FINN surrogate (:mod:`bitswarm.hw.surrogate`), microseconds per call.

It answers the same quantities as ``--cost finn`` (FINN's lut, bram18, uram, dsp, cycles,
latency_ms, throughput_fps, and the exact bit metrics) from a file written by
``bitswarm calibrate``; by default ``<cache>/surrogate/<model>-<board>-fps<target>.json``, one
per model, board and folding policy, else the project's shipped one in ``hw/calibrated/`` (checked
against the model's content digest and the FINN version). Nothing is guessed: without a file, or with one for another
model or board, it stops with a ConfigError that says what to run.
"""

from __future__ import annotations

import re
from pathlib import Path

from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Cost, register_cost, require_cache_dir
from bitswarm.hw.cost_bitops import BitOpsCost
from bitswarm.hw.finn_estimate import require_fpga, target_fps_for_latency
from bitswarm.hw.surrogate import Surrogate, encode, load_surrogate

DEFAULT_FPS = 10000


def policy_name(target_fps: int) -> str:
    return f"fps:{target_fps}"


#: surrogates calibrated by the project and shipped with it (used when the cache has none of its own)
SHIPPED_DIR = Path(__file__).parent / "calibrated"


def default_path(cache_dir: Path, model: str, board: str, target_fps: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_")
    return Path(cache_dir) / "surrogate" / f"{safe}-{board}-fps{target_fps}.json"


def find_default(cache_dir: Path, model: str, board: str, target_fps: int) -> Path:
    """The cache's own calibration if there is one, else the shipped one (``hw/calibrated/``), else the
    cache path (which then does not exist)."""
    own = default_path(cache_dir, model, board, target_fps)
    shipped = SHIPPED_DIR / own.name
    return own if own.exists() or not shipped.exists() else shipped


def calibrate_hint(model: str, board: str, target_fps: int, out: str | Path | None = None,
                   input_shape=None) -> str:
    """The `bitswarm calibrate` command that writes the surrogate for ``model`` on ``board`` (to ``out``
    unless that is where ``--cost surrogate`` looks by default); a user model also needs its input shape."""
    from bitswarm.models import ZOO

    cmd = f"bitswarm calibrate --model {model} --board {board}"
    if model not in ZOO:
        cmd += f" --input-shape {','.join(map(str, input_shape)) if input_shape else 'C,H,W'}"
    if target_fps != DEFAULT_FPS:
        cmd += f" --target-fps {target_fps}"
    if out is not None and not _is_default(Path(out), model, board, target_fps):
        cmd += f" --out {out}"
    return f"run `{cmd}` first"


def _is_default(path: Path, model: str, board: str, target_fps: int) -> bool:
    return path.parent.name == "surrogate" and path == default_path(path.parent.parent, model, board, target_fps)


@register_cost("surrogate")
class SurrogateCost:
    name = "surrogate"
    uses_cache = True
    provides = ("lut", "bram18", "uram", "dsp", "cycles", "latency_ms", "throughput_fps", *BitOpsCost.provides)

    def __init__(self, path: str | Path | None = None, target_fps: int | None = None,
                 max_latency_ms: float | None = None, cache_dir: Path | None = None):
        self.path = Path(path) if path else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.target_fps = target_fps or (target_fps_for_latency(max_latency_ms) if max_latency_ms else DEFAULT_FPS)
        self._loaded: dict[Path, Surrogate] = {}

    def surrogate_for(self, entry, board) -> Surrogate:
        require_fpga(board)
        path = self.path or find_default(require_cache_dir(self.cache_dir, "--cost surrogate"), entry.name,
                                         board.name, self.target_fps)
        if path not in self._loaded:
            if not path.exists():
                raise ConfigError(str(path), "-", f"no FINN surrogate for {entry.name} on {board.name} "
                                  f"(folding {policy_name(self.target_fps)})",
                                  calibrate_hint(entry.name, board.name, self.target_fps, path, entry.input_shape))
            sur = load_surrogate(path)
            sur.check_for(entry, board, str(path))
            if self.path is None and sur.policy != policy_name(self.target_fps):
                raise ConfigError(str(path), "policy", f"calibrated with folding {sur.policy}, "
                                  f"not {policy_name(self.target_fps)}",
                                  calibrate_hint(entry.name, board.name, self.target_fps, path, entry.input_shape))
            self._loaded[path] = sur
        return self._loaded[path]

    def __call__(self, entry, bits, board) -> Cost:
        return self.surrogate_for(entry, board).predict(entry, bits, board)

    def predict_many(self, entry, configs, board) -> dict:
        """Every quantity for a list of BitConfigs, as numpy arrays (vectorised)."""
        return self.surrogate_for(entry, board).predict_many(encode(entry, list(configs)))
