"""Every bundled model pruned at 10/50/80 % in both modes: runs, keeps outputs, shrinks for real."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgeprune.models import create_model, list_models
from edgeprune.prune import Budget, Components, model_constraints, prune, trace_components

MODELS = list_models()
FRACTIONS = [0.1, 0.5, 0.8]
MODES = ["component", "vanilla"]
TOL = 0.05
LAYERS = (nn.Linear, nn.modules.conv._ConvNd)

_CACHE: dict[tuple[str, str, float], tuple] = {}


def _pruned(name: str, mode: str, fraction: float):
    """(original model, copy of it taken before pruning, inputs, result), pruned once per combination."""
    key = (name, mode, fraction)
    if key not in _CACHE:
        torch.manual_seed(0)
        model = create_model(name).eval()
        inputs = model.example_inputs()
        before = copy.deepcopy(model)
        result = prune(model, inputs, Budget(default=fraction), mode=mode)
        _CACHE[key] = (model, before, inputs, result)
    return _CACHE[key]


def _flat(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


CASES = [(n, m, f) for n in MODELS for m in MODES for f in FRACTIONS]
IDS = [f"{n}-{m}-{int(f * 100)}" for n, m, f in CASES]


@pytest.mark.parametrize(("name", "mode", "fraction"), CASES, ids=IDS)
def test_pruned_model_runs_with_unchanged_output_shapes(name: str, mode: str, fraction: float) -> None:
    model, _, _, result = _pruned(name, mode, fraction)
    for batch in (1, 3):
        torch.manual_seed(1)
        x = model.example_inputs(batch)
        with torch.no_grad():
            want = [t.shape for t in _flat(model(*x))]
            got = [t.shape for t in _flat(result.model(*x))]
        state = set(model_constraints(model).state_outputs)  # declared internal state (tdmpc's next_z) may narrow
        assert len(got) == len(want)
        assert [g for i, g in enumerate(got) if i not in state] == [w for i, w in enumerate(want) if i not in state]
        assert all(torch.isfinite(t).all() for t in _flat(result.model(*x)))
    assert result.model is not model


@pytest.mark.parametrize(("name", "mode", "fraction"), CASES, ids=IDS)
def test_pruned_model_is_dense_and_smaller(name: str, mode: str, fraction: float) -> None:
    model, _, _, result = _pruned(name, mode, fraction)
    assert _n_params(result.model) < _n_params(model)
    pruned_modules = dict(result.model.named_modules())
    shrunk = 0
    for path, layer in model.named_modules():
        if not isinstance(layer, LAYERS):
            continue
        new = pruned_modules[path]
        assert type(new) is type(layer)
        assert all(a <= b for a, b in zip(new.weight.shape, layer.weight.shape, strict=True))
        shrunk += new.weight.shape != layer.weight.shape
        # dense: attributes agree with the tensors, no masks or reparametrisations left behind
        if isinstance(new, nn.Linear):
            assert new.weight.shape == (new.out_features, new.in_features)
        else:
            assert new.weight.shape[:2] == (new.out_channels, new.in_channels // new.groups)
        if new.bias is not None:
            assert new.bias.shape == (new.weight.shape[0],)
    assert shrunk > 0
    for name_, _ in result.model.named_buffers():
        assert not name_.endswith("_mask")
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in result.model.modules())
    # the report counts what is really there
    assert result.report.params_after == _n_params(result.model)
    assert result.report.params_before == _n_params(model)


@pytest.mark.parametrize(("name", "mode", "fraction"), CASES, ids=IDS)
def test_achieved_fraction_matches_request(name: str, mode: str, fraction: float) -> None:
    model, _, _, result = _pruned(name, mode, fraction)
    report = result.report
    comps = Components.from_children(model)
    pruned_named = dict(result.model.named_parameters())
    for row in report.components:
        before = sum(p.numel() for n, p in model.named_parameters() if comps.owner(n) == row.name)
        after = sum(p.numel() for n, p in pruned_named.items() if comps.owner(n) == row.name)
        assert (row.params_before, row.params_after) == (before, after)
        assert row.achieved == pytest.approx(1 - after / before, abs=1e-4)
        if mode == "component":
            assert row.requested == fraction
            if row.note is None:
                assert abs(row.achieved - fraction) <= TOL, f"{row.name}: {row.achieved} vs {fraction}"
        else:
            assert row.requested is None
    if mode == "vanilla":
        assert report.target == fraction
        assert abs(1 - _n_params(result.model) / _n_params(model) - fraction) <= TOL
    # notes are explanations, and not every component has one: the check above is never vacuous
    assert all(row.note is None or row.note.strip() for row in report.components)
    assert any(row.note is None and row.achieved > 0 for row in report.components)


@pytest.mark.parametrize(("name", "mode", "fraction"), CASES, ids=IDS)
def test_input_model_is_left_untouched(name: str, mode: str, fraction: float) -> None:
    model, before, inputs, _ = _pruned(name, mode, fraction)
    sd, ref = model.state_dict(), before.state_dict()
    assert list(sd) == list(ref)
    for key, tensor in ref.items():
        assert torch.equal(sd[key], tensor), key
    assert not any(p.grad is not None for p in model.parameters())
    assert [m.training for m in model.modules()] == [m.training for m in before.modules()]
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in before.parameters()]
    with torch.no_grad():
        for a, b in zip(_flat(model(*inputs)), _flat(before(*inputs)), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", MODELS)
def test_component_mode_keeps_every_interface_width(name: str) -> None:
    """Without ``interfaces=True``, component mode never changes what flows between components, except a
    recurrent layer's hidden state: that is its component's own dimension (readers lose input columns)."""
    model, _, inputs, result = _pruned(name, "component", 0.5)
    comps = Components.from_children(model)
    graph_before, _ = trace_components(model, inputs, comps)
    graph_after, _ = trace_components(result.model, inputs, comps)
    rnns = [p for p, m in model.named_modules() if isinstance(m, nn.RNNBase | nn.RNNCellBase)]
    states = {(model.get_submodule(p).hidden_size, result.model.get_submodule(p).hidden_size) for p in rnns}
    for cname, trace in graph_before.components.items():
        after = graph_after.components[cname]
        before_shapes = [*trace.input_shapes, *trace.output_shapes]
        after_shapes = [*after.input_shapes, *after.output_shapes]
        for a, b in zip(before_shapes, after_shapes, strict=True):
            assert a == b or (a[:-1] == b[:-1] and (a[-1], b[-1]) in states), (cname, a, b)
        assert after.calls == trace.calls
    assert {(f.source, f.target) for f in graph_after.flows} == {(f.source, f.target) for f in graph_before.flows}
    for g in result.plan.groups:
        assert g.kind == "intra" and (len(g.components) == 1 or g.roots[0] in rnns)


@pytest.mark.parametrize("mode", MODES)
def test_input_model_in_train_mode_keeps_its_flags_and_statistics(mode: str) -> None:
    """A model handed over in training mode (BatchNorm!) comes back exactly as it was."""
    torch.manual_seed(0)
    model = create_model("complex_cnn").train()
    model.stage1[0].body[1].eval()  # a mixed train/eval state must survive too
    flags = [m.training for m in model.modules()]
    state = copy.deepcopy(model.state_dict())
    result = prune(model, model.example_inputs(), Budget(default=0.5), mode=mode)
    assert [m.training for m in model.modules()] == flags
    for key, tensor in state.items():
        assert torch.equal(model.state_dict()[key], tensor), key  # running stats included
    # the pruned copy keeps the original's flags as well
    assert [m.training for m in result.model.modules()] == flags
