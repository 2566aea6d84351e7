"""TFLite float32 / full-int8 through onnx2tf: per-input calibration, layouts, parity, float islands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_models import EluMLP, SmallCNN, TwoInputMLP, samples, seeded

from edgeprune.export.errors import ExportError
from edgeprune.export.onnx import onnx_from_torch
from edgeprune.export.tflite import TFLiteExport, make_interpreter, tflite_from_onnx


def _convert(model: torch.nn.Module, example: tuple[torch.Tensor, ...], calib: object, workdir: Path) -> TFLiteExport:
    onnx_export = onnx_from_torch(model, example)
    return tflite_from_onnx(onnx_export, model, example, workdir, calibration=calib)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> TFLiteExport:
    calib = {"obs": samples((8,)), "act": samples((4,), seed=2)}
    example = (torch.randn(1, 8), torch.randn(1, 4))
    return _convert(seeded(TwoInputMLP()), example, calib, tmp_path_factory.mktemp("mlp"))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> TFLiteExport:
    path = tmp_path_factory.mktemp("calib") / "samples.npy"
    np.save(path, samples((3, 16, 16)))  # NCHW, as the PyTorch model takes them
    return _convert(seeded(SmallCNN()), (torch.randn(1, 3, 16, 16),), path, tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="module")
def elu(tmp_path_factory: pytest.TempPathFactory) -> TFLiteExport:
    return _convert(seeded(EluMLP()), (torch.randn(1, 8),), samples((8,)), tmp_path_factory.mktemp("elu"))


def test_two_input_mlp_calibrated_per_input(mlp: TFLiteExport) -> None:
    assert mlp.float_parity.passed and mlp.float_parity.max_abs < 1e-4
    assert mlp.int8_parity is not None and mlp.int8_parity.passed
    assert [lay.name for lay in mlp.int8_inputs] == ["obs", "act"]
    assert [(lay.name, lay.tflite_shape) for lay in mlp.int8_outputs] == [
        ("output_0", (1, 4)),
        ("output_1", (1, 1)),
    ]
    assert {lay.dtype for lay in [*mlp.int8_inputs, *mlp.int8_outputs]} == {"int8"}
    assert all(lay.scale is not None for lay in mlp.int8_inputs)
    assert mlp.float_ops == []


def test_full_integer_io_and_per_channel_weights(cnn: TFLiteExport) -> None:
    assert cnn.int8 is not None
    it = make_interpreter(cnn.int8)
    assert [d["dtype"] for d in it.get_input_details() + it.get_output_details()] == [np.int8, np.int8]
    conv_weights = [
        t
        for t in it.get_tensor_details()
        if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][0] in (8, 16)
    ]
    assert conv_weights and all(len(t["quantization_parameters"]["scales"]) > 1 for t in conv_weights)


def test_nchw_becomes_nhwc_and_is_recorded(cnn: TFLiteExport) -> None:
    (lay,) = cnn.int8_inputs
    assert lay.onnx_shape == (1, 3, 16, 16) and lay.tflite_shape == (1, 16, 16, 3)
    assert lay.perm == (0, 2, 3, 1)


def test_parity_float_and_int8(cnn: TFLiteExport) -> None:
    assert cnn.float_parity.passed and cnn.float_parity.max_abs < 1e-4
    rep = cnn.int8_parity
    assert rep is not None and rep.passed and rep.top1 is not None and rep.top1 >= 0.9
    assert rep.n_samples == 65  # the example plus 64 calibration samples


def test_float_islands_are_reported(elu: TFLiteExport) -> None:
    ops = [f.op for f in elu.float_ops]
    assert ops == ["DEQUANTIZE", "ELU", "QUANTIZE"]
    assert all(n.component == "body" and n.op_type == "Elu" for f in elu.float_ops for n in f.onnx_nodes)


def test_int8_without_samples_is_refused(tmp_path: Path) -> None:
    model = seeded(EluMLP())
    onnx_export = onnx_from_torch(model, torch.randn(1, 8))
    with pytest.raises(ExportError, match="needs representative calibration samples"):
        tflite_from_onnx(onnx_export, model, torch.randn(1, 8), tmp_path)
    assert not (tmp_path / "tf").exists()  # refused before onnx2tf ran


def test_onnx2tf_failure_names_the_op_and_component(tmp_path: Path) -> None:
    model = seeded(EluMLP())
    onnx_export = onnx_from_torch(model, torch.randn(1, 8))
    bad = onnx.ModelProto()
    bad.CopyFrom(onnx_export.model)
    node = next(n for n in bad.graph.node if n.op_type == "Elu")
    node.op_type, node.domain = "FancyAct", "com.example"
    bad.opset_import.add(domain="com.example", version=1)
    with pytest.raises(ExportError, match=r"FancyAct OP is not yet implemented.*component 'body'"):
        tflite_from_onnx(dataclasses.replace(onnx_export, model=bad), model, torch.randn(1, 8), tmp_path, int8=False)


def test_wrong_sample_shape_is_refused(tmp_path: Path) -> None:
    model = seeded(SmallCNN())
    onnx_export = onnx_from_torch(model, torch.randn(1, 3, 16, 16))
    nhwc = samples((16, 16, 3))
    with pytest.raises(ExportError, match=r"shape \(3, 16, 16\)"):
        tflite_from_onnx(onnx_export, model, torch.randn(1, 3, 16, 16), tmp_path, calibration=nhwc)
