"""Constraints Torch-Pruning alone gets wrong: protection, model outputs, blocks, ties, ensembles, round_to."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch_pruning as tp
from torch import nn

from edgeprune.models import SimNorm
from edgeprune.prune import Budget, Components, Constraints, PruneError, build_groups, prune, trace_components

LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def _flat(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _out_width(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: _out_width(m) for n, m in model.named_modules() if isinstance(m, LAYERS)}


# ---------------------------------------------------------------------------------------------------------------
# protected components


PROTECT_CASES = [
    ("simple", "core", "component", {}),
    ("simple", "core", "vanilla", {}),
    ("tdmpc", "reward", "component", {"interfaces": True, "interface_ratio": 0.5}),
    ("tdmpc", "reward", "vanilla", {}),
    ("branched", "branch_a", "component", {"interfaces": True, "interface_ratio": 0.5}),
    ("branched", "trunk", "vanilla", {}),
    ("multipath", "mixer", "component", {"interfaces": True, "interface_ratio": 0.4}),
    ("multipath", "mixer", "vanilla", {}),
    ("recursive", "cell", "component", {"interfaces": True, "interface_ratio": 0.5}),
    ("recursive", "feedback", "vanilla", {}),
    ("complex_cnn", "stage2", "component", {"interfaces": True, "interface_ratio": 0.5}),
    ("complex_cnn", "stage1", "vanilla", {}),
]


@pytest.mark.parametrize(("name", "protected", "mode", "extra"), PROTECT_CASES)
@pytest.mark.parametrize("fraction", [0.5, 0.8])
def test_protected_component_is_bit_for_bit_unchanged(
    make_model, name: str, protected: str, mode: str, extra: dict, fraction: float
) -> None:
    model = make_model(name)
    inputs = model.example_inputs()
    comps = Components.from_children(model)
    result = prune(model, inputs, Budget(default=fraction, protect={protected}, **extra), mode=mode)

    before = {n: p for n, p in model.named_parameters() if comps.owner(n) == protected}
    after = {n: p for n, p in result.model.named_parameters() if comps.owner(n) == protected}
    assert before and list(after) == list(before)
    for n, p in before.items():
        assert after[n].dtype == p.dtype and torch.equal(after[n], p), n
    buffers = {n: b for n, b in result.model.named_buffers() if comps.owner(n) == protected}
    for n, b in model.named_buffers():
        if comps.owner(n) == protected:
            assert torch.equal(buffers[n], b), n
    # its input and output widths too (Torch-Pruning's ignored_layers only keeps the outputs)
    g_before, _ = trace_components(model, inputs, comps)
    g_after, _ = trace_components(result.model, inputs, comps)
    t_before, t_after = g_before.components[protected], g_after.components[protected]
    assert t_after.input_shapes == t_before.input_shapes
    assert t_after.output_shapes == t_before.output_shapes
    # ... while the rest of the model really was pruned
    rest = _n_params(model) - sum(p.numel() for p in before.values())
    assert _n_params(model) - _n_params(result.model) > 0.3 * fraction * rest
    row = result.report.component(protected)
    assert row.protected and row.achieved == 0 and row.params_after == row.params_before
    for g in result.plan.groups:
        assert protected not in g.components


def test_protected_consumer_of_an_interface_keeps_it_while_other_interfaces_shrink(make_model) -> None:
    """branch_c feeds two heads and is cut with interfaces=True; trunk feeds protected branch_a and is not."""
    model = make_model("branched")
    inputs = model.example_inputs()
    result = prune(model, inputs, Budget(default=0.5, protect={"branch_a"}, interfaces=True, interface_ratio=0.5))
    pruned = result.model
    assert pruned.branch_c[-2].out_features == 16  # an interface that was pruned by the ratio
    assert pruned.head_value[0].in_features < 96
    assert pruned.trunk[-2].out_features == 64  # the interface protected branch_a consumes
    assert pruned.branch_a[0].in_features == 64
    # branch_a's output feeds an add with branch_b: branch_b keeps that width too
    assert pruned.branch_a[-2].out_features == pruned.branch_b[-2].out_features == 32
    assert any(g.kind == "interface" for g in result.plan.groups)


# ---------------------------------------------------------------------------------------------------------------
# model outputs


@pytest.mark.parametrize("mode", ["component", "vanilla"])
@pytest.mark.parametrize("fraction", [0.5, 0.8])
def test_output_heads_keep_their_width(make_model, mode: str, fraction: float) -> None:
    model = make_model("tdmpc", action_dim=4)
    inputs = model.example_inputs()
    extra = {"interfaces": True, "interface_ratio": 0.5} if mode == "component" else {}
    result = prune(model, inputs, Budget(default=fraction, **extra), mode=mode)
    pruned = result.model
    assert pruned.policy[-2].out_features == 4  # the action dims (Tanh is the last module)
    latent = pruned.encoder[3].out_features  # next_z is declared state: it follows the latent (tied)
    assert pruned.dynamics[6].out_features == latent
    assert pruned.reward[-1].out_features == 1
    assert [q[-1].out_features for q in pruned.qs] == [1, 1]
    next_z, reward, q, pi = _flat(pruned(*inputs))
    assert (next_z.shape, reward.shape, q.shape, pi.shape) == ((2, latent), (2, 1), (2, 2), (2, 4))
    assert pruned.policy[-5].out_features < 128  # the policy itself was pruned


def test_torch_pruning_alone_does_prune_these_heads(make_model) -> None:
    """The reason for the test above: plain Torch-Pruning shrinks the dynamics and policy outputs."""
    model = make_model("tdmpc", action_dim=4)
    inputs = model.example_inputs()
    pruner = tp.pruner.MetaPruner(
        model,
        inputs,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=0.5,
        root_module_types=[nn.Linear],
    )
    pruner.step()
    assert model.policy[-2].out_features < 4 or model.dynamics[6].out_features < 32


# ---------------------------------------------------------------------------------------------------------------
# block constraints (SimNorm)


class SimNormNet(nn.Module):
    """``encoder`` ends in Linear(…, 32) + SimNorm(8): the latent interface to ``head`` is prunable."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), SimNorm(8))
        self.head = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def _simnorm_net() -> tuple[SimNormNet, torch.Tensor]:
    torch.manual_seed(0)
    return SimNormNet().eval(), torch.randn(2, 16)


