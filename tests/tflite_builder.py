"""Single-op full-int8 ``.tflite`` models built with tflite-micro's model_editor (no TensorFlow), for kernel tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl

_rng = np.random.default_rng(7)


def act(shape: Sequence[int], scale: float, zp: int, name: str) -> me.Tensor:
    return me.Tensor(shape=tuple(shape), dtype=tfl.TensorType.INT8,
                     quantization=me.Quantization(scales=scale, zero_points=zp), name=name)  # fmt: skip


def weights(shape: Sequence[int], scales: Sequence[float], axis: int, name: str) -> me.Tensor:
    q = me.Quantization(scales=list(scales), zero_points=[0] * len(scales), axis=axis if len(scales) > 1 else None)
    return me.Tensor(shape=tuple(shape), dtype=tfl.TensorType.INT8,
                     data=_rng.integers(-127, 128, tuple(shape), dtype=np.int8), quantization=q, name=name)  # fmt: skip


def bias(n: int, scales: Sequence[float], name: str) -> me.Tensor:
    q = me.Quantization(scales=list(scales), zero_points=[0] * len(scales))
    data = _rng.integers(-2000, 2000, n, dtype=np.int32)
    return me.Tensor(shape=(n,), dtype=tfl.TensorType.INT32, data=data, quantization=q, name=name)


def const_i32(values: Sequence[int], name: str) -> me.Tensor:
    arr = np.asarray(values, dtype=np.int32)
    return me.Tensor(shape=arr.shape, dtype=tfl.TensorType.INT32, data=arr, name=name)


def model(opcode: int, inputs: list[me.Tensor], output: me.Tensor, options_type: int = 0, options: Any = None,
          graph_inputs: list[me.Tensor] | None = None) -> bytes:  # fmt: skip
    """One op; ``graph_inputs`` defaults to the non-constant inputs."""
    op = me.Operator(opcode=opcode, inputs=inputs, outputs=[output])
    if options is not None:
        op._fb.builtinOptionsType, op._fb.builtinOptions = options_type, options
    gin = graph_inputs if graph_inputs is not None else [t for t in inputs if t.array is None]
    sub = me.Subgraph(tensors=[*inputs, output], operators=[op], inputs=gin, outputs=[output])
    m = me.Model(subgraphs=[sub], description="edgeprune kernel test")
    m._fb.version = 3
    return bytes(m.build())
