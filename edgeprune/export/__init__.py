"""Exporters: dense ONNX, TFLite int8 and TFLite Micro bundles, TensorRT engines (issue: exporters).

``export()`` runs the whole chain; each step is also usable on its own
(``onnx_from_torch`` -> ``tflite_from_onnx`` -> ``tflm_bundle``; ``check_tensorrt`` / ``build_engine``).
Heavy dependencies (onnx2tf/TensorFlow, LiteRT, TFLM, TensorRT) load only when their step runs.
"""

from edgeprune.export.api import (
    TARGETS,
    ExportResult,
    OnnxOptions,
    SummaryRow,
    TensorRTOptions,
    Tolerances,
    export,
)
from edgeprune.export.errors import ExportError, ParityError
from edgeprune.export.parity import ParityReport, Tolerance

__all__ = [
    "TARGETS",
    "ExportError",
    "ExportResult",
    "OnnxOptions",
    "ParityError",
    "ParityReport",
    "SummaryRow",
    "TensorRTOptions",
    "Tolerance",
    "Tolerances",
    "export",
]
