"""Cost before training: infeasible candidates are never fine-tuned, cost no budget, resume after
kill -9; constraints no configuration meets are refused up front; an infeasible result exports nothing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bitswarm.boards import load_board
from bitswarm.errors import ConfigError
from bitswarm.hw.cost import Constraint, Cost, get_cost_model
from bitswarm.hw.cost_bitops import bit_metrics
from bitswarm.models import BitConfig, get_model
from bitswarm.search.api import SearchSpec, build_space, check_feasible
from bitswarm.search.bbpso import BBPSO, BBPSOSettings, RandomSearch
from bitswarm.search.problem import UNTRAINED, FitnessMemo, QuantProblem
from bitswarm.search.runner import COST_ONLY_FACTOR, run_search

LIMIT = 3.0


@dataclass
class Counting(QuantProblem):
    """A QuantProblem whose fine-tune is a cheap deterministic score, logged (in memory and to a file)."""

    log: str | None = None
    slow: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self.trained: list = []

    def fine_tune_and_validate(self, bits):
        self.trained.append(bits)
        if self.log:
            with open(self.log, "a") as f:
                f.write(json.dumps(bits.to_dict()["layers"]) + "\n")
        time.sleep(self.slow)
        ws = [b.w for _, b in bits.layers if b.w]
        return 1 - 1 / (1 + sum(ws) + 0.5 * sum(b.a for _, b in bits.layers if b.a))


def make_problem(limit: float = LIMIT, **kw) -> Counting:
    entry = get_model("tfc")
    return Counting(entry, None, {"w": torch.zeros(2)}, load_board("pynq-z2"), get_cost_model("bitops"),
                    (Constraint("avg_bits", limit),), **kw)


def run(problem: Counting, run_dir: Path, budget=None, searcher=None, seed: int = 7, executor=None) -> dict:
    space = build_space(problem.entry, problem.board, "bitops")
    s = searcher or BBPSO(space, BBPSOSettings(particles=6, iterations=8, gamma=3), seed)
    return run_search(space, s, problem.evaluate, run_dir, {"t": 1}, seed=seed, progress=False, budget=budget,
                      executor=executor)


def strict_json(path: Path):
    return json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"{path.name}: {token} in JSON"))


def rows(run_dir: Path) -> list:
    with sqlite3.connect(run_dir / "journal.sqlite") as db:
        return db.execute("SELECT position, fitness, violation, trained FROM evals ORDER BY idx").fetchall()


def avg_bits(problem: Counting, bits) -> float:
    """Of a BitConfig or of its ``layers`` dict."""
    return bit_metrics(problem.entry, BitConfig.from_dict({"layers": bits}) if isinstance(bits, dict) else bits)[
        "avg_bits"]


def test_infeasible_candidates_are_not_trained_journalled_as_such_and_cost_no_budget(tmp_path):
    p = make_problem()
    r = run(p, tmp_path / "r", budget=10)
    assert p.trained and all(avg_bits(p, b) <= LIMIT for b in p.trained)  # only feasible ones fine-tuned
    journal = rows(tmp_path / "r")
    assert all(bool(t) == (v == 0) for _, _, v, t in journal)
    assert all(f == UNTRAINED for _, f, _, t in journal if not t)
    trained = sum(t for *_, t in journal)
    assert r["evaluations_trained"] == r["evaluations"] == trained == len(p.trained)
    assert r["evaluations_cost_only"] == len(journal) - trained > 0
    assert 10 <= trained < 10 + 6  # the budget counts trained evaluations only (checked between rounds)
    res, hist = strict_json(tmp_path / "r" / "result.json"), strict_json(tmp_path / "r" / "history.json")
    assert res["feasible"] is True and res["wall_s"] >= 0 and res["evaluations_cost_only"] > 0
    assert hist[-1]["evaluations"] == trained and hist[-1]["cost_only"] == r["evaluations_cost_only"]


def test_untrained_evaluation_memo_and_an_all_infeasible_run(tmp_path):
    p = make_problem(limit=1.0, memo=FitnessMemo(tmp_path / "memo.sqlite"))
    e = p.evaluate(p.entry.uniform_bits(4, 4))
    assert (e.fitness, e.trained) == (UNTRAINED, False) and e.violation > 0 and not p.trained
    assert p.memo._conn().execute("SELECT COUNT(*) FROM fitness").fetchone()[0] == 0
    assert p.evaluate(p.entry.uniform_bits(1, 1)).trained and len(p.trained) == 1
    r = run(make_problem(limit=1.0), tmp_path / "none")  # the all-1-bit corner is never proposed
    assert r["feasible"] is False and r["best"]["fitness"] is None and r["evaluations_trained"] == 0
    assert not (tmp_path / "none" / "best_bits.yaml").exists()
    assert strict_json(tmp_path / "none" / "result.json")["feasible"] is False
    assert strict_json(tmp_path / "none" / "history.json")[0]["best_fitness"] is None


def test_cost_only_evaluations_stop_a_budgeted_run_that_finds_nothing_feasible(tmp_path):
    p = make_problem(limit=1.0)
    space = build_space(p.entry, p.board, "bitops")
    s = RandomSearch(space, BBPSOSettings(particles=6, iterations=10_000), 0)
    r = run_search(space, s, p.evaluate, tmp_path / "r", {"t": 1}, progress=False, budget=2)
    assert r["evaluations_trained"] == 0 and COST_ONLY_FACTOR * 2 <= r["evaluations_cost_only"] < 2 * 20 + 6


def test_ga_runs_with_untrained_candidates(tmp_path):
    from bitswarm.search.ga import GeneticSearch

    p = make_problem()
    space = build_space(p.entry, p.board, "bitops")
    r = run(p, tmp_path / "ga", searcher=GeneticSearch(space, BBPSOSettings(particles=8, iterations=6), 3))
    assert r["feasible"] and r["evaluations_cost_only"] > 0 and all(avg_bits(p, b) <= LIMIT for b in p.trained)


def test_a_process_pool_journals_the_same_trained_flags_as_a_serial_run(tmp_path):
    from bitswarm.search.executor import ProcessExecutor

    serial = run(make_problem(), tmp_path / "serial", budget=10)
    pool = run(make_problem(), tmp_path / "pool", budget=10, executor=ProcessExecutor(make_problem().evaluate, 2))
    for k in ("best", "evaluations_trained", "evaluations_cost_only"):
        assert pool[k] == serial[k], k
    assert sorted(rows(tmp_path / "pool")) == sorted(rows(tmp_path / "serial"))  # completion order may differ


def test_a_journal_without_the_trained_column_is_read_as_all_trained(tmp_path):
    from bitswarm.search.journal import Journal

    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:  # the schema before the `trained` column
        db.executescript("""CREATE TABLE evals (idx INTEGER PRIMARY KEY, position TEXT NOT NULL, bits TEXT NOT NULL,
          fitness REAL NOT NULL, violation REAL NOT NULL, cost TEXT NOT NULL, seed INTEGER NOT NULL,
          seconds REAL NOT NULL, created REAL NOT NULL);
          CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);""")
        db.execute("INSERT INTO meta VALUES ('signature', ?)", (json.dumps({"t": 1}),))
        db.execute("INSERT INTO evals VALUES (0, '[1, 2]', '{}', 0.9, 0.0, '{}', 0, 1.0, 0.0)")
    j = Journal(path, {"t": 1})
    assert j.records[0].trained is True and j.records[0].fitness == 0.9
    j.append((0, 0), {}, UNTRAINED, 0.5, {}, 0, 0.0, trained=False)
    j.close()
    again = Journal(path, {"t": 1})
    assert [(r.trained, r.fitness) for r in again.records] == [(True, 0.9), (False, UNTRAINED)]
    again.close()


SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_search_feasibility import make_problem, run
    run(make_problem(log=sys.argv[2], slow=float(sys.argv[3])), Path(sys.argv[1]))
""")


