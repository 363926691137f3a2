"""The GA baseline (pymoo + our Deb rule), the searcher registry and the parallel executors."""

import numpy as np
import pytest
from test_search import _space, fake_eval

from bitswarm.search.api import SEARCHERS, make_searcher
from bitswarm.search.bbpso import BBPSOSettings
from bitswarm.search.executor import ProcessExecutor, SerialExecutor, make_executor
from bitswarm.search.ga import GeneticSearch, deb_tournament
from bitswarm.search.runner import run_search

SMALL = BBPSOSettings(particles=6, iterations=6)


def _search(tmp_path, algo, name, executor=None, settings=SMALL, seed=0):
    _, space = _space()
    s = make_searcher(algo, space, settings, seed, np.linspace(0.2, 1.0, space.dim))
    return run_search(space, s, fake_eval, tmp_path / name, {"algo": algo}, screening=s.s.screening,
                      progress=False, executor=executor, seed=seed)


def test_every_registered_searcher_runs_and_finds_a_feasible_configuration(tmp_path):
    for algo in SEARCHERS:
        r = _search(tmp_path, algo, algo)
        assert r["best"]["violation"] == 0.0, algo
        assert r["evaluations"] > 6, algo


def test_ga_improves_on_its_initial_population_and_stays_in_the_space(tmp_path):
    _, space = _space()
    ga = GeneticSearch(space, BBPSOSettings(particles=8, iterations=10), seed=3)
    first = None
    for _ in range(11):
        pos = ga.ask()
        assert all(0 <= v <= h for p in pos for v, h in zip(p, space.highs, strict=True))
        res = [fake_eval(space.to_bits(p))[:2] for p in pos]
        ga.tell(res)
        first = first or ga.gb_res
    assert ga.gb_res[1] == 0.0 and ga.gb_res[0] > first[0]


def test_ga_tournament_uses_debs_rule():
    class Ind:
        def __init__(self, acc, viol):
            self.F, self.G = np.array([-acc]), np.array([viol])

    pop = [Ind(0.99, 0.5), Ind(0.10, 0.0), Ind(0.50, 0.0), Ind(0.90, 0.2)]
    winners = deb_tournament(pop, np.array([[0, 1], [1, 2], [0, 3]]))[:, 0]
    assert list(winners) == [1, 2, 3]  # feasible beats infeasible; fitness; smaller violation


def test_process_pool_gives_the_serial_result(tmp_path):
    serial = _search(tmp_path, "bbpso-q", "serial")
    pool = _search(tmp_path, "bbpso-q", "pool", executor=ProcessExecutor(fake_eval, workers=2))
    assert pool["best"] == serial["best"] and pool["evaluations"] == serial["evaluations"]


