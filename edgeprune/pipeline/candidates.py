"""A round's candidate cuts as tasks of a scale executor (:mod:`edgeprune.scale.executor`): one task per
candidate component (its menu: prune and evaluate each cut), serially in this process or as Ray tasks in
parallel. Menus come back in candidate order, so a strategy picks exactly what the serial loop picks.

``optimize`` also starts the next round's menus before it measures the current point: they depend on the
budgets and the step, which the metric settles before the measurement, not on what the target measures. On Ray
they run while the target measures; a round that turns out different (or never comes: every goal met) cancels
them. In this process a started menu runs only when it is asked for, so nothing is done twice or in vain.
"""

from __future__ import annotations

import pickle
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.pipeline.allocation import Cuts, Proposal


def menu(cuts: Cuts, component: str, step: float, max_fraction: float, levels: int) -> list[Proposal]:
    """One candidate's menu (the task)."""
    return cuts.menu(component, step, max_fraction, levels)


class ParallelMenus:
    """``StepContext.menus`` on ``executor`` (``Serial`` or ``RayExecutor``), with :meth:`start` to begin a
    round's menus ahead of asking for them."""

    def __init__(self, executor: Any):
        self.executor = executor
        self.pending: dict[tuple, Any] = {}
        self.shared: tuple[Cuts, Any] | None = None  # the last Cuts given and its handle (sent once)

    def start(self, cuts: Cuts, candidates: list[str], step: float, max_fraction: float, levels: int) -> None:
        """Submit the menus of a round not already submitted."""
        for c in candidates:
            key = _key(cuts, c, step, max_fraction, levels)
            if key not in self.pending:
                self.pending[key] = self.executor.call(menu, self._share(cuts), c, step, max_fraction, levels)

    def __call__(
        self, cuts: Cuts, candidates: list[str], step: float, max_fraction: float, levels: int
    ) -> list[list[Proposal]]:
        self.start(cuts, candidates, step, max_fraction, levels)
        handles = [self.pending.pop(_key(cuts, c, step, max_fraction, levels)) for c in candidates]
        self.cancel()  # anything else was started for a round that did not come
        return [self.executor.get(h) for h in handles]

    def cancel(self) -> None:
        """Drop the menus started and not asked for."""
        self.executor.cancel(list(self.pending.values()))
        self.pending.clear()

    def _share(self, cuts: Cuts) -> Any:
        if self.shared is None or self.shared[0] is not cuts:
            try:
                self.shared = (cuts, self.executor.share(cuts))
            except (TypeError, pickle.PicklingError) as exc:  # what Ray raises for what it cannot serialise
                raise EdgepruneError(
                    f"the model, inputs or metric cannot be sent to the Ray workers: {exc}",
                    expected="a metric (and model) that pickle: a module-level function or a closure over tensors",
                    fix="make the metric an importable module:function, or run without --parallel / executor",
                ) from exc
        return self.shared[1]


def _key(cuts: Cuts, component: str, step: float, max_fraction: float, levels: int) -> tuple:
    return tuple(sorted(cuts.budgets.items())), component, round(step, 9), max_fraction, levels
