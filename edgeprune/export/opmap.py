"""Best-effort mapping from a TFLite op back to the ONNX node(s) and component(s) it came from.

onnx2tf names TFLite tensors after the TensorFlow op it emitted (``model/tf.math.softplus/Softplus``),
not after the ONNX node, so the mapping matches ONNX op types against those names and reports
every candidate; QUANTIZE/DEQUANTIZE borrow the candidates of the float op they wrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class OnnxNode:
    name: str
    op_type: str
    component: str


def onnx_nodes(model: onnx.ModelProto, components: dict[str, str]) -> list[OnnxNode]:
    return [OnnxNode(n.name, n.op_type, components.get(n.name, "?")) for n in model.graph.node]


def candidates(tensor_names: Sequence[str], nodes: Sequence[OnnxNode]) -> list[OnnxNode]:
    """ONNX nodes whose op type appears in any of the TFLite op's output tensor names."""
    text = " ".join(tensor_names).lower()
    return [n for n in nodes if n.op_type.lower() in text]


def describe(cands: Sequence[OnnxNode]) -> str:
    if not cands:
        return "no matching ONNX node found"
    return "; ".join(f"{n.name} ({n.op_type}, component '{n.component}')" for n in cands)
