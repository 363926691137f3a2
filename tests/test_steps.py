import json

import pytest

from bitswarm.errors import ConfigError
from bitswarm.flows.steps import Step, StepError, run_flow


def _steps(calls):
    def add(name, value):
        def fn(state, cfg):
            calls.append(name)
            return {**state, name: value * cfg}
        return Step(name, fn)

    def boom(state, cfg):
        raise ValueError("no such tool")

    return [add("a", 1), add("b", 2), Step("c", boom), add("d", 4)]


def test_steps_run_save_state_and_time(tmp_path):
    calls = []
    state = run_flow(_steps(calls)[:2], 10, tmp_path)
    assert state == {"a": 10, "b": 20} and calls == ["a", "b"]
    log = json.loads((tmp_path / "flow_log.json").read_text())
    recorded = [e["step"] for e in log if isinstance(e["seconds"], float)]  # each step's wall time is logged
    assert recorded == ["a", "b"]


def test_stop_after_and_start_at_resume_from_saved_state(tmp_path):
    calls = []
    steps = _steps(calls)
    run_flow(steps, 1, tmp_path, stop_after="b")
    assert calls == ["a", "b"]
    state = run_flow([s for s in steps if s.name != "c"], 1, tmp_path, start_at="d")
    assert calls == ["a", "b", "d"] and state == {"a": 1, "b": 2, "d": 4}


def test_failing_step_is_named(tmp_path):
    with pytest.raises(StepError, match="step 'c' failed: no such tool"):
        run_flow(_steps([]), 1, tmp_path)
    assert json.loads((tmp_path / "flow_log.json").read_text())[-1]["status"] == "failed"
    with pytest.raises(ConfigError, match="unknown step 'zz'; allowed: a, b, c, d"):
        run_flow(_steps([]), 1, tmp_path, start_at="zz")
