"""The searcher protocol every registered bit-width searcher implements (ask / tell / best / done).

Algorithm, settings and termination are apart: a searcher proposes positions (``ask``) and learns
their results (``tell``: one ``(fitness, violation)`` per asked position, in ask order); the run
loop (:func:`bitswarm.search.runner.run_search`) owns the termination by budget, the journal, the
memory and the executors, so every searcher gets them. ``best()`` is the best told result by Deb's
rule. Proposals depend only on the seed and the told results, never on evaluation timing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bitswarm.search.space import Position


@runtime_checkable
class Searcher(Protocol):
    def ask(self) -> list[Position]: ...

    def tell(self, results: list[tuple[float, float]]) -> None: ...

    def done(self) -> bool:
        """The searcher's own iteration limit is reached (a budget is the run loop's business)."""
        ...

    def best(self) -> tuple[Position | None, tuple[float, float]]:
        """(position, (fitness, violation)) of the best told result by Deb's rule; (None, (-inf, inf)) before any."""
        ...


class BestMixin:
    """``best()`` from the ``gb``/``gb_res`` attributes the searchers keep."""

    gb: Position | None
    gb_res: tuple[float, float]

    def best(self) -> tuple[Position | None, tuple[float, float]]:
        return self.gb, self.gb_res
