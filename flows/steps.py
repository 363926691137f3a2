"""Flows as named steps, after FINN's builder.

A flow is a list of :class:`Step` s; each is ``fn(state, cfg) -> state`` where ``state`` is a
JSON-serialisable ``dict`` (paths, figures) that grows as the flow runs. After every step the
state is saved to ``<out>/flow_state.json`` and the step's wall time to ``<out>/flow_log.json``,
so a run can stop after any step (``stop_after``) and a later run can start at any step
(``start_at``) from the saved state. A failing step raises :class:`StepError` naming the step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bitswarm.atomic import write_json
from bitswarm.errors import BitswarmError

State = dict[str, Any]


class StepError(BitswarmError):
    def __init__(self, step: str, cause: BaseException):
        super().__init__(f"step '{step}' failed: {cause}")
        self.step, self.cause = step, cause


@dataclass(frozen=True)
class Step:
    name: str
    fn: Callable[[State, Any], State]
    doc: str = ""


def _write_json(path: Path, data) -> None:
    write_json(path, data, indent=2, default=str)


def step_names(steps: list[Step]) -> list[str]:
    return [s.name for s in steps]


def _index(steps: list[Step], name: str | None, default: int) -> int:
    if name is None:
        return default
    names = step_names(steps)
    if name not in names:
        from bitswarm.errors import ConfigError

        raise ConfigError("--start-at/--stop-after", "step", f"unknown step {name!r}", ", ".join(names))
    return names.index(name)


def run_flow(steps: list[Step], cfg: Any, out_dir: Path, state: State | None = None, *,
             start_at: str | None = None, stop_after: str | None = None,
             on_step: Callable[[str], None] | None = None) -> State:
    """Run ``steps[start_at..stop_after]``; returns the final state."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state_file, log_file = out_dir / "flow_state.json", out_dir / "flow_log.json"
    first, last = _index(steps, start_at, 0), _index(steps, stop_after, len(steps) - 1)
    if state is None:
        state = json.loads(state_file.read_text()) if start_at and state_file.exists() else {}
    log = json.loads(log_file.read_text()) if log_file.exists() else []
    for step in steps[first:last + 1]:
        if on_step:
            on_step(step.name)
        t0 = time.time()
        try:
            state = step.fn(state, cfg)
        except StepError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:  # every failure is reported with the step's name
            log.append({"step": step.name, "seconds": round(time.time() - t0, 3), "status": "failed",
                        "error": str(e)})
            try:
                _write_json(log_file, log)
            except OSError as log_error:  # a full disk or read-only --out must not hide the step's own error
                e.add_note(f"(the flow log {log_file} could not be written: {log_error})")
            raise StepError(step.name, e) from e
        log.append({"step": step.name, "seconds": round(time.time() - t0, 3), "status": "ok"})
        _write_json(state_file, state)
        _write_json(log_file, log)
    return state
