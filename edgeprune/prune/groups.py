"""Pruning groups in two modes: plain whole-model DepGraph groups, or component-aware groups (paper §4.6).

``component`` mode builds one Torch-Pruning ``DependencyGraph`` per component root, traced on the inputs
that root received in the whole-model forward, with the layers that produce the component's outputs
frozen: its groups stay inside the component (``intra``). Channels that cross a component boundary come
from the whole-model graph as isolated ``interface`` groups. ``vanilla`` mode is the whole-model graph
alone, kept for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch_pruning as tp
from rich.table import Table
from torch import nn

from edgeprune.prune import recurrent
from edgeprune.prune.component_graph import ComponentGraph, trace_components
from edgeprune.prune.components import Components
from edgeprune.prune.constraints import Constraints, model_constraints
from edgeprune.prune.errors import PruneError
from edgeprune.prune.tracing import ExampleInputs, as_tuple, output_layers, tracing_mode

Mode = Literal["component", "vanilla"]
MODES = ("component", "vanilla")
ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear, *recurrent.RECURRENT_TYPES)
MODEL_GRAPH = "<model>"  # graph key of the whole-model dependency graph


@dataclass(frozen=True)
class Member:
    """One coupled operation of a group: a layer's output (``out``) or input (``in``) channels, or an op."""

    target: str  # module or parameter path; ``op:<name>`` for parameter-free ops (cat, add, reshape ...)
    side: Literal["out", "in", "op"]
    count: int  # indices touched when the whole group is pruned


@dataclass(frozen=True)
class Piece:
    """The part of a group inside one component; pieces of one group (same ``group``) are cut together."""

    group: int
    component: str
    members: tuple[Member, ...]

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass
class PruneGroup:
    """A set of coupled channels that can only be removed together.

    ``roots`` are the layers whose output channels index the group (several when a declared tie merged
    groups); ``graphs`` name the dependency graph each root belongs to (a component root path, or
    ``<model>``). ``frozen`` says why a group must not be pruned (None when it may be).
    """

    id: int
    kind: Literal["intra", "interface"]
    components: tuple[str, ...]
    roots: tuple[str, ...]
    graphs: tuple[str, ...]
    channels: int
    members: tuple[Member, ...]
    block: int = 1
    ensemble: int | None = None
    frozen: str | None = None
    owner: str | None = None  # component whose budget pays for a cross-component group (a recurrent state)
    tp_groups: list[tp.Group] = field(default_factory=list, repr=False, compare=False)

    @property
    def size(self) -> int:
        """Number of coupled operations (the paper's group size)."""
        return len(self.members)

    def pieces(self, components: Components) -> list[Piece]:
        """The group split at component boundaries (paper §4.6): one piece per component it touches.

        The pieces stay coupled (they are cut with the same indices); parameter-free ops (cat, add,
        reshape) belong to no component and are in no piece. A group inside one component is one piece.
        """
        by_comp: dict[str, list[Member]] = {}
        for m in self.members:
            owner = components.owner(m.target) if m.side != "op" else None
            if owner is not None:
                by_comp.setdefault(owner, []).append(m)
        if len(by_comp) <= 1:
            return [Piece(self.id, self.components[0] if self.components else "", self.members)]
        return [Piece(self.id, c, tuple(ms)) for c, ms in sorted(by_comp.items())]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "components": list(self.components),
            "roots": list(self.roots),
            "channels": self.channels,
            "size": self.size,
            "block": self.block,
            "ensemble": self.ensemble,
            "frozen": self.frozen,
            "members": [f"{m.target}:{m.side}" for m in self.members],
        }


