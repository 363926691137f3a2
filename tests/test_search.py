"""BBPSO-Quantizer: Deb's rule, Eq. 7, memory, importance init, ablations, journal resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bitswarm.models import get_model
from bitswarm.search.bbpso import BBPSO, BBPSOSettings, layer_importance
from bitswarm.search.deb import deb_better
from bitswarm.search.runner import run_search
from bitswarm.search.space import Space

CANDS = (1, 2, 3, 4, 5, 6, 7, 8)


def test_deb_rule_truth_table():
    assert deb_better(0.1, 0.0, 0.9, 0.5)  # feasible beats infeasible, whatever the fitness
    assert not deb_better(0.9, 0.5, 0.1, 0.0)
    assert deb_better(0.9, 0.0, 0.8, 0.0) and not deb_better(0.8, 0.0, 0.9, 0.0)  # both feasible: fitness
    assert deb_better(0.1, 0.2, 0.9, 0.3) and not deb_better(0.9, 0.3, 0.1, 0.2)  # both infeasible: violation
    assert not deb_better(0.5, 0.0, 0.5, 0.0)  # ties do not replace
    inf = float("-inf")  # the fitness of an untrained (infeasible) candidate is never read
    assert deb_better(0.1, 0.0, inf, 0.5) and not deb_better(inf, 0.5, 0.1, 0.0)
    assert deb_better(inf, 0.2, 0.9, 0.3) and not deb_better(0.9, 0.3, inf, 0.2)


def _space():
    e = get_model("tfc")
    return e, Space.from_specs(e.specs, CANDS, e.default_bits())


def fake_eval(bits):
    """Cheap deterministic problem: more bits -> more 'accuracy'; constraint on mean weight bits."""
    ws = [b.w for _, b in bits.layers if b.w]
    acts = [b.a for _, b in bits.layers if b.a]
    fit = 1 - 1 / (1 + sum(ws) + 0.5 * sum(acts))
    return fit, max(0.0, (np.mean(ws) - 4.0) / 4.0), {"mean_w": float(np.mean(ws))}


def _run(tmp_path, settings, seed=0, name="r"):
    e, space = _space()
    calls = []

    def ev(bits):
        calls.append(bits)
        return fake_eval(bits)

    s = BBPSO(space, settings, seed, layer_importance(np.arange(space.dim, dtype=float), 4.0, 1.0))
    result = run_search(space, s, ev, tmp_path / name, {"test": name}, screening=settings.screening, progress=False)
    return result, calls, s


def test_eq7_stays_in_candidate_set_and_search_is_feasible(tmp_path):
    result, calls, s = _run(tmp_path, BBPSOSettings(particles=6, iterations=6))
    assert all(set(b.w for _, b in c.layers if b.w) <= set(CANDS) for c in calls)
    assert result["best"]["violation"] == 0.0 and result["best"]["cost"]["mean_w"] <= 4.0


def test_memory_prevents_reevaluation(tmp_path):
    on, calls_on, _ = _run(tmp_path, BBPSOSettings(particles=6, iterations=8), name="on")
    off, calls_off, _ = _run(tmp_path, BBPSOSettings(particles=6, iterations=8, screening=False), name="off")
    keys_on = [c.key() for c in calls_on]
    assert len(keys_on) == len(set(keys_on))  # never the same configuration twice
    assert len(calls_off) > len(calls_on)  # without screening, duplicates are evaluated again


def test_importance_init_biases_important_layers_to_more_bits():
    e, space = _space()
    imp = layer_importance(np.linspace(0, 1, space.dim), 4.0, 1.0)
    s = BBPSO(space, BBPSOSettings(particles=40), 0, imp)
    init = np.array(s.ask())
    assert init[:, -1].mean() > init[:, 0].mean() + 2  # most important variable starts higher
    flat = BBPSO(space, BBPSOSettings(particles=40, importance_init=False), 0, imp).ask()
    assert abs(np.array(flat)[:, -1].mean() - np.array(flat)[:, 0].mean()) < 2


def test_ablation_switches_change_behaviour(tmp_path):
    base = BBPSOSettings(particles=5, iterations=6, gamma=2)
    full, calls_full, _ = _run(tmp_path, base, name="full")
    no_lsp, calls_nolsp, _ = _run(tmp_path, replace(base, local_search=False), name="nolsp")
    no_in, calls_noin, _ = _run(tmp_path, replace(base, importance_init=False), name="noin")
    assert len(calls_full) > len(calls_nolsp)  # local search spends extra evaluations on Pb
    assert [c.key() for c in calls_full[:5]] != [c.key() for c in calls_noin[:5]]


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_search import _space, fake_eval
    from bitswarm.search.bbpso import BBPSO, BBPSOSettings
    from bitswarm.search.runner import run_search
    e, space = _space()
    slow = float(sys.argv[2])
    def ev(bits):
        time.sleep(slow)
        return fake_eval(bits)
    s = BBPSO(space, BBPSOSettings(particles=6, iterations=8, gamma=3), 7)
    run_search(space, s, ev, __import__("pathlib").Path(sys.argv[1]), {{"t": 1}}, seed=7, progress=False)
""")


