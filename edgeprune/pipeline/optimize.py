"""optimize(): target measurements, attributed to components, drive per-component sparsity budgets.

NetAdapt-style greedy, per component: at each step every unprotected component is tried with its budget
raised by ``step``; the one whose cut buys the most of the violated resources per unit of metric lost is
taken, the model is pruned from the original with the new budgets, optionally fine-tuned, measured on the
target and evaluated. A step that costs more metric than ``max_drop`` is rejected and the step halves;
the loop ends when every goal holds, or explains which goal cannot be met and what the closest point was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from edgeprune.errors import EdgepruneError
from edgeprune.pipeline.runlog import Point, RunLog
from edgeprune.pipeline.targets import Target, TargetResult
from edgeprune.prune import Budget, Components, PruneResult, prune, save_weights
from edgeprune.prune.counting import macs_per_component, params_per_component

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

    def excess(self, r: TargetResult) -> dict[str, float]:
        """Each unmet goal and by how much its measured value exceeds it (in the goal's unit)."""
        out: dict[str, float] = {}
        for name, limit, value in (
            ("latency_ms", self.latency_ms, r.latency_ms),
            ("arena_bytes", self.arena_bytes, r.arena_bytes),
            ("flash_bytes", self.flash_bytes, r.flash_bytes),
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


def optimize(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    target: Target,
    evaluate: Evaluate,
    goals: Goals,
    run_dir: str | Path,
    *,
    components: Components | None = None,
    protect: Sequence[str] = (),
    round_to: int = 1,
    step: float = 0.1,
    min_step: float = 0.025,
    max_fraction: float = 0.9,
    max_iterations: int = 20,
    finetune: Finetune | None = None,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
) -> OptimizeResult:
    """Prune ``model`` component by component until ``goals`` hold on ``target`` (see the module docstring)."""
    say = progress or (lambda _m: None)
    inputs = tuple(example_inputs)
    comps = components or Components.from_children(model)
    comps.check_names(protect, "protected component")
    names = [c for c in comps.names if c not in protect]
    config = {
        "target": target.name,
        "goals": asdict(goals),
        "protect": sorted(protect),
        "round_to": round_to,
        "step": step,
        "min_step": min_step,
        "max_fraction": max_fraction,
        "components": comps.to_dict(),
    }
    log = RunLog(run_dir, config, resume)
    run = Path(run_dir)

    if not log.points:
        say("baseline: measuring on the target")
        result = target.measure(model, inputs, run / "points" / "000")
        log.append(
            Point(0, dict.fromkeys(comps.names, 0.0), result, float(evaluate(model)), True, step, None, "baseline")
        )
    base_metric = log.points[0].metric
    current = next(p for p in reversed(log.points) if p.accepted)
    costs = _component_costs(model, inputs, comps, current.budgets, protect, round_to)  # MACs, params of current
    last = log.points[-1]
    step = last.step if last.accepted else last.step / 2

    explanation = ""
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
        say(f"iteration {len(log.points)}: trying {len(candidates)} components at step {step:.3f}")
        ranked = _rank_steps(
            model, inputs, comps, current, costs, candidates, step, excess, base_metric, evaluate, protect, round_to
        )
        # without fine-tuning the metric after this step is already known: skip cuts that cost too much
        eligible = [r for r in ranked if finetune is not None or r[3] <= goals.max_drop]
        if not eligible:
            step /= 2
            continue
        component, budgets, trial, _ = eligible[0]
        pruned = trial.model
        if finetune is not None:
            pruned = copy.deepcopy(pruned)
            finetune(pruned)
        folder = run / "points" / f"{len(log.points):03d}"
        say(f"iteration {len(log.points)}: {component} -> {budgets[component]:.0%}, measuring on the target")
        result = target.measure(pruned, inputs, folder)
        metric = float(evaluate(pruned))
        accepted = base_metric - metric <= goals.max_drop
        why = "" if accepted else f"metric drop {base_metric - metric:.4g} > max_drop {goals.max_drop}"
        point = Point(len(log.points), budgets, result, metric, accepted, step, component, why)
        if accepted:
            trial.plan.save(folder / "plan.json")
            save_weights(pruned, folder / "pruned.pt")
            current = point
            costs = _report_costs(trial)
        else:
            step /= 2
        log.append(point)

    met = not goals.excess(current.result)
    return OptimizeResult(log.points, current, met, explanation, run)


def _rank_steps(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    comps: Components,
    current: Point,
    costs: tuple[dict[str, int], dict[str, int]],
    candidates: list[str],
    step: float,
    excess: dict[str, float],
    base_metric: float,
    evaluate: Evaluate,
    protect: Sequence[str],
    round_to: int,
) -> list[tuple[str, dict[str, float], PruneResult, float]]:
    """Candidate steps ``(component, budgets, pruned, metric drop)``, best first: the most of the unmet
    goals bought per unit of metric lost."""
    current_macs, current_params = costs
    scored = []
    for c in candidates:
        budgets = {**current.budgets, c: round(current.budgets[c] + step, 6)}
        trial = _prune(model, inputs, comps, budgets, protect, round_to)
        row = trial.report.component(c)
        mac_cut = 1 - row.macs_after / current_macs[c] if current_macs.get(c) else 0.0
        gains = {
            # latency: the component's measured (or estimated) share, scaled by the MACs this cut removes
            "latency_ms": current.result.components_ms.get(c, 0.0) * mac_cut,
            # flash: int8 weights, one byte per parameter removed
            "flash_bytes": float(current_params.get(c, 0) - row.params_after),
        }
        gains["arena_bytes"] = gains["board fit"] = mac_cut  # not attributable per component: MACs as proxy
        gain = sum(gains[name] / excess[name] for name in excess)
        drop = max(0.0, base_metric - float(evaluate(trial.model)))
        scored.append((gain / (drop + 1e-6 * (abs(base_metric) + 1.0)), c, budgets, trial, drop))
    scored.sort(key=lambda t: -t[0])
    return [(c, budgets, trial, drop) for _, c, budgets, trial, drop in scored]


def _prune(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    comps: Components,
    budgets: dict[str, float],
    protect: Sequence[str],
    round_to: int,
) -> PruneResult:
    return prune(
        model,
        inputs,
        Budget(per_component=budgets, protect=frozenset(protect), round_to=round_to),
        components=comps,
    )


def _component_costs(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    comps: Components,
    budgets: dict[str, float],
    protect: Sequence[str],
    round_to: int,
) -> tuple[dict[str, int], dict[str, int]]:
    """MACs and parameters per component of the model pruned to ``budgets``."""
    pruned = _prune(model, inputs, comps, budgets, protect, round_to).model if any(budgets.values()) else model
    return macs_per_component(pruned, inputs, comps), params_per_component(pruned, comps)


def _report_costs(result: PruneResult) -> tuple[dict[str, int], dict[str, int]]:
    """MACs and parameters per component of a pruned model, as its report counted them."""
    rows = result.report.components
    return {r.name: r.macs_after for r in rows}, {r.name: r.params_after for r in rows}


def _describe(excess: dict[str, float]) -> str:
    return ", ".join(f"{name} (over by {value:,.4g})" for name, value in excess.items())


def fidelity_metric(reference: nn.Module, inputs: Sequence[torch.Tensor]) -> Evaluate:
    """A stand-in metric when no task metric is at hand: minus the mean squared output error vs ``reference``.

    It measures how much pruning changes the outputs, not task quality: prefer your own ``evaluate``.
    """
    from edgeprune.prune.tracing import flatten_tensors

    with torch.no_grad():
        ref = [t.clone() for t in flatten_tensors(reference.eval()(*inputs))]

    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            out = flatten_tensors(model.eval()(*inputs))
        if len(out) != len(ref):
            raise EdgepruneError("the pruned model returns a different number of outputs")
        return -float(sum(torch.mean((o - r) ** 2) for o, r in zip(out, ref, strict=True)))

    return evaluate