@dataclass
class GroupSet:
    """All groups of a model in one mode, with the component graph they were built from."""

    mode: Mode
    components: Components
    graph: ComponentGraph
    groups: list[PruneGroup]

    def __iter__(self):
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, i: int) -> PruneGroup:
        return self.groups[i]

    def summary(self) -> dict[str, Any]:
        """Counts the paper's Table 1 reports: groups, average group size, cross-component groups."""
        sizes = [g.size for g in self.groups]
        pieces = [p.size for g in self.groups for p in g.pieces(self.components)]
        # what the pruner cuts by default: in component mode the intra groups (interfaces need a ratio)
        prunable = [g.size for g in self.groups if not g.frozen and (self.mode == "vanilla" or g.kind == "intra")]
        return {
            "mode": self.mode,
            "components": len(self.components.names),
            "groups": len(self.groups),
            "avg_group_size": round(sum(sizes) / len(sizes), 2) if sizes else 0.0,
            "max_group_size": max(sizes, default=0),
            "cross_component_groups": sum(1 for g in self.groups if len(g.components) > 1),
            "pieces": len(pieces),
            "avg_piece_size": round(sum(pieces) / len(pieces), 2) if pieces else 0.0,
            "interface_groups": sum(1 for g in self.groups if g.kind == "interface"),
            "frozen_groups": sum(1 for g in self.groups if g.frozen),
            "prunable_groups": len(prunable),
            "avg_prunable_size": round(sum(prunable) / len(prunable), 2) if prunable else 0.0,
            "max_prunable_size": max(prunable, default=0),
        }

    def table(self) -> Table:
        """Every group as a rich table (what ``edgeprune groups`` prints).

        In component mode a cross-component group is shown as its per-component pieces (ids ``3a``,
        ``3b`` … are cut together); in vanilla mode as one row.
        """
        table = Table(title=f"Pruning groups ({self.mode} mode)")
        for col in ("id", "kind", "components", "roots", "channels", "size", "block", "frozen"):
            table.add_column(col)
        for g in self.groups:
            pieces = g.pieces(self.components) if self.mode == "component" else []
            if len(pieces) > 1:
                for letter, p in zip("abcdefghijklmnopqrstuvwxyz", pieces, strict=False):
                    roots = [r for r in g.roots if self.components.owner(r) == p.component]
                    table.add_row(f"{g.id}{letter}", f"{g.kind} piece", p.component, ",".join(roots) or "-",
                                  str(g.channels), str(p.size), str(g.block), g.frozen or "")  # fmt: skip
                continue
            table.add_row(str(g.id), g.kind, ",".join(g.components), ",".join(g.roots), str(g.channels),
                          str(g.size), str(g.block), g.frozen or "")  # fmt: skip
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "components": self.components.to_dict(),
            "graph": self.graph.to_dict(),
            "groups": [
                {**g.to_dict(), "pieces": [{"component": p.component, "size": p.size,
                 "members": [f"{m.target}:{m.side}" for m in p.members]} for p in g.pieces(self.components)]}
                for g in self.groups
            ],
        }  # fmt: skip


def build_groups(
    model: nn.Module,
    example_inputs: ExampleInputs,
    components: Components | None = None,
    mode: Mode = "component",
    constraints: Constraints | None = None,
) -> GroupSet:
    """Trace ``model`` once and return its pruning groups in ``mode``; the model is not modified.

    ``constraints`` default to what the model declares (``model.pruning_constraints()``), as in ``prune()``.
    """
    if mode not in MODES:
        raise PruneError(f"unknown mode {mode!r}", expected=f"one of {', '.join(MODES)}")
    components = components or Components.from_children(model)
    constraints = constraints if constraints is not None else model_constraints(model)
    args = as_tuple(example_inputs)
    names = {id(m): n for n, m in model.named_modules()}
    names.update({id(p): n for n, p in model.named_parameters()})
    names.update({id(recurrent.input_side(m)): n for n, m in model.named_modules() if recurrent.is_recurrent(m)})
    _check_constraint_paths(model, constraints)

    graph, calls = trace_components(model, args, components)
    model_dg, free, input_coupled, stubs = _stubbed_groups(model, args, {})
    names.update({id(stub): f"input:{i}" for i, stub in enumerate(stubs)})
    model_outputs = {names[id(m)] for m in output_layers(model, args, skip=set(constraints.state_outputs))}
    model_groups = [_describe(g, model_dg, names, components, MODEL_GRAPH) for g in free]
    input_groups = [_describe(g, model_dg, names, components, MODEL_GRAPH) for g in input_coupled]
    for g in input_groups:
        g.kind, g.frozen = "interface", "model input"

    groups: list[PruneGroup] = []
    if mode == "vanilla":
        for g in model_groups:
            g.kind = "intra" if len(g.components) <= 1 else "interface"
            groups.append(g)
    else:
        boundary: set[str] = set(model_outputs)
        named = dict(model.named_modules())
        rnn_paths = {n for n, m in named.items() if recurrent.is_recurrent(m)}
        for comp in components.names:
            for root in components.roots(comp):
                call = calls.get(root)
                if call is None:
                    continue  # never called in forward: no groups (reported by the pruner)
                module = named[root]
                comp_outputs = {names[id(m)] for m in output_layers(module, call.args, call.kwargs)}
                boundary |= comp_outputs
                dg, free, _, _ = _stubbed_groups(module, call.args, call.kwargs)
                for tg in free:
                    g = _describe(tg, dg, names, components, root)
                    if not any(m.side == "out" and m.target in comp_outputs for m in g.members):
                        g.kind = "intra"
                        groups.append(g)
        for g in model_groups:
            crosses = len(g.components) > 1 or any(m.side == "out" and m.target in boundary for m in g.members)
            if crosses:
                g.kind = "interface"
                state = recurrent.owned_state([(m.target, m.side) for m in g.members], rnn_paths)
                if state is not None:  # a recurrent state is its layer's own dimension; readers lose inputs
                    g.kind, g.owner = "intra", components.owner(state)
                groups.append(g)
    groups.extend(input_groups)
    for g in groups:
        if g.frozen:
            continue
        if any(m.side == "out" and m.target in model_outputs for m in g.members):
            g.frozen = "model output"
        elif not g.components:
            g.frozen = "outside every component"
    groups = _apply_constraints(groups, constraints)
    for i, g in enumerate(groups):
        g.id = i
    return GroupSet(mode, components, graph, groups)


