"""Contract suites run over every registered searcher and every registered cost model (as optuna tests
every storage and nevergrad every optimizer): a new registration gets the whole suite."""

import math

import numpy as np
import pytest

from bitswarm.boards import load_board
from bitswarm.hw.cost import Cost, cost_names, cost_provides, get_cost_model, needs_cache
from bitswarm.models import get_model
from bitswarm.search.api import SEARCHERS, make_searcher
from bitswarm.search.bbpso import BBPSOSettings
from bitswarm.search.deb import deb_better
from bitswarm.search.searcher import Searcher
from bitswarm.search.space import Space

SETTINGS = BBPSOSettings(particles=5, iterations=4, gamma=2)


def _space():
    e = get_model("tfc")
    return e, Space.from_specs(e.specs, (1, 2, 3, 4, 5, 6, 7, 8), e.default_bits())


def _result(pos) -> tuple[float, float]:
    """A deterministic landscape: fitness grows with bits, infeasible above 30 index units (of 56)."""
    return float(sum(pos)) / 100, max(0.0, (sum(pos) - 30) / 30)


def _drive(algo: str, seed: int, rounds: int = 50):
    _, space = _space()
    s = make_searcher(algo, space, SETTINGS, seed, np.linspace(0.2, 1.0, space.dim),
                      probe=lambda p: _result(p)[1], weights=np.ones(space.dim))
    told, asked = [], []
    for _ in range(rounds):
        if s.done():
            break
        pos = s.ask()
        asked.append(pos)
        res = [_result(p) for p in pos]
        s.tell(res)
        told += list(zip(pos, res, strict=True))
    return s, space, asked, told


@pytest.mark.parametrize("algo", sorted(SEARCHERS))
def test_searcher_contract(algo):
    s, space, asked, told = _drive(algo, seed=3)
    assert isinstance(s, Searcher)
    assert s.done(), "a searcher ends by its own iteration limit"
    assert all(len(p) == space.dim and all(0 <= v <= h for v, h in zip(p, space.highs, strict=True))
               for rnd in asked for p in rnd), "positions stay in each variable's own index range"
    best_pos, best_res = s.best()
    for _, res in told:  # best() is the Deb-best of everything told
        assert not deb_better(res[0], res[1], *best_res)
    assert best_res == _result(best_pos)
    assert best_res[1] == 0.0, "half the landscape is feasible: every searcher finds some of it"
    again = _drive(algo, seed=3)[2]
    assert again == asked, "same seed, same results -> same proposals"
    assert _drive(algo, seed=4)[2] != asked, "the seed matters"


def test_best_before_any_tell_is_empty():
    _, space = _space()
    for algo in SEARCHERS:
        pos, res = make_searcher(algo, space, SETTINGS, 0, None).best()
        assert pos is None and res[0] == -math.inf and res[1] == math.inf, algo


OFFLINE = [n for n in cost_names() if n in ("bitops", "qonnx")]
TOOL_MARKS = {"finn": pytest.mark.finn, "tvm": pytest.mark.tvm}


@pytest.mark.parametrize("name", cost_names())
def test_cost_model_declares_what_it_provides(name):
    provides = cost_provides(name)
    assert provides and len(set(provides)) == len(provides)
    assert needs_cache(name) == (name in ("finn", "surrogate", "tvm"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=TOOL_MARKS[n]) if n in TOOL_MARKS else n
                                  for n in cost_names() if n != "surrogate"])
def test_cost_model_contract(name, tmp_path):
    """Every provided quantity is a finite number; the same configuration costs the same; more bits never
    cost fewer bit operations (where provided)."""
    entry, board = get_model("tfc"), load_board("pynq-z2" if name != "tvm" else "host")
    opts = {"cache_dir": tmp_path} if needs_cache(name) else {}
    model = get_cost_model(name, **opts)
    try:
        low, high = entry.uniform_bits(2, 2), entry.uniform_bits(4, 4)
        c = model(entry, low, board)
        assert isinstance(c, Cost)
        for q in cost_provides(name):
            assert q in c.values and math.isfinite(float(c[q])), q
        if name != "tvm":  # measured latency varies between calls
            assert model(entry, low, board).values == c.values
        if "bops" in c.values:
            assert model(entry, high, board)["bops"] > c["bops"]
    finally:
        if hasattr(model, "close"):
            model.close()


