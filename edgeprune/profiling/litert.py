"""LiteRT (TFLite) interpreter profiler for .tflite files, float32 or int8."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement, Provenance
from edgeprune.measure.runner import Profiler


class LiteRTProfiler(Profiler):
    """Times a ``.tflite`` in the LiteRT interpreter (``ai_edge_litert``, else ``tflite_runtime``).

    Inputs are given in the PyTorch/ONNX layout (``input_shapes``/``output_shapes`` by ONNX name);
    NCHW↔NHWC and int8 (de)quantization happen as the exporter recorded them, inside the timed call,
    as an application feeding float data would do it.
    """

    runtime = "litert"

    def __init__(
        self,
        tflite_path: str | os.PathLike,
        input_shapes: Mapping[str, tuple[int, ...]],
        output_shapes: Mapping[str, tuple[int, ...]],
    ):
        self.path = Path(tflite_path)
        if not self.path.is_file():
            raise EdgepruneError(f"TFLite file {self.path} does not exist", fix="export with --to tflite first")
        self.input_shapes, self.output_shapes = dict(input_shapes), dict(output_shapes)
        self._runner: Any = None

    def activate(self) -> None:
        from edgeprune.export.tflite import run_tflite

        self._runner, _, _ = run_tflite(self.path.read_bytes(), self.input_shapes, self.output_shapes)

    def deactivate(self) -> None:
        self._runner = None

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        return self._runner([np.asarray(x, dtype=np.float32) for x in inputs])

    def provenance(self) -> Provenance:
        from edgeprune.export.tflite import make_interpreter

        module = type(make_interpreter(self.path.read_bytes())).__module__.split(".")[0]
        return Provenance.host(f"LiteRT interpreter ({module}), {self.path.name}")

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        measurement.memory.flash_bytes = self.path.stat().st_size
