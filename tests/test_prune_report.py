"""PruneReport: table, JSON, per-component parameters and MACs (per example)."""

from __future__ import annotations

import json

import pytest
from torch import nn

from edgeprune.models import list_models
from edgeprune.prune import Budget, prune
from edgeprune.prune.pruner import STEPS

MODELS = list_models()


def _linear_macs(model: nn.Sequential) -> int:
    return sum(m.in_features * m.out_features for m in model if isinstance(m, nn.Linear))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_report_table_and_json(make_model, name: str, mode: str) -> None:
    model = make_model(name)
    result = prune(model, model.example_inputs(), Budget(default=0.5), mode=mode)
    report = result.report
    names = [n for n, c in model.named_children() if any(True for _ in c.parameters())]
    assert [c.name for c in report.components] == names

    text = str(report)
    for n in names:
        assert n in text
    assert "total" in text and f"{mode} mode" in text

    data = json.loads(report.to_json())
    assert data["mode"] == mode and data["plan_digest"] == result.plan.digest
    totals = data["totals"]
    assert totals["params_before"] == sum(p.numel() for p in model.parameters())
    assert totals["params_after"] == sum(p.numel() for p in result.model.parameters())
    assert totals["macs_after"] < totals["macs_before"]
    assert totals["achieved"] == pytest.approx(1 - totals["params_after"] / totals["params_before"], abs=1e-4)
    assert [c["name"] for c in data["components"]] == names
    assert len(data["groups"]) == len(result.groups)


@pytest.mark.parametrize("name", MODELS)
def test_group_rows_say_why_nothing_was_cut(make_model, name: str) -> None:
    model = make_model(name)
    first = next(iter(dict(model.named_children())))
    result = prune(model, model.example_inputs(), Budget(default=0.5, protect={first}))
    pruned = {g.id: len(g.removed[0]) for g in result.plan.groups}
    assert [g.id for g in result.report.groups] == [g.id for g in result.groups]
    for row in result.report.groups:
        assert row.removed == pruned.get(row.id, 0)
        assert (row.reason is None) == (row.removed > 0), row
    for row in result.report.components:
        assert row.channels_removed == sum(
            len(idxs)
            for g in result.plan.groups
            for root, idxs in zip(g.roots, g.removed, strict=True)
            if root.split(".")[0] == row.name
        )


@pytest.mark.parametrize("name", MODELS)
def test_macs_decrease_where_components_were_pruned(make_model, name: str) -> None:
    model = make_model(name)
    first = next(iter(dict(model.named_children())))
    report = prune(model, model.example_inputs(), Budget(default=0.5, protect={first})).report
    for row in report.components:
        assert row.macs_before > 0, row.name
        if row.protected:
            assert row.name == first
            assert row.macs_after == row.macs_before
            assert row.params_after == row.params_before
        elif row.achieved > 0.05:
            assert row.macs_after < row.macs_before, row.name
        else:
            assert row.macs_after <= row.macs_before, row.name


@pytest.mark.parametrize("name", MODELS)
def test_macs_are_per_example(make_model, name: str) -> None:
    model = make_model(name)
    one = prune(model, model.example_inputs(1), Budget(default=0.5)).report
    four = prune(model, model.example_inputs(4), Budget(default=0.5)).report
    assert [(c.macs_before, c.macs_after) for c in one.components] == [
        (c.macs_before, c.macs_after) for c in four.components
    ]


def test_macs_count_every_call(make_model) -> None:
    """The exact MACs of the MLPs: one multiply-accumulate per weight per call, per example."""
    simple = make_model("simple")
    report = prune(simple, simple.example_inputs(3), Budget(default=0.5)).report
    for row in report.components:
        assert row.macs_before == _linear_macs(getattr(simple, row.name))
    recursive = make_model("recursive")
    report = prune(recursive, recursive.example_inputs(3), Budget(default=0.5)).report
    assert report.component("cell").macs_before == 3 * _linear_macs(recursive.cell)  # three rollout steps
    assert report.component("head").macs_before == _linear_macs(recursive.head)


def test_report_notes_explain_misses(make_model) -> None:
    model = make_model("complex_cnn")
    report = prune(model, model.example_inputs(), Budget(default=0.5, protect={"classifier"})).report
    for row in report.components:
        if row.protected:
            assert row.note
        elif abs(row.achieved - 0.5) > 0.05:
            assert row.note, f"{row.name} missed its fraction without a note"
    assert any(row.note and not row.protected for row in report.components)  # stem/dsconv/pool are interfaces


def test_progress_steps(make_model) -> None:
    model = make_model("simple")
    seen: list[str] = []
    prune(model, model.example_inputs(), Budget(default=0.5), on_step=seen.append)
    assert seen == list(STEPS)