def test_a_cost_model_with_a_cache_refuses_to_run_without_one():
    entry, board = get_model("tfc"), load_board("pynq-z2")
    with pytest.raises(ValueError, match="cache_dir"):
        get_cost_model("finn")(entry, entry.default_bits(), board)
    with pytest.raises(ValueError, match="cache_dir"):
        get_cost_model("surrogate")(entry, entry.default_bits(), board)


# ---- the seed methods' optimizers (vector searchers): one suite over every registered one ----------

def _vector_task(name: str):
    from bitswarm.search.compress.searchers import VECTOR_KIND
    from bitswarm.search.compress.vector_loop import VectorTask

    rng = np.random.default_rng(0)
    if VECTOR_KIND[name] == "float":  # k-means' PSO: 4 centroids over two-cluster data
        data = np.concatenate([rng.normal(-1, 0.1, 200), rng.normal(1, 0.1, 200)])
        task = VectorTask(np.zeros(4), np.full(4, data.min()), np.full(4, data.max()))
        return task, (lambda c: -float(np.min((data[:, None] - c[None, :]) ** 2, axis=1).mean())), np.float64, 6
    target = rng.integers(0, 2, 80)
    task = VectorTask(np.zeros(80, np.int64), np.zeros(80, np.int64), np.ones(80, np.int64))
    limit = 6 if name == "evo" else 150
    return task, (lambda x: -float(np.abs(np.asarray(x) - target).sum())), np.int64, limit


def _vector_run(name: str, seed: int, run_dir=None, fail_after: int | None = None):
    from bitswarm.search.compress.searchers import VECTOR_SEARCHERS
    from bitswarm.search.compress.vector_loop import drive

    task, fit, dtype, limit = _vector_task(name)
    calls, asked = [], []
    s = VECTOR_SEARCHERS[name](task, seed, limit)
    ask = s.ask
    s.ask = lambda: asked.append([np.array(p) for p in ask()]) or asked[-1]

    def counted(x):
        if fail_after is not None and len(calls) >= fail_after:
            raise KeyboardInterrupt  # stands in for kill -9: the journal holds what was evaluated
        calls.append(np.array(x))
        return fit(x)

    drive(s, counted, task.start.size, dtype=dtype, run_dir=run_dir, signature={"t": name})
    return s, calls, asked, fit


@pytest.mark.parametrize("name", sorted(__import__("bitswarm.search.compress.searchers",
                                                   fromlist=["VECTOR_SEARCHERS"]).VECTOR_SEARCHERS))
def test_vector_searcher_contract(name, tmp_path):
    s, calls, asked, fit = _vector_run(name, seed=3)
    assert isinstance(s, Searcher) and s.done()
    task = _vector_task(name)[0]
    assert all(((p >= task.lo) & (p <= task.hi)).all() for rnd in asked for p in rnd), "positions stay in the box"
    best_pos, (best_f, viol) = s.best()
    assert viol == 0 and best_f == fit(best_pos) and best_f >= max(fit(x) for x in calls)
    assert best_f > fit(task.start), "it improves on its start"
    keys = [tuple(np.asarray(x).tolist()) for x in calls]
    assert len(keys) == len(set(keys)), "the memory: no vector is evaluated twice"
    again = _vector_run(name, seed=3)[2]
    assert all(np.array_equal(a, b) for ra, rb in zip(again, asked, strict=True) for a, b in zip(ra, rb, strict=True))
    assert not all(np.array_equal(a, b) for ra, rb in zip(_vector_run(name, seed=4)[2], asked, strict=False)
                   for a, b in zip(ra, rb, strict=False)), "the seed matters"
    # interrupted after a third of its evaluations, then run again on the same run dir: nothing lost or repeated
    with pytest.raises(KeyboardInterrupt):
        _vector_run(name, seed=3, run_dir=tmp_path / "r", fail_after=len(calls) // 3)
    resumed, calls2, _, _ = _vector_run(name, seed=3, run_dir=tmp_path / "r")
    assert len(calls2) == len(calls) - len(calls) // 3
    assert resumed.best()[1] == s.best()[1] and np.array_equal(resumed.best()[0], best_pos)
    assert (tmp_path / "r" / "best.npy").exists() and (tmp_path / "r" / "journal.sqlite").exists()
