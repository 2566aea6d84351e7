"""TensorRT: the offline check everywhere; engine builds only where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util

import onnx
import pytest
import torch
from export_models import SmallCNN, TwoInputMLP, samples, seeded
from onnx import TensorProto, helper

from edgeprune.export.errors import ExportError
from edgeprune.export.onnx import onnx_from_torch
from edgeprune.export.tensorrt import build_engine, check_tensorrt, load_snapshot

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _tiny(op: str, opset: int = 17, dim: int | str = 2) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [dim, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name=f"/head/{op}")], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_snapshot_is_versioned_and_sourced() -> None:
    snap = load_snapshot()
    assert snap["tensorrt_version"] and snap["source"] and snap["max_opset"] >= 17
    assert {"Conv", "Gemm", "Relu", "Concat"} <= set(snap["supported"])
    assert "Det" in snap["unsupported"]


def test_exported_models_pass() -> None:
    res = onnx_from_torch(seeded(SmallCNN()), torch.randn(1, 3, 16, 16))
    check = check_tensorrt(res.model, res.components)
    assert check.ok, check.describe()


def test_dynamic_batch_needs_permission() -> None:
    res = onnx_from_torch(seeded(TwoInputMLP()), (torch.randn(2, 8), torch.randn(2, 4)), dynamic_batch=True)
    assert not check_tensorrt(res.model).ok
    allowed = check_tensorrt(res.model, allow_dynamic_batch=True)
    assert allowed.ok and any("optimization profile" in n for n in allowed.notes)


def test_unsupported_op_opset_and_dynamic_dims_are_reported() -> None:
    check = check_tensorrt(_tiny("Det", opset=8, dim="n"), {"/head/Det": "head"})
    text = check.describe()
    assert not check.ok
    assert "node /head/Det (Det, component 'head') is not supported" in text
    assert "opset 8 is outside" in text
    assert "axis 0 is dynamic" in text


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT error cannot be shown")
def test_engine_without_tensorrt_is_a_clear_error() -> None:
    with pytest.raises(ExportError, match="'tensorrt' cannot be imported"):
        build_engine(b"", {"x": (1, 2)}, precision="fp16")
    with pytest.raises(ExportError, match="need representative calibration samples"):
        build_engine(b"", {"x": (1, 2)}, precision="int8")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TRT, reason="needs TensorRT (Python package 'tensorrt') and an NVIDIA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_build(precision: str) -> None:
    res = onnx_from_torch(seeded(SmallCNN()), torch.randn(1, 3, 16, 16))
    calib = {"x": samples((3, 16, 16))} if precision == "int8" else None
    first = build_engine(res.to_bytes(), res.input_shapes, precision=precision, calibration=calib)
    assert first.engine and first.manifest["precision"] == precision and first.timing_cache
    again = build_engine(
        res.to_bytes(),
        res.input_shapes,
        precision=precision,
        calibration=calib,
        timing_cache=first.timing_cache,
    )
    assert again.engine
