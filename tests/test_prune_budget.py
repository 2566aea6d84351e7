"""Budget validation, importance criteria and per-component weighting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.prune import Budget, PruneError, Taylor, prune

# ---------------------------------------------------------------------------------------------------------------
# Budget validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"default": 1.0}, "default"),
        ({"default": -0.1}, "default"),
        ({"default": 1.5}, "default"),
        ({"default": math.nan}, "default"),
        ({"default": "0.5"}, "default"),
        ({"per_component": {"encoder": 1.0}}, "per_component['encoder']"),
        ({"per_component": {"head": -0.2}}, "per_component['head']"),
        ({"total": 1.0}, "total"),
        ({"total": -0.5}, "total"),
        ({"interfaces": True, "interface_ratio": 1.0}, "interface_ratio"),
        ({"interfaces": True, "interface_ratio": -0.1}, "interface_ratio"),
    ],
)
def test_fraction_outside_unit_interval_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(PruneError) as info:
        Budget(**kwargs)
    message = str(info.value)
    assert field in message and "[0, 1)" in message


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"round_to": 0}, "round_to"),
        ({"round_to": 2.5}, "round_to"),
        ({"weights": {"encoder": 0.0}}, "encoder"),
        ({"weights": {"encoder": -1.0}}, "encoder"),
        ({"total": 0.5, "per_component": {"encoder": 0.3}}, "total"),
        ({"interface_ratio": 0.3}, "interfaces"),
    ],
)
def test_other_invalid_budgets(kwargs: dict, needle: str) -> None:
    with pytest.raises(PruneError, match=needle):
        Budget(**kwargs)


def test_valid_budget_edges_and_round_trip() -> None:
    b = Budget(default=0.0, per_component={"dynamics": 0.999}, protect=["reward"], round_to=8, weights={"qs": 2.0})
    assert b.protect == frozenset({"reward"})
    assert b.fraction("dynamics") == 0.999 and b.fraction("encoder") == 0.0 and b.fraction("reward") == 0.0
    assert Budget.from_dict(b.to_dict()) == b
    assert b.mentioned_components() == {"dynamics", "reward", "qs"}


@pytest.mark.parametrize(
    "budget",
    [
        Budget(default=0.5, per_component={"decoder": 0.3}),
        Budget(default=0.5, protect={"decoder"}),
        Budget(total=0.5, weights={"decoder": 2.0}),
    ],
    ids=["per_component", "protect", "weights"],
)
def test_unknown_component_names_list_the_known_ones(make_model, budget: Budget) -> None:
    model = make_model("tdmpc")
    with pytest.raises(PruneError) as info:
        prune(model, model.example_inputs(), budget)
    message = str(info.value)
    assert "decoder" in message
    for name in ("encoder", "dynamics", "reward", "policy", "qs"):
        assert name in message


def test_vanilla_mode_has_no_per_component_budgets(make_model) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match="vanilla"):
        prune(model, model.example_inputs(), Budget(default=0.2, per_component={"core": 0.5}), mode="vanilla")


def test_per_component_fractions_are_met(make_model) -> None:
    model = make_model("tdmpc")
    budget = Budget(default=0.2, per_component={"dynamics": 0.6, "policy": 0.0})
    report = prune(model, model.example_inputs(), budget).report
    assert abs(report.component("dynamics").achieved - 0.6) <= 0.05
    assert report.component("policy").achieved == 0.0
    for name in ("encoder", "reward", "qs"):
        assert abs(report.component(name).achieved - 0.2) <= 0.05


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_total_budget_is_met_model_wide(make_model, mode: str) -> None:
    model = make_model("branched")
    report = prune(model, model.example_inputs(), Budget(total=0.4), mode=mode).report
    assert report.target == 0.4
    assert abs(report.achieved - 0.4) <= 0.05
    assert all(row.requested is None for row in report.components)


def test_zero_budget_prunes_nothing(make_model) -> None:
    model = make_model("multipath")
    result = prune(model, model.example_inputs(), Budget())
    assert result.plan.groups == []
    assert result.report.params_after == result.report.params_before


# ---------------------------------------------------------------------------------------------------------------
# importance


def _removed(result) -> dict[tuple[str, ...], list[list[int]]]:
    return {tuple(g.roots): g.removed for g in result.plan.groups}


@pytest.mark.parametrize("importance", ["l1", "l2", "random"])
@pytest.mark.parametrize("name", ["tdmpc", "complex_cnn"])
def test_importances_run(make_model, name: str, importance: str) -> None:
    model = make_model(name)
    inputs = model.example_inputs()
    result = prune(model, inputs, Budget(default=0.5), importance=importance)
    assert result.plan.importance == importance
    assert result.report.importance == importance
    assert abs(result.report.achieved - 0.5) < 0.15
    result.model(*inputs)


def test_l1_and_l2_are_deterministic_and_differ_from_random(make_model) -> None:
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    runs = {imp: prune(model, inputs, Budget(default=0.5), importance=imp) for imp in ("l1", "l2", "random")}
    torch.manual_seed(123)  # the global RNG has nothing to do with magnitude importance
    again = prune(model, inputs, Budget(default=0.5), importance="l2")
    assert _removed(again) == _removed(runs["l2"])
    assert _removed(runs["random"]) != _removed(runs["l2"])
    assert _removed(runs["l1"]) != _removed(runs["random"])


def test_l2_keeps_the_largest_channels() -> None:
    """A layer with a few obviously large rows keeps exactly those."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    wrapped = nn.Sequential()
    wrapped.add_module("body", model)
    with torch.no_grad():
        model[0].weight.mul_(0.01)
        model[0].bias.zero_()
        model[2].weight.mul_(0.01)
        big = [1, 5, 6, 11]
        model[0].weight[big] *= 1000
        model[2].weight[:, big] *= 1000
    result = prune(wrapped, torch.randn(2, 8), Budget(default=0.7), importance="l2")
    kept = result.model.body[0].out_features
    assert kept >= 4
    (group,) = result.plan.groups
    assert not set(big) & set(group.removed[0])


