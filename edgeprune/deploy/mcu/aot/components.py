"""Which model component each TFLite op came from, using the export's ONNX (node -> component metadata).

onnx2tf does not keep ONNX node names, so ops with weights (FC, conv, depthwise) are matched to the ONNX
node whose weight tensor has the same shape (after layout transposes) and the highest mean per-output-channel
|cosine| with the dequantized int8 weights (BatchNorm folding rescales channels, which the cosine ignores).
Ops without weights take the component of a neighbour (the op producing their input or consuming their
output) that has an ONNX node of a matching type (AVERAGE_POOL_2D <-> AveragePool, ...), else the producer's,
else a consumer's. ``?`` when nothing matches.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from edgeprune.deploy.mcu.aot.graph import Graph, Op
from edgeprune.export.onnx import META_COMPONENTS
from edgeprune.extras import require

if TYPE_CHECKING:
    import onnx

# TFLite op -> ONNX op types it is lowered from (weightless ops only)
_ONNX_TYPES: dict[str, tuple[str, ...]] = {
    "AVERAGE_POOL_2D": ("AveragePool", "GlobalAveragePool"),
    "MEAN": ("ReduceMean", "GlobalAveragePool", "LayerNormalization"),
    "SOFTMAX": ("Softmax",),
    "TANH": ("Tanh",),
    "LOGISTIC": ("Sigmoid",),
    "CONCATENATION": ("Concat",),
    "ADD": ("Add", "LayerNormalization"),
    "SUB": ("Sub", "LayerNormalization"),
    "MUL": ("Mul", "LayerNormalization"),
    "SQUARED_DIFFERENCE": ("LayerNormalization", "Pow"),
    "RSQRT": ("LayerNormalization", "Sqrt"),
    "PAD": ("Pad",),
}


def _candidates(model: onnx.ModelProto) -> list[tuple[str, np.ndarray]]:
    """(node name, weight as [out, ...] in TFLite layout) for Gemm/MatMul/Conv nodes with constant weights."""
    numpy_helper = require("onnx.numpy_helper", "deploy", "matching TFLite ops to ONNX nodes")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type not in ("Gemm", "MatMul", "Conv") or len(n.input) < 2 or n.input[1] not in inits:
            continue
        w = inits[n.input[1]].astype(np.float64)
        if n.op_type == "Gemm":
            trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
            w = w if trans_b else w.T
        elif n.op_type == "MatMul":
            w = w.T
        elif w.ndim == 4:
            w = w.transpose(0, 2, 3, 1)  # OIHW -> OHWI
        out.append((n.name, w))
    return out


def _score(a: np.ndarray, b: np.ndarray) -> float:
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    num = np.abs((a2 * b2).sum(1))
    den = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1) + 1e-12
    return float((num / den).mean())


def _weight(graph: Graph, op: Op) -> np.ndarray | None:
    if op.name not in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D") or len(op.inputs) < 2:
        return None
    t = graph.tensors[op.inputs[1]]
    if t.data is None:
        return None
    w = t.data.astype(np.float64)
    return w.transpose(3, 1, 2, 0) if op.name == "DEPTHWISE_CONV_2D" else w  # [1,H,W,O] -> [O,H,W,1]


def layer_components(graph: Graph, model: onnx.ModelProto) -> list[str]:
    """One component name per op of ``graph`` (in op order)."""
    props = {p.key: p.value for p in model.metadata_props}
    node_comp: dict[str, str] = json.loads(props.get(META_COMPONENTS, "{}"))
    cands = _candidates(model)
    comps: list[str | None] = [None] * len(graph.ops)
    for op in graph.ops:
        w = _weight(graph, op)
        if w is None:
            continue
        scored = [(_score(w, c), name) for name, c in cands if c.shape == w.shape]
        if scored:
            comps[op.index] = node_comp.get(max(scored)[1])
    producer = {t: op.index for op in graph.ops for t in op.outputs}
    consumers: dict[int, list[int]] = {}
    for op in graph.ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op.index)
    typed: dict[str, set[str]] = {}  # ONNX op type -> components having such a node
    for n in model.graph.node:
        typed.setdefault(n.op_type, set()).add(node_comp.get(n.name, "?"))
    for _ in range(len(graph.ops)):  # propagate until stable
        changed = False
        for op in graph.ops:
            if comps[op.index] is not None:
                continue
            ups = [comps[producer[t]] for t in op.inputs if t in producer and comps[producer[t]]]
            downs = [comps[c] for t in op.outputs for c in consumers.get(t, []) if comps[c]]
            owners = set().union(*(typed.get(k, set()) for k in _ONNX_TYPES.get(op.name, ())))
            near = [c for c in (*ups, *downs) if c in owners]
            pick = near[0] if near else ups[0] if ups else downs[0] if downs else None
            if pick is not None:
                comps[op.index], changed = pick, True
        if not changed:
            break
    return [c or "?" for c in comps]
