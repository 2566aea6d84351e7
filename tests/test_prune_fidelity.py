"""``output_fidelity``: the one data-free stand-in metric (sensitivity proxy, ``optimize --eval fidelity``, sweeps)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgeprune.models import create_model
from edgeprune.prune import Budget, PruneError, output_fidelity, prune


class TwoHeads(nn.Module):
    """Two outputs of very different scale: a copy with both heads perturbed alike scores alike."""

    def __init__(self, big: float) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.small, self.large = nn.Linear(8, 2), nn.Linear(8, 2)
        self.big = big

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.body(x))
        return self.small(h), self.big * self.large(h)


def test_unchanged_is_zero_and_pruning_costs_fidelity() -> None:
    torch.manual_seed(0)
    model = create_model("tdmpc").eval()
    evaluate = output_fidelity(model, model.example_inputs(16))
    assert evaluate(model) == 0.0
    pruned = prune(model, model.example_inputs(1), Budget(total=0.5)).model
    assert evaluate(pruned) < 0
    batch_of_one = output_fidelity(model, model.example_inputs(1))  # the CLI's inputs: one sample
    assert batch_of_one(model) == 0.0 and -10 < batch_of_one(pruned) < 0


def test_outputs_weigh_the_same_whatever_their_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    scores = []
    for big in (1.0, 1000.0):
        torch.manual_seed(1)
        model = TwoHeads(big).eval()
        evaluate = output_fidelity(model, x)
        noisy = TwoHeads(big).eval()
        noisy.load_state_dict(model.state_dict())
        with torch.no_grad():
            noisy.body.weight.add_(0.1 * torch.randn_like(noisy.body.weight))
        scores.append(evaluate(noisy))
    assert scores[0] < 0 and scores[1] == pytest.approx(scores[0], rel=1e-4)


def test_a_different_model_is_a_clear_error() -> None:
    torch.manual_seed(0)
    model = TwoHeads(1.0).eval()
    evaluate = output_fidelity(model, torch.randn(8, 4))
    with pytest.raises(PruneError, match="returns 1 output tensors, the reference 2"):
        evaluate(nn.Linear(4, 2))
