"""The traced component graph: shapes, call counts and verified component-to-component flows (paper §4.5)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from edgeprune.prune.components import Components
from edgeprune.prune.tracing import (
    ExampleInputs,
    RecordedCall,
    as_tuple,
    detach,
    flatten_tensors,
    run_forward,
    tracing_mode,
)


@dataclass
class ComponentTrace:
    """What one component did during the traced forward."""

    name: str
    roots: list[str]
    calls: int = 0
    input_shapes: list[list[int]] = field(default_factory=list)
    output_shapes: list[list[int]] = field(default_factory=list)
    params: int = 0
    receives_grad: bool = False


@dataclass(frozen=True)
class Flow:
    """Data flows from ``source`` to ``target`` (``input:i`` / ``output:i`` for the model's own inputs/outputs)."""

    source: str
    target: str
    count: int


@dataclass
class ComponentGraph:
    """Components and the flows between them, verified on the autograd graph of one real forward."""

    components: dict[str, ComponentTrace]
    flows: list[Flow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "components": {n: asdict(c) for n, c in self.components.items()},
            "flows": [asdict(f) for f in self.flows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_mermaid(self) -> str:
        lines = ["flowchart LR"]
        for c in self.components.values():
            shapes = " ".join("x".join(map(str, s)) for s in c.output_shapes)
            calls = f" ×{c.calls}" if c.calls > 1 else ""
            lines.append(f'  {_node_id(c.name)}["{c.name}{calls}<br/>{c.params:,} params<br/>out {shapes}"]')
        for f in self.flows:
            label = f"|×{f.count}|" if f.count > 1 else ""
            lines.append(f"  {_node_id(f.source)} -->{label} {_node_id(f.target)}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        lines = ["digraph components {", "  rankdir=LR;"]
        for c in self.components.values():
            calls = f" x{c.calls}" if c.calls > 1 else ""
            lines.append(f'  "{c.name}" [shape=box, label="{c.name}{calls}\\n{c.params:,} params"];')
        for f in self.flows:
            label = f' [label="x{f.count}"]' if f.count > 1 else ""
            lines.append(f'  "{f.source}" -> "{f.target}"{label};')
        lines.append("}")
        return "\n".join(lines)

    def __str__(self) -> str:
        rows = []
        for c in self.components.values():
            ins = ", ".join("x".join(map(str, s)) for s in c.input_shapes)
            outs = ", ".join("x".join(map(str, s)) for s in c.output_shapes)
            rows.append(f"{c.name:<14} calls={c.calls:<3} params={c.params:<9,} in=[{ins}] out=[{outs}]")
        rows.extend(f"  {f.source} -> {f.target}" + (f" (x{f.count})" if f.count > 1 else "") for f in self.flows)
        return "\n".join(rows)


def _node_id(name: str) -> str:
    return name.replace(":", "_").replace(".", "_")


def trace_components(
    model: nn.Module, example_inputs: ExampleInputs, components: Components
) -> tuple[ComponentGraph, dict[str, RecordedCall]]:
    """Run one forward with hooks on every component root.

    Returns the component graph and, per root module path, its first call's detached arguments
    (used to build that component's own dependency graph).
    """
    args = as_tuple(example_inputs)
    named = dict(model.named_modules())
    traces = {
        n: ComponentTrace(
            n,
            list(components.roots(n)),
            params=sum(p.numel() for r in components.roots(n) for p in named[r].parameters()),
        )
        for n in components.names
    }
    calls: dict[str, RecordedCall] = {}
    producers: dict[Any, str] = {}  # grad_fn of a component output -> component
    leaf_inputs: dict[int, str] = {}  # id of a model-input leaf tensor -> "input:i"
    flows: Counter[tuple[str, str]] = Counter()

    def pre_hook(name: str, path: str):
        def hook(_mod: nn.Module, hook_args: tuple, hook_kwargs: dict) -> None:
            trace = traces[name]
            tensors = flatten_tensors((hook_args, hook_kwargs))
            if path not in calls:
                calls[path] = RecordedCall(detach(hook_args), detach(hook_kwargs))
            if trace.calls == 0:
                trace.input_shapes = [list(t.shape) for t in tensors]
            for source in _sources(tensors, producers, leaf_inputs):
                flows[(source, name)] += 1

        return hook

    def post_hook(name: str):
        def hook(_mod: nn.Module, _args: tuple, output: Any) -> None:
            trace = traces[name]
            tensors = flatten_tensors(output)
            if trace.calls == 0:
                trace.output_shapes = [list(t.shape) for t in tensors]
            trace.calls += 1
            for t in tensors:
                if t.grad_fn is not None:
                    producers[t.grad_fn] = name

        return hook

    handles = []
    for name in components.names:
        for path in components.roots(name):
            mod = named[path]
            handles.append(mod.register_forward_pre_hook(pre_hook(name, path), with_kwargs=True))
            handles.append(mod.register_forward_hook(post_hook(name)))
    try:
        with tracing_mode(model):
            traced_args = []
            for i, a in enumerate(args):
                if isinstance(a, torch.Tensor) and a.is_floating_point():
                    a = a.detach().clone().requires_grad_(True)
                    leaf_inputs[id(a)] = f"input:{i}"
                traced_args.append(a)
            outputs = flatten_tensors(run_forward(model, tuple(traced_args)))
            for i, out in enumerate(outputs):
                for source in _sources([out], producers, leaf_inputs):
                    flows[(source, f"output:{i}")] += 1
            _mark_gradients(model, components, traces, outputs)
    finally:
        for h in handles:
            h.remove()
    flow_list = [Flow(s, t, c) for (s, t), c in flows.items()]
    return ComponentGraph(traces, flow_list), calls


def _sources(tensors: list[torch.Tensor], producers: dict[Any, str], leaf_inputs: dict[int, str]) -> set[str]:
    """Components (or model inputs) whose outputs these tensors were computed from."""
    found: set[str] = set()
    seen: set[Any] = set()
    stack: list[Any] = []
    for t in tensors:
        if id(t) in leaf_inputs:
            found.add(leaf_inputs[id(t)])
        elif t.grad_fn is not None:
            stack.append(t.grad_fn)
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        if fn in producers:
            found.add(producers[fn])
            continue
        variable = getattr(fn, "variable", None)  # AccumulateGrad of a leaf
        if variable is not None:
            if id(variable) in leaf_inputs:
                found.add(leaf_inputs[id(variable)])
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions if nxt is not None)
    return found


def _mark_gradients(
    model: nn.Module, components: Components, traces: dict[str, ComponentTrace], outputs: list[torch.Tensor]
) -> None:
    """Check that gradients from the outputs reach each component (it stays trainable), without touching .grad."""
    floats = [o for o in outputs if o.is_floating_point() and o.grad_fn is not None]
    if not floats:
        return
    total = sum(o.sum() for o in floats)
    named = dict(model.named_modules())
    for name, trace in traces.items():
        params = [p for r in components.roots(name) for p in named[r].parameters()]
        if not params:
            continue
        grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        trace.receives_grad = any(g is not None for g in grads)
