"""TensorRT engine profiler (where TensorRT and a GPU exist): latency with CUDA sync, per-layer profile.

TensorRT and torch.cuda are imported only when a profiler is activated, so this module imports anywhere.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import ComponentShare, Measurement, Provenance
from edgeprune.measure.runner import Profiler


def _require_tensorrt() -> Any:
    try:
        import tensorrt as trt
        import torch
    except ImportError as exc:
        raise EdgepruneError(
            f"TensorRT profiling needs the Python packages tensorrt and torch: {exc}",
            fix="run it on the Jetson/GPU machine (edgeprune bench --host ...), where JetPack provides TensorRT",
        ) from exc
    if not torch.cuda.is_available():
        raise EdgepruneError("TensorRT profiling needs a CUDA GPU, and torch sees none here")
    return trt


class TensorRTProfiler(Profiler):
    """Times a serialized engine (``.engine``/``.plan``) with ``execute_async_v3`` on one CUDA stream.

    ``node_components`` (ONNX node name -> component, from the exporter's metadata) attributes
    TensorRT's per-layer times: a fused layer's name lists the ONNX nodes it came from.
    """

    runtime = "tensorrt"

    def __init__(
        self, engine_path: str | os.PathLike, node_components: Mapping[str, str] | None = None, profile_runs: int = 20
    ):
        self.path = Path(engine_path)
        if not self.path.is_file():
            raise EdgepruneError(
                f"engine {self.path} does not exist", fix="build it with edgeprune export --to tensorrt"
            )
        self.node_components = dict(node_components or {})
        self.profile_runs = profile_runs
        self._state: dict[str, Any] = {}

    def activate(self) -> None:
        trt = _require_tensorrt()
        import torch

        logger = trt.Logger(trt.Logger.WARNING)
        engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise EdgepruneError(
                f"TensorRT could not load {self.path}",
                expected="an engine built by this TensorRT version on this GPU (engines are not portable)",
                fix="rebuild the engine on this machine",
            )
        context = engine.create_execution_context()
        buffers: dict[str, Any] = {}
        inputs, outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = torch.from_numpy(np.zeros(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            buffers[name] = torch.empty(tuple(engine.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, buffers[name].data_ptr())
            (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(name)
        self._state = {
            "trt": trt,
            "engine": engine,
            "context": context,
            "buffers": buffers,
            "inputs": inputs,
            "outputs": outputs,
            "stream": torch.cuda.Stream(),
        }

    def deactivate(self) -> None:
        self._state = {}

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        import torch

        s = self._state
        if len(inputs) != len(s["inputs"]):
            raise EdgepruneError(f"the engine takes {len(s['inputs'])} inputs, got {len(inputs)}")
        for name, x in zip(s["inputs"], inputs, strict=True):
            s["buffers"][name].copy_(torch.as_tensor(np.asarray(x)).reshape(s["buffers"][name].shape))
        s["context"].execute_async_v3(s["stream"].cuda_stream)
        s["stream"].synchronize()
        return [s["buffers"][name].cpu().numpy() for name in s["outputs"]]

    def provenance(self) -> Provenance:
        import torch

        trt = self._state.get("trt") or _require_tensorrt()
        return Provenance.host(f"TensorRT {trt.__version__} on {torch.cuda.get_device_name()}, {self.path.name}")

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        import torch

        measurement.memory.flash_bytes = self.path.stat().st_size
        measurement.memory.gpu_bytes = torch.cuda.max_memory_allocated()
        layers = self.layer_times(inputs)
        per_component: dict[str, float] = defaultdict(float)
        for layer, ms in layers.items():
            per_component[component_of_layer(layer, self.node_components)] += ms
        total = sum(per_component.values()) or 1.0
        measurement.components = {c: ComponentShare(latency_ms=v, share=v / total) for c, v in per_component.items()}

    def layer_times(self, inputs: Sequence[Any]) -> dict[str, float]:
        """Median per-run time of every TensorRT layer, in ms (TensorRT's IProfiler)."""
        trt = self._state["trt"]
        runs: dict[str, list[float]] = defaultdict(list)

        class _Collect(trt.IProfiler):
            def report_layer_time(self, layer_name: str, ms: float) -> None:
                runs[layer_name].append(ms)

        context = self._state["context"]
        context.profiler = _Collect()
        try:
            for _ in range(self.profile_runs):
                self.infer(inputs)
        finally:
            context.profiler = None
        return {name: float(np.median(v)) for name, v in runs.items()}


def component_of_layer(layer_name: str, node_components: Mapping[str, str]) -> str:
    """The component of a (possibly fused) TensorRT layer, from the ONNX node names it mentions."""
    found = {comp for node, comp in node_components.items() if node and node in layer_name}
    if len(found) == 1:
        return found.pop()
    return "(shared)" if found else "(unattributed)"
