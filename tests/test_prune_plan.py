"""PrunePlan: JSON round trip, replay on a fresh instance, weights, and plans that do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from edgeprune.models import create_model
from edgeprune.prune import (
    Budget,
    PruneError,
    PrunePlan,
    architecture_hash,
    load_pruned,
    prune,
    save_weights,
)

CASES = [
    ("simple", "component", Budget(default=0.5)),
    ("branched", "component", Budget(default=0.4, interfaces=True, interface_ratio=0.3)),
    ("multipath", "vanilla", Budget(default=0.5)),
    ("recursive", "component", Budget(default=0.6, round_to=4)),
    ("tdmpc", "component", Budget(default=0.5, per_component={"dynamics": 0.3}, protect={"reward"})),
    ("tdmpc", "vanilla", Budget(total=0.6)),
    ("complex_cnn", "component", Budget(default=0.5, interfaces=True, interface_ratio=0.25)),
    ("complex_cnn", "vanilla", Budget(default=0.5)),
]
IDS = [f"{n}-{m}" for n, m, _ in CASES]


def _fresh(name: str, seed: int = 7, **kwargs: object) -> nn.Module:
    """A fresh instance with other weights than the pruned one: only the architecture may matter."""
    torch.manual_seed(seed)
    return create_model(name, **kwargs).eval()


def _flat(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(t.shape) for n, t in model.state_dict().items()}


@pytest.mark.parametrize(("name", "mode", "budget"), CASES, ids=IDS)
def test_plan_round_trips_and_replays(make_model, tmp_path: Path, name: str, mode: str, budget: Budget) -> None:
    model = make_model(name)
    inputs = model.example_inputs()
    result = prune(model, inputs, budget, mode=mode)
    plan = result.plan
    assert plan.groups and plan.mode == mode
    assert plan.arch_hash == architecture_hash(model)

    text = plan.to_json()
    data = json.loads(text)
    assert data["arch_hash"] == plan.arch_hash and data["groups"]
    again = PrunePlan.from_json(text)
    assert again == plan and again.to_json() == text and again.digest == plan.digest

    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = PrunePlan.load(path)
    assert loaded == plan

    replayed = loaded.apply(_fresh(name), inputs)
    assert _shapes(replayed) == _shapes(result.model)
    assert architecture_hash(replayed) == architecture_hash(result.model)

    weights = tmp_path / "weights.pt"
    save_weights(result.model, weights)
    state = torch.load(weights, weights_only=True)
    assert set(state) == set(result.model.state_dict())
    rebuilt = load_pruned(_fresh(name), loaded, inputs, weights).eval()
    torch.manual_seed(3)
    x = model.example_inputs(5)
    with torch.no_grad():
        for a, b in zip(_flat(rebuilt(*x)), _flat(result.model.eval()(*x)), strict=True):
            assert torch.equal(a, b)


def test_plan_indices_are_valid(make_model) -> None:
    model = make_model("tdmpc")
    result = prune(model, model.example_inputs(), Budget(default=0.5))
    modules = dict(model.named_modules())
    for g in result.plan.groups:
        assert len(g.roots) == len(g.removed) == len(g.graphs)
        for root, idxs in zip(g.roots, g.removed, strict=True):
            width = modules[root].out_features
            assert idxs == sorted(set(idxs)) and idxs
            assert idxs[0] >= 0 and idxs[-1] < width and len(idxs) < width


def test_replay_is_deterministic(make_model) -> None:
    model = make_model("complex_cnn")
    inputs = model.example_inputs()
    plan = prune(model, inputs, Budget(default=0.5)).plan
    a, b = plan.apply(_fresh("complex_cnn"), inputs), plan.apply(_fresh("complex_cnn"), inputs)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)


@pytest.mark.parametrize(
    "other",
    [
        lambda: create_model("tdmpc", hidden_dim=64),
        lambda: create_model("tdmpc", num_q=3),
        lambda: create_model("tdmpc", obs_dim=4),
    ],
    ids=["hidden_dim", "num_q", "obs_dim"],
)
def test_plan_on_another_architecture_names_the_hash(make_model, other) -> None:
    model = make_model("tdmpc")
    plan = prune(model, model.example_inputs(), Budget(default=0.5)).plan
    target = other()
    with pytest.raises(PruneError, match="hash") as info:
        plan.apply(target, target.example_inputs())
    assert plan.arch_hash[:12] in str(info.value)


def test_plan_on_an_already_pruned_model_is_rejected(make_model) -> None:
    model = make_model("simple")
    result = prune(model, model.example_inputs(), Budget(default=0.5))
    with pytest.raises(PruneError, match="hash"):
        result.plan.apply(result.model, model.example_inputs())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        "null",
        '{"format": "something-else/1"}',
        '{"format": "edgeprune-plan/1"}',
        '{"format": "edgeprune-plan/1", "groups": [{"id": 0}]}',
    ],
    ids=["empty", "truncated", "list", "null", "format", "no-groups", "bad-group"],
)
def test_corrupt_plan_json_is_a_prune_error(text: str) -> None:
    with pytest.raises(PruneError, match="not an edgeprune plan"):
        PrunePlan.from_json(text)


def test_truncated_plan_file_is_a_prune_error(make_model, tmp_path: Path) -> None:
    model = make_model("simple")
    plan = prune(model, model.example_inputs(), Budget(default=0.5)).plan
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json()[:-20])
    with pytest.raises(PruneError):
        PrunePlan.load(path)


def test_weights_that_do_not_fit_are_a_prune_error(make_model, tmp_path: Path) -> None:
    model = make_model("simple")
    inputs = model.example_inputs()
    plan = prune(model, inputs, Budget(default=0.5)).plan
    weights = tmp_path / "unpruned.pt"
    save_weights(model, weights)  # the original, unpruned weights
    with pytest.raises(PruneError, match="do not fit"):
        load_pruned(_fresh("simple"), plan, inputs, weights)


def test_save_weights_never_pickles_modules(make_model, tmp_path: Path) -> None:
    model = make_model("tdmpc")
    result = prune(model, model.example_inputs(), Budget(default=0.5))
    path = tmp_path / "w.pt"
    save_weights(result.model, path)
    state = torch.load(path, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind
