"""Multiple-choice knapsack over per-component cuts: the one solver behind sensitivity allocation
(:mod:`edgeprune.prune.sensitivity`) and the loop's ``knapsack`` strategy (:mod:`edgeprune.pipeline.allocation`).

Each menu lists the cuts of one component (deeper cuts later); at most one cut per menu is taken. A cut has a
**cost** (the drop of the user's metric, or a proxy of it) and **gains** per need (latency, bytes, parameters
removed...). Costs and gains are assumed to add up across components. The cheapest combination that covers every
need wins (ties: the one that over-covers least); when none does, the one that covers most.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_COMBINATIONS = 50_000  # menus are cut short above this many combinations (levels per menu shrink)


def max_levels(n_menus: int, wanted: int) -> int:
    """The longest menu (cuts per component) that keeps the search within :data:`MAX_COMBINATIONS`."""
    return max(1, min(wanted, int(MAX_COMBINATIONS ** (1 / max(n_menus, 1))) - 1))


def cheapest_cover(
    menus: Sequence[Sequence[T]],
    needs: Mapping[str, float],
    cost: Callable[[T], float],
    gains: Callable[[T], Mapping[str, float]],
    max_cost: float | None = None,
) -> tuple[T, ...] | None:
    """The chosen cuts (at most one per menu, at least one in all) that cover ``needs`` at the least summed cost,
    skipping combinations costing more than ``max_cost``; None when every combination does."""
    best: tuple[tuple[float, ...], tuple[T, ...]] | None = None
    for combo in itertools.product(*([None, *menu] for menu in menus)):
        chosen = tuple(c for c in combo if c is not None)
        if not chosen:
            continue
        total = sum(cost(c) for c in chosen)
        if max_cost is not None and total > max_cost:
            continue
        covered = min((sum(gains(c).get(n, 0.0) for c in chosen) / need for n, need in needs.items()), default=0.0)
        # feasible: least cost, then the least over-cut (many cuts cost ~0); otherwise the most coverage
        key = (0.0, total, covered) if covered >= 1.0 else (1.0, -covered, total)
        if best is None or key < best[0]:
            best = (key, chosen)
    return None if best is None else best[1]