def test_kill_9_then_rerun_resumes_and_matches_uninterrupted(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, str(script), str(ref), "0"], check=True, timeout=300)
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(run), "0.05"])
    import sqlite3

    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some evaluations are journalled, then kill -9
        time.sleep(0.2)
        try:
            n = sqlite3.connect(run / "journal.sqlite").execute("SELECT COUNT(*) FROM evals").fetchone()[0]
        except sqlite3.Error:
            n = 0
        if n >= 10:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "result.json").exists()
    kept = sqlite3.connect(run / "journal.sqlite").execute("SELECT COUNT(*) FROM evals").fetchone()[0]
    assert kept >= 10
    subprocess.run([sys.executable, str(script), str(run), "0"], check=True, timeout=300)
    a, b = (json.loads((d / "result.json").read_text()) for d in (ref, run))
    assert a["best"] == b["best"] and a["evaluations"] == b["evaluations"]
    rows = sqlite3.connect(run / "journal.sqlite").execute("SELECT position FROM evals ORDER BY idx").fetchall()
    ref_rows = sqlite3.connect(ref / "journal.sqlite").execute("SELECT position FROM evals ORDER BY idx").fetchall()
    assert rows == ref_rows  # nothing lost, nothing evaluated twice


def test_journal_of_another_run_is_refused(tmp_path):
    from bitswarm.errors import ConfigError
    from bitswarm.search.journal import Journal

    Journal(tmp_path / "j.sqlite", {"seed": 1}).close()
    with pytest.raises(ConfigError, match=r"j.sqlite: field 'run settings': .*\['seed'\]"):
        Journal(tmp_path / "j.sqlite", {"seed": 2})


def test_a_journal_whose_signature_was_deleted_is_refused_not_replayed(tmp_path):
    import sqlite3

    from bitswarm.errors import ConfigError
    from bitswarm.search.journal import Journal

    j = Journal(tmp_path / "j.sqlite", {"val_samples": 500})
    j.append((0, 1), {"fc0": {"w": 2, "a": 2}}, 0.9, 0.0, {}, 0, 1.0)
    j.close()
    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.execute("DELETE FROM meta WHERE key='signature'")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="holds evaluations but no run signature"):
        Journal(tmp_path / "j.sqlite", {"val_samples": 1000})


def test_cli_search_on_real_tfc_small(tmp_path, tiny_mnist_dir, monkeypatch, capsys):
    from bitswarm.cli import main

    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    rc = main(["search", "--data-dir", str(tiny_mnist_dir), "--max-avg-bits", "4", "--particles", "3", "--iters", "1",
               "--eval-epochs", "1", "--val-samples", "500", "--final-epochs", "1", "--run-dir", str(tmp_path / "r")])
    assert rc == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "r" / "result.json").read_text())
    assert r["best"]["violation"] == 0 and r["best"]["cost"]["avg_bits"] <= 4
    assert 0 < r["final"]["test_acc"] <= 1 and (tmp_path / "r" / "best_bits.yaml").exists()
    assert main(["search", "--max-lut", "1000", "--cost", "bitops"]) == 2
    assert "cost model 'bitops' does not provide it; allowed: avg_bits" in capsys.readouterr().err


def test_compare_statistics():
    from bitswarm.search.stats import markdown, summarize

    rows = summarize({"a": [0.9, 0.91, 0.92, 0.93], "b": [0.5, 0.52, 0.51, 0.49], "c": [0.7, 0.71, 0.69, 0.72]}, "a")
    by = {r["algo"]: r for r in rows}
    assert by["a"]["friedman_rank"] == 1 and by["b"]["friedman_rank"] == 3
    assert by["b"]["p_vs_a"] < 0.05 and by["a"]["friedman_p"] < 0.05
    assert "| a |" in markdown(rows)
