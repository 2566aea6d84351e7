"""Sensitivity of each component (and of the interfaces) to pruning, and a model-wide target split by it.

```python
report = sensitivity(model, calibration_inputs)           # data-free proxy: output fidelity on these inputs
report = sensitivity(model, inputs, metric=my_eval)        # or your metric, higher is better
report.plot("sensitivity.png"); print(report.suggest_protect())
result = prune(model, inputs, Budget(total=0.6, allocate="sensitivity"), sensitivity=report)
```

Each component is cut alone at a few fractions of its parameters (the interfaces, all together, at a few
fractions of their channels) and the metric drop is recorded. :func:`split_target` then picks one measured
cut per component so the parameters removed cover the model-wide target at the least summed drop — the
multiple-choice knapsack of :mod:`edgeprune.prune.knapsack` (the loop's ``knapsack`` strategy uses it too),
with the drops measured here as prices — and scales the chosen fractions down until the whole model lands on the target.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.io import write_atomic
from edgeprune.prune.budget import Budget
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.errors import PruneError
from edgeprune.prune.importance import ImportanceSpec
from edgeprune.prune.knapsack import cheapest_cover
from edgeprune.prune.pruner import prune_to_budget
from edgeprune.prune.tracing import ExampleInputs, as_tuple, eval_mode, flatten_tensors

CUTS = (0.2, 0.4, 0.6, 0.8, 0.9)
INTERFACES = "interfaces"  # the item name of the interface measurement
PROTECT_RATIO = 5.0  # suggest protecting an item whose drop per parameter is this many times the median
FIDELITY = "output fidelity (-NMSE)"

Metric = Callable[[nn.Module], float]


@dataclass
class Cut:
    """One measurement: ``fraction`` of the item cut, ``removed`` parameters gone, metric ``drop`` (>= 0 is worse)."""

    fraction: float
    removed: int
    drop: float


@dataclass
class Item:
    """A component, or the interfaces (``kind="interface"``, fractions of channels), and its measured cuts."""

    name: str
    kind: str
    params: int
    cuts: list[Cut] = field(default_factory=list)

    @property
    def cost_per_param(self) -> float:
        """Drop per parameter removed at the smallest cut that removed any (inf when none did)."""
        first = next((c for c in self.cuts if c.removed), None)
        return first.drop / first.removed if first else float("inf")


@dataclass
class SensitivityReport:
    """Per-item drops at each cut, the metric they were measured on, and the model's size."""

    metric: str
    base: float
    params: int
    items: list[Item]

    def item(self, name: str) -> Item:
        return next(i for i in self.items if i.name == name)

    def suggest_protect(self) -> list[str]:
        """Items whose first cut costs ``PROTECT_RATIO``× the median drop per parameter (or more)."""
        costs = [i.cost_per_param for i in self.items if i.cost_per_param != float("inf")]
        if len(costs) < 2:
            return []
        median = statistics.median(costs)
        return [i.name for i in self.items if i.cost_per_param != float("inf") and i.cost_per_param > PROTECT_RATIO
                * max(median, 1e-12)]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "suggest_protect": self.suggest_protect()}

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def __str__(self) -> str:
        fractions = sorted({c.fraction for i in self.items for c in i.cuts})
        lines = [f"sensitivity on {self.metric} (base {self.base:.4g}); drop at each cut:"]
        lines.append(f"{'item':<14}{'params':>9} " + " ".join(f"{f:>9.0%}" for f in fractions))
        for i in self.items:
            by = {c.fraction: c.drop for c in i.cuts}
            cells = " ".join(f"{by[f]:>9.3g}" if f in by else f"{'':>9}" for f in fractions)
            lines.append(f"{i.name:<14}{i.params:>9,} {cells}")
        lines.append(f"suggest protecting: {', '.join(self.suggest_protect()) or 'nothing'}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """Drop vs share of the model's parameters removed, one line per item (interfaces dashed)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        protect = set(self.suggest_protect())
        for i in self.items:
            x = [0.0] + [100 * c.removed / self.params for c in i.cuts]
            y = [0.0] + [c.drop for c in i.cuts]
            label = i.name + (" (suggest protect)" if i.name in protect else "")
            ax.plot(x, y, marker="o", ls="--" if i.kind == "interface" else "-", label=label)
        ax.set_xlabel("parameters of the whole model removed by this cut (%)")
        ax.set_ylabel(f"drop in {self.metric}")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("Sensitivity per component (each cut alone)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def output_fidelity(reference: nn.Module, inputs: ExampleInputs, skip: Sequence[int] = ()) -> Metric:
    """Data-free proxy metric: minus the mean normalised squared error of the outputs vs ``reference``.

    Each output's MSE is divided by its variance over the batch (so outputs of any scale weigh the same).
    Outputs at ``skip`` positions (declared state outputs, whose width may change) are left out when their
    shape changed.
    """
    args = as_tuple(inputs)
    with eval_mode(reference), torch.no_grad():
        ref = [t.detach().clone().float() for t in flatten_tensors(reference(*args))]
    scale = [((r - r.mean(0)) ** 2).mean().clamp_min(1e-12) for r in ref]

    def evaluate(model: nn.Module) -> float:
        with eval_mode(model), torch.no_grad():
            out = flatten_tensors(model(*args))
        errors = []
        for i, (o, r, s) in enumerate(zip(out, ref, scale, strict=True)):
            if o.shape != r.shape:
                if i in skip:
                    continue
                raise PruneError(f"output {i} changed shape {tuple(r.shape)} -> {tuple(o.shape)}")
            errors.append(float(((o.float() - r) ** 2).mean() / s))
        return -sum(errors) / max(len(errors), 1)

    return evaluate


def sensitivity(
    model: nn.Module,
    example_inputs: ExampleInputs,
    components: Components | None = None,
    metric: Metric | None = None,
    metric_name: str | None = None,
    cuts: Sequence[float] = CUTS,
    importance: ImportanceSpec = "l2",
    round_to: int = 1,
    constraints: Constraints | None = None,
    interfaces: bool = True,
) -> SensitivityReport:
    """Cut each component alone (and the interfaces together) at each of ``cuts``; record the metric drop.

    ``metric(model) -> float`` (higher is better) is your task metric; without one, the drop is measured
    on :func:`output_fidelity` over ``example_inputs`` — pass real calibration inputs (a batch), not noise.
    """
    if not cuts or any(not 0 < c < 1 for c in cuts):
        raise PruneError(f"cuts {list(cuts)!r}", expected="fractions in (0, 1), e.g. (0.2, 0.4, 0.6, 0.8)")
    args = as_tuple(example_inputs)
    components = components or Components.from_children(model)
    constraints = constraints if constraints is not None else model_constraints(model)
    evaluate = metric or output_fidelity(model, args, skip=constraints.state_outputs)
    base = float(evaluate(model))
    total = sum(p.numel() for p in model.parameters())
    per_comp = {n: sum(p.numel() for r in components.roots(n) for p in model.get_submodule(r).parameters())
                for n in components.names}  # fmt: skip

    def measure(budget: Budget) -> tuple[int, float]:
        result = prune_to_budget(model, args, budget, components, importance, constraints=constraints)
        removed = result.report.params_before - result.report.params_after
        return removed, max(0.0, base - float(evaluate(result.model)))

    items = []
    for name in components.names:
        item = Item(name, "component", per_comp[name])
        for c in sorted(cuts):
            removed, drop = measure(Budget(per_component={name: c}, round_to=round_to))
            item.cuts.append(Cut(c, removed, drop))
        items.append(item)
    if interfaces:
        item = Item(INTERFACES, "interface", 0)
        for c in sorted(cuts):
            removed, drop = measure(Budget(interfaces=True, interface_ratio=c, round_to=round_to))
            if removed:
                item.cuts.append(Cut(c, removed, drop))
        if item.cuts:
            items.append(item)
    return SensitivityReport(metric_name or (FIDELITY if metric is None else "metric"), base, total, items)


def split_target(
    model: nn.Module,
    example_inputs: ExampleInputs,
    report: SensitivityReport,
    budget: Budget,
    components: Components,
    importance: ImportanceSpec = "l2",
    constraints: Constraints | None = None,
) -> dict[str, float]:
    """Per-component fractions that remove ``budget.total`` of the model at the least predicted drop.

    The knapsack picks at most one measured cut per unprotected component (predicted drop: the sum of
    their measured drops); the chosen fractions are then scaled by one factor, found by bisection, so the
    pruned model removes the target to within a fraction of a percent.
    """
    if budget.total is None:
        raise PruneError("sensitivity allocation splits a model-wide target", expected="Budget(total=f, ...)")
    args = as_tuple(example_inputs)
    names = [i.name for i in report.items if i.kind == "component"]
    unknown = sorted(set(names) - set(components.names))
    if unknown or not names:
        raise PruneError(
            f"the sensitivity report's components {names} do not match the model's {components.names}",
            fix="measure sensitivity() with the same components you prune with",
        )
    candidates = [n for n in names if n not in budget.protect and any(c.removed for c in report.item(n).cuts)]
    target = budget.total * report.params
    chosen = _knapsack_pick(report, candidates, target)

    def removed(scale: float) -> float:
        fractions = {c: round(scale * f, 6) for c, f in chosen.items()}
        result = prune_to_budget(
            model, args, _resolved(budget, fractions), components, importance, constraints=constraints
        )
        return result.report.achieved

    lo, hi = 0.0, 1.0
    if removed(hi) > budget.total:  # the knapsack over-covers: shrink every chosen cut by one factor
        for _ in range(10):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if removed(mid) <= budget.total else (lo, mid)
        hi = hi if abs(removed(hi) - budget.total) < abs(removed(lo) - budget.total) else lo
    return {c: round(hi * f, 6) for c, f in chosen.items()}


def _resolved(budget: Budget, fractions: dict[str, float]) -> Budget:
    """The per-component budget that carries out a split (what the plan records)."""
    return Budget(per_component=fractions, protect=budget.protect, round_to=budget.round_to)


def _knapsack_pick(report: SensitivityReport, candidates: list[str], target: float) -> dict[str, float]:
    """One measured cut per candidate (or none) covering ``target`` parameters at the least summed drop."""
    menus = [[(c, cut) for cut in report.item(c).cuts if cut.removed] for c in candidates]
    chosen = cheapest_cover(
        menus, {"params": target}, cost=lambda o: o[1].drop, gains=lambda o: {"params": float(o[1].removed)}
    )
    if not chosen:
        raise PruneError("no component can be cut", fix="protect fewer components")
    return {c: cut.fraction for c, cut in chosen}
