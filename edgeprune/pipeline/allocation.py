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
- ``knapsack`` (multiple-choice knapsack): every component at its next 1…:data:`KNAPSACK_LEVELS` cuts; the
  combination (at most one level per component) that covers every attributable goal (latency, flash) at the
  least summed metric drop wins (ties: the smallest cut that covers), assuming gains and drops add up across
  components. Several components change per target measurement; the combined model is evaluated before it is
  measured.

A round's cuts (:class:`Cuts`: prune, evaluate) depend on the current budgets and the step, not on the
measurement, which only prices them (:class:`StepContext`); so they can be evaluated in parallel and ahead of
the measurement (:mod:`edgeprune.pipeline.candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.prune import Budget, Components, PrunePlan, PruneReport, PruneResult, prune
from edgeprune.prune.importance import ImportanceSpec
from edgeprune.prune.knapsack import cheapest_cover, max_levels

ATTRIBUTABLE = ("latency_ms", "flash_bytes")  # goals whose gain per component can be estimated before measuring
KNAPSACK_LEVELS = 4  # cuts per component on a knapsack menu (fewer when the combinations would be too many)


@dataclass
class Proposal:
    """Budgets for the next point, the pruned model (its plan and report), its metric and which components
    changed. Plain data, so it can come back from another process (a Ray task)."""

    budgets: dict[str, float]
    model: nn.Module
    plan: PrunePlan
    report: PruneReport
    metric: float
    changed: tuple[str, ...]


@dataclass
class Cuts:
    """Pricing's half that does not depend on the current measurement: prune the model from ``budgets`` and
    evaluate the metric. Picklable (a Ray task gets one), so a round's cuts can be evaluated anywhere, even
    while the previous point is still being measured."""

    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    components: Components
    protect: Sequence[str]
    round_to: int
    evaluate: Callable[[nn.Module], float]
    budgets: dict[str, float]  # the current point's
    params: dict[str, int]  # per component, of the current point's model
    base_metric: float
    max_drop: float | None  # None: the metric is only final after fine-tuning, do not filter on it
    importance: ImportanceSpec = "l2"

    def prune(self, budgets: dict[str, float]) -> PruneResult:
        budget = Budget(per_component=budgets, protect=frozenset(self.protect), round_to=self.round_to)
        return prune(self.model, self.inputs, budget, components=self.components, importance=self.importance)

    def propose(self, budgets: dict[str, float], changed: tuple[str, ...]) -> Proposal | None:
        """Prune to ``budgets`` and evaluate the metric. None when the cut removes nothing from the ``changed``
        components (a step smaller than one ``round_to`` quantum, say): such a point would measure the current
        model again."""
        pruned = self.prune(budgets)
        if all(pruned.report.component(c).params_after == self.params.get(c) for c in changed):
            return None
        metric = float(self.evaluate(pruned.model))
        return Proposal(budgets, pruned.model, pruned.plan, pruned.report, metric, changed)

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

    def menu(self, c: str, step: float, max_fraction: float, levels: int) -> list[Proposal]:
        """Component ``c``'s next 1…``levels`` cuts, each from the last, up to the first that removes nothing
        or costs more than ``max_drop`` (deeper cuts cost at least as much: the drop grows with the cut)."""
        out: list[Proposal] = []
        fraction = self.budgets[c]
        for _ in range(levels):
            option = self.cut(c, fraction, step, max_fraction)
            if option is None or not self.within_drop(option):
                break
            out.append(option)
            fraction = option.budgets[c]
        return out


Menus = Callable[[Cuts, list[str], float, float, int], list[list[Proposal]]]


def serial_menus(cuts: Cuts, candidates: list[str], step: float, max_fraction: float, levels: int):
    """Every candidate's menu, one after another in this process (:mod:`edgeprune.pipeline.candidates` runs
    them in parallel)."""
    return [cuts.menu(c, step, max_fraction, levels) for c in candidates]


@dataclass
class StepContext:
    """Everything a strategy needs to price cuts from the current point: its :class:`Cuts`, what the target
    measured there, and how a round's menus are evaluated (``menus``: serially, or in parallel)."""

    cuts: Cuts
    measured: Measurement  # the current point's
    macs: dict[str, int]  # per component, of the current point's model
    excess: dict[str, float]  # unmet goals
    say: Callable[[str], None]
    menus: Menus = serial_menus

    def gains(self, p: Proposal) -> dict[str, float]:
        """The proposal's estimated gain on each unmet goal, in the goal's unit (see the module docstring)."""
        gains = dict.fromkeys(self.excess, 0.0)
        for c in p.changed:
            row = p.report.component(c)
            mac_cut = 1 - row.macs_after / self.macs[c] if self.macs.get(c) else 0.0
            per_goal = {
                "latency_ms": self.measured.components_ms.get(c, 0.0) * mac_cut,
                "flash_bytes": float(self.cuts.params.get(c, 0) - row.params_after),
                "arena_bytes": mac_cut,
                "board fit": mac_cut,
            }
            for goal in gains:
                gains[goal] += per_goal[goal]
        return gains

    def score(self, p: Proposal) -> float:
        """Share of the unmet goals bought per unit of metric lost."""
        gains = self.gains(p)
        gain = sum(gains[g] / self.excess[g] for g in self.excess)
        return gain / (self.cuts.drop(p) + 1e-6 * (abs(self.cuts.base_metric) + 1.0))

    def round_menus(self, candidates: list[str], step: float, max_fraction: float, levels: int) -> list[list[Proposal]]:
        """The round's menus (one per candidate, in candidate order), said as they come back."""
        menus = self.menus(self.cuts, candidates, step, max_fraction, levels)
        tried = [f"{p.changed[0]} {p.budgets[p.changed[0]]:.0%}" for menu in menus for p in menu]
        self.say(f"evaluated {len(tried)} cut(s) within the drop: {', '.join(tried) or 'none'}")
        return menus


def greedy(ctx: StepContext, candidates: list[str], step: float, max_fraction: float) -> Proposal | None:
    """The single next cut with the best score within the allowed drop (None: every cut costs too much)."""
    menus = ctx.round_menus(candidates, step, max_fraction, menu_levels(greedy, len(candidates)))
    eligible = [menu[0] for menu in menus if menu]
    return max(eligible, key=ctx.score) if eligible else None


def knapsack(ctx: StepContext, candidates: list[str], step: float, max_fraction: float) -> Proposal | None:
    """The cheapest combination of per-component cuts that covers every attributable unmet goal (see module)."""
    menus = ctx.round_menus(candidates, step, max_fraction, menu_levels(knapsack, len(candidates)))
    options = [p for menu in menus for p in menu]
    goals = {g: ctx.excess[g] for g in ctx.excess if g in ATTRIBUTABLE}
    if not goals:  # only non-attributable goals (arena, board fit): the single best-scoring cut
        return max(options, key=ctx.score, default=None)
    chosen = cheapest_cover(menus, goals, cost=ctx.cuts.drop, gains=ctx.gains, max_cost=ctx.cuts.max_drop)
    if chosen is None:
        return None
    if len(chosen) == 1:
        return chosen[0]
    budgets = {**ctx.cuts.budgets, **{p.changed[0]: p.budgets[p.changed[0]] for p in chosen}}
    changed = tuple(p.changed[0] for p in chosen)
    ctx.say(f"evaluating {', '.join(f'{c} {budgets[c]:.0%}' for c in changed)}")
    return ctx.cuts.propose(budgets, changed)


def menu_levels(strategy: Strategy, n_candidates: int) -> int | None:
    """How many cuts per component ``strategy`` evaluates in a round of ``n_candidates`` (known ahead, so the
    next round's menus can be evaluated while the target measures); None for a strategy that does not say."""
    if strategy is greedy:
        return 1
    if strategy is knapsack:
        return max_levels(n_candidates, KNAPSACK_LEVELS)
    return None


Strategy = Callable[[StepContext, list[str], float, float], "Proposal | None"]
STRATEGIES: dict[str, Strategy] = {"greedy": greedy, "knapsack": knapsack}


def strategy(name: str) -> Strategy:
    """The strategy called ``name`` (``greedy`` or ``knapsack``)."""
    if name not in STRATEGIES:
        raise EdgepruneError(f"unknown strategy {name!r}", expected=f"one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]
