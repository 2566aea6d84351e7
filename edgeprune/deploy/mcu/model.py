"""The C model of an export: ``prepare`` reads the int8 ``.tflite`` once and generates the tagged AOT model that
the firmware, the PlatformIO project and ``bench`` all take from here (nothing downstream re-reads the export)."""

from __future__ import annotations

from pathlib import Path

from edgeprune.deploy.mcu.aot.codegen import GeneratedModel, generate
from edgeprune.deploy.mcu.aot.components import layer_components
from edgeprune.deploy.mcu.aot.graph import read_graph
from edgeprune.errors import EdgepruneError
from edgeprune.extras import require


def prepare(export_dir: str | Path, name: str | None = None) -> tuple[GeneratedModel, bytes]:
    """The generated C model (layers tagged with components) and the int8 ``.tflite`` of an export directory
    (``edgeprune.export.export(..., targets=("onnx", "tflm"))``)."""
    d = Path(export_dir)
    tflite_path = d / "tflm" / "model.tflite"
    if not tflite_path.is_file():
        raise EdgepruneError(
            f"{d} holds no TFLM bundle (tflm/model.tflite)",
            fix="export with targets including 'tflm' (edgeprune export ... --to onnx,tflm)",
        )
    data = tflite_path.read_bytes()
    comps = None
    if (d / "model.onnx").is_file():
        onnx = require("onnx", "deploy", "reading the export's component map")
        comps = layer_components(read_graph(data), onnx.load(str(d / "model.onnx")))
    return generate(data, components=comps, name=name or d.name), data
