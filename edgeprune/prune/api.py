"""prune(): the pruner's entry point. A sensitivity-allocated budget is split across components first
(:mod:`edgeprune.prune.sensitivity`), then :func:`~edgeprune.prune.pruner.prune_to_budget` does the work."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from edgeprune.prune.budget import Budget
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.errors import PruneError
from edgeprune.prune.groups import Mode
from edgeprune.prune.importance import ImportanceSpec
from edgeprune.prune.pruner import PruneResult, prune_to_budget
from edgeprune.prune.sensitivity import SensitivityReport, split_target
from edgeprune.prune.sensitivity import sensitivity as measure_sensitivity
from edgeprune.prune.tracing import ExampleInputs, as_tuple


def prune(
    model: nn.Module,
    example_inputs: ExampleInputs,
    budget: Budget,
    components: Components | None = None,
    importance: ImportanceSpec = "l2",
    mode: Mode = "component",
    constraints: Constraints | None = None,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
    sensitivity: SensitivityReport | None = None,
) -> PruneResult:
    """Prune a copy of ``model`` to ``budget``; see :class:`Budget` for what the fractions mean.

    ``constraints`` default to what the model declares (``model.pruning_constraints()``).
    With ``Budget(total=f, allocate="sensitivity")`` the target is split by ``sensitivity`` (a report from
    :func:`~edgeprune.prune.sensitivity.sensitivity`; measured here on the output-fidelity proxy over
    ``example_inputs`` when not given) and the plan records the per-component fractions it chose.
    ``on_step`` is called with each step's name in :data:`~edgeprune.prune.pruner.STEPS` (for progress displays).
    """
    if budget.allocate != "sensitivity":
        return prune_to_budget(model, example_inputs, budget, components, importance, mode, constraints, seed, on_step)
    if mode != "component":
        raise PruneError("sensitivity allocation splits the target across components", expected="mode='component'")
    args = as_tuple(example_inputs)
    components = components or Components.from_children(model)
    components.check_names(budget.mentioned_components())
    constraints = constraints if constraints is not None else model_constraints(model)
    report = sensitivity or measure_sensitivity(
        model, args, components, importance=importance, round_to=budget.round_to, constraints=constraints
    )
    fractions = split_target(model, args, report, budget, components, importance, constraints)
    resolved = Budget(per_component=fractions, protect=budget.protect, round_to=budget.round_to)
    result = prune_to_budget(model, args, resolved, components, importance, mode, constraints, seed, on_step)
    result.report.target = budget.total
    return result