def test_a_parallel_run_resumes_from_its_journal_without_evaluating_again(tmp_path):
    full = _search(tmp_path, "bbpso-q", "full", executor=ProcessExecutor(fake_eval, workers=2))
    import sqlite3

    db = sqlite3.connect(tmp_path / "full" / "journal.sqlite")  # keep only the first half, as after a kill
    n = db.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
    db.execute("DELETE FROM evals WHERE idx >= ?", (n // 2,))
    db.commit()
    db.close()
    calls = []

    def counting(bits):
        calls.append(bits)
        return fake_eval(bits)

    again = _search(tmp_path, "bbpso-q", "full", executor=SerialExecutor(counting))
    assert again["best"] == full["best"] and again["evaluations"] == full["evaluations"]
    assert len(calls) == n - n // 2


def test_make_executor_rejects_bad_worker_counts_and_unpicklable_problems():
    from bitswarm.errors import ConfigError

    with pytest.raises(ConfigError, match="workers"):
        make_executor(fake_eval, workers=0)
    import threading

    lock = threading.Lock()
    with pytest.raises(ConfigError, match="--workers 1"):
        make_executor(lambda bits: (lock, bits), workers=2)


@pytest.mark.slow
def test_ray_executor_on_a_local_ray_instance(tmp_path):
    ray = pytest.importorskip("ray")
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules["test_search"])  # Ray workers cannot import tests/
    try:
        ex = make_executor(fake_eval, workers=2, ray_address="local")
        assert ex.name == "ray"
        serial = _search(tmp_path, "ga", "serial")
        distributed = _search(tmp_path, "ga", "ray", executor=ex)
        assert distributed["best"] == serial["best"] and distributed["evaluations"] == serial["evaluations"]
    finally:
        ray.shutdown()


def test_fitness_memo_trains_a_configuration_once_across_runs_and_processes(tmp_path):
    import pickle

    import torch

    from bitswarm.boards import load_board
    from bitswarm.hw.cost import Constraint, get_cost_model
    from bitswarm.models import get_model
    from bitswarm.search.problem import FitnessMemo, QuantProblem

    entry = get_model("tfc")
    fp = {k: torch.zeros(2) for k in ("a", "b")}
    memo = FitnessMemo(tmp_path / "fitness.sqlite")
    trained = []

    class Counting(QuantProblem):
        def fine_tune_and_validate(self, bits):
            trained.append(bits.key())
            return 0.5 + len(trained) / 100

    args = (entry, None, fp, load_board("pynq-z2"), get_cost_model("bitops"), (Constraint("avg_bits", 3),))
    a, b = Counting(*args, memo=memo), Counting(*args, memo=pickle.loads(pickle.dumps(memo)))
    bits = entry.uniform_bits(2, 2)
    assert a.evaluate(bits)[0] == b.evaluate(bits)[0] == 0.51  # the second run reads the first run's result
    assert trained == [bits.key()]
    other_fp = Counting(entry, None, {k: torch.ones(2) for k in fp}, *args[3:], memo=memo)
    other_fp.evaluate(bits)  # another float checkpoint is another key
    assert len(trained) == 2


def test_compare_reuses_a_finished_run_only_when_its_settings_match(tmp_path):
    import json
    from dataclasses import replace

    from bitswarm.commands.compare import finished_run
    from bitswarm.hw.cost import Constraint
    from bitswarm.search.api import SearchSpec

    spec = SearchSpec(algo="ga", constraints=(Constraint("avg_bits", 3),), seed=2, budget=50, eval_seed=0)
    sig = {"algo": "ga", "seed": 2, "budget": 50, "eval_recipe": spec.eval_recipe.key(), "eval_seed": 0,
           "constraints": ["avg_bits <= 3 bits (Eq. 11 average operation bit-width)"], "val_samples": spec.val_samples}
    assert finished_run(tmp_path, spec) is None
    (tmp_path / "result.json").write_text(json.dumps({"signature": sig, "best": {}}))
    assert finished_run(tmp_path, spec) is not None
    assert finished_run(tmp_path, replace(spec, budget=60)) is None
    assert finished_run(tmp_path, replace(spec, constraints=(Constraint("avg_bits", 4),))) is None
    assert finished_run(tmp_path, replace(spec, val_samples=500)) is None


def test_cost_follows_the_constraints_when_not_given(capsys):
    from argparse import Namespace

    from bitswarm.boards import load_board
    from bitswarm.commands.search import resolve_cost
    from bitswarm.hw.cost import Constraint

    bits, lat = (Constraint("avg_bits", 3),), (Constraint("latency_ms", 1.0),)
    assert resolve_cost(Namespace(cost=None), bits, load_board("pynq-z2")) == "bitops"
    assert resolve_cost(Namespace(cost=None), lat, load_board("pynq-z2")) == "finn"
    assert resolve_cost(Namespace(cost=None), lat, load_board("host")) == "tvm"
    assert resolve_cost(Namespace(cost="surrogate"), lat, load_board("pynq-z2")) == "surrogate"
    assert "--cost tvm (the constraints latency_ms need" in capsys.readouterr().out


def test_default_workers_are_one_per_core_unless_the_problem_cannot_be_shipped():
    import os
    import threading

    from bitswarm.search.executor import auto_workers

    assert auto_workers(fake_eval) == (os.cpu_count() or 1)
    lock = threading.Lock()
    assert auto_workers(lambda bits: (lock, bits)) == 1