def _count(run_dir: Path) -> int:
    try:
        return len(rows(run_dir))
    except sqlite3.Error:  # not created yet
        return 0


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_kill_9_with_infeasible_candidates_in_the_journal_resumes_losing_and_repeating_nothing(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(ref), str(tmp_path / "ref.log"), "0"], check=True, timeout=300)
    proc = subprocess.Popen([sys.executable, str(script), str(killed), str(tmp_path / "first.log"), "0.3"])
    deadline = time.time() + 120
    while time.time() < deadline and _count(killed) < 20:  # some rows of both kinds, then kill -9
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists()
    kept = rows(killed)
    assert len(kept) >= 20 and any(not t for *_, t in kept) and any(t for *_, t in kept)
    subprocess.run([sys.executable, str(script), str(killed), str(tmp_path / "second.log"), "0"], check=True,
                   timeout=300)
    a, b = strict_json(ref / "result.json"), strict_json(killed / "result.json")
    for k in ("best", "evaluations_trained", "evaluations_cost_only", "unique_positions"):
        assert a[k] == b[k], k
    assert rows(killed) == rows(ref)  # nothing lost, nothing evaluated twice, the same trained flags
    second = _lines(tmp_path / "second.log")
    assert len(second) == sum(t for *_, t in rows(ref)) - sum(t for *_, t in kept)  # only what was missing
    p = make_problem()
    trained_logs = _lines(tmp_path / "ref.log") + _lines(tmp_path / "first.log") + second
    assert trained_logs and all(avg_bits(p, layers) <= LIMIT for layers in trained_logs)  # never an infeasible one


