"""A full-int8 ``.tflite`` read into plain tensors and ops (the input of the ahead-of-time code generator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.extras import require

_NP = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FLOAT32": np.float32,
       "UINT8": np.uint8, "BOOL": np.bool_}  # fmt: skip


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "int32", "float32", ...
    scales: tuple[float, ...]  # float32 values as stored (empty: not quantized)
    zero_points: tuple[int, ...]
    data: np.ndarray | None  # constant tensors only

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass(frozen=True)
class Op:
    index: int
    name: str  # builtin operator name, e.g. CONV_2D
    inputs: tuple[int, ...]  # -1: optional input absent
    outputs: tuple[int, ...]
    options: Any  # the flatbuffer *OptionsT object (or None)


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def constant(self, index: int) -> np.ndarray:
        data = self.tensors[index].data
        if data is None:
            raise EdgepruneError(f"tensor '{self.tensors[index].name}' must be a constant for the AOT kernels")
        return data


def _names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_graph(data: bytes) -> Graph:
    """Parse ``.tflite`` bytes (first subgraph) into a :class:`Graph`."""
    schema = require(
        "tflite_micro.tensorflow.lite.micro.python.schema_py_generated", "deploy", "reading a .tflite model"
    )

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise EdgepruneError("not a TFLite flatbuffer (no TFL3 identifier)", expected=".tflite bytes")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    op_names, type_names = _names(schema.BuiltinOperator), _names(schema.TensorType)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    sub = model.subgraphs[0]
    tensors = []
    for i, t in enumerate(sub.tensors):
        dtype = type_names[t.type]
        q = t.quantization
        has_q = q is not None and q.scale is not None and len(q.scale) > 0
        buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
        arr = None
        if buf is not None and len(buf) > 0:
            arr = np.frombuffer(np.asarray(buf, dtype=np.uint8).tobytes(), dtype=_NP[dtype]).reshape(shape)
        tensors.append(
            Tensor(
                index=i,
                name=t.name.decode() if isinstance(t.name, bytes) else str(t.name),
                shape=shape,
                dtype=dtype.lower(),
                scales=tuple(float(s) for s in q.scale) if has_q else (),
                zero_points=tuple(int(z) for z in q.zeroPoint) if has_q and q.zeroPoint is not None else (),
                data=arr,
            )
        )
    ops = tuple(
        Op(i, op_names.get(codes[op.opcodeIndex], "CUSTOM"), tuple(op.inputs), tuple(op.outputs), op.builtinOptions)
        for i, op in enumerate(sub.operators)
    )
    return Graph(tuple(tensors), ops, tuple(sub.inputs), tuple(sub.outputs))
