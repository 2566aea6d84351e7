"""Tests for the bundled example networks in ``edgeprune.models``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.models import create_model, list_models

# Documented output shapes per model, as a function of the batch size.
EXPECTED_SHAPES = {
    "simple": lambda b: [(b, 4)],
    "branched": lambda b: [(b, 5), (b, 1)],
    "multipath": lambda b: [(b, 8), (b, 2)],
    "recursive": lambda b: [(b, 4)],
    "tdmpc": lambda b: [(b, 32), (b, 1), (b, 2), (b, 1)],
    "complex_cnn": lambda b: [(b, 10), (b, 2)],
    "rssm": lambda b: [(b, 1), (b, 1), (b, 1)],
    "kws_dscnn": lambda b: [(b, 12)],
    "ad_autoencoder": lambda b: [(b, 640)],
}
NUM_COMPONENTS = {
    "simple": 3,
    "branched": 6,
    "multipath": 7,
    "recursive": 4,
    "tdmpc": 5,
    "complex_cnn": 7,
    "rssm": 7,
    "kws_dscnn": 3,
    "ad_autoencoder": 2,
}
MODELS = list_models()


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name).eval()


def _outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(*inputs)
    return list(out) if isinstance(out, tuple) else [out]


def test_registry_lists_all_models() -> None:
    assert set(MODELS) == set(EXPECTED_SHAPES)
    assert list_models("*cnn") == ["complex_cnn", "kws_dscnn"]
    assert list_models("nothing*") == []


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises((KeyError, ValueError)) as info:
        create_model("no_such_model")
    for name in MODELS:
        assert name in str(info.value)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch_size", [1, 3])
def test_output_shapes(name: str, batch_size: int) -> None:
    model = _build(name)
    inputs = model.example_inputs(batch_size)
    assert isinstance(inputs, tuple)
    assert all(x.shape[0] == batch_size for x in inputs)
    shapes = [tuple(o.shape) for o in _outputs(model, inputs)]
    assert shapes == EXPECTED_SHAPES[name](batch_size)


@pytest.mark.parametrize("name", MODELS)
def test_size_and_widths(name: str) -> None:
    model = _build(name)
    assert len(list(model.named_children())) == NUM_COMPONENTS[name]
    assert 5_000 <= sum(p.numel() for p in model.parameters()) <= 300_000
    for m in model.modules():
        assert not isinstance(m, nn.Mish | nn.SiLU | nn.GELU)


@pytest.mark.parametrize("name", MODELS)
def test_deterministic(name: str) -> None:
    a, b = _build(name), _build(name)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    torch.manual_seed(1)
    x1 = a.example_inputs()
    torch.manual_seed(1)
    x2 = a.example_inputs()
    assert all(torch.equal(u, v) for u, v in zip(x1, x2, strict=True))


def _count_component_calls(model: nn.Module) -> Counter[str]:
    """Forward-hook every component (every member of a ``ModuleList`` component) and count its calls."""
    calls: Counter[str] = Counter()
    handles = []
    for name, child in model.named_children():
        members = list(child) if isinstance(child, nn.ModuleList) else [child]
        for member in members:

            def hook(*_: object, name: str = name) -> None:
                calls[name] += 1

            handles.append(member.register_forward_hook(hook))
    _outputs(model, model.example_inputs())
    for h in handles:
        h.remove()
    return calls


@pytest.mark.parametrize("name", MODELS)
def test_every_component_is_called(name: str) -> None:
    model = _build(name)
    calls = _count_component_calls(model)
    for child_name, child in model.named_children():
        expected = len(child) if isinstance(child, nn.ModuleList) else 1
        assert calls[child_name] >= expected, f"component {child_name!r} not called in forward"


def test_recursive_component_is_looped() -> None:
    calls = _count_component_calls(_build("recursive"))
    assert calls["cell"] == 3
    assert calls["feedback"] == 3
    assert calls["encoder"] == calls["head"] == 1


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _build(name)
    inputs = model.example_inputs()
    expected = _outputs(model, inputs)
    path = tmp_path / f"{name}.onnx"
    input_names = [f"input_{i}" for i in range(len(inputs))]
    torch.onnx.export(model, inputs, str(path), dynamo=False, opset_version=17, input_names=input_names)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: x.numpy() for n, x in zip(input_names, inputs, strict=True)})
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.numpy()).max() < 1e-4


def test_tdmpc_api_and_constraints() -> None:
    model = _build("tdmpc")
    obs, action = model.example_inputs(4)
    next_z, reward, q, pi_action = _outputs(model, (obs, action))
    with torch.no_grad():
        z = model.encode(obs)
        torch.testing.assert_close(model.next(z, action), next_z)
        torch.testing.assert_close(model.reward_of(z, action), reward)
        torch.testing.assert_close(model.q_values(z, action), q)
        torch.testing.assert_close(model.pi(z), pi_action)
    # SimNorm: every group of 8 latent features sums to one.
    for latent in (z, next_z):
        torch.testing.assert_close(latent.view(4, -1, 8).sum(-1), torch.ones(4, 4))
    assert pi_action.abs().max() <= 1

    constraints = model.pruning_constraints()
    modules = dict(model.named_modules())
    assert constraints.module_paths() <= set(modules)
    for path in constraints.blocks:
        assert isinstance(modules[path], nn.Linear)
        assert modules[path].out_features == 32
    assert set(constraints.blocks) == {p for tie in constraints.ties for p in tie}
    assert [list(e) for e in constraints.ensembles] == [["qs.0", "qs.1"]]


def test_only_world_models_declare_constraints() -> None:
    assert [n for n in MODELS if hasattr(_build(n), "pruning_constraints")] == ["tdmpc", "rssm"]


def test_rssm_rolls_out_the_gru_over_its_horizon() -> None:
    model = _build("rssm")
    calls = _count_component_calls(model)
    assert calls["dynamics"] == calls["prior"] == calls["policy"] == calls["cont"] == model.horizon
    assert calls["encoder"] == calls["posterior"] == 1
    assert isinstance(model.dynamics.cell, nn.GRUCell)
    obs = model.example_inputs(4)[0]
    ret, alive, action = _outputs(model, (obs,))
    with torch.no_grad():  # the same rollout step by step: continue-discounted rewards, first action
        z = model.posterior(model.encoder(obs))
        torch.testing.assert_close(model.policy(z), action)
        h, total, survive = None, 0, 1
        for _ in range(model.horizon):
            h = model.dynamics(z, model.policy(z), h)
            z = model.prior(h)
            survive = survive * model.cont(h, z)
            total = total + survive * model.reward(h, z)
    torch.testing.assert_close(ret, total)
    torch.testing.assert_close(alive, survive)
    assert z.sum(-1).allclose(torch.ones(4)) and ((alive > 0) & (alive < 1)).all()
    (tie,) = model.pruning_constraints().ties
    assert all(isinstance(model.get_submodule(p), nn.Linear) for p in tie)


def test_rssm_decoder_option_adds_a_component_and_an_output() -> None:
    from edgeprune.models.rssm import RSSMStyle

    torch.manual_seed(0)
    model = RSSMStyle(decoder=True).eval()
    plain = RSSMStyle().eval()  # the bundled shape: no decoder
    assert plain.decoder is None and "decoder" not in dict(plain.named_children())
    assert [n for n, _ in model.named_children()][-1] == "decoder" and len(list(model.named_children())) == 8
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")})
    obs = model.example_inputs(4)[0]
    *outputs, recon = _outputs(model, (obs,))
    for a, b in zip(outputs, _outputs(plain, (obs,)), strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # the last imagined state, decoded
        z = model.posterior(model.encoder(obs))
        h = None
        for _ in range(model.horizon):
            h = model.dynamics(z, model.policy(z), h)
            z = model.prior(h)
        torch.testing.assert_close(recon, model.decoder(h, z))
    assert recon.shape == (4, model.obs_dim)
