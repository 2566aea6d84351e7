"""The one multiple-choice knapsack (prune/knapsack.py) behind sensitivity allocation and optimize's strategy."""

from __future__ import annotations

from edgeprune.prune.knapsack import MAX_COMBINATIONS, cheapest_cover, max_levels


def _solve(menus, need, max_cost=None):
    return cheapest_cover(menus, {"x": need}, cost=lambda o: o[0], gains=lambda o: {"x": o[1]}, max_cost=max_cost)


def test_cheapest_combination_that_covers_wins_over_a_single_expensive_cut() -> None:
    a = [(1.0, 4.0), (5.0, 10.0)]  # (cost, gain)
    b = [(1.5, 6.0), (9.0, 12.0)]
    assert set(_solve([a, b], 10.0)) == {(1.0, 4.0), (1.5, 6.0)}  # 2.5 < 5.0 for a's deep cut alone


def test_ties_in_cost_take_the_least_over_cut() -> None:
    a = [(0.0, 10.0), (0.0, 30.0)]
    assert _solve([a], 10.0) == ((0.0, 10.0),)


def test_without_a_cover_the_most_coverage_and_max_cost_filters() -> None:
    a = [(1.0, 2.0), (3.0, 5.0)]
    assert _solve([a], 100.0) == ((3.0, 5.0),)
    assert _solve([a], 100.0, max_cost=2.0) == ((1.0, 2.0),)
    assert _solve([a], 1.0, max_cost=0.5) is None
    assert _solve([[], []], 1.0) is None


def test_menu_length_keeps_the_search_bounded() -> None:
    for n in range(1, 9):
        levels = max_levels(n, 10)
        assert (levels + 1) ** n <= MAX_COMBINATIONS
