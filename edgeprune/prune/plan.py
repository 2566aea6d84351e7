"""PrunePlan: pruning decisions as data (JSON), replayable on a fresh instance of the original model."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeprune.io import atomic_open, write_atomic
from edgeprune.prune.component_graph import trace_components
from edgeprune.prune.components import Components
from edgeprune.prune.errors import PruneError
from edgeprune.prune.groups import MODEL_GRAPH, dependency_graph
from edgeprune.prune.tracing import ExampleInputs, as_tuple

PLAN_FORMAT = "edgeprune-plan/1"


def architecture_hash(model: nn.Module) -> str:
    """Hash of module names, types and parameter/buffer shapes: what a plan's indices refer to."""
    items = []
    for name, module in model.named_modules():
        tensors = [(n, list(t.shape)) for n, t in module.named_parameters(recurse=False)]
        tensors += [(n, list(t.shape)) for n, t in module.named_buffers(recurse=False)]
        items.append([name, type(module).__qualname__, tensors])
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


@dataclass
class PlannedGroup:
    """One pruned group: for each root layer, the output-channel indices removed (original numbering)."""

    id: int
    kind: str
    components: list[str]
    roots: list[str]
    graphs: list[str]
    removed: list[list[int]]


@dataclass
class PrunePlan:
    """Everything needed to reproduce a pruned architecture from the original one."""

    arch_hash: str
    mode: str
    components: dict[str, list[str]]
    budget: dict[str, Any]
    importance: str
    groups: list[PlannedGroup] = field(default_factory=list)
    format: str = PLAN_FORMAT

    @property
    def digest(self) -> str:
        """Hash of the plan itself (recorded in exported artifacts)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PrunePlan:
        try:
            data = json.loads(text)
            if data.get("format") != PLAN_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            groups = [PlannedGroup(**g) for g in data.pop("groups")]
            return cls(groups=groups, **data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PruneError(
                f"not an edgeprune plan: {exc}", expected=f"JSON written by PrunePlan.save ({PLAN_FORMAT})"
            ) from exc

    def _check_removals(self, named: dict[str, nn.Module]) -> None:
        for g in self.groups:
            if not len(g.roots) == len(g.graphs) == len(g.removed):
                raise PruneError(f"plan group {g.id} is malformed: roots, graphs and removed differ in length")
            for root, idxs in zip(g.roots, g.removed, strict=True):
                problem = _removal_problem(named, root, idxs)
                if problem:
                    raise PruneError(
                        f"the plan cannot be applied: {problem}",
                        expected="a plan written by `edgeprune prune` for this model, keeping at least one channel "
                        "of every layer",
                        fix="make the plan again with `edgeprune prune` (a lower --budget keeps more channels)",
                    )

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrunePlan:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise PruneError(
                f"cannot read the plan {path}: {exc.strerror if isinstance(exc, OSError) else exc}",
                expected="the plan.json written by `edgeprune prune` (or PrunePlan.save)",
                fix="check the --plan path",
            ) from exc
        return cls.from_json(text)

    def apply(self, model: nn.Module, example_inputs: ExampleInputs) -> nn.Module:
        """Prune ``model`` (a fresh instance of the original architecture) in place, and return it."""
        found = architecture_hash(model)
        if found != self.arch_hash:
            raise PruneError(
                f"this plan was made for another architecture (hash {self.arch_hash[:12]}, model has {found[:12]})",
                expected="a fresh, unpruned instance of the model the plan was made from (same constructor arguments)",
            )
        args = as_tuple(example_inputs)
        named = dict(model.named_modules())
        self._check_removals(named)
        widths = {r: _out_channels(named[r]) for g in self.groups for r in g.roots}
        by_graph: dict[str, list[tuple[str, list[int]]]] = {}
        for g in self.groups:
            for root, graph, idxs in zip(g.roots, g.graphs, g.removed, strict=True):
                by_graph.setdefault(graph, []).append((root, idxs))
        component_graphs = [k for k in by_graph if k != MODEL_GRAPH]
        if component_graphs:
            _, calls = trace_components(model, args, Components(model, self.components))
            for key in component_graphs:
                dg = dependency_graph(named[key], calls[key].args, calls[key].kwargs)
                _prune_roots(dg, named, by_graph[key])
        if MODEL_GRAPH in by_graph:
            _prune_roots(dependency_graph(model, args, {}), named, by_graph[MODEL_GRAPH])
        for g in self.groups:
            for root, idxs in zip(g.roots, g.removed, strict=True):
                if _out_channels(named[root]) != widths[root] - len(idxs):
                    raise PruneError(f"plan group {g.id}: {root} did not shrink by {len(idxs)} channels")
        return model


def _out_channels(module: nn.Module) -> int:
    for attr in ("out_features", "out_channels", "embedding_dim", "hidden_size"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    raise PruneError(f"{type(module).__name__} is not a layer a plan can root a group at")


def _removal_problem(named: dict[str, nn.Module], root: str, idxs: list[int]) -> str | None:
    """What is wrong with removing channels ``idxs`` of module ``root`` (None when nothing is)."""
    if root not in named:
        return f"it names a module {root!r} the model does not have"
    width = _out_channels(named[root])
    if any(not isinstance(i, int) or not 0 <= i < width for i in idxs) or len(set(idxs)) != len(idxs):
        return f"its channel indices for {root} are not distinct indices below {width}"
    if len(idxs) >= width:
        return f"it removes every channel ({width} of {width}) of {root}"
    return None


def _prune_roots(dg, named: dict[str, nn.Module], roots: list[tuple[str, list[int]]]) -> None:
    for root, idxs in roots:
        module = named[root]
        pruner = dg.get_pruner_of_module(module)
        dg.get_pruning_group(module, pruner.prune_out_channels, idxs).prune()


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Save a pruned model's ``state_dict`` (never a pickled module)."""
    with atomic_open(path, "wb") as f:
        torch.save(model.state_dict(), f)


def load_pruned(
    model: nn.Module, plan: PrunePlan, example_inputs: ExampleInputs, weights: str | os.PathLike | None = None
) -> nn.Module:
    """Rebuild a pruned model: apply ``plan`` to a fresh ``model``, then load ``weights`` (``weights_only=True``)."""
    plan.apply(model, example_inputs)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise PruneError(
                f"weights in {weights} do not fit the pruned architecture: {exc}",
                expected="the state_dict saved together with this plan",
            ) from exc
    return model
