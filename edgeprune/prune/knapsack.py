"""The multiple-choice knapsack that prices per-component cuts (used by ``optimize`` and by sensitivity allocation).

:func:`knapsack` asks a *context* for each component's next 1…``levels`` cuts (``ctx.cut``), then picks the
combination (at most one cut per component) that covers every attributable unmet goal (``ctx.excess``) at the
least summed metric drop (ties: the smallest cut that covers), assuming gains and drops add up across
components. ``edgeprune.pipeline.allocation.StepContext`` prices cuts by pruning and evaluating;
``edgeprune.prune.sensitivity`` by measured sensitivities.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Protocol

ATTRIBUTABLE = ("latency_ms", "flash_bytes")  # goals whose gain per component can be estimated before measuring
MAX_COMBINATIONS = 50_000


class CutContext(Protocol):
    """What the knapsack needs: the current budgets, the unmet goals, and cuts with their drops."""

    budgets: dict[str, float]
    excess: dict[str, float]
    max_drop: float | None

    def cut(self, c: str, fraction: float, step: float, max_fraction: float) -> Any: ...
    def within_drop(self, p: Any) -> bool: ...
    def drop(self, p: Any) -> float: ...
    def score(self, p: Any) -> float: ...
    def propose(self, budgets: dict[str, float], changed: tuple[str, ...]) -> Any: ...


def knapsack(ctx: CutContext, candidates: list[str], step: float, max_fraction: float, levels: int = 4) -> Any:
    """The cheapest combination of per-component cuts that covers every attributable unmet goal (see module);
    a proposal from ``ctx.cut`` or ``ctx.propose``, or None."""
    levels = max(1, min(levels, math.floor(MAX_COMBINATIONS ** (1 / max(len(candidates), 1))) - 1))
    menus: list[list[Any]] = []
    for c in candidates:
        menu: list[Any] = [None]
        fraction = ctx.budgets[c]
        for _ in range(levels):
            option = ctx.cut(c, fraction, step, max_fraction)
            if option is None or not ctx.within_drop(option):
                break  # deeper cuts of this component cost at least as much (the drop grows with the cut)
            menu.append(option)
            fraction = option.budgets[c]
        menus.append(menu)
    goals = [g for g in ctx.excess if g in ATTRIBUTABLE]
    best: tuple[tuple[float, ...], tuple[Any, ...]] | None = None
    for combo in itertools.product(*menus):
        chosen = tuple(p for p in combo if p is not None)
        if not chosen:
            continue
        drop = sum(ctx.drop(p) for p in chosen)
        if ctx.max_drop is not None and drop > ctx.max_drop:
            continue
        coverage = [sum(p.gains[g] for p in chosen) / ctx.excess[g] for g in goals]
        covered = min(coverage, default=0.0)
        if not goals:  # only non-attributable goals (arena, board fit): the single best-scoring cut
            key = (1.0, -max(ctx.score(p) for p in chosen), float(len(chosen)))
        elif covered >= 1.0:  # feasible: least drop, then the least over-cut (many cuts cost ~0 of the metric)
            key = (0.0, drop, covered)
        else:  # nothing covers the goals within max_drop: the most coverage
            key = (1.0, -covered, drop)
        if best is None or key < best[0]:
            best = (key, chosen)
    if best is None:
        return None
    chosen = best[1]
    if len(chosen) == 1:
        return chosen[0]
    budgets = {**ctx.budgets, **{p.changed[0]: p.budgets[p.changed[0]] for p in chosen}}
    return ctx.propose(budgets, tuple(p.changed[0] for p in chosen))
