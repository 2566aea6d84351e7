"""prune(): groups → importance → allocation → plan → a dense, smaller copy of the model, verified."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from edgeprune.prune.allocate import Allocation, allocate, prunable
from edgeprune.prune.budget import Budget
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.counting import macs_per_component, params_per_component
from edgeprune.prune.errors import PruneError
from edgeprune.prune.groups import GroupSet, Mode, build_groups, unsupported_layers
from edgeprune.prune.importance import ImportanceSpec, importance_name, score_groups
from edgeprune.prune.plan import PlannedGroup, PrunePlan, architecture_hash
from edgeprune.prune.report import TOLERANCE, ComponentReport, GroupReport, PruneReport
from edgeprune.prune.sensitivity import SensitivityReport, split_target
from edgeprune.prune.tracing import ExampleInputs, as_tuple, eval_mode, flatten_tensors, run_forward

STEPS = ("trace and group", "score", "allocate", "apply", "verify")


@dataclass
class PruneResult:
    """The pruned model (a new module; the input is untouched), its plan, report and the groups used."""

    model: nn.Module
    plan: PrunePlan
    report: PruneReport
    groups: GroupSet


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
    :func:`~edgeprune.prune.probe.sensitivity`) and the plan records the per-component fractions it chose.
    ``on_step`` is called with each step's name in :data:`STEPS` (for progress displays).
    """
    step = on_step or (lambda _name: None)
    args = as_tuple(example_inputs)
    components = components or Components.from_children(model)
    components.check_names(budget.mentioned_components())
    if mode == "vanilla" and budget.per_component:
        raise PruneError(
            "vanilla mode has no per-component budgets (its groups span components)",
            expected="Budget(default=...) or Budget(total=...) in vanilla mode",
            fix="use mode='component' for per-component fractions",
        )
    if mode == "component" and budget.total is None and budget.weights:
        raise PruneError(
            "importance weights only act when channels are ranked across components",
            expected="Budget(total=..., weights=...) or mode='vanilla'",
            fix="drop weights, or give a model-wide total instead of per-component fractions",
        )
    constraints = constraints if constraints is not None else model_constraints(model)
    total = budget.total
    predictor: SensitivityReport | None = None  # the report that split the target, when one did
    if budget.allocate == "sensitivity":
        if mode != "component":
            raise PruneError("sensitivity allocation splits the target across components", expected="mode='component'")
        if sensitivity is None:
            raise PruneError(
                "allocate='sensitivity' needs the measured sensitivities",
                expected="prune(..., sensitivity=sensitivity(model, calibration_inputs))",
            )

        def achieved(fractions: dict[str, float]) -> float:
            split = Budget(per_component=fractions, protect=budget.protect, round_to=budget.round_to)
            return prune(model, args, split, components, importance, mode, constraints, seed).report.achieved

        fractions = split_target(sensitivity, budget, components, achieved)
        predictor = sensitivity
        budget = Budget(per_component=fractions, protect=budget.protect, round_to=budget.round_to)
    with eval_mode(model), torch.no_grad():
        reference = [tuple(t.shape) for t in flatten_tensors(run_forward(model, args))]

    step(STEPS[0])
    work = copy.deepcopy(model)
    groups = build_groups(work, args, components, mode=mode, constraints=constraints)
    step(STEPS[1])
    scores = score_groups(work, prunable(groups, budget), importance, seed=seed)
    step(STEPS[2])
    allocation = allocate(work, groups, scores, budget)
    plan = PrunePlan(
        arch_hash=architecture_hash(model),
        mode=mode,
        components=components.to_dict(),
        budget=budget.to_dict(),
        importance=importance_name(importance),
        groups=[
            PlannedGroup(g.id, g.kind, list(g.components), list(g.roots), list(g.graphs), allocation.removed[g.id])
            for g in groups
            if g.id in allocation.removed
        ],
    )
    step(STEPS[3])
    pruned = plan.apply(copy.deepcopy(model), args)
    step(STEPS[4])
    _verify(model, pruned, args, reference, components, budget, set(constraints.state_outputs))
    report = _report(model, pruned, args, components, groups, allocation, budget, plan)
    if total is not None:
        report.target = total
    if predictor is not None:
        split = {c: report.component(c).achieved for c in budget.per_component}
        report.predicted_drop = predictor.predicted_drop(split)
        report.predicted_metric = predictor.metric
    return PruneResult(pruned, plan, report, groups)


def _verify(
    original: nn.Module,
    pruned: nn.Module,
    args: tuple,
    reference: list[tuple[int, ...]],
    components: Components,
    budget: Budget,
    state_outputs: set[int],
) -> None:
    try:
        with eval_mode(pruned), torch.no_grad():
            outputs = [tuple(t.shape) for t in flatten_tensors(pruned(*args))]
    except Exception as exc:
        suspects = unsupported_layers(pruned)
        raise PruneError(
            f"the pruned model no longer runs: {type(exc).__name__}: {exc}",
            expected="layers Torch-Pruning knows how to cut"
            + (f"; these have parameters it has no pruner for: {suspects}" if suspects else ""),
            fix="protect the component holding such a layer (Budget(protect={...})); if a reshape/view broke, "
            "declare its block size (Constraints(blocks={layer: size}))",
        ) from exc
    external = [i for i in range(len(reference)) if i not in state_outputs]
    if len(outputs) != len(reference) or any(outputs[i] != reference[i] for i in external):
        raise PruneError(f"pruning changed the output shapes {reference} -> {outputs}; please report this model")
    before = original.state_dict()
    for name, tensor in pruned.state_dict().items():
        if components.owner(name) in budget.protect and not torch.equal(tensor, before[name]):
            raise PruneError(f"protected parameter {name} changed; please report this model")


def _report(
    model: nn.Module,
    pruned: nn.Module,
    args: tuple,
    components: Components,
    groups: GroupSet,
    allocation: Allocation,
    budget: Budget,
    plan: PrunePlan,
) -> PruneReport:
    params_before = params_per_component(model, components)
    params_after = params_per_component(pruned, components)
    macs_before = macs_per_component(model, args, components)
    macs_after = macs_per_component(pruned, args, components)
    model_wide = groups.mode == "vanilla" or budget.total is not None
    channels_cut = dict.fromkeys(components.names, 0)
    for g in plan.groups:
        for root, idxs in zip(g.roots, g.removed, strict=True):
            channels_cut[components.owner(root)] += len(idxs)
    rows = []
    for name in components.names:
        before, after = params_before.get(name, 0), params_after.get(name, 0)
        achieved = 1 - after / before if before else 0.0
        requested = None if model_wide else budget.fraction(name)
        note = None
        if groups.graph.components[name].calls == 0:
            note = "not called in forward"
        elif name in budget.protect:
            note = "protected"
        elif requested is not None and abs(achieved - requested) > TOLERANCE:
            note = allocation.unmet.get(name) or "channel steps too coarse to land closer"
        rows.append(
            ComponentReport(
                name,
                requested,
                round(achieved, 4),
                before,
                after,
                macs_before.get(name, 0),
                macs_after.get(name, 0),
                channels_cut[name],
                name in budget.protect,
                note,
            )
        )
    group_rows = [
        GroupReport(
            g.id,
            g.kind,
            list(g.components),
            list(g.roots),
            g.channels,
            len(allocation.removed[g.id][0]) if g.id in allocation.removed else 0,
            allocation.skipped.get(g.id),
        )
        for g in groups
    ]
    target = (budget.total if budget.total is not None else budget.default) if model_wide else None
    return PruneReport(groups.mode, plan.importance, budget.to_dict(), target, rows, group_rows, plan.digest)
