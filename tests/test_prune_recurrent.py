"""Hidden-size pruning of GRU/LSTM layers and cells: groups, exact parameter counts, shapes, plan replay."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

from edgeprune.models.rssm import RSSMStyle
from edgeprune.prune import Budget, PruneError, PrunePlan, build_groups, prune
from edgeprune.prune.allocate import ParamAccount
from edgeprune.prune.counting import params_per_component
from edgeprune.prune.tracing import flatten_tensors


class GruMiddle(nn.Module):
    """The issue's model: the middle component is ``nn.GRU(48, 64, batch_first=True)``."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 48))
        self.core = nn.GRU(48, 64, batch_first=True)
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.core(self.enc(x))
        return self.head(y)


class LstmWorldModel(nn.Module):
    """Two-layer time-major LSTM core inside a component; its final state read by a value head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 24))
        self.core = nn.Sequential(nn.Linear(24, 24), nn.ReLU(), nn.LSTM(24, 40, num_layers=2))
        self.reward = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 1))
        self.value = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, (h_n, _) = self.core(self.encoder(obs))
        return self.reward(y), self.value(h_n[-1])


class CellRollout(nn.Module):
    """A cell stepped over the actions (state fed back each step), observation encoded once."""

    def __init__(self, cell: type[nn.RNNCellBase]) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 16))
        self.cell = cell(16 + 2, 48)
        self.head = nn.Sequential(nn.Linear(48, 24), nn.ReLU(), nn.Linear(24, 3))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        e = self.enc(obs)
        h = e.new_zeros(e.shape[0], self.cell.hidden_size)
        state = (h, h) if isinstance(self.cell, nn.LSTMCell) else h
        outs = []
        for t in range(actions.shape[1]):
            state = self.cell(torch.cat([e, actions[:, t]], -1), state)
            outs.append(self.head(state[0] if isinstance(state, tuple) else state))
        return torch.stack(outs, 1)


def _rollout_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 5), torch.randn(2, 3, 2)


HALF = Budget(default=0.5)
CASES = {
    "gru": (GruMiddle, lambda: (torch.randn(2, 5, 10),), HALF, "core"),
    "lstm": (LstmWorldModel, lambda: (torch.randn(4, 2, 6),), Budget(default=0.5, protect={"encoder"}), "core.2"),
    "grucell": (lambda: CellRollout(nn.GRUCell), _rollout_inputs, HALF, "cell"),
    "lstmcell": (lambda: CellRollout(nn.LSTMCell), _rollout_inputs, HALF, "cell"),
    # the RSSM with its observation decoder: one more reader of the GRU state h and of the latent z
    "rssm+decoder": (lambda: RSSMStyle(decoder=True), lambda: (torch.randn(2, 8),), HALF, "dynamics.cell"),
}


@pytest.mark.parametrize("case", CASES)
def test_hidden_size_is_pruned_to_budget(case: str) -> None:
    factory, inputs, budget, rnn_path = CASES[case]
    torch.manual_seed(0)
    model, args = factory().eval(), inputs()
    result = prune(model, args, budget, mode="component")
    pruned = result.model
    rnn, before = pruned.get_submodule(rnn_path), model.get_submodule(rnn_path)
    assert rnn.hidden_size < before.hidden_size
    for row in result.report.components:
        if row.protected:
            assert row.params_after == row.params_before
        else:
            assert 0.45 <= row.achieved <= 0.55, row
    with torch.no_grad():
        out_a, out_b = model(*args), pruned(*args)
    assert [t.shape for t in flatten_tensors(out_a)] == [t.shape for t in flatten_tensors(out_b)]


@pytest.mark.parametrize("case", CASES)
def test_parameter_account_is_exact_and_plan_replays(case: str) -> None:
    factory, inputs, budget, _rnn_path = CASES[case]
    torch.manual_seed(0)
    model, args = factory().eval(), inputs()
    groups = build_groups(model, args, mode="component")
    result = prune(model, args, budget, mode="component")
    counts = {g.id: len(g.removed[0]) for g in result.plan.groups}
    predicted = ParamAccount(model, groups).removed(counts)
    actual = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in result.model.parameters())
    assert predicted == actual

    torch.manual_seed(1)
    fresh = factory().eval()
    PrunePlan.from_json(result.plan.to_json()).apply(fresh, args)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in result.model.state_dict().items()
    }
    fresh.load_state_dict(result.model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(*args), result.model(*args), rtol=0, atol=0)


def test_pruned_units_are_the_removed_rows_of_every_gate() -> None:
    """Keeping hidden units k must equal slicing rows k of each gate and columns k of weight_hh."""
    torch.manual_seed(0)
    model, args = GruMiddle().eval(), (torch.randn(2, 5, 10),)
    result = prune(model, args, Budget(default=0.5), mode="component")
    (planned,) = [g for g in result.plan.groups if g.roots == ["core"]]
    keep = torch.tensor([i for i in range(64) if i not in set(planned.removed[0])])
    rows = torch.cat([keep + 64 * g for g in range(3)])
    old, new = model.core, result.model.core
    torch.testing.assert_close(new.weight_hh_l0, old.weight_hh_l0[rows][:, keep], rtol=0, atol=0)
    torch.testing.assert_close(new.bias_ih_l0, old.bias_ih_l0[rows], rtol=0, atol=0)
    (head,) = [g for g in result.plan.groups if g.roots == ["head.0"]]
    head_rows = [i for i in range(32) if i not in set(head.removed[0])]
    torch.testing.assert_close(result.model.head[0].weight, model.head[0].weight[head_rows][:, keep], rtol=0, atol=0)


def test_protected_reader_keeps_the_hidden_size_and_says_why() -> None:
    torch.manual_seed(0)
    model, args = LstmWorldModel().eval(), (torch.randn(4, 2, 6),)
    result = prune(model, args, Budget(default=0.5, protect={"value"}), mode="component")
    assert result.model.core[2].hidden_size == 40
    reasons = {tuple(g.roots): g.reason for g in result.report.groups}
    assert reasons[("core.2",)] == "protected: value"
    assert params_per_component(result.model, result.groups.components)["value"] == sum(
        p.numel() for p in model.value.parameters()
    )


def test_bidirectional_is_refused_with_the_way_out() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.GRU(8, 16, bidirectional=True))
    with pytest.raises(PruneError, match="bidirectional") as err:
        build_groups(model, torch.randn(3, 2, 4), mode="vanilla")
    assert "unidirectional" in str(err.value)


def test_recurrent_weights_count_in_the_importance() -> None:
    """Readers that cannot tell hidden units apart: the GRU's own (zeroed) weights decide which go."""
    torch.manual_seed(0)
    model, args = GruMiddle().eval(), (torch.randn(2, 5, 10),)
    weak = list(range(50, 60))
    with torch.no_grad():
        model.head[0].weight.fill_(0.1)
        for name in ("weight_ih_l0", "weight_hh_l0"):
            w = getattr(model.core, name).view(3, 64, -1)
            w[:, weak] = 0
        model.core.weight_hh_l0[:, weak] = 0
    result = prune(model, args, Budget(default=0.5), mode="component")
    (planned,) = [g for g in result.plan.groups if g.roots == ["core"]]
    assert set(weak) <= set(planned.removed[0]) and len(planned.removed[0]) <= 40  # not all-or-nothing on ties


def test_traced_models_are_not_kept_alive() -> None:
    """The input-side nodes live on their layers, not in a module-level cache that would pin every model."""
    model = GruMiddle().eval()
    build_groups(model, (torch.randn(2, 5, 10),), mode="component")
    ref = weakref.ref(model.core)
    del model
    gc.collect()
    assert ref() is None