def dependency_graph(module: nn.Module, args: tuple, kwargs: dict) -> tp.DependencyGraph:
    """A Torch-Pruning dependency graph of ``module`` called with ``args``/``kwargs`` (flags restored after)."""
    with tracing_mode(module), recurrent.traceable(module) as (traced, pruners):
        try:
            return tp.DependencyGraph().build_dependency(
                traced,
                example_inputs=(args, kwargs),
                forward_fn=lambda m, inputs: m(*inputs[0], **inputs[1]),
                verbose=False,
                customized_pruners=pruners,
            )
        except Exception as exc:
            raise PruneError(
                f"Torch-Pruning could not trace {type(module).__name__}: {type(exc).__name__}: {exc}",
                fix="protect the component holding the layer it cannot handle (Budget(protect={...}))",
            ) from exc


class _InputStubs(nn.Module):
    """``module`` behind one identity layer per tensor input.

    Channels coupled to an input (through a depthwise conv, a norm or a residual add) then show up in
    the dependency graph as the stub's output channels: groups holding a stub are input interfaces,
    which neither a component nor the model may change.
    """

    def __init__(self, module: nn.Module, args: tuple):
        super().__init__()
        self.module = module
        self.stubs = nn.ModuleList(_identity_layer(a) for a in args)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*(s(a) for s, a in zip(self.stubs, args, strict=True)), **kwargs)


def _identity_layer(x: Any) -> nn.Module:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        return nn.Identity()
    if x.dim() in (4, 5):  # NCHW / NCDHW: channels on dim 1, as the convs that read them
        conv = (nn.Conv2d if x.dim() == 4 else nn.Conv3d)(x.shape[1], x.shape[1], 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(x.shape[1]).view(conv.weight.shape))
        return conv.to(x.dtype)
    linear = nn.Linear(x.shape[-1], x.shape[-1], bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(x.shape[-1]))
    return linear.to(x.dtype)


def _stubbed_groups(
    module: nn.Module, args: tuple, kwargs: dict
) -> tuple[tp.DependencyGraph, list, list, nn.ModuleList]:
    """Behind input stubs: (graph, groups free of inputs, input-coupled groups, the stubs)."""
    with torch.random.fork_rng():  # the stubs' initialisation must not advance the caller's RNG
        wrapper = _InputStubs(module, args)
    dg = dependency_graph(wrapper, args, kwargs)
    stubs = set(wrapper.stubs)
    free, coupled = [], []
    for g in _all_groups(dg):
        (coupled if any(item.dep.target.module in stubs for item in g) else free).append(g)
    return dg, free, coupled, wrapper.stubs


def _all_groups(dg: tp.DependencyGraph) -> Iterable[tp.Group]:
    return dg.get_all_groups(root_module_types=ROOT_TYPES)