def _whole_blocks(idxs: list[int], block: int) -> bool:
    blocks = {i // block for i in idxs}
    return set(idxs) == {b * block + j for b in blocks for j in range(block)}


def _removed_at(result, root: str) -> list[int]:
    found = [idxs for g in result.plan.groups for r, idxs in zip(g.roots, g.removed, strict=True) if r == root]
    assert len(found) <= 1
    return found[0] if found else []


@pytest.mark.parametrize("ratio", [0.2, 0.3, 0.5, 0.6])
def test_block_constraint_removes_whole_aligned_blocks(ratio: float) -> None:
    model, x = _simnorm_net()
    result = prune(
        model,
        x,
        Budget(default=0.3, interfaces=True, interface_ratio=ratio),
        constraints=Constraints(blocks={"encoder.2": 8}),
    )
    removed = _removed_at(result, "encoder.2")
    assert _whole_blocks(removed, 8)
    latent = result.model.encoder[2].out_features
    assert latent == 32 - len(removed)
    # whole blocks, rounded so that at least the asked-for channels are kept
    assert latent == math.ceil((32 - round(32 * ratio)) / 8) * 8
    assert result.model.head[0].in_features == latent
    z = result.model.encoder(x)
    torch.testing.assert_close(z.view(2, -1, 8).sum(-1), torch.ones(2, latent // 8))
    assert result.model(x).shape == (2, 4)


def test_block_constraint_is_what_makes_it_work() -> None:
    """Without the block constraint the same budget breaks SimNorm's reshape or removes partial blocks."""
    model, x = _simnorm_net()
    with pytest.raises(PruneError, match="no longer runs"):
        prune(model, x, Budget(default=0.3, interfaces=True, interface_ratio=0.3))
    partial = prune(model, x, Budget(default=0.3, interfaces=True, interface_ratio=0.25))
    removed = _removed_at(partial, "encoder.2")
    assert len(removed) == 8 and not _whole_blocks(removed, 8)


def test_tdmpc_latent_is_pruned_in_blocks_when_not_tied(make_model) -> None:
    model = make_model("tdmpc")
    declared = model.pruning_constraints()
    untied = Constraints(blocks=declared.blocks, ensembles=declared.ensembles)
    result = prune(
        model, model.example_inputs(), Budget(default=0.5, interfaces=True, interface_ratio=0.3), constraints=untied
    )
    latent = result.model.encoder[3].out_features
    assert latent < 32 and latent % 8 == 0
    assert _whole_blocks(_removed_at(result, "encoder.3"), 8)
    assert result.model.dynamics[6].out_features == 32  # a model output: never pruned


def test_block_size_must_divide_the_width() -> None:
    model, x = _simnorm_net()
    with pytest.raises(PruneError, match=r"encoder\.2"):
        prune(model, x, Budget(default=0.3), constraints=Constraints(blocks={"encoder.2": 5}))


def test_constraints_naming_unknown_modules_are_rejected(make_model) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match=r"encoder\.9"):
        prune(model, model.example_inputs(), Budget(default=0.3), constraints=Constraints(blocks={"encoder.9": 8}))


# ---------------------------------------------------------------------------------------------------------------
# ties


class TwinNet(nn.Module):
    """``enc`` has two hidden layers of 48; ``left``/``right`` each have a hidden layer of 40."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(16, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 32))
        self.left = nn.Sequential(nn.Linear(32, 40), nn.ReLU(), nn.Linear(40, 4))
        self.right = nn.Sequential(nn.Linear(32, 40), nn.ReLU(), nn.Linear(40, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        return self.left(h), self.right(h)


def _twin_net() -> tuple[TwinNet, torch.Tensor]:
    torch.manual_seed(0)
    return TwinNet().eval(), torch.randn(2, 16)


def _kept_rows(original: nn.Linear, pruned: nn.Linear) -> list[int]:
    """Which original output rows the pruned layer kept (matched by bias and weight values)."""
    kept = []
    for i in range(pruned.out_features):
        matches = [j for j in range(original.out_features) if torch.equal(original.bias[j], pruned.bias[i])]
        assert len(matches) == 1
        kept.append(matches[0])
    return kept


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_tied_dims_are_pruned_with_identical_indices(mode: str) -> None:
    model, x = _twin_net()
    result = prune(model, x, Budget(default=0.5), mode=mode, constraints=Constraints(ties=[("enc.0", "enc.2")]))
    pruned = result.model
    assert pruned.enc[0].out_features == pruned.enc[2].out_features < 48
    (group,) = [g for g in result.plan.groups if "enc.0" in g.roots]
    assert set(group.roots) == {"enc.0", "enc.2"}
    assert group.removed[0] == group.removed[1]
    kept0, kept2 = _kept_rows(model.enc[0], pruned.enc[0]), _kept_rows(model.enc[2], pruned.enc[2])
    assert kept0 == kept2 == sorted(set(range(48)) - set(group.removed[0]))


@pytest.mark.parametrize("interfaces", [False, True])
def test_tie_across_components_prunes_both_or_neither(interfaces: bool) -> None:
    model, x = _twin_net()
    extra = {"interfaces": True, "interface_ratio": 0.5} if interfaces else {}
    result = prune(model, x, Budget(default=0.5, **extra), constraints=Constraints(ties=[("left.0", "right.0")]))
    left, right = result.model.left[0], result.model.right[0]
    assert left.out_features == right.out_features
    if interfaces:
        assert left.out_features == 20
        assert _kept_rows(model.left[0], left) == _kept_rows(model.right[0], right)
    else:
        assert left.out_features == 40  # a cross-component group: frozen unless interfaces=True


def test_untied_dims_differ() -> None:
    """Control for the two tests above: without the tie the two layers are cut independently."""
    model, x = _twin_net()
    result = prune(model, x, Budget(default=0.5), mode="vanilla")
    assert _kept_rows(model.left[0], result.model.left[0]) != _kept_rows(model.right[0], result.model.right[0])


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_tie_to_a_frozen_dimension_freezes_the_other(make_model, mode: str) -> None:
    """Without declaring next_z a state output, the dynamics output is an external output: the tied latent stays 32."""
    model = make_model("tdmpc")
    inputs = model.example_inputs()
    extra = {"interfaces": True, "interface_ratio": 0.5} if mode == "component" else {}
    external = dataclasses.replace(model.pruning_constraints(), state_outputs=())
    result = prune(model, inputs, Budget(default=0.8, **extra), mode=mode, constraints=external)
    assert result.model.encoder[3].out_features == 32
    assert result.model.dynamics[6].out_features == 32
    (latent,) = [g for g in result.groups if "encoder.3" in g.roots]
    assert set(latent.roots) == {"encoder.3", "dynamics.6"} and latent.frozen
    assert not any("encoder.3" in g.roots for g in result.plan.groups)


def test_tie_of_unequal_widths_is_an_error() -> None:
    model, x = _twin_net()
    with pytest.raises(PruneError, match=r"enc\.0"):
        prune(model, x, Budget(default=0.5), constraints=Constraints(ties=[("enc.0", "left.0")]))


# ---------------------------------------------------------------------------------------------------------------
# ensembles


def _q_widths(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(_out_width(m) for m in q if isinstance(m, nn.Linear)) for q in model.qs]


ENSEMBLE_BUDGETS = [
    ("component", Budget(default=0.1), "l2"),
    ("component", Budget(default=0.5), "l2"),
    ("component", Budget(default=0.8), "l2"),
    ("component", Budget(default=0.3, per_component={"qs": 0.7}, round_to=4), "l1"),
    ("component", Budget(total=0.5), "l2"),
    ("component", Budget(total=0.4), "random"),
    ("vanilla", Budget(default=0.5), "l2"),
    ("vanilla", Budget(total=0.3), "random"),
]


@pytest.mark.parametrize(("mode", "budget", "importance"), ENSEMBLE_BUDGETS)
def test_ensemble_members_keep_equal_widths(make_model, mode: str, budget: Budget, importance: str) -> None:
    model = make_model("tdmpc")
    result = prune(model, model.example_inputs(), budget, mode=mode, importance=importance, seed=3)
    q0, q1 = _q_widths(result.model)
    assert q0 == q1
    assert q0 != _q_widths(model)[0]  # the ensemble was pruned, not just left alone
    assert result.model(*model.example_inputs())[2].shape == (2, 2)


@pytest.mark.parametrize("mode", ["component", "vanilla"])
def test_without_the_ensemble_constraint_widths_drift(make_model, mode: str) -> None:
    """Control: the declared ensemble is what keeps the Q heads equal."""
    model = make_model("tdmpc")
    declared = model.pruning_constraints()
    loose = Constraints(blocks=declared.blocks, ties=declared.ties)
    result = prune(model, model.example_inputs(), Budget(default=0.5), mode=mode, constraints=loose)
    q0, q1 = _q_widths(result.model)
    assert q0 != q1


# ---------------------------------------------------------------------------------------------------------------
# round_to


ROUND_CASES = [
    ("simple", "component", 0.2, 8),
    ("simple", "component", 0.5, 8),
    ("branched", "vanilla", 0.5, 8),
    ("multipath", "component", 0.3, 16),
    ("recursive", "component", 0.6, 8),
    ("tdmpc", "component", 0.1, 8),
    ("tdmpc", "component", 0.5, 16),
    ("tdmpc", "vanilla", 0.5, 8),
    ("complex_cnn", "component", 0.5, 8),
    ("complex_cnn", "vanilla", 0.3, 8),
]


@pytest.mark.parametrize(("name", "mode", "fraction", "round_to"), ROUND_CASES)
def test_round_to_keeps_multiples_and_never_prunes_more_than_asked(
    make_model, name: str, mode: str, fraction: float, round_to: int
) -> None:
    """Torch-Pruning rounds kept widths down and so removes more than asked; ours never exceeds the budget."""
    model = make_model(name)
    inputs = model.example_inputs()
    rounded = prune(model, inputs, Budget(default=fraction, round_to=round_to), mode=mode)
    original, w_rounded = _widths(model), _widths(rounded.model)
    assert w_rounded != original
    for path, width in w_rounded.items():
        assert width == original[path] or width % round_to == 0, f"{path}: {width}"
    if mode == "vanilla":  # one model-wide scope
        assert rounded.report.achieved <= fraction + 1e-9
    else:
        for row in rounded.report.components:
            assert row.achieved <= fraction + 1e-9, row.name
            if abs(row.achieved - fraction) > 0.05:
                assert row.note, row.name  # the report says why it could not land closer
    assert [t.shape for t in _flat(rounded.model(*inputs))] == [t.shape for t in _flat(model(*inputs))]


def test_round_to_lands_within_reach_of_the_budget(make_model) -> None:
    """tdmpc's 128-wide hidden layers in steps of 8 can reach 30 % of dynamics to within 5 pp."""
    model = make_model("tdmpc")
    result = prune(model, model.example_inputs(), Budget(per_component={"dynamics": 0.3}, round_to=8))
    row = result.report.component("dynamics")
    assert 0.25 <= row.achieved <= 0.3


class OneGroupNet(nn.Module):
    """``enc`` has exactly one prunable group (its hidden layer of 20): what the budget asks is unambiguous."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(16, 20), nn.ReLU(), nn.Linear(20, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(x))


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7])
def test_round_to_rounds_the_kept_width_up(fraction: float) -> None:
    torch.manual_seed(0)
    model, x = OneGroupNet().eval(), torch.randn(2, 16)
    params = _n_params(model.enc)
    per_channel = 16 + 1 + 32  # a hidden channel's row, bias and column
    asked = 20 - fraction * params / per_channel  # kept channels that remove exactly the fraction
    result = prune(model, x, Budget(default=fraction, round_to=8))
    kept = result.model.enc[0].out_features
    assert kept in (8, 16, 20)
    assert kept >= asked - 1e-9, f"kept {kept} channels, the budget asks to keep {asked:.1f}"
    assert kept < asked + 8
    row = result.report.component("enc")
    assert row.achieved <= fraction + 1e-9
    if abs(row.achieved - fraction) > 0.05:
        assert row.note  # the report says why it could not land closer


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.45, 0.7])
def test_round_to_on_interfaces_keeps_at_least_what_the_ratio_asks(ratio: float) -> None:
    model, x = _twin_net()
    result = prune(model, x, Budget(default=0.0, interfaces=True, interface_ratio=ratio, round_to=8))
    width = result.model.enc[4].out_features  # enc -> left/right interface (32 channels)
    assert width % 8 == 0
    assert width >= 32 * (1 - ratio) - 1e-9
    assert width - 8 < 32 * (1 - ratio) or width == 32


def test_groups_narrower_than_round_to_are_left_alone(make_model) -> None:
    model = make_model("recursive")
    result = prune(model, model.example_inputs(), Budget(default=0.5, round_to=64))
    widths, original = _widths(result.model), _widths(model)
    for path, width in widths.items():
        assert width == original[path] or width % 64 == 0
    skipped = [g for g in result.report.groups if g.removed == 0]
    assert skipped and all(g.reason for g in skipped)


def test_build_groups_records_constraints(make_model) -> None:
    model = make_model("tdmpc")
    groups = build_groups(model, model.example_inputs(), constraints=model.pruning_constraints())
    by_root = {r: g for g in groups for r in g.roots}
    assert by_root["encoder.3"] is by_root["dynamics.6"]
    assert by_root["encoder.3"].block == 8
    assert by_root["qs.0.0"].ensemble is not None
    assert by_root["qs.0.0"].ensemble == by_root["qs.1.0"].ensemble
    assert by_root["qs.0.3"].ensemble == by_root["qs.1.3"].ensemble != by_root["qs.0.0"].ensemble


def test_an_output_layer_behind_an_identity_keeps_its_outputs() -> None:
    """``nn.Identity`` returns the tensor the head made: the head is still what reaches the output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 8), nn.Identity()).eval()
    x = torch.randn(2, 4)
    pruned = prune(model, (x,), Budget(total=0.5), mode="vanilla").model
    assert pruned[2].out_features == 8 and pruned[0].out_features < 32
