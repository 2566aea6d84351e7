"""``sensitivity()``: cut each component alone (and the interfaces together) at a few fractions, record the drop."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from edgeprune.prune.budget import Budget
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.errors import PruneError
from edgeprune.prune.fidelity import Metric, output_fidelity
from edgeprune.prune.importance import ImportanceSpec
from edgeprune.prune.pruner import prune
from edgeprune.prune.sensitivity import Cut, Item, SensitivityReport
from edgeprune.prune.tracing import ExampleInputs, as_tuple

CUTS = (0.2, 0.4, 0.6, 0.8, 0.9)
INTERFACES = "interfaces"  # the item name of the interface measurement
FIDELITY = "output fidelity (-NMSE)"


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
        result = prune(model, args, budget, components, importance, constraints=constraints)
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
