"""How one step of the loop picks the next per-component budgets from the current point.

Both strategies price a cut the same way: pruning component ``c`` further is tried on a copy (pruned from the
original model), and its **gain** on each unmet goal is estimated from the current measurement — latency: the
component's attributed latency × the fraction of its MACs the cut removes; flash: int8 weights, one byte per
parameter removed; arena and the board fit check are not attributable per component, so the MAC cut is their
proxy until the target measures again. Its **cost** is the drop of the user's metric.

A cut is always a multiple of ``step`` that removes at least one channel: a step smaller than one ``round_to``
quantum of a component is extended until it does, so no target measurement is spent on an unchanged model.

- ``greedy`` (NetAdapt-style): every component one cut further; the single cut with the most gain per
  unit of metric lost wins. One component changes per target measurement.
- ``knapsack`` (multiple-choice knapsack): every component at its next 1…``levels`` cuts; the combination (at
  most one level per component) that covers every attributable goal (latency, flash) at the least summed
  metric drop wins (ties: the smallest cut that covers), assuming gains and drops add up across components.
  Several components change per target measurement; the combined model is evaluated before it is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.prune import Budget, Components, PruneResult, prune
from edgeprune.prune.importance import ImportanceSpec
from edgeprune.prune.knapsack import cheapest_cover, max_levels

ATTRIBUTABLE = ("latency_ms", "flash_bytes")  # goals whose gain per component can be estimated before measuring


@dataclass
class Proposal:
    """Budgets for the next point, the pruned model, its metric and which components changed."""

    budgets: dict[str, float]
    pruned: PruneResult
    metric: float
    changed: tuple[str, ...]
    gains: dict[str, float]  # estimated, per unmet goal, in the goal's unit


@dataclass
class StepContext:
    """Everything a strategy needs to price cuts from the current point."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    components: Components
    protect: Sequence[str]
    round_to: int
    evaluate: Callable[[nn.Module], float]
    budgets: dict[str, float]  # the current point's
    measured: Measurement  # the current point's
    macs: dict[str, int]  # per component, of the current point's model
    params: dict[str, int]
    excess: dict[str, float]  # unmet goals
    base_metric: float
    max_drop: float | None  # None: the metric is only final after fine-tuning, do not filter on it
    say: Callable[[str], None]
    importance: ImportanceSpec = "l2"

    def prune(self, budgets: dict[str, float]) -> PruneResult:
        budget = Budget(per_component=budgets, protect=frozenset(self.protect), round_to=self.round_to)
        return prune(self.model, self.inputs, budget, components=self.components, importance=self.importance)

    def propose(self, budgets: dict[str, float], changed: tuple[str, ...]) -> Proposal | None:
        """Prune to ``budgets``, estimate the gains of the ``changed`` components and evaluate the metric.
        None when the cut removes nothing from them (a step smaller than one ``round_to`` quantum, say): such
        a point would measure the current model again."""
        pruned = self.prune(budgets)
        if all(pruned.report.component(c).params_after == self.params.get(c) for c in changed):
            return None
        gains = dict.fromkeys(self.excess, 0.0)
        for c in changed:
            row = pruned.report.component(c)
            mac_cut = 1 - row.macs_after / self.macs[c] if self.macs.get(c) else 0.0
            per_goal = {
                "latency_ms": self.measured.components_ms.get(c, 0.0) * mac_cut,
                "flash_bytes": float(self.params.get(c, 0) - row.params_after),
                "arena_bytes": mac_cut,
                "board fit": mac_cut,
            }
            for goal in gains:
                gains[goal] += per_goal[goal]
        self.say(f"evaluating {', '.join(f'{c} {budgets[c]:.0%}' for c in changed)}")
        return Proposal(budgets, pruned, float(self.evaluate(pruned.model)), changed, gains)

    def cut(self, c: str, fraction: float, step: float, max_fraction: float) -> Proposal | None:
        """Component ``c`` cut from ``fraction`` by the least multiple of ``step`` that removes a channel (None:
        none does up to ``max_fraction``)."""
        while (fraction := round(fraction + step, 6)) <= max_fraction + 1e-9:
            option = self.propose({**self.budgets, c: fraction}, (c,))
            if option is not None:
                return option
        return None

    def drop(self, p: Proposal) -> float:
        return max(0.0, self.base_metric - p.metric)

    def within_drop(self, p: Proposal) -> bool:
        return self.max_drop is None or self.drop(p) <= self.max_drop

    def score(self, p: Proposal) -> float:
        """Share of the unmet goals bought per unit of metric lost."""
        gain = sum(p.gains[g] / self.excess[g] for g in self.excess)
        return gain / (self.drop(p) + 1e-6 * (abs(self.base_metric) + 1.0))


def greedy(ctx: StepContext, candidates: list[str], step: float, max_fraction: float) -> Proposal | None:
    """The single next cut with the best score within the allowed drop (None: every cut costs too much)."""
    options = [ctx.cut(c, ctx.budgets[c], step, max_fraction) for c in candidates]
    eligible = [p for p in options if p is not None and ctx.within_drop(p)]
    return max(eligible, key=ctx.score) if eligible else None


def knapsack(
    ctx: StepContext, candidates: list[str], step: float, max_fraction: float, levels: int = 4
) -> Proposal | None:
    """The cheapest combination of per-component cuts that covers every attributable unmet goal (see module)."""
    levels = max_levels(len(candidates), levels)
    menus: list[list[Proposal]] = []
    for c in candidates:
        menu: list[Proposal] = []
        fraction = ctx.budgets[c]
        for _ in range(levels):
            option = ctx.cut(c, fraction, step, max_fraction)
            if option is None or not ctx.within_drop(option):
                break  # deeper cuts of this component cost at least as much (the drop grows with the cut)
            menu.append(option)
            fraction = option.budgets[c]
        menus.append(menu)
    options = [p for menu in menus for p in menu]
    goals = {g: ctx.excess[g] for g in ctx.excess if g in ATTRIBUTABLE}
    if not goals:  # only non-attributable goals (arena, board fit): the single best-scoring cut
        return max(options, key=ctx.score, default=None)
    chosen = cheapest_cover(menus, goals, cost=ctx.drop, gains=lambda p: p.gains, max_cost=ctx.max_drop)
    if chosen is None:
        return None
    if len(chosen) == 1:
        return chosen[0]
    budgets = {**ctx.budgets, **{p.changed[0]: p.budgets[p.changed[0]] for p in chosen}}
    return ctx.propose(budgets, tuple(p.changed[0] for p in chosen))


Strategy = Callable[[StepContext, list[str], float, float], "Proposal | None"]
STRATEGIES: dict[str, Strategy] = {"greedy": greedy, "knapsack": knapsack}


def strategy(name: str) -> Strategy:
    """The strategy called ``name`` (``greedy`` or ``knapsack``)."""
    if name not in STRATEGIES:
        raise EdgepruneError(f"unknown strategy {name!r}", expected=f"one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
