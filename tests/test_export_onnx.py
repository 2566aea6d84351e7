"""Dense ONNX export: names, static/dynamic shapes, component metadata, parity, clear errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from export_models import SmallCNN, TwoInputMLP, seeded
from torch import nn

from edgeprune.export.errors import ExportError, ParityError
from edgeprune.export.onnx import META_COMPONENT, META_COMPONENTS, META_PLAN_HASH, TOP_LEVEL, onnx_from_torch
from edgeprune.export.parity import Tolerance


def test_two_input_mlp_static_named_annotated() -> None:
    model = seeded(TwoInputMLP())
    res = onnx_from_torch(model, (torch.randn(1, 8), torch.randn(1, 4)), plan_hash="sha256:abc")
    onnx.checker.check_model(res.model, full_check=True)
    assert res.input_names == ["obs", "act"]
    assert res.output_names == ["output_0", "output_1"]
    assert res.opset == 17 and res.model.opset_import[0].version == 17
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in res.model.graph.input]
    assert dims == [[1, 8], [1, 4]]
    props = {p.key: p.value for p in res.model.metadata_props}
    assert props[META_PLAN_HASH] == "sha256:abc"
    comp_map = json.loads(props[META_COMPONENTS])
    assert set(comp_map.values()) == {
        "encoder",
        "head",
        "value",
        TOP_LEVEL,
    }  # the concat lives in forward itself
    for node in res.model.graph.node:
        node_props = {p.key: p.value for p in node.metadata_props}
        assert node_props[META_COMPONENT] == comp_map[node.name]
    assert res.parity.passed and res.parity.max_abs < 1e-5 and res.parity.n_samples == 5


def test_cnn_simplified_keeps_parity_and_components() -> None:
    res = onnx_from_torch(seeded(SmallCNN()), torch.randn(1, 3, 16, 16))
    assert res.simplified
    assert "BatchNormalization" not in {n.op_type for n in res.model.graph.node}  # folded into Conv
    assert {"features", "classifier"} <= set(res.components.values())
    assert res.parity.passed and res.parity.top1 == 1.0


def test_dynamic_batch_on_request() -> None:
    res = onnx_from_torch(seeded(TwoInputMLP()), (torch.randn(2, 8), torch.randn(2, 4)), dynamic_batch=True)
    first = res.model.graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_param == "batch"
    assert res.parity.n_samples == 6  # example, 4 random, and one at another batch size


def test_tolerance_is_enforced() -> None:
    with pytest.raises(ParityError, match="max abs"):
        onnx_from_torch(seeded(TwoInputMLP()), (torch.randn(1, 8), torch.randn(1, 4)), tolerance=Tolerance(0, 0))


class _Eigh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]


class _Baked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.from_numpy(np.sin(x.numpy())))


class _DataDependentShape(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[: int(x.sum().item() > 0) + 1]


def test_unexportable_op_is_a_clear_error(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExportError, match=r"could not be traced.*linalg_eigh") as info:
        onnx_from_torch(_Eigh(), torch.randn(1, 3, 3))
    assert "fix:" in str(info.value)
    assert "Torch IR graph" not in capfd.readouterr().err  # the exporter's IR dump is swallowed


def test_wrong_example_shape_is_a_clear_error() -> None:
    with pytest.raises(ExportError, match=r"(?s)fails on the example inputs.*shapes \[\(1, 7\), \(1, 4\)"):
        onnx_from_torch(seeded(TwoInputMLP()), (torch.randn(1, 7), torch.randn(1, 4)))


def test_input_baked_in_at_trace_time_is_a_clear_error() -> None:
    with pytest.raises(ExportError, match=r"does not depend on input\(s\) \['x'\]"):
        onnx_from_torch(_Baked(), torch.randn(1, 4))


def test_trace_time_shape_is_caught_by_parity() -> None:
    with pytest.raises(ParityError):
        onnx_from_torch(_DataDependentShape(), torch.ones(2, 4))
