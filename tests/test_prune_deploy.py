"""A pruned model is an ordinary nn.Module: it trains, and it exports to ONNX with onnxruntime parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.models import list_models
from edgeprune.prune import Budget, prune

MODELS = list_models()


def _flat(out: object) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _loss(model: nn.Module, inputs: tuple, targets: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(o, t) for o, t in zip(_flat(model(*inputs)), targets, strict=True))


@pytest.mark.parametrize("name", MODELS)
def test_pruned_model_trains(make_model, name: str) -> None:
    model = make_model(name)
    mode = "vanilla" if name in ("branched", "recursive") else "component"
    pruned = prune(model, model.example_inputs(), Budget(default=0.5), mode=mode).model
    pruned.train()
    torch.manual_seed(0)
    inputs = model.example_inputs(8)
    with torch.no_grad():
        targets = [torch.randn_like(o) for o in _flat(pruned(*inputs))]
    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.01)

    optimizer.zero_grad()
    first = _loss(pruned, inputs, targets)
    first.backward()
    for pname, p in pruned.named_parameters():
        assert p.requires_grad, pname
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"
    optimizer.step()
    for _ in range(20):
        optimizer.zero_grad()
        loss = _loss(pruned, inputs, targets)
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    assert loss.item() < first.item()


CASES = [(n, "component") for n in MODELS] + [("tdmpc", "vanilla"), ("complex_cnn", "vanilla")]


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_pruned_model_exports_to_onnx_with_parity(make_model, tmp_path: Path, name: str, mode: str) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime comes with the export extra")
    model = make_model(name)
    extra = {"interfaces": True, "interface_ratio": 0.25} if mode == "component" else {}
    pruned = prune(model, model.example_inputs(), Budget(default=0.5, **extra), mode=mode).model.eval()
    torch.manual_seed(1)
    inputs = model.example_inputs(3)
    with torch.no_grad():
        expected = _flat(pruned(*inputs))
    path = tmp_path / f"{name}.onnx"
    names = [f"input_{i}" for i in range(len(inputs))]
    torch.onnx.export(pruned, inputs, str(path), dynamo=False, opset_version=17, input_names=names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {n: x.numpy() for n, x in zip(names, inputs, strict=True)})
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.numpy()).max() < 1e-4
