"""The runtimes on this machine as runners: ``HostRunner(engine)`` measures a :class:`Subject` on one of ``ENGINES``.

Each engine names the export targets it needs (the subject makes them once), whether it runs the int8 model
(then the subject must carry calibration samples) and how to open its :class:`Profiler` on the export. A new
runtime is one module with a ``Profiler`` subclass and one entry here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.measure.runner import Profiler, Runner, Subject, loads_note, need_calibration
from edgeprune.prune.tracing import flatten_tensors


@dataclass(frozen=True)
class Engine:
    """One runtime on this machine."""

    name: str
    targets: tuple[str, ...]  # export targets it needs
    int8: bool  # runs the int8 model (needs calibration samples)
    open: Callable[[Subject, int | None, Any], Profiler]  # its profiler on the subject's export (threads, calibration)
    loads: str  # what ``memory.flash_bytes`` is the size of

    def available(self) -> str | None:
        """Why it cannot run here, or None."""
        gpu = importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()
        if self.name.startswith("tensorrt") and not gpu:
            return "no tensorrt package or CUDA GPU here (edgeprune bench --host for a Jetson)"
        return None


def _eager(s: Subject, threads: int | None, calibration: Any) -> Profiler:
    from edgeprune.profiling.eager import EagerProfiler
    from edgeprune.prune import Components

    return EagerProfiler(s.model, Components.from_children(s.model), threads=threads)


def _ort(s: Subject, threads: int | None, calibration: Any) -> Profiler:
    from edgeprune.profiling.ort import OnnxRuntimeProfiler

    return OnnxRuntimeProfiler(s.export("onnx", calibration=calibration).out_dir / "model.onnx", threads=threads)


def _litert(precision: str) -> Callable[[Subject, int | None, Any], Profiler]:
    def open_(s: Subject, threads: int | None, calibration: Any) -> Profiler:
        from edgeprune.profiling.litert import LiteRTProfiler

        exported = s.export("onnx", "tflite", calibration=calibration)
        with torch.no_grad():
            shapes = [tuple(t.shape) for t in flatten_tensors(s.model(*s.inputs))]
        outputs = dict(zip(exported.onnx.output_names, shapes, strict=True))
        path = exported.out_dir / "tflite" / f"model_{precision}.tflite"
        return LiteRTProfiler(path, exported.onnx.input_shapes, outputs)

    return open_


def _tflm(s: Subject, threads: int | None, calibration: Any) -> Profiler:
    from edgeprune.profiling.tflm_host import TFLMHostProfiler

    exported = s.export("onnx", "tflm", calibration=calibration)
    arena = exported.tflm.arena.minimum if exported.tflm else None
    return TFLMHostProfiler(exported.out_dir / "tflm" / "model.tflite", arena)


def _tensorrt(s: Subject, threads: int | None, calibration: Any) -> Profiler:
    """An fp16 engine built from the subject's ONNX on this GPU."""
    from edgeprune.export.tensorrt import build_engine
    from edgeprune.io import write_atomic
    from edgeprune.profiling.tensorrt import TensorRTProfiler

    exported = s.export("onnx", calibration=calibration)
    build = build_engine(exported.onnx.to_bytes(), exported.onnx.input_shapes, precision="fp16")
    engine = exported.out_dir / "model_fp16.engine"
    write_atomic(engine, build.engine)
    return TensorRTProfiler(engine, exported.onnx.components)


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("pytorch-eager", (), False, _eager, "float32 parameters"),
        Engine("onnxruntime", ("onnx",), False, _ort, "ONNX file"),
        Engine("litert-fp32", ("onnx", "tflite"), False, _litert("float32"), "float32 .tflite"),
        Engine("litert-int8", ("onnx", "tflite"), True, _litert("int8"), "int8 .tflite"),
        Engine("tflm-host", ("onnx", "tflm"), True, _tflm, "int8 .tflite"),
        Engine("tensorrt-fp16", ("onnx",), False, _tensorrt, "TensorRT engine"),
    )
}


def engine(name: str) -> Engine:
    if name not in ENGINES:
        raise EdgepruneError(f"unknown engine {name!r}", expected=f"one of {', '.join(ENGINES)}")
    return ENGINES[name]


def open_profiler(name: str, subject: Subject, threads: int | None, calibration: Any = None) -> Profiler:
    """The engine's profiler on ``subject`` (refused when it cannot run here or needs calibration)."""
    spec = engine(name)
    why = spec.available()
    if why:
        raise EdgepruneError(f"{name} cannot run here: {why}")
    if spec.int8:
        need_calibration(calibration, name)
    return spec.open(subject, threads, calibration)


def finish(m: Measurement, subject: Subject, name: str) -> Measurement:
    """Memory facts every host measurement states the same way."""
    if m.memory.flash_bytes is None:  # eager: the float32 parameters
        m.memory.flash_bytes = 4 * sum(p.numel() for p in subject.model.parameters())
    m.notes.insert(0, loads_note(engine(name).loads, f"in {name}"))
    if not m.components:
        m.notes.append(f"no per-component times from {name}: latency not attributed")
    return m


class HostRunner(Runner):
    """One runtime on this machine (``ENGINES``): latency **measured** here over ``runs`` after ``warmup``; per
    component from the runtime's own profile (ONNX Runtime's node profile through the ONNX metadata, eager
    hooks per top-level child); ``memory.flash_bytes`` the size of what the runtime loads."""

    times_here = True

    def __init__(
        self,
        engine_name: str = "onnxruntime",
        calibration: Any = None,
        *,
        runs: int = 50,
        warmup: int = 10,
        threads: int | None = 1,
    ):
        engine(engine_name)
        self.calibration = calibration
        self.engine = engine_name
        self.runs, self.warmup, self.threads = runs, warmup, threads
        self.name = f"this machine ({engine_name})"

    def measure(self, subject: Subject) -> Measurement:
        profiler = open_profiler(self.engine, subject, self.threads, self.calibration)
        inputs = [x.numpy() for x in subject.inputs]
        return finish(profiler.measure(subject.label, inputs, runs=self.runs, warmup=self.warmup), subject, self.engine)
