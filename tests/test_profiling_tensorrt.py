"""TensorRT profiler: layer → component attribution everywhere; engine timing where TensorRT and a GPU exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from edgeprune.errors import EdgepruneError
from edgeprune.profiling.tensorrt import TensorRTProfiler, component_of_layer

NODES = {
    "/encoder/encoder.0/Gemm": "encoder",
    "/encoder/encoder.2/Relu": "encoder",
    "/dynamics/dynamics.0/Gemm": "dynamics",
    "/Concat": "(top-level)",
}


@pytest.mark.parametrize(
    ("layer", "component"),
    [
        ("/encoder/encoder.0/Gemm + /encoder/encoder.2/Relu", "encoder"),  # a fused layer inside one component
        ("/dynamics/dynamics.0/Gemm", "dynamics"),
        ("/encoder/encoder.2/Relu + /dynamics/dynamics.0/Gemm", "(shared)"),  # fused across a boundary
        ("Reformatting CopyNode for Input Tensor 0", "(unattributed)"),
    ],
)
def test_component_of_layer(layer: str, component: str) -> None:
    assert component_of_layer(layer, NODES) == component


def test_missing_engine_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError, match="does not exist"):
        TensorRTProfiler(tmp_path / "missing.engine")


HAVE_TRT = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs TensorRT (Python package 'tensorrt') and an NVIDIA GPU")
def test_engine_profile_on_gpu(tmp_path: Path) -> None:
    from edgeprune.export.onnx import onnx_from_torch
    from edgeprune.export.tensorrt import build_engine
    from edgeprune.models import create_model

    model = create_model("tdmpc").eval()
    inputs = model.example_inputs(1)
    ox = onnx_from_torch(model, inputs)
    build = build_engine(ox.to_bytes(), ox.input_shapes, precision="fp16")
    engine = tmp_path / "model.engine"
    engine.write_bytes(build.engine)
    m = TensorRTProfiler(engine, ox.components).measure("tdmpc", [t.numpy() for t in inputs], runs=20)
    assert m.latency.median_ms > 0
    assert {"encoder", "dynamics"} <= set(m.components)
