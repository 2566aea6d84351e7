"""Components, the traced ComponentGraph, and pruning groups in both modes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from edgeprune.models import list_models
from edgeprune.prune import (
    Budget,
    ComponentGraph,
    Components,
    Flow,
    PruneError,
    build_groups,
    model_constraints,
    prune,
    trace_components,
)

MODELS = list_models()

# ---------------------------------------------------------------------------------------------------------------
# Components


def test_from_children_is_one_component_per_top_level_child(make_model) -> None:
    model = make_model("tdmpc")
    comps = Components.from_children(model)
    assert comps.names == ["encoder", "dynamics", "reward", "policy", "qs"]
    assert comps.roots("encoder") == ("encoder",)
    assert comps.roots("qs") == ("qs.0", "qs.1")  # a ModuleList has no forward: its members are the roots


def test_from_children_skips_children_without_parameters() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.out = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.act(self.body(x)))

    assert Components.from_children(Net()).names == ["body", "out"]
    with pytest.raises(PruneError, match="no child module with parameters"):
        Components.from_children(nn.Sequential(nn.ReLU(), nn.Tanh()))


def test_from_depth_two(make_model) -> None:
    model = make_model("complex_cnn")
    comps = Components.from_depth(model, 2)
    assert {"stage1.0", "stage1.1", "stage2.0", "classifier.0", "classifier.2"} <= set(comps.names)
    assert "stage1" not in comps.names
    assert all(n.count(".") == 1 for n in comps.names)
    assert comps.owner("stage1.1.body.0.weight") == "stage1.1"
    result = prune(model, model.example_inputs(), Budget(default=0.5), components=comps)
    assert result.report.component("stage1.0").achieved > 0.4
    assert result.report.component("stage1.1").achieved > 0.4
    assert Components.from_depth(model, 1).names == Components.from_children(model).names


def test_from_depth_rejects_depth_zero(make_model) -> None:
    with pytest.raises(PruneError, match="depth"):
        Components.from_depth(make_model("simple"), 0)


def test_explicit_mapping_with_globs(make_model) -> None:
    model = make_model("tdmpc")
    comps = Components(model, {"world": ["encoder", "dynamics"], "heads": ["reward", "pol*"], "critics": "qs.*"})
    assert comps.names == ["world", "heads", "critics"]
    assert comps.roots("world") == ("encoder", "dynamics")
    assert comps.roots("heads") == ("reward", "policy")
    assert comps.roots("critics") == ("qs.0", "qs.1")  # outermost matches only
    assert comps.to_dict() == {
        "world": ["encoder", "dynamics"],
        "heads": ["reward", "policy"],
        "critics": ["qs.0", "qs.1"],
    }
    assert "critics" in repr(comps)
    result = prune(model, model.example_inputs(), Budget(default=0.5, protect={"heads"}), components=comps)
    assert [r.name for r in result.report.components] == ["world", "heads", "critics"]
    assert result.report.component("heads").params_after == result.report.component("heads").params_before
    assert abs(result.report.component("critics").achieved - 0.5) <= 0.05


def test_owner(make_model) -> None:
    comps = Components.from_children(make_model("tdmpc"))
    assert comps.owner("encoder") == "encoder"
    assert comps.owner("encoder.0") == "encoder"
    assert comps.owner("encoder.0.weight") == "encoder"
    assert comps.owner("qs.1.3.bias") == "qs"
    assert comps.owner("qs") is None  # the ModuleList itself is not a root
    assert comps.owner("nothing.here") is None
    assert comps.owner("") is None


def test_unknown_pattern_lists_top_level_modules(make_model) -> None:
    model = make_model("tdmpc")
    with pytest.raises(PruneError) as info:
        Components(model, {"enc": ["encodr*"]})
    message = str(info.value)
    assert "encodr*" in message and "enc" in message
    for child in ("encoder", "dynamics", "reward", "policy", "qs"):
        assert child in message


@pytest.mark.parametrize(
    "mapping",
    [
        {"a": ["encoder"], "b": ["encoder"]},  # the same module twice
        {"a": ["encoder"], "b": ["encoder.0"]},  # nested
        {"a": ["enc*"], "b": ["encoder.*"]},  # nested through globs
        {"a": ["qs"], "b": ["qs.1"]},  # nested through a ModuleList
    ],
)
def test_overlapping_or_nested_components_are_rejected(make_model, mapping: dict) -> None:
    with pytest.raises(PruneError):
        Components(make_model("tdmpc"), mapping)


def test_check_names_lists_the_known_components(make_model) -> None:
    comps = Components.from_children(make_model("simple"))
    comps.check_names(["encoder", "head"])
    with pytest.raises(PruneError) as info:
        comps.check_names(["encoder", "decoder"])
    assert "decoder" in str(info.value)
    assert all(n in str(info.value) for n in ("encoder", "core", "head"))
    with pytest.raises(PruneError):
        comps.roots("decoder")


def test_partial_mapping_leaves_other_modules_alone(make_model) -> None:
    model = make_model("tdmpc")
    comps = Components(model, {"encoder": ["encoder"], "policy": ["policy"]})
    result = prune(model, model.example_inputs(), Budget(default=0.5), components=comps)
    before = dict(model.named_parameters())
    for name, p in result.model.named_parameters():
        if comps.owner(name) is None:
            assert torch.equal(p, before[name]), name
    assert result.report.component("policy").achieved > 0.4


# ---------------------------------------------------------------------------------------------------------------
# trace_components / ComponentGraph


def _trace(make_model, name: str, batch: int = 2) -> tuple[nn.Module, ComponentGraph]:
    model = make_model(name)
    graph, _ = trace_components(model, model.example_inputs(batch), Components.from_children(model))
    return model, graph


def _flows(graph: ComponentGraph) -> dict[tuple[str, str], int]:
    return {(f.source, f.target): f.count for f in graph.flows}


def test_tdmpc_shapes_calls_and_flows(make_model) -> None:
    model, graph = _trace(make_model, "tdmpc", batch=3)
    c = graph.components
    assert c["encoder"].input_shapes == [[3, 3]] and c["encoder"].output_shapes == [[3, 32]]
    assert c["dynamics"].input_shapes == [[3, 33]] and c["dynamics"].output_shapes == [[3, 32]]
    assert c["policy"].input_shapes == [[3, 32]] and c["policy"].output_shapes == [[3, 1]]
    assert c["reward"].output_shapes == [[3, 1]]
    assert {n: t.calls for n, t in c.items()} == {"encoder": 1, "dynamics": 1, "reward": 1, "policy": 1, "qs": 2}
    assert set(_flows(graph)) == {
        ("input:0", "encoder"),
        ("encoder", "dynamics"),
        ("input:1", "dynamics"),
        ("encoder", "reward"),
        ("input:1", "reward"),
        ("encoder", "qs"),
        ("input:1", "qs"),
        ("encoder", "policy"),
        ("dynamics", "output:0"),
        ("reward", "output:1"),
        ("qs", "output:2"),
        ("policy", "output:3"),
    }
    assert _flows(graph)[("encoder", "qs")] == 2
    for name, trace in c.items():
        assert trace.params == sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] == name)
        assert trace.roots == list(Components.from_children(model).roots(name))


def test_recursive_component_is_called_three_times_and_loops(make_model) -> None:
    _, graph = _trace(make_model, "recursive")
    calls = {n: t.calls for n, t in graph.components.items()}
    assert calls == {"encoder": 1, "cell": 3, "feedback": 3, "head": 1}
    flows = _flows(graph)
    assert ("cell", "cell") in flows  # the self-loop of the rollout
    assert flows[("feedback", "cell")] == 3
    assert ("cell", "feedback") in flows
    assert ("input:0", "encoder") in flows and ("head", "output:0") in flows
    assert ("input:0", "cell") not in flows and ("encoder", "head") not in flows
    assert graph.components["cell"].input_shapes == [[2, 40]]


def test_branched_flows_follow_the_forward(make_model) -> None:
    _, graph = _trace(make_model, "branched")
    flows = set(_flows(graph))
    assert ("trunk", "head_value") in flows  # the concat skip
    assert ("branch_c", "head_cls") in flows and ("branch_c", "head_value") in flows
    assert ("branch_a", "head_value") not in flows and ("trunk", "head_cls") not in flows


@pytest.mark.parametrize("name", MODELS)
def test_graph_exports(make_model, name: str) -> None:
    model, graph = _trace(make_model, name)
    data = json.loads(graph.to_json())
    assert set(data["components"]) == set(Components.from_children(model).names)
    assert {(f["source"], f["target"]) for f in data["flows"]} == set(_flows(graph))
    assert data == graph.to_dict()
    mermaid = graph.to_mermaid()
    assert mermaid.startswith("flowchart")
    assert mermaid.count("-->") == len(graph.flows)
    dot = graph.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("->") == len(graph.flows)
    text = str(graph)
    for cname in graph.components:
        assert cname in text and cname in dot and cname.replace(".", "_") in mermaid
    assert all(isinstance(f, Flow) for f in graph.flows)


@pytest.mark.parametrize("name", MODELS)
def test_every_component_receives_gradients_and_the_model_is_left_clean(make_model, name: str) -> None:
    model = make_model(name)
    model.train()
    for p in model.encoder.parameters() if hasattr(model, "encoder") else []:
        p.requires_grad_(False)
    flags = [m.training for m in model.modules()]
    requires = [p.requires_grad for p in model.parameters()]
    graph, calls = trace_components(model, model.example_inputs(), Components.from_children(model))
    assert all(t.receives_grad for t in graph.components.values())
    assert all(t.calls >= 1 for t in graph.components.values())
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == requires
    assert all(p.grad is None for p in model.parameters())
    assert set(calls) == {r for n in graph.components for r in graph.components[n].roots}


# ---------------------------------------------------------------------------------------------------------------
# build_groups


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_groups_are_well_formed(make_model, name: str, mode: str) -> None:
    model = make_model(name)
    comps = Components.from_children(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    groups = build_groups(model, model.example_inputs(), comps, mode=mode, constraints=model_constraints(model))
    assert groups.mode == mode and len(groups) > 0
    assert [g.id for g in groups] == list(range(len(groups)))
    for g in groups:
        assert g.members and g.size == len(g.members)
        assert g.kind in {"intra", "interface"}
        assert set(g.components) <= set(comps.names)
        assert g.channels > 0 and g.roots
        assert all(m.side in {"in", "out", "op"} for m in g.members)
        assert any(m.side == "out" and m.target == g.roots[0] for m in g.members) or g.roots[0].startswith("input:")
        d = g.to_dict()
        assert d["size"] == g.size and d["kind"] == g.kind
    summary = groups.summary()
    assert summary["groups"] == len(groups)
    assert summary["components"] == len(comps.names)
    assert summary["cross_component_groups"] == sum(len(g.components) > 1 for g in groups)
    assert summary["max_group_size"] == max(g.size for g in groups)
    json.dumps(groups.to_dict())
    for k, v in model.state_dict().items():  # build_groups does not modify the model
        assert torch.equal(v, state[k])


@pytest.mark.parametrize("name", MODELS)
def test_component_groups_are_no_larger_than_vanilla_groups(make_model, name: str) -> None:
    model = make_model(name)
    inputs = model.example_inputs()
    comp = build_groups(model, inputs, mode="component").summary()
    van = build_groups(model, inputs, mode="vanilla").summary()
    assert comp["max_prunable_size"] <= van["max_prunable_size"]
    assert comp["avg_prunable_size"] <= van["avg_prunable_size"]


def test_component_mode_splits_what_vanilla_couples(make_model) -> None:
    """recursive: vanilla couples encoder, cell and head outputs in one big group; component mode does not."""
    model = make_model("recursive")
    inputs = model.example_inputs()
    comp = build_groups(model, inputs, mode="component")
    van = build_groups(model, inputs, mode="vanilla")
    assert van.summary()["max_prunable_size"] > comp.summary()["max_prunable_size"]
    big = max((g for g in van if not g.frozen), key=lambda g: g.size)
    assert len(big.components) > 1


@pytest.mark.parametrize("name", MODELS)
def test_cross_component_groups_are_not_pruned_by_default(make_model, name: str) -> None:
    """Except a recurrent state (``owner``: its layer's component), which its readers only read."""
    model = make_model(name)
    result = prune(model, model.example_inputs(), Budget(default=0.6))
    by_id = {g.id: g for g in result.groups}
    pruned_ids = {g.id for g in result.plan.groups}
    assert pruned_ids
    for gid in pruned_ids:
        assert by_id[gid].kind == "intra" and (len(by_id[gid].components) == 1 or by_id[gid].owner)
    for g in result.groups:
        if (len(g.components) > 1 and not g.owner) or g.kind == "interface":
            assert g.id not in pruned_ids
            assert next(r for r in result.report.groups if r.id == g.id).reason


def test_unknown_mode_is_rejected(make_model) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match="mode"):
        build_groups(model, model.example_inputs(), mode="global")
    with pytest.raises(PruneError, match="mode"):
        prune(model, model.example_inputs(), Budget(default=0.5), mode="global")
