"""Recurrent layers exported as the ops every int8 runtime has: unrolled per-gate matmuls and activations.

PyTorch exports ``nn.GRU``/``nn.LSTM``/``nn.RNN`` as ONNX ``GRU``/``LSTM``/``RNN`` ops and the cells as
fused gate matmuls with ``Split``; onnx2tf turns these into ops TFLite Micro and the AOT kernels lack
(or into no full-integer model at all). While :func:`unrolled` is open, each recurrent layer computes
the same function step by step: one ``Linear`` per gate (weights sliced from the fused ones, folded to
constants by the exporter), ``Sigmoid``/``Tanh``, ``Mul``, ``Add``, ``Sub`` — FULLY_CONNECTED,
LOGISTIC, TANH, MUL, ADD, SUB in int8 TFLite. The number of time steps is fixed by the example inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.export.errors import ExportError

RECURRENT_ONNX_OPS = ("GRU", "LSTM", "RNN", "Loop", "Scan")


def _check(path: str, layer: nn.Module) -> None:
    if getattr(layer, "bidirectional", False) or getattr(layer, "proj_size", 0):
        what = "bidirectional" if layer.bidirectional else f"proj_size={layer.proj_size}"
        raise ExportError(
            f"{path} ({type(layer).__name__}, {what}) cannot be unrolled for export.",
            expected="unidirectional nn.GRU/nn.LSTM/nn.RNN without proj_size, or their cells",
            do="use two unidirectional layers (one on the time-reversed sequence) / an nn.Linear after the LSTM.",
        )


def _gate(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, k: int, hidden: int) -> torch.Tensor:
    rows = slice(k * hidden, (k + 1) * hidden)
    return F.linear(x, weight[rows], None if bias is None else bias[rows])


def _cell_step(layer: nn.Module, x: torch.Tensor, state: Any, w: tuple) -> Any:
    """One step of a GRU/LSTM/RNN (cell) with weights ``w = (w_ih, w_hh, b_ih, b_hh)``, gate by gate."""
    w_ih, w_hh, b_ih, b_hh = w
    n = layer.hidden_size
    if isinstance(layer, (nn.GRU, nn.GRUCell)):
        h = state
        r = torch.sigmoid(_gate(x, w_ih, b_ih, 0, n) + _gate(h, w_hh, b_hh, 0, n))
        z = torch.sigmoid(_gate(x, w_ih, b_ih, 1, n) + _gate(h, w_hh, b_hh, 1, n))
        c = torch.tanh(_gate(x, w_ih, b_ih, 2, n) + r * _gate(h, w_hh, b_hh, 2, n))
        return c + z * (h - c)  # == (1 - z) * c + z * h
    if isinstance(layer, (nn.LSTM, nn.LSTMCell)):
        h, c = state
        i, f, g, o = (_gate(x, w_ih, b_ih, k, n) + _gate(h, w_hh, b_hh, k, n) for k in range(4))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    act = torch.tanh if layer.nonlinearity == "tanh" else torch.relu
    return act(_gate(x, w_ih, b_ih, 0, n) + _gate(state, w_hh, b_hh, 0, n))


def _weights(layer: nn.Module, i: int | None = None) -> tuple:
    suffix = "" if i is None else f"_l{i}"
    return tuple(getattr(layer, f"{n}{suffix}", None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _cell_forward(layer: nn.RNNCellBase) -> Any:
    def forward(x: torch.Tensor, hx: Any = None) -> Any:
        batched = x.dim() == 2
        x = x if batched else x.unsqueeze(0)
        if hx is None:
            zeros = x.new_zeros(x.shape[0], layer.hidden_size)
            hx = (zeros, zeros) if isinstance(layer, nn.LSTMCell) else zeros
        elif not batched:
            hx = tuple(t.unsqueeze(0) for t in hx) if isinstance(hx, tuple) else hx.unsqueeze(0)
        out = _cell_step(layer, x, hx, _weights(layer))
        if not batched:
            out = tuple(t.squeeze(0) for t in out) if isinstance(out, tuple) else out.squeeze(0)
        return out

    return forward


def _sequence_forward(layer: nn.RNNBase) -> Any:
    lstm = isinstance(layer, nn.LSTM)

    def forward(x: torch.Tensor, hx: Any = None) -> Any:
        if not isinstance(x, torch.Tensor):
            raise ExportError(
                f"{type(layer).__name__} got a {type(x).__name__}: packed sequences cannot be exported.",
                do="pad the sequences to one length and pass a tensor.",
            )
        batched = x.dim() == 3
        x = x if batched else x.unsqueeze(1)
        steps = list(torch.unbind(x, 1 if layer.batch_first else 0))
        b = steps[0].shape[0]
        if hx is None:
            zeros = x.new_zeros(layer.num_layers, b, layer.hidden_size)
            hx = (zeros, zeros) if lstm else zeros
        finals_h, finals_c = [], []
        for i in range(layer.num_layers):
            state = (hx[0][i], hx[1][i]) if lstm else hx[i]
            outs = []
            for s in steps:
                state = _cell_step(layer, s, state, _weights(layer, i))
                outs.append(state[0] if lstm else state)
            steps = outs
            finals_h.append(state[0] if lstm else state)
            if lstm:
                finals_c.append(state[1])
        y = torch.stack(steps, 1 if layer.batch_first else 0)
        h_n = torch.stack(finals_h, 0)
        last = (h_n, torch.stack(finals_c, 0)) if lstm else h_n
        if not batched:
            y = y.squeeze(1)
            last = tuple(t.squeeze(1) for t in last) if lstm else last.squeeze(1)
        return y, last

    return forward


@contextmanager
def unrolled(model: nn.Module) -> Iterator[None]:
    """While open, every recurrent layer of ``model`` runs unrolled, gate by gate (same outputs)."""
    layers = [(p, m) for p, m in model.named_modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))]
    for path, layer in layers:
        _check(path, layer)
    with ExitStack() as stack:
        for _, layer in layers:
            cell = isinstance(layer, nn.RNNCellBase)
            layer.forward = _cell_forward(layer) if cell else _sequence_forward(layer)
            stack.callback(layer.__dict__.pop, "forward", None)
        yield


def no_int8_error(model: nn.Module, log: str) -> ExportError:
    """onnx2tf wrote no full-integer model: with recurrent layers, name them and the way out."""
    layers = [p for p, m in model.named_modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))]
    if not layers:
        return ExportError("onnx2tf wrote no full-integer .tflite.", detail=log[-3000:])
    return ExportError(
        f"onnx2tf wrote no full-integer .tflite of this recurrent model ({', '.join(layers)}).",
        expected="2-D tensors throughout: recurrent models with a time axis in their tensors (batch, time, "
        "features) gave no int8 model here (GRU/LSTM layers and cells over 3-D inputs alike); a cell stepped "
        "on 2-D tensors in forward() does (the bundled rssm)",
        do="keep the time axis out of the exported tensors (2-D inputs and outputs, a cell stepped in forward()), "
        "or keep this component off the int8 targets.",
        detail=log[-3000:],
    )
