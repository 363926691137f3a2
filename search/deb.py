"""Deb's constraint-handling rule (Deb 2000; BBPSO-Quantizer §3.3, Algorithm 1)."""

from __future__ import annotations


def deb_better(fit_a: float, viol_a: float, fit_b: float, viol_b: float) -> bool:
    """True when solution *a* is strictly better than *b* under Deb's rule.

    Three cases, for a cost that must stay **at or below** its limit (violation = relative
    excess, 0 when feasible; the paper's Algorithm 1 writes feasibility as ``constraint >= λ``
    for a resource *budget*, which is the same rule with the inequality flipped):

    1. a feasible solution beats an infeasible one;
    2. of two feasible solutions, the one with the higher fitness (accuracy) wins;
    3. of two infeasible solutions, the one with the smaller violation wins.

    The fitness of an infeasible solution is never read: such a candidate is not fine-tuned and
    carries :data:`bitswarm.search.problem.UNTRAINED` (-inf).
    """
    feas_a, feas_b = viol_a <= 0.0, viol_b <= 0.0
    if feas_a != feas_b:
        return feas_a
    if feas_a:
        return fit_a > fit_b
    return viol_a < viol_b