def test_reachable_minimum_exact_for_bit_metrics_and_cheapest_config_for_hardware():
    entry, board = get_model("tfc"), load_board("pynq-z2")
    with pytest.raises(ConfigError, match=r"--max-bops: field 'bops'.*smallest reachable bops is 1.092e\+05 "
                                          r"\(every variable at its lowest"):
        check_feasible(entry, board, SearchSpec(constraints=(Constraint("bops", 1000),)))
    with pytest.raises(ConfigError, match=r"compression_ratio is 4 \(every variable at its highest candidate\)"):
        check_feasible(entry, board, SearchSpec(constraints=(Constraint("compression_ratio", 3),)))
    check_feasible(entry, board, SearchSpec(constraints=(Constraint("compression_ratio", 4),
                                                         Constraint("avg_bits", 1.4))))
    seen = []

    def latency(entry, bits, board):  # a fake hardware cost: 0.1 ms per bit of every quantizer
        seen.append(bits)
        return Cost("fake", {"latency_ms": 0.1 * sum((b.w or 0) + (b.a or 0) for _, b in bits.layers)})

    spec = SearchSpec(cost="tvm", constraints=(Constraint("latency_ms", 0.5),))
    with pytest.raises(ConfigError, match=r"--max-latency-ms: field 'latency_ms'.*reachable latency_ms is 0\.9 "
                                          r"\(tvm cost of the cheapest configuration"):
        check_feasible(entry, board, spec, cost_model=latency)
    assert seen[0].key() == build_space(entry, board, "tvm").to_bits((0,) * 8).key() and len(seen) > 1
    check_feasible(entry, board, SearchSpec(cost="tvm", constraints=(Constraint("latency_ms", 0.9),)), latency)

    def not_monotone(entry, bits, board):  # FINN-like: the lowest corner is not the cheapest
        return Cost("fake", {"lut": 2553.0 if bits["fc0"].w == 1 else 1800.0})

    spec = SearchSpec(cost="finn", constraints=(Constraint("lut", 1900),))
    check_feasible(entry, board, spec, cost_model=not_monotone)  # a near-uniform 2-bit configuration meets it


def _no_training(monkeypatch, tmp_path):
    """Float training replaced by an untrained float model; any fine-tune is counted."""
    import bitswarm.search.problem
    import bitswarm.train
    import bitswarm.workflow

    calls = {"float": 0, "train": 0}

    def fake_float(entry, *a, **k):
        calls["float"] += 1
        return SimpleNamespace(model=entry.build(entry.uniform_bits(32, 32)))

    real_train = bitswarm.train.train

    def counting_train(*a, **k):
        calls["train"] += 1
        return real_train(*a, **k)

    monkeypatch.setattr(bitswarm.workflow, "train_float", fake_float)
    monkeypatch.setattr(bitswarm.train, "train", counting_train)  # the winner's final fine-tune
    monkeypatch.setattr(bitswarm.search.problem, "train", counting_train)  # a candidate's fine-tune
    monkeypatch.setenv("BITSWARM_CACHE_DIR", str(tmp_path / "cache"))
    return calls


