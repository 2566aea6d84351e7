"""ONNX Runtime profiler (CPU here; CUDA/TensorRT execution providers where present), per node → component."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.extras import require
from edgeprune.measure.record import ComponentShare, Measurement, Provenance
from edgeprune.measure.runner import Profiler
from edgeprune.measure.timing import ort_node_times

COMPONENTS_KEY = "edgeprune.components"  # model metadata written by edgeprune.export.onnx: node name -> component
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}  # fmt: skip


class OnnxRuntimeProfiler(Profiler):
    """Times an ONNX file in an ``onnxruntime.InferenceSession``.

    Per-component latency comes from ONNX Runtime's own per-node profile (a separate profiled session),
    attributed to components through the node → component map the exporter stores in the model.
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int | None = None,
        profile_runs: int = 20,
    ):
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise EdgepruneError(f"ONNX file {self.path} does not exist", fix="export the model first")
        self.providers = list(providers)
        self.threads = threads
        self.profile_runs = profile_runs
        self._session: Any = None

    def _new_session(self, profile_prefix: str | None = None) -> Any:
        ort = require("onnxruntime", "onnx", "profiling in ONNX Runtime")

        available = ort.get_available_providers()
        missing = [p for p in self.providers if p not in available]
        if missing:
            raise EdgepruneError(
                f"ONNX Runtime has no {', '.join(missing)} here",
                expected=f"one of the available providers: {', '.join(available)}",
            )
        options = ort.SessionOptions()
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        return ort.InferenceSession(str(self.path), options, providers=self.providers)

    def activate(self) -> None:
        self._session = self._new_session()

    def deactivate(self) -> None:
        self._session = None

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        return self._session.run(None, self._feeds(self._session, inputs))

    def provenance(self) -> Provenance:
        ort = require("onnxruntime", "onnx", "profiling in ONNX Runtime")

        threads = f", {self.threads} threads" if self.threads else ""
        return Provenance.host(f"ONNX Runtime {ort.__version__}, {'/'.join(self.providers)}{threads}")

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        measurement.memory.flash_bytes = self.path.stat().st_size
        node_components = self._node_components()
        if not node_components:
            measurement.notes.append("no component map in the ONNX metadata: no per-component times")
            return
        times = self.component_latency(inputs, node_components)
        total = sum(times.values()) or 1.0
        measurement.components = {n: ComponentShare(latency_ms=t, share=t / total) for n, t in times.items()}

    def component_latency(self, inputs: Sequence[Any], node_components: dict[str, str]) -> dict[str, float]:
        """Median per-run kernel time per component, in ms, from ONNX Runtime's node profile."""
        with tempfile.TemporaryDirectory() as tmp:
            session = self._new_session(profile_prefix=os.path.join(tmp, "ort"))
            feeds = self._feeds(session, inputs)
            for _ in range(self.profile_runs):
                session.run(None, feeds)
            trace = json.loads(Path(session.end_profiling()).read_text())
        return component_times(ort_node_times(trace), node_components)

    def _node_components(self) -> dict[str, str]:
        return node_components(self.path)

    @staticmethod
    def _feeds(session: Any, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
        specs = session.get_inputs()
        if len(specs) != len(inputs):
            raise EdgepruneError(
                f"the ONNX model takes {len(specs)} inputs, got {len(inputs)}",
                expected=", ".join(f"{s.name} {s.shape}" for s in specs),
            )
        return {
            s.name: np.asarray(x, dtype=_ORT_TYPES.get(s.type, np.float32)) for s, x in zip(specs, inputs, strict=True)
        }


def node_components(onnx_path: str | os.PathLike) -> dict[str, str]:
    """The node name -> component map edgeprune's exporter stores in the model metadata (empty if absent)."""
    onnx = require("onnx", "onnx", "reading an ONNX model's component map")
    model = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props[COMPONENTS_KEY]) if COMPONENTS_KEY in props else {}


def component_times(node_runs: dict[str, list[float]], node_components: dict[str, str]) -> dict[str, float]:
    """Median over runs of the summed node times of each component (unknown nodes: ``(unattributed)``), in ms.

    ONNX Runtime names a node it fused with its successor ``fused <first node>`` (e.g. Gemm + Relu), and a node
    its NCHWc layout pass rewrote after its output tensor, ``<node>_output_<i>_nchwc`` (convolutions on x86).
    """
    per_run: dict[str, np.ndarray] = {}
    for node, times in node_runs.items():
        names = (node, node.removeprefix("fused "), re.sub(r"_output_\d+_nchwc$", "", node))
        comp = next((node_components[n] for n in names if n in node_components), "(unattributed)")
        per_run[comp] = per_run.get(comp, 0.0) + np.asarray(times, dtype=float)
    return {comp: float(np.median(v)) for comp, v in per_run.items()}
