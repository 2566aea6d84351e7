"""Bad input gets a clear PruneError with our message on top, never a bare library traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.prune import Budget, Components, PruneError, build_groups, prune, trace_components

# ---------------------------------------------------------------------------------------------------------------
# a forward that fails, inputs of the wrong type


def test_failing_forward_is_explained(make_model) -> None:
    model = make_model("tdmpc")
    obs, _ = model.example_inputs()
    with pytest.raises(PruneError) as info:
        prune(model, obs, Budget(default=0.5))  # the action is missing
    message = str(info.value)
    assert message.startswith("TDMPCStyle forward failed on the example inputs [(2, 3)]")
    assert "expected:" in message and "fix:" in message
    assert isinstance(info.value.__cause__, TypeError)


@pytest.mark.parametrize("entry", ["prune", "build_groups", "trace_components"])
def test_wrong_input_shape_is_explained(make_model, entry: str) -> None:
    model = make_model("simple")
    bad = torch.randn(2, 15)
    with pytest.raises(PruneError, match=r"SimpleMLP forward failed on the example inputs \[\(2, 15\)\]"):
        if entry == "prune":
            prune(model, bad, Budget(default=0.5))
        elif entry == "build_groups":
            build_groups(model, bad)
        else:
            trace_components(model, bad, Components.from_children(model))


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom in user code")


def test_exception_inside_forward_keeps_its_text() -> None:
    with pytest.raises(PruneError, match="boom in user code") as info:
        prune(Exploding(), torch.randn(2, 4), Budget(default=0.5))
    assert str(info.value).startswith("Exploding forward failed")


@pytest.mark.parametrize(
    "inputs",
    [
        {"obs": torch.randn(2, 16)},
        "a string",
        np.zeros((2, 16), dtype=np.float32),
        None,
        3.0,
    ],
    ids=["dict", "str", "numpy", "none", "float"],
)
def test_example_inputs_of_the_wrong_type(make_model, inputs: object) -> None:
    model = make_model("simple")
    with pytest.raises(PruneError, match=r"example[_ ]inputs"):
        prune(model, inputs, Budget(default=0.5))


def test_list_of_tensors_is_accepted(make_model) -> None:
    model = make_model("tdmpc")
    result = prune(model, list(model.example_inputs()), Budget(default=0.3))
    assert result.model(*model.example_inputs())[0].shape == (2, 32)


def test_errors_are_edgeprune_errors_not_library_ones(make_model) -> None:
    from edgeprune.errors import EdgepruneError

    model = make_model("simple")
    with pytest.raises(EdgepruneError):
        prune(model, model.example_inputs(), Budget(default=0.5, protect={"nope"}))


# ---------------------------------------------------------------------------------------------------------------
# a custom layer Torch-Pruning mis-prunes


class EinsumLinear(nn.Module):
    """A linear layer with its own parameter, applied with einsum: Torch-Pruning has no pruner for it.

    Torch-Pruning treats ``weight`` as an unwrapped parameter and follows einsum's internal reshapes: it
    couples the input channels to the *next* component's input and prunes the wrong dimension.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / d_in**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,oi->bo", x, self.weight)


class CustomNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.mixer = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), EinsumLinear(64, 48), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mixer(self.encoder(x)))


def _custom_net() -> tuple[CustomNet, torch.Tensor]:
    torch.manual_seed(0)
    return CustomNet().eval(), torch.randn(2, 16)


def test_torch_pruning_really_mis_couples_the_custom_layer() -> None:
    """The premise: Torch-Pruning's group for mixer.0 claims head.0's (48 wide) input has 64 channels."""
    model, x = _custom_net()
    groups = build_groups(model, x, mode="vanilla")
    (group,) = [g for g in groups if "mixer.0" in g.roots]
    assert any(m.target == "head.0" and m.side == "in" and m.count == 64 for m in group.members)
    assert model.head[0].in_features == 48


CUSTOM_CASES = [
    ("vanilla", "l2", {}),
    ("vanilla", "random", {}),
    ("component", "l2", {"interfaces": True, "interface_ratio": 0.5}),
    ("component", "random", {"interfaces": True, "interface_ratio": 0.5}),
]


@pytest.mark.parametrize(("mode", "importance", "extra"), CUSTOM_CASES)
def test_custom_layer_error_names_it_and_suggests_protect(mode: str, importance: str, extra: dict) -> None:
    model, x = _custom_net()
    with pytest.raises(PruneError) as info:
        prune(model, x, Budget(default=0.5, **extra), mode=mode, importance=importance)
    message = str(info.value)
    assert "mixer.2" in message and "EinsumLinear" in message
    assert "protect" in message


@pytest.mark.parametrize(("mode", "importance", "extra"), CUSTOM_CASES)
def test_protecting_the_custom_layers_component_makes_pruning_succeed(mode: str, importance: str, extra: dict) -> None:
    model, x = _custom_net()
    result = prune(model, x, Budget(default=0.5, protect={"mixer"}, **extra), mode=mode, importance=importance)
    before = dict(model.named_parameters())
    for name, p in result.model.named_parameters():
        if name.startswith("mixer."):
            assert torch.equal(p, before[name]), name
    assert result.model(x).shape == (2, 4)
    assert result.report.component("encoder").achieved > 0.2
    assert result.report.component("head").achieved > 0.2


def test_component_mode_without_interfaces_leaves_the_custom_layer_alone() -> None:
    """By default component mode does not touch the mis-coupled group (it crosses into ``head``)."""
    model, x = _custom_net()
    result = prune(model, x, Budget(default=0.5))
    assert result.model.mixer[2].weight.shape == (48, 64)
    assert result.model(x).shape == (2, 4)