def test_cli_refuses_a_constraint_no_configuration_meets_before_any_training(tmp_path, tiny_mnist_dir, monkeypatch,
                                                                             capsys):
    from bitswarm.cli import main

    calls = _no_training(monkeypatch, tmp_path)
    for cmd in (["search", "--run-dir", str(tmp_path / "r")], ["compare", "--out", str(tmp_path / "c")]):
        assert main([*cmd, "--model", "tfc", "--data-dir", str(tiny_mnist_dir), "--max-avg-bits", "0.5"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("bitswarm: error: --max-avg-bits: field 'avg_bits'"), err
        assert "avg_bits <= 0.5" in err and "smallest reachable avg_bits is 1.36 " in err, err
    assert calls == {"float": 0, "train": 0} and not (tmp_path / "r").exists() and not (tmp_path / "c").exists()


def test_cli_search_without_a_feasible_result_exits_2_and_exports_no_winner(tmp_path, tiny_mnist_dir, monkeypatch,
                                                                            capsys):
    from bitswarm.cli import main

    calls = _no_training(monkeypatch, tmp_path)
    run_dir = tmp_path / "r"
    # avg_bits <= 1.37 is met only next to the lowest corner (1.36: input 2 bits, all else 1), which 6 random
    # positions do not hit
    rc = main(["search", "--model", "tfc", "--data-dir", str(tiny_mnist_dir), "--max-avg-bits", "1.37", "--algo",
               "random", "--particles", "3", "--iters", "1", "--final-epochs", "1", "--val-samples", "200",
               "--workers", "1", "--run-dir", str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err, err
    assert "no feasible configuration in 0 trained + 6 cost-only evaluations: the best violates the constraints by" \
        in err and "avg_bits=" in err and str(run_dir) in err, err
    assert calls == {"float": 1, "train": 0}  # neither candidates nor a winner were fine-tuned
    assert not (run_dir / "winner").exists() and not (run_dir / "best_bits.yaml").exists()
    r = strict_json(run_dir / "result.json")
    assert r["feasible"] is False and r["best"]["violation"] > 0 and "final" not in r
    assert r["evaluations_trained"] == 0 and r["evaluations_cost_only"] == 6
    assert len(rows(run_dir)) == 6 and not any(t for *_, t in rows(run_dir))
    assert strict_json(run_dir / "history.json")[-1]["best_fitness"] is None


def test_compare_keeps_an_infeasible_finished_run_and_prints_it(tmp_path):
    from bitswarm.commands.compare import _run_line, finished_run
    from bitswarm.train import Recipe

    spec = SearchSpec(algo="ga", constraints=(Constraint("avg_bits", 1),), seed=0, budget=5,
                      final_recipe=Recipe(epochs=1))
    r = {"signature": {"algo": "ga", "seed": 0, "budget": 5, "eval_recipe": spec.eval_recipe.key(), "eval_seed": None,
                       "constraints": [c.describe() for c in spec.constraints], "val_samples": spec.val_samples},
         "feasible": False,
         "best": {"fitness": None, "violation": 0.4}, "evaluations": 0, "evaluations_cost_only": 12, "wall_s": 1.0}
    (tmp_path / "result.json").write_text(json.dumps(r))
    assert finished_run(tmp_path, spec) is not None  # not re-run for a final fine-tune it will never have
    assert _run_line("ga", 0, r, None) == ("ga seed 0: no feasible configuration violation 0.4 "
                                           "(0 trained + 12 cost-only evaluations, 1 s)")


@pytest.mark.parametrize("changed", [{"target_fps": 3000}, {"val_samples": 1000}])
def test_compare_does_not_reuse_a_finished_run_of_another_folding_or_validation_size(tmp_path, changed):
    """A finished run is reused only for the same settings; FINN costs depend on the folding's target."""
    from dataclasses import replace

    from bitswarm.commands.compare import finished_run

    spec = SearchSpec(algo="random", cost="surrogate", constraints=(Constraint("lut", 30000),), seed=0, budget=5,
                      final_recipe=None)
    sig = {"algo": "random", "seed": 0, "budget": 5, "eval_recipe": spec.eval_recipe.key(), "eval_seed": None,
           "constraints": [c.describe() for c in spec.constraints], "val_samples": spec.val_samples, **changed}
    (tmp_path / "result.json").write_text(json.dumps({"signature": sig, "feasible": True}))
    assert finished_run(tmp_path, spec) is None
    assert finished_run(tmp_path, replace(spec, **changed)) is not None


def test_compare_does_not_reuse_a_finished_run_of_the_other_fitness(tmp_path):
    """A run scored by the supernet (its signature carries the supernet's tag) is not a QAT-scored run."""
    from dataclasses import replace

    from bitswarm.commands.compare import finished_run

    spec = SearchSpec(algo="random", constraints=(Constraint("avg_bits", 3),), seed=0, budget=5, final_recipe=None)
    sig = {"algo": "random", "seed": 0, "budget": 5, "eval_recipe": spec.eval_recipe.key(), "eval_seed": None,
           "constraints": [c.describe() for c in spec.constraints], "val_samples": spec.val_samples,
           "target_fps": None, "fitness": "oneshot:0123456789abcdef:01234567"}
    (tmp_path / "result.json").write_text(json.dumps({"signature": sig, "feasible": True}))
    assert finished_run(tmp_path, spec) is None  # spec.fitness == "qat"
    assert finished_run(tmp_path, replace(spec, fitness="oneshot")) is not None