def _describe(
    group: tp.Group, dg: tp.DependencyGraph, names: dict[int, str], components: Components, graph_key: str
) -> PruneGroup:
    members = []
    for item in group:
        dep = item.dep
        target = dep.target.module
        path = names.get(id(target))
        if path is None:
            members.append(Member(f"op:{type(target).__name__.strip('_')}", "op", len(item.idxs)))
            continue
        side = "out" if dg.is_out_channel_pruning_fn(dep.handler) else "in"
        members.append(Member(path, side, len(item.idxs)))
    touched = sorted({c for m in members if m.side != "op" and (c := components.owner(m.target)) is not None})
    root = names[id(group[0].dep.target.module)]
    return PruneGroup(
        id=-1,
        kind="intra",
        components=tuple(touched),
        roots=(root,),
        graphs=(graph_key,),
        channels=len(group[0].idxs),
        members=tuple(members),
        tp_groups=[group],
    )


def unsupported_layers(model: nn.Module, near: Iterable[str] | None = None) -> list[str]:
    """Layers with parameters of their own that Torch-Pruning has no pruner for, as ``"path (Type)"``.

    Torch-Pruning treats such a layer as element-wise and its parameters as "unwrapped", guessing which
    dimension to cut. ``near``: only layers at or above these module/parameter paths (a group's members).
    """
    targets = None if near is None else list(near)
    found = []
    for path, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)) or type(module) in recurrent.PRUNERS:
            continue
        if tp.ops.module2type(module) != tp.ops.OPTYPE.ELEMENTWISE:
            continue
        if targets is None or any(t == path or t.startswith(path + ".") for t in targets):
            found.append(f"{path} ({type(module).__name__})")
    return found


def _check_constraint_paths(model: nn.Module, constraints: Constraints) -> None:
    named = dict(model.named_modules())
    unknown = sorted(p for p in constraints.module_paths() if p not in named)
    if unknown:
        raise PruneError(
            f"constraints name modules that {type(model).__name__} does not have: {', '.join(unknown)}",
            expected="module paths as in model.named_modules()",
        )


def _group_of(groups: Sequence[PruneGroup], path: str) -> PruneGroup | None:
    """The group that prunes ``path``'s output channels."""
    for g in groups:
        if any(m.target == path and m.side == "out" for m in g.members):
            return g
    return None


def _apply_constraints(groups: list[PruneGroup], constraints: Constraints) -> list[PruneGroup]:
    for path, size in constraints.blocks.items():
        g = _group_of(groups, path)
        if g is None:
            continue  # not prunable anyway
        if g.channels % size:
            raise PruneError(
                f"block constraint {path}={size}: the group has {g.channels} channels, not a multiple of {size}"
            )
        g.block = math.lcm(g.block, size)
    for a, b in constraints.ties:
        ga, gb = _group_of(groups, a), _group_of(groups, b)
        if ga is gb:
            continue
        if ga is None or gb is None:
            for g in (ga, gb):
                if g is not None and not g.frozen:
                    g.frozen = f"tied to unprunable {b if g is ga else a}"
            continue
        if ga.channels != gb.channels:
            raise PruneError(f"tie {a} == {b}: widths differ ({ga.channels} vs {gb.channels})")
        groups.remove(gb)
        groups[groups.index(ga)] = _merge(ga, gb, f"tied {a} == {b}")
    ensemble_ids = iter(range(len(groups)))
    for prefixes in constraints.ensembles:
        first = prefixes[0]
        for g in [g for g in groups if all(r.startswith(first + ".") for r in g.roots)]:
            peers = [g]
            for prefix in prefixes[1:]:
                twin = _group_of(groups, prefix + g.roots[0][len(first) :])
                if twin is None or twin.channels != g.channels:
                    raise PruneError(
                        f"ensemble {list(prefixes)}: {g.roots[0]} has no twin of equal width under {prefix}",
                        expected="ensemble members with identical structure",
                    )
                peers.append(twin)
            frozen = next((p.frozen for p in peers if p.frozen), None)
            ensemble = next(ensemble_ids)
            for p in peers:
                p.ensemble = ensemble
                p.frozen = p.frozen or (f"ensemble twin frozen: {frozen}" if frozen else None)
    return groups


def _merge(a: PruneGroup, b: PruneGroup, why: str) -> PruneGroup:
    frozen = a.frozen or b.frozen
    return PruneGroup(
        id=-1,
        kind="interface" if "interface" in (a.kind, b.kind) or a.components != b.components else "intra",
        components=tuple(sorted(set(a.components) | set(b.components))),
        roots=a.roots + b.roots,
        graphs=a.graphs + b.graphs,
        channels=a.channels,
        members=a.members + b.members,
        block=math.lcm(a.block, b.block),
        frozen=f"{frozen}; {why}" if frozen else None,
        tp_groups=a.tp_groups + b.tp_groups,
    )
