"""TensorRT: an offline buildability check that runs anywhere, and engine builds where TensorRT exists.

``tensorrt`` is imported lazily inside :func:`build_engine`; nothing else in edgeprune needs it.
The offline check compares the ONNX model with a snapshot of TensorRT's published ONNX operator
support list (``data/tensorrt_onnx_ops.json``, with its TensorRT version and source).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeprune.export.errors import ExportError

if TYPE_CHECKING:
    import onnx

PRECISIONS = ("fp32", "fp16", "int8")


def load_snapshot() -> dict[str, Any]:
    """The bundled TensorRT ONNX operator support snapshot."""
    text = resources.files("edgeprune.export").joinpath("data/tensorrt_onnx_ops.json").read_text()
    return json.loads(text)


@dataclass
class TensorRTCheck:
    """Result of :func:`check_tensorrt`: ``problems`` would make a build fail, ``notes`` may."""

    snapshot_version: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        head = f"TensorRT {self.snapshot_version} check: " + ("buildable" if self.ok else "would fail")
        return "\n".join([head, *(f"  problem: {p}" for p in self.problems), *(f"  note: {n}" for n in self.notes)])


def check_tensorrt(
    model: onnx.ModelProto, components: Mapping[str, str] | None = None, *, allow_dynamic_batch: bool = False
) -> TensorRTCheck:
    """Would TensorRT's ONNX parser accept ``model``? Static shapes, opset, operators, custom domains."""
    snap = load_snapshot()
    components = components or {}
    check = TensorRTCheck(snap["tensorrt_version"])
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not snap["min_opset"] <= opset <= snap["max_opset"]:
        check.problems.append(
            f"opset {opset} is outside TensorRT {snap['tensorrt_version']}'s range "
            f"{snap['min_opset']}..{snap['max_opset']}: re-export with opset 17"
        )
    for vi in model.graph.input:
        for axis, dim in enumerate(vi.type.tensor_type.shape.dim):
            if dim.dim_value > 0:
                continue
            label = dim.dim_param or "?"
            if axis == 0 and allow_dynamic_batch:
                check.notes.append(f"input '{vi.name}' has a dynamic batch ('{label}'): needs an optimization profile")
            else:
                check.problems.append(
                    f"input '{vi.name}' axis {axis} is dynamic ('{label}'): export with static shapes"
                )
    supported = snap["supported"]
    seen_restrictions = set()
    for node in model.graph.node:
        where = f"node {node.name or '?'} ({node.op_type}, component '{components.get(node.name, '?')}')"
        if node.domain not in ("", "ai.onnx"):
            check.problems.append(f"{where} is in custom domain '{node.domain}': needs a TensorRT plugin")
        elif node.op_type not in supported:
            check.problems.append(
                f"{where} is not supported by TensorRT {snap['tensorrt_version']}'s ONNX parser: "
                "replace the op in the model or provide a plugin"
            )
        elif "restrictions" in supported[node.op_type] and node.op_type not in seen_restrictions:
            seen_restrictions.add(node.op_type)
            check.notes.append(f"{node.op_type}: {supported[node.op_type]['restrictions']}")
    return check


@dataclass
class EngineBuild:
    """A serialized TensorRT engine and what it was built with."""

    engine: bytes
    manifest: dict[str, Any]
    timing_cache: bytes


def _import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise ExportError(
            "TensorRT is not installed here: the Python package 'tensorrt' cannot be imported.",
            expected="an NVIDIA GPU machine or Jetson with TensorRT's Python bindings",
            do="pip install tensorrt (x86 + CUDA) or use JetPack's python3-libnvinfer on a Jetson; "
            "the offline check_tensorrt() runs without it.",
        ) from exc
    return trt


