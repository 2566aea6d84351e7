"""Recurrent layers exported unrolled (per-gate ops) with ONNX parity; what cannot be unrolled, refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from edgeprune.export import ExportError
from edgeprune.export.onnx import onnx_from_torch
from edgeprune.export.recurrent import RECURRENT_ONNX_OPS, no_int8_error
from edgeprune.export.tflite import tflite_from_onnx


class Seq(nn.Module):
    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)
        y = out[0] if isinstance(out, tuple) else out
        return self.head(y)


LAYERS = {
    "gru-batch-first": (lambda: nn.GRU(6, 16, batch_first=True), (2, 4, 6)),
    "lstm-2-layers": (lambda: nn.LSTM(6, 16, num_layers=2), (4, 2, 6)),
    "rnn-relu": (lambda: nn.RNN(6, 16, nonlinearity="relu", batch_first=True), (2, 4, 6)),
    "grucell": (lambda: nn.GRUCell(6, 16), (2, 6)),
    "lstmcell": (lambda: nn.LSTMCell(6, 16), (2, 6)),
}


@pytest.mark.parametrize("case", LAYERS)
def test_recurrent_layers_export_unrolled_with_parity(case: str) -> None:
    factory, shape = LAYERS[case]
    torch.manual_seed(0)
    model = Seq(factory()).eval()
    ox = onnx_from_torch(model, torch.randn(*shape))
    assert ox.parity.passed and ox.parity.max_abs <= 1e-4
    ops = {n.op_type for n in ox.model.graph.node}
    assert not ops & set(RECURRENT_ONNX_OPS)
    assert {"Gemm", "Add"} <= ops and ("Relu" if case == "rnn-relu" else "Tanh") in ops
    assert isinstance(model.rnn.forward.__self__, nn.Module)  # the unrolled forward was only borrowed


def test_bidirectional_layers_are_refused_with_the_way_out() -> None:
    model = Seq(nn.GRU(6, 8, bidirectional=True))
    model.head = nn.Linear(16, 3)
    with pytest.raises(ExportError, match="bidirectional") as err:
        onnx_from_torch(model, torch.randn(4, 2, 6))
    assert "unidirectional" in str(err.value)


def test_onnx_with_a_recurrent_op_names_it_before_conversion(tmp_path: Path) -> None:
    """An ONNX model that still holds an LSTM op (not exported by onnx_from_torch): named, with the way out."""
    torch.manual_seed(0)
    model, x = Seq(nn.LSTM(6, 16)).eval(), torch.randn(4, 2, 6)
    ox = onnx_from_torch(model, x)
    path = tmp_path / "raw.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, input_names=ox.input_names)
    raw = dataclasses.replace(ox, model=onnx.load(str(path)))
    with pytest.raises(ExportError, match="recurrent op") as err:
        tflite_from_onnx(raw, model, x, tmp_path / "work", int8=False)
    assert "LSTM" in str(err.value) and "unroll" in str(err.value)


def test_no_int8_model_of_a_recurrent_model_names_its_layers_and_the_way_out() -> None:
    err = no_int8_error(Seq(nn.GRU(6, 8, batch_first=True)), "log tail")
    assert "(rnn)" in err.what and "time axis" in str(err) and "2-D" in err.do and err.detail == "log tail"
    assert no_int8_error(nn.Linear(2, 2), "x").what == "onnx2tf wrote no full-integer .tflite."