def test_random_importance_is_seeded(make_model) -> None:
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    a = prune(model, inputs, Budget(default=0.5), importance="random", seed=1)
    torch.manual_seed(99)
    b = prune(model, inputs, Budget(default=0.5), importance="random", seed=1)
    c = prune(model, inputs, Budget(default=0.5), importance="random", seed=2)
    assert a.plan.to_json() == b.plan.to_json()
    assert _removed(a) != _removed(c)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def _tdmpc_loss(batch: tuple[torch.Tensor, ...]):
    obs, action = batch

    def loss_fn(model: nn.Module) -> torch.Tensor:
        next_z, reward, q, pi = model(obs, action)
        return F.mse_loss(reward, torch.ones_like(reward)) + q.pow(2).mean() + next_z.var() + pi.abs().mean()

    return loss_fn


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_taylor_importance_runs_and_leaves_no_grad(make_model, mode: str) -> None:
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    torch.manual_seed(5)
    batch = model.example_inputs(16)
    result = prune(model, inputs, Budget(default=0.5), importance=Taylor(_tdmpc_loss(batch)), mode=mode)
    assert result.plan.importance == "taylor"
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in result.model.parameters())
    assert abs(result.report.achieved - 0.5) <= 0.05
    l2 = prune(model, inputs, Budget(default=0.5), importance="l2", mode=mode)
    assert _removed(result) != _removed(l2)  # the gradients do matter
    result.model(*inputs)


def test_taylor_loss_must_be_a_scalar(make_model) -> None:
    model = make_model("simple")
    inputs = model.example_inputs()
    with pytest.raises(PruneError, match="scalar"):
        prune(model, inputs, Budget(default=0.5), importance=Taylor(lambda m: m(*inputs)))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("importance", "needle"), [("taylor", "loss"), ("l3", "l3"), ("LAMP", "LAMP")])
def test_bad_importance_names(make_model, importance: str, needle: str) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match=needle):
        prune(model, model.example_inputs(), Budget(default=0.5), importance=importance)


# ---------------------------------------------------------------------------------------------------------------
# per-component weighting


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_component_weight_protects_it_from_a_model_wide_budget(make_model, mode: str) -> None:
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    plain = prune(model, inputs, Budget(total=0.5), mode=mode).report
    weighted = prune(model, inputs, Budget(total=0.5, weights={"encoder": 10.0}), mode=mode).report
    assert plain.component("encoder").achieved > 0.3
    assert weighted.component("encoder").achieved < plain.component("encoder").achieved - 0.25
    assert abs(weighted.achieved - 0.5) <= 0.05  # the others pay for it
    assert weighted.component("dynamics").achieved > plain.component("dynamics").achieved


def test_low_weight_prunes_a_component_more(make_model) -> None:
    model = make_model("simple")
    inputs = model.example_inputs()
    plain = prune(model, inputs, Budget(total=0.4)).report
    cheap = prune(model, inputs, Budget(total=0.4, weights={"core": 0.2})).report
    assert cheap.component("core").achieved > plain.component("core").achieved + 0.1


def test_weights_without_cross_component_ranking_are_refused(make_model) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match="only act when channels are ranked across components"):
        prune(model, model.example_inputs(), Budget(default=0.5, weights={"encoder": 2.0}))


def test_prune_leaves_the_global_rng_alone(make_model) -> None:
    model = make_model("complex_cnn")
    inputs = model.example_inputs()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    prune(model, inputs, Budget(default=0.3), importance="l2")
    assert torch.equal(torch.rand(3), expected)
