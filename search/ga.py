"""The genetic-algorithm baseline: pymoo's GA, driven ask/tell, ranking by *our* Deb rule.

pymoo's own single-objective GA already sorts "feasible first, then by fitness, infeasible by
constraint violation"; here both places where solutions are compared (binary tournament
selection and the (mu + lambda) survival) call :func:`bitswarm.search.deb.deb_better`, so
the GA, BBPSO and the runner share exactly one rule.

Variables are the index space of the candidate set (as for BBPSO): integer random sampling,
SBX crossover and polynomial mutation with rounding repair (pymoo's recipe for integer
variables), duplicates eliminated. Population size = ``settings.particles``, one generation per
round, ``settings.iterations`` generations after the initial population.
"""

from __future__ import annotations

import functools

import numpy as np
from pymoo.algorithms.soo.nonconvex.ga import GA
from pymoo.core.evaluator import Evaluator
from pymoo.core.problem import Problem
from pymoo.core.survival import Survival
from pymoo.core.termination import NoTermination
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.operators.selection.tournament import TournamentSelection
from pymoo.problems.static import StaticProblem

from bitswarm.search.deb import deb_better
from bitswarm.search.searcher import BestMixin
from bitswarm.search.space import Position, Space


def _fit_viol(ind) -> tuple[float, float]:
    """pymoo minimises F = -accuracy; G = violation (<= 0 feasible). An untrained (infeasible)
    candidate's fitness is -inf, so its F is +inf, which pymoo orders and Deb's rule never reads."""
    return -float(ind.F[0]), max(0.0, float(ind.G[0]))


def _cmp(a, b) -> int:
    fa, fb = _fit_viol(a), _fit_viol(b)
    return -1 if deb_better(*fa, *fb) else (1 if deb_better(*fb, *fa) else 0)


def deb_tournament(pop, P, random_state=None, **kwargs):
    """Binary tournament: the winner by Deb's rule (the first of the pair on a tie)."""
    return np.array([[b if deb_better(*_fit_viol(pop[b]), *_fit_viol(pop[a])) else a] for a, b in P], dtype=int)


class DebSurvival(Survival):
    """Keep the best ``n_survive`` of parents + offspring, ordered by Deb's rule."""

    def __init__(self) -> None:
        super().__init__(filter_infeasible=False)

    def _do(self, problem, pop, n_survive=None, **kwargs):
        order = sorted(range(len(pop)), key=functools.cmp_to_key(lambda i, j: _cmp(pop[i], pop[j])))
        pop.set("rank", np.argsort(order))
        return pop[order[:n_survive]]


class GeneticSearch(BestMixin):
    """Ask/tell wrapper (same protocol as :class:`~bitswarm.search.bbpso.BBPSO`)."""

    def __init__(self, space: Space, settings, seed: int, importance=None):
        self.space, self.s, self.seed, self.t = space, settings, seed, 0
        self.gb: Position | None = None
        self.gb_res = (float("-inf"), float("inf"))
        self.phase = "init"
        self._problem = Problem(n_var=space.dim, n_obj=1, n_ieq_constr=1, xl=0, xu=np.asarray(space.highs), vtype=int)
        self._algo = GA(pop_size=settings.particles, sampling=IntegerRandomSampling(),
                        crossover=SBX(prob=0.9, eta=3.0, vtype=float, repair=RoundingRepair()),
                        mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
                        selection=TournamentSelection(func_comp=deb_tournament), survival=DebSurvival(),
                        eliminate_duplicates=True)
        self._algo.setup(self._problem, termination=NoTermination(), seed=seed, verbose=False)
        self._pop = None

    def done(self) -> bool:
        return self.t > self.s.iterations

    def ask(self) -> list[Position]:
        self._pop = self._algo.ask()
        return [self.space.clip(x) for x in self._pop.get("X")]

    def tell(self, results: list[tuple[float, float]]) -> None:
        fit = np.array([[-r[0]] for r in results], float)
        viol = np.array([[r[1]] for r in results], float)
        Evaluator().eval(StaticProblem(self._problem, F=fit, G=viol), self._pop)
        self._algo.tell(infills=self._pop)
        for x, res in zip(self._pop.get("X"), results, strict=True):
            if self.gb is None or deb_better(res[0], res[1], *self.gb_res):
                self.gb, self.gb_res = self.space.clip(x), (float(res[0]), float(res[1]))
        self.t += 1
        self.phase = "generation"
