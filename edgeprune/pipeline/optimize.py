"""optimize(): target measurements, attributed to components, drive per-component sparsity budgets.

From the current point, a strategy (:mod:`edgeprune.pipeline.allocation`: NetAdapt-style ``greedy``, one
component per step, or ``knapsack``, a combination of components per step) prices further cuts of every
unprotected component by the share of the unmet goals they buy (from the target's per-component attribution)
per unit of metric lost, and proposes new budgets. The model is pruned from the original with them, optionally
fine-tuned, measured on the target and evaluated. A step that costs more metric than ``max_drop`` is rejected
and the step halves; the loop ends when every goal holds, or explains which goal cannot be met and what the
closest point was.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.io import write_atomic
from edgeprune.measure.record import Measurement
from edgeprune.measure.runner import Runner, Subject
from edgeprune.pipeline import allocation
from edgeprune.pipeline.candidates import ParallelMenus
from edgeprune.pipeline.fingerprint import run_fingerprint
from edgeprune.pipeline.runlog import POINTS_NAME, Point, RunLog, point_dir
from edgeprune.prune import Budget, Components, PruneReport, prune, save_weights
from edgeprune.prune.counting import macs_per_component, params_per_component
from edgeprune.prune.importance import ImportanceSpec, importance_name

logger = logging.getLogger(__name__)
Evaluate = Callable[[nn.Module], float]
Finetune = Callable[[nn.Module], None]


@dataclass(frozen=True)
class Goals:
    """What the board needs: latency, tensor arena and flash limits, and the metric drop allowed.

    Without an explicit memory limit, the board's own fit check (flash and SRAM with reserves) is a goal.
    """

    latency_ms: float | None = None
    arena_bytes: int | None = None
    flash_bytes: int | None = None
    max_drop: float = 0.05

    def excess(self, r: Measurement) -> dict[str, float]:
        """Each unmet goal and by how much its measured value exceeds it (in the goal's unit)."""
        out: dict[str, float] = {}
        for name, limit, value in (
            ("latency_ms", self.latency_ms, r.latency_ms if self.latency_ms is not None else None),
            ("arena_bytes", self.arena_bytes, r.memory.arena_bytes),
            ("flash_bytes", self.flash_bytes, r.memory.flash_bytes),
        ):
            if limit is not None and value is not None and value > limit:
                out[name] = value - limit
        if self.arena_bytes is None and self.flash_bytes is None and r.fits is False:
            out["board fit"] = 1.0
        return out


@dataclass
class OptimizeResult:
    """Every point tried, the chosen one, and whether all goals were met (else why not)."""

    points: list[Point]
    chosen: Point
    met: bool
    explanation: str
    run_dir: Path


@dataclass(frozen=True)
class OptimizeOptions:
    """How ``optimize`` searches (everything but the model, runner, metric, goals and run directory).

    ``strategy``: :func:`~edgeprune.pipeline.allocation.greedy` (one component per step) or
    :func:`~edgeprune.pipeline.allocation.knapsack` (a combination per step), or any function of that shape;
    ``importance``: how channels are ranked (a name or an object, as :func:`edgeprune.prune.prune` takes it).
    """

    components: Components | None = None
    protect: tuple[str, ...] = ()
    round_to: int = 1
    strategy: allocation.Strategy = allocation.knapsack
    importance: ImportanceSpec = "l2"
    step: float = 0.1
    min_step: float = 0.025
    max_fraction: float = 0.9
    max_iterations: int = 20
    finetune: Finetune | None = None


def optimize(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    target: Runner,
    evaluate: Evaluate,
    goals: Goals,
    run_dir: str | Path,
    options: OptimizeOptions = OptimizeOptions(),
    *,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
    executor: Any = None,
) -> OptimizeResult:
    """Prune ``model`` component by component until ``goals`` hold on ``target``, any
    :class:`~edgeprune.measure.runner.Runner` (see the module docstring and :class:`OptimizeOptions`);
    ``resume`` continues the run in ``run_dir`` when its configuration is the same.

    ``executor`` (:mod:`edgeprune.scale.executor`, e.g. from ``ray_executor``): each round's candidate cuts
    are its tasks, and the next round's start while the target measures (unless the target times on this
    machine, :attr:`Runner.times_here`); the points are the same as without it. None: one after another here.
    """
    o = options
    protect, round_to, step, min_step = tuple(o.protect), o.round_to, o.step, o.min_step
    max_fraction, max_iterations, finetune = o.max_fraction, o.max_iterations, o.finetune
    say = progress or logger.info
    inputs = tuple(example_inputs)
    comps = o.components or Components.from_children(model)
    comps.check_names(protect, "protected component")
    names = [c for c in comps.names if c not in protect]
    config = {
        "target": target.name,
        "goals": asdict(goals),
        "protect": sorted(protect),
        "round_to": round_to,
        "strategy": getattr(o.strategy, "__name__", repr(o.strategy)),
        "importance": importance_name(o.importance),
        "step": step,
        "min_step": min_step,
        "max_fraction": max_fraction,
        "components": comps.to_dict(),
        "max_iterations": max_iterations,
        **run_fingerprint(model, inputs, evaluate, target, finetune),
    }
    log = RunLog(run_dir, config, resume)
    run = Path(run_dir)
    (run / POINTS_NAME).mkdir(exist_ok=True)  # with config.json: the run directory is recognisable from the start

    menus = ParallelMenus(executor) if executor is not None else None
    overlap = menus is not None and not target.times_here  # a round's menus may run beside the measurement

    def cuts_at(budgets: dict[str, float], params: dict[str, int], base_metric: float) -> allocation.Cuts:
        max_drop = None if finetune is not None else goals.max_drop  # else known only after fine-tuning
        return allocation.Cuts(
            model, inputs, comps, protect, round_to, evaluate, budgets, params, base_metric, max_drop, o.importance
        )

    def start_next(cuts: allocation.Cuts, step: float) -> None:
        """Start the menus of the round after the point about to be measured (they do not depend on it)."""
        todo = [c for c in names if cuts.budgets[c] + step <= max_fraction + 1e-9]
        levels = allocation.menu_levels(o.strategy, len(todo))
        if overlap and todo and levels and step >= min_step and len(log.points) < max_iterations:
            menus.start(cuts, todo, step, max_fraction, levels)

    if not log.points:
        say("baseline: evaluating the metric")
        zero, metric = dict.fromkeys(comps.names, 0.0), float(evaluate(model))
        if overlap:  # the first round's menus beside the baseline's measurement
            zero_params = _component_costs(model, inputs, comps, zero, protect, round_to, o.importance)[1]
            start_next(cuts_at(zero, zero_params, metric), step)
        say("baseline: measuring on the target")
        result = target.measure(Subject("baseline", model, inputs, point_dir(run, 0)))
        log.append(Point(0, zero, result, metric, True, step, None, "baseline"))
    base_metric = log.points[0].metric
    current = next(p for p in reversed(log.points) if p.accepted)
    macs, params = _component_costs(model, inputs, comps, current.budgets, protect, round_to, o.importance)
    last = log.points[-1]
    step = last.step if last.accepted else last.step / 2

    explanation = ""
    try:
        while True:
            excess = goals.excess(current.result)
            if not excess:
                explanation = "every goal holds"
                break
            if len(log.points) > max_iterations:
                explanation = f"stopped after {max_iterations} iterations with {_describe(excess)} still unmet"
                break
            if step < min_step:
                explanation = (
                    f"the smallest step ({min_step:.3f}) costs more than max_drop={goals.max_drop} of the metric; "
                    f"{_describe(excess)} cannot be met within that drop"
                )
                break
            candidates = [c for c in names if current.budgets[c] + step <= max_fraction + 1e-9]
            if not candidates:
                explanation = f"every component is at max_fraction={max_fraction}; {_describe(excess)} still unmet"
                break
            iteration = len(log.points)
            where = f"iteration {iteration} (step {step:.3f})"
            ctx = allocation.StepContext(
                cuts_at(current.budgets, params, base_metric),
                current.result,
                macs,
                excess,
                lambda m, w=where: say(f"{w}: {m}"),
                menus or allocation.serial_menus,
            )
            proposal = o.strategy(ctx, candidates, step, max_fraction)
            if proposal is None:  # every cut costs more than max_drop (known before fine-tuning)
                step /= 2
                continue
            pruned, metric = proposal.model, proposal.metric
            if finetune is not None:
                pruned = copy.deepcopy(pruned)
                ctx.say("fine-tuning")
                finetune(pruned)
                metric = float(evaluate(pruned))
            accepted = base_metric - metric <= goals.max_drop
            if accepted:
                next_budgets, next_step = proposal.budgets, step
                macs, params = _report_costs(proposal.report)
            else:
                next_budgets, next_step = current.budgets, step / 2
            start_next(cuts_at(next_budgets, params, base_metric), next_step)
            folder = point_dir(run, iteration)
            changed = ", ".join(f"{c} {proposal.budgets[c]:.0%}" for c in proposal.changed)
            ctx.say(f"{changed}: measuring on the target")
            result = target.measure(Subject(f"point-{iteration:03d}", pruned, inputs, folder))
            why = "" if accepted else f"metric drop {base_metric - metric:.4g} > max_drop {goals.max_drop}"
            point = Point(iteration, proposal.budgets, result, metric, accepted, step, ",".join(proposal.changed), why)
            if accepted:
                proposal.plan.save(folder / "plan.json")
                save_weights(pruned, folder / "pruned.pt")
                write_atomic(folder / "report.json", proposal.report.to_json())
                current = point
            step = next_step
            log.append(point)
    finally:
        if menus is not None:
            menus.cancel()
    met = not goals.excess(current.result)
    return OptimizeResult(log.points, current, met, explanation, run)


def _component_costs(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    comps: Components,
    budgets: dict[str, float],
    protect: Sequence[str],
    round_to: int,
    importance: ImportanceSpec,
) -> tuple[dict[str, int], dict[str, int]]:
    """MACs and parameters per component of the model pruned to ``budgets``."""
    if any(budgets.values()):
        budget = Budget(per_component=budgets, protect=frozenset(protect), round_to=round_to)
        return _report_costs(prune(model, inputs, budget, components=comps, importance=importance).report)
    return macs_per_component(model, inputs, comps), params_per_component(model, comps)


def _report_costs(report: PruneReport) -> tuple[dict[str, int], dict[str, int]]:
    """MACs and parameters per component of a pruned model, as its report counted them."""
    rows = report.components
    return {r.name: r.macs_after for r in rows}, {r.name: r.params_after for r in rows}


def _describe(excess: dict[str, float]) -> str:
    return ", ".join(f"{name} (over by {value:,.4g})" for name, value in excess.items())
