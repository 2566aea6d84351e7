"""Turn a budget and channel scores into removed channel indices per group.

Parameters are counted exactly from the shapes each group shrinks (probed with Torch-Pruning's own
per-layer pruning functions), so fractions of parameters, not of channels, meet the budget. Within a
scope (one component, or the whole model), the lowest-scored channels go first until the scope's
parameter target is met; ``round_to`` and block constraints only ever keep more channels.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from edgeprune.prune.budget import Budget
from edgeprune.prune.groups import GroupSet, PruneGroup


@dataclass
class Allocation:
    """Removed channel indices per group (one list per root), and why any group was left alone."""

    removed: dict[int, list[list[int]]]
    skipped: dict[int, str]
    unmet: dict[str, str]  # scope -> why its target could not be reached


class ParamAccount:
    """Exact parameter count of the model after removing k_g channels from each group g."""

    def __init__(self, model: nn.Module, groups: Iterable[PruneGroup]):
        self.shape = {id(p): tuple(p.shape) for p in model.parameters()}
        self.effects: dict[int, list[tuple[int, int, float]]] = {}
        for g in groups:
            if g.frozen:
                continue
            found: dict[tuple[int, int], float] = {}
            for tg in g.tp_groups:
                for item in tg:
                    for pid, dim, step in _shrunk_dims(item.dep.target.module, item.dep.handler):
                        found[(pid, dim)] = max(found.get((pid, dim), 0.0), step * len(item.idxs) / g.channels)
            self.effects[g.id] = [(pid, dim, f) for (pid, dim), f in found.items()]

    def removed(self, k: Mapping[int, int], params: set[int] | None = None) -> float:
        """Parameters removed when group g loses k[g] channels (optionally counted over ``params`` only)."""
        shrink: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for gid, n in k.items():
            if n:
                for pid, dim, factor in self.effects.get(gid, ()):
                    shrink[pid][dim] += n * factor
        total = 0.0
        for pid, dims in shrink.items():
            if params is not None and pid not in params:
                continue
            shape = self.shape[pid]
            kept = math.prod(max(0.0, s - dims.get(d, 0.0)) for d, s in enumerate(shape))
            total += math.prod(shape) - kept
        return total


def _shrunk_dims(target: object, handler: object) -> list[tuple[int, int, int]]:
    """(parameter id, dim, size lost per channel) that ``handler`` shrinks on ``target``, found by pruning a copy.

    A channel can take several entries of a dim (a recurrent hidden unit: one row in every gate).
    """
    if not isinstance(target, (nn.Module, nn.Parameter)) or isinstance(target, tp.ops.DummyMHA):
        return []
    params = [target] if isinstance(target, nn.Parameter) else list(target.parameters(recurse=False))
    if not params:
        return []
    clone = copy.deepcopy(target)
    try:
        result = handler(clone, [0])
    except Exception:  # a layer Torch-Pruning's function cannot cut: it holds no prunable shape here
        return []
    if isinstance(target, nn.Parameter):
        after = [result if isinstance(result, torch.Tensor) else clone]
    else:
        after = list(clone.parameters(recurse=False))
    out = []
    for p, q in zip(params, after, strict=False):
        out.extend((id(p), d, a - b) for d, (a, b) in enumerate(zip(p.shape, q.shape, strict=False)) if b < a)
    return out


def allocate(model: nn.Module, groups: GroupSet, scores: Mapping[int, torch.Tensor], budget: Budget) -> Allocation:
    """Decide how many and which channels each group loses."""
    account = ParamAccount(model, groups)
    comp_params = _component_params(model, groups)
    skipped: dict[int, str] = {}
    unmet: dict[str, str] = {}
    k: dict[int, int] = {}
    candidates: list[PruneGroup] = []
    for g in groups:
        reason = _skip_reason(g, budget, groups.mode, g.id in scores)
        if reason:
            skipped[g.id] = reason
        elif groups.mode == "component" and g.kind == "interface":
            k[g.id] = _removable(g.channels, g.block, budget.round_to, round(g.channels * budget.interface_ratio))
        else:
            candidates.append(g)

    scopes: list[tuple[str, list[PruneGroup], float, set[int] | None]] = []
    model_total = sum(math.prod(account.shape[p]) for p in account.shape)
    if groups.mode == "vanilla" or budget.total is not None:
        target = budget.total if budget.total is not None else budget.default
        scopes.append(("model", candidates, target * model_total, None))
    else:
        for comp in groups.components.names:
            pids = set(comp_params[comp])
            target = budget.fraction(comp) * sum(math.prod(account.shape[p]) for p in pids)
            scopes.append((comp, [g for g in candidates if (g.owner or _only(g.components)) == comp], target, pids))
        # owners of cross-component groups (recurrent states) first: their cuts count toward the readers
        scopes.sort(key=lambda s: not any(len(g.components) > 1 for g in s[1]))

    for name, scope, target, pids in scopes:
        weights = {g.id: _weight(g, budget) for g in scope}
        fixed = dict(k)
        already = account.removed(fixed, pids)
        if target <= already or not scope:
            if target > already:
                unmet[name] = "no prunable group of its own: its channels are interfaces, frozen or protected"
            for g in scope:
                k[g.id] = 0
            continue
        chosen, reached = _threshold(scope, scores, weights, budget.round_to, account, fixed, pids, target)
        k.update(chosen)
        if not reached:
            unmet[name] = "every prunable group is already at its minimum width (round_to/blocks keep the rest)"
        elif budget.round_to > 1:
            unmet[name] = f"round_to={budget.round_to}: the nearest removal at or below the budget"

    by_id = {g.id: g for g in groups}
    removed = {gid: _indices(by_id[gid], scores, n) for gid, n in k.items() if n}
    for g in groups:
        if g.id not in removed and g.id not in skipped:
            skipped[g.id] = "nothing to cut at this budget"
    return Allocation(removed, skipped, unmet)


def _skip_reason(g: PruneGroup, budget: Budget, mode: str, scored: bool) -> str | None:
    if g.frozen:
        return g.frozen
    protected = sorted(set(g.components) & budget.protect)
    if protected:
        return f"protected: {', '.join(protected)}"
    if mode == "component" and g.kind == "interface" and not budget.interfaces:
        return "interface (interfaces=True prunes it)"
    if _removable(g.channels, g.block, budget.round_to, g.channels) == 0:
        return f"too narrow for multiples of {math.lcm(g.block, budget.round_to)}"
    if not scored:
        return "no importance (no Conv/Linear/norm member)"
    return None


def prunable(groups: GroupSet, budget: Budget) -> list[PruneGroup]:
    """The groups ``budget`` may cut: only these need (and get) importance scores."""
    return [g for g in groups if _skip_reason(g, budget, groups.mode, scored=True) is None]


def _only(components: tuple[str, ...]) -> str | None:
    return components[0] if len(components) == 1 else None


def _weight(g: PruneGroup, budget: Budget) -> float:
    ws = [budget.weights.get(c, 1.0) for c in g.components] or [1.0]
    return max(ws)


def _removable(channels: int, block: int, round_to: int, wanted: int) -> int:
    """Channels removed when ``wanted`` are asked for: keep a multiple of lcm(block, round_to), never fewer."""
    quantum = math.lcm(block, round_to)
    if channels <= quantum or wanted <= 0:
        return 0
    keep = max(quantum, math.ceil((channels - wanted) / quantum) * quantum)
    return channels - keep if keep < channels else 0


def _element_scores(g: PruneGroup, scores: Mapping[int, torch.Tensor]) -> torch.Tensor:
    return scores[g.id].view(-1, g.block).mean(1)


def _threshold(
    scope: list[PruneGroup],
    scores: Mapping[int, torch.Tensor],
    weights: Mapping[int, float],
    round_to: int,
    account: ParamAccount,
    fixed: Mapping[int, int],
    pids: set[int] | None,
    target: float,
) -> tuple[dict[int, int], bool]:
    """The threshold on weighted element scores whose removal best meets ``target`` parameters.

    Without rounding the removal closest to the target wins (either side). With ``round_to`` > 1 kept
    widths are rounded up to multiples, and the largest removal that does not exceed the target wins:
    rounding never prunes more than the budget asks for (Torch-Pruning's rounds down and does).
    """
    units = _units(scope, scores)  # [(member group ids, sorted element scores, group)]
    weighted = [(ids, s * weights[ids[0]], g) for ids, s, g in units]
    cands = torch.unique(torch.cat([s for _, s, _ in weighted])).tolist()

    def decide(t: float) -> dict[int, int]:
        out = {}
        for ids, s, g in weighted:
            n_el = int(torch.searchsorted(s, torch.tensor(t), right=True))
            out.update(dict.fromkeys(ids, _removable(g.channels, g.block, round_to, n_el * g.block)))
        return out

    def removed(t: float) -> float:
        return account.removed({**fixed, **decide(t)}, pids)

    reached = removed(cands[-1]) >= target
    lo, hi = -1, len(cands) - 1  # find the largest index whose removal stays <= target (-1: none does)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if removed(cands[mid]) <= target:
            lo = mid
        else:
            hi = mid - 1
    best = lo
    above = lo + 1
    if round_to == 1 and above < len(cands):
        below_gap = target - removed(cands[lo]) if lo >= 0 else target
        if removed(cands[above]) - target < below_gap:
            best = above
    return (decide(cands[best]) if best >= 0 else dict.fromkeys((i for ids, _, _ in weighted for i in ids), 0)), reached


def _units(scope: list[PruneGroup], scores: Mapping[int, torch.Tensor]):
    """Allocation units: a group, or all members of an ensemble (same count, position-wise mean score)."""
    by_ensemble: dict[int, list[PruneGroup]] = defaultdict(list)
    units = []
    for g in scope:
        if g.ensemble is None:
            units.append(([g.id], _element_scores(g, scores).sort().values, g))
        else:
            by_ensemble[g.ensemble].append(g)
    for members in by_ensemble.values():
        stacked = torch.stack([_element_scores(g, scores).sort().values for g in members])
        units.append(([g.id for g in members], stacked.mean(0), members[0]))
    return units


def _indices(g: PruneGroup, scores: Mapping[int, torch.Tensor], n: int) -> list[list[int]]:
    """The ``n`` lowest-scored channels (whole blocks), the same for every root of a tied group."""
    element_order = torch.argsort(_element_scores(g, scores), stable=True)[: n // g.block]
    idxs = sorted(int(e) * g.block + j for e in element_order for j in range(g.block))
    return [idxs for _ in g.roots]


def _component_params(model: nn.Module, groups: GroupSet) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {c: [] for c in groups.components.names}
    for name, p in model.named_parameters():
        comp = groups.components.owner(name)
        if comp is not None:
            out[comp].append(id(p))
    return out