def _builder(trt, logger):
    try:
        builder = trt.Builder(logger)
    except Exception as exc:  # TensorRT raises a plain RuntimeError/TypeError without a CUDA device
        builder, cause = None, exc
    else:
        cause = None
    if builder is None:
        raise ExportError(
            "TensorRT is installed but could not create a builder: no usable CUDA GPU/driver.",
            expected="an NVIDIA GPU with a working driver (nvidia-smi) visible to this process",
            do="run on the GPU machine or Jetson; check CUDA_VISIBLE_DEVICES and the driver.",
        ) from cause
    return builder


def _calibrator(trt, calibration: Mapping[str, np.ndarray], batch: int):
    """An entropy calibrator feeding the representative samples through CUDA tensors (torch)."""
    import torch

    if not torch.cuda.is_available():
        raise ExportError(
            "INT8 calibration needs the samples on the GPU, and torch sees no CUDA device.",
            do="install a CUDA build of torch on the build machine, or build FP16.",
        )

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.pos = 0
            self.count = next(iter(calibration.values())).shape[0]
            self.live: list[torch.Tensor] = []

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.pos + batch > self.count:
                return None
            self.live = [
                torch.from_numpy(np.ascontiguousarray(calibration[n][self.pos : self.pos + batch])).cuda()
                for n in names
            ]
            self.pos += batch
            return [int(t.data_ptr()) for t in self.live]

        def read_calibration_cache(self) -> None:
            return None

        def write_calibration_cache(self, cache: bytes) -> None:
            return None

    return _Calibrator()


def _read_cache(timing_cache: bytes | Path | None) -> bytes:
    if isinstance(timing_cache, bytes):
        return timing_cache
    if isinstance(timing_cache, Path) and timing_cache.is_file():
        return timing_cache.read_bytes()
    return b""


def build_engine(
    onnx_bytes: bytes,
    input_shapes: Mapping[str, tuple[int, ...]],
    *,
    precision: str = "fp16",
    workspace_mib: int = 1024,
    timing_cache: bytes | Path | None = None,
    dla_core: int | None = None,
    calibration: Mapping[str, np.ndarray] | None = None,
) -> EngineBuild:
    """Build a serialized engine with the TensorRT Python API.

    ``precision`` is fp32, fp16 or int8 (int8 needs ``calibration``, the same representative samples
    as TFLite, ``{input name: (N, *shape[1:])}``). ``timing_cache`` (bytes or a file) is reused and
    the updated cache returned; ``dla_core`` targets a Jetson DLA with GPU fallback.
    """
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision '{precision}'.", expected=f"one of {PRECISIONS}")
    if precision == "int8" and calibration is None:
        raise ExportError(
            "INT8 TensorRT engines need representative calibration samples, and none were given.",
            do="pass calibration=... (--calib samples.npy), or build fp16.",
        )
    trt = _import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = _builder(trt, logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(
            "TensorRT's ONNX parser rejected the model.",
            do="see check_tensorrt() for unsupported ops and dynamic shapes.",
            detail=errors,
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    cache_in = _read_cache(timing_cache)
    config.set_timing_cache(config.create_timing_cache(cache_in), False)
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if any(d < 0 for d in tensor.shape):
            dynamic = True
            full = tuple(input_shapes[tensor.name])
            profile.set_shape(tensor.name, (1, *full[1:]), full, full)
    if dynamic:
        config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(trt, calibration, next(iter(input_shapes.values()))[0])
        if dynamic:
            config.set_calibration_profile(profile)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above).")
    import torch

    io = [network.get_input(i) for i in range(network.num_inputs)]
    io += [network.get_output(i) for i in range(network.num_outputs)]
    manifest = {
        "tensorrt_version": trt.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown",
        "precision": precision,
        "workspace_mib": workspace_mib,
        "dla_core": dla_core,
        "tensors": {t.name: {"shape": list(t.shape), "is_input": t.is_network_input} for t in io},
    }
    return EngineBuild(bytes(engine), manifest, bytes(config.get_timing_cache().serialize()))
