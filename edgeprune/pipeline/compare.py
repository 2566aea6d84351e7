"""Compare the original and the pruned model in eager mode and every engine available, in one run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.table import Table
from torch import nn

from edgeprune.boards import BoardProfile, NoCostModelError, estimate_latency, ops_from_module
from edgeprune.io import write_atomic
from edgeprune.measure.record import ComponentShare, LatencyStats, Measurement, Provenance
from edgeprune.pipeline.plots import grouped_bars
from edgeprune.profiling.eager import EagerProfiler
from edgeprune.profiling.litert import LiteRTProfiler
from edgeprune.profiling.ort import OnnxRuntimeProfiler
from edgeprune.profiling.tensorrt import TensorRTProfiler
from edgeprune.profiling.tflm_host import TFLMHostProfiler
from edgeprune.prune import Components
from edgeprune.prune.counting import macs_per_component
from edgeprune.prune.tracing import flatten_tensors

VARIANTS = ("original", "pruned")


@dataclass
class EngineRow:
    """One engine's measurements of both variants."""

    engine: str
    original: Measurement
    pruned: Measurement

    @property
    def speedup(self) -> float:
        """Original latency / pruned latency on this engine."""
        return _median(self.original) / _median(self.pruned)


@dataclass
class Comparison:
    """Eager vs engines, original vs pruned, with the ideal speedup from the MAC reduction."""

    rows: list[EngineRow]
    macs: dict[str, int]
    board: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ideal_speedup(self) -> float:
        return self.macs["original"] / self.macs["pruned"] if self.macs["pruned"] else float("inf")

    def row(self, engine: str) -> EngineRow:
        return next(r for r in self.rows if r.engine == engine)

    HEADER = ("engine", "original ms", "pruned ms", "pruned speedup", "vs eager (orig / pruned)", "source")

    def text_rows(self) -> list[list[str]]:
        """The comparison as text cells (``HEADER`` columns); estimates are marked and never compared to eager."""
        eager = self.row("pytorch-eager")
        rows = []
        for r in self.rows:
            estimated = r.original.provenance.kind == "estimated"
            vs_eager = "-" if estimated else f"{_ratio(eager.original, r.original)} / {_ratio(eager.pruned, r.pruned)}"
            source = r.original.provenance.how if estimated else f"measured: {r.original.provenance.how}"
            rows.append(
                [
                    r.engine + (" (estimate)" if estimated else ""),
                    f"{_median(r.original):.4f}",
                    f"{_median(r.pruned):.4f}",
                    f"{r.speedup:.2f}x",
                    vs_eager,
                    source,
                ]
            )
        return rows

    @property
    def caption(self) -> str:
        return (
            f"ideal speedup from MACs: {self.ideal_speedup:.2f}x "
            f"({self.macs['original']:,} -> {self.macs['pruned']:,} MACs per example); "
            "estimates are not measurements"
        )

    def table(self) -> Table:
        t = Table(title="Latency per engine: original vs pruned (median ms)", caption=self.caption)
        for col in self.HEADER:
            t.add_column(col, justify="left" if col in ("engine", "source") else "right")
        for row in self.text_rows():
            source = row[-1]
            t.add_row(*row[:-1], source if len(source) < 70 else source[:67] + "...")
        return t

    def plot_png(self) -> bytes:
        """Grouped bars: median latency per engine, original vs pruned (log scale; estimates hatched)."""
        return grouped_bars(
            [r.engine for r in self.rows],
            [_median(r.original) for r in self.rows],
            [_median(r.pruned) for r in self.rows],
            "median latency (ms, log)",
            title=f"original vs pruned (ideal speedup from MACs {self.ideal_speedup:.2f}x); hatched = estimate",
            log=True,
            hatched=[r.original.provenance.kind == "estimated" for r in self.rows],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "macs": self.macs,
            "ideal_speedup": self.ideal_speedup,
            "notes": self.notes,
            "engines": [
                {
                    "engine": r.engine,
                    "speedup": r.speedup,
                    "original": r.original.to_dict(),
                    "pruned": r.pruned.to_dict(),
                }
                for r in self.rows
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        rows = [
            EngineRow(e["engine"], Measurement.from_dict(e["original"]), Measurement.from_dict(e["pruned"]))
            for e in data["engines"]
        ]
        return cls(rows, dict(data["macs"]), data.get("board"), list(data.get("notes", [])))

    def save(self, json_path: str | os.PathLike, png_path: str | os.PathLike | None = None) -> None:
        write_atomic(json_path, json.dumps(self.to_dict(), indent=2))
        if png_path is not None:
            write_atomic(png_path, self.plot_png())


def _ratio(a: Measurement, b: Measurement) -> str:
    return f"{_median(a) / _median(b):.2f}x"


def _median(m: Measurement) -> float:
    assert m.latency is not None
    return m.latency.median_ms


def compare(
    original: nn.Module,
    pruned: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    workdir: str | os.PathLike,
    *,
    calibration: Any = None,
    board: BoardProfile | None = None,
    runs: int = 50,
    warmup: int = 10,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Export both models into ``workdir`` and time them on every engine available here.

    Engines: PyTorch eager, ONNX Runtime, LiteRT float32 and (with ``calibration``) int8, the TFLite
    Micro host interpreter (host time), and for an MCU ``board`` its cost-model estimate (labelled).
    Without calibration samples the int8 engines are skipped, with a note: int8 is never calibrated on
    noise.
    """
    from edgeprune.export import export

    say = progress or (lambda _m: None)
    inputs = tuple(example_inputs)
    work = Path(workdir)
    notes: list[str] = []
    measured: dict[str, dict[str, Measurement]] = {}
    macs: dict[str, int] = {}
    targets = ("onnx", "tflite", "tflm") if calibration is not None else ("onnx", "tflite")
    if calibration is None:
        notes.append("int8 LiteRT and TFLite Micro skipped: no calibration samples (pass --calib)")
    tensorrt_here = _tensorrt_available()
    if not tensorrt_here:
        notes.append("TensorRT skipped: no tensorrt package or CUDA GPU here (edgeprune bench --host for a Jetson)")
    for variant, model in zip(VARIANTS, (original, pruned), strict=True):
        model = model.eval()
        comps = Components.from_children(model)
        macs[variant] = sum(macs_per_component(model, inputs, comps).values())
        say(f"{variant}: exporting")
        exported = export(
            model, inputs, work / variant, targets=targets, calibration=calibration, int8=calibration is not None,
            force=True,
        )  # fmt: skip
        with torch.no_grad():
            out_shapes = [tuple(t.shape) for t in flatten_tensors(model(*inputs))]
        output_shapes = dict(zip(exported.onnx.output_names, out_shapes, strict=True))
        profilers: dict[str, Any] = {
            "pytorch-eager": EagerProfiler(model, comps, threads=threads),
            "onnxruntime": OnnxRuntimeProfiler(work / variant / "model.onnx", threads=threads),
            "litert-fp32": LiteRTProfiler(
                work / variant / "tflite" / "model_float32.tflite", exported.onnx.input_shapes, output_shapes
            ),
        }
        if calibration is not None:
            profilers["litert-int8"] = LiteRTProfiler(
                work / variant / "tflite" / "model_int8.tflite", exported.onnx.input_shapes, output_shapes
            )
            arena = exported.tflm.arena.minimum if exported.tflm else None
            profilers["tflm-host"] = TFLMHostProfiler(work / variant / "tflm" / "model.tflite", arena)
        if tensorrt_here:
            profilers["tensorrt-fp16"] = _tensorrt_profiler(exported, work / variant)
        results = {}
        for engine, profiler in profilers.items():
            say(f"{variant}: timing {engine}")
            results[engine] = profiler.measure(variant, [t.numpy() for t in inputs], runs=runs, warmup=warmup)
        if board is not None:
            estimate = _board_estimate(model, inputs, board, variant, notes)
            if estimate is not None:
                results[f"{board.name}"] = estimate
        measured[variant] = results
    rows = [EngineRow(e, measured["original"][e], measured["pruned"][e]) for e in measured["original"]]
    return Comparison(rows, macs, board.name if board else None, notes)


def _tensorrt_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def _tensorrt_profiler(exported: Any, folder: Path) -> TensorRTProfiler:
    """Build an fp16 engine from the exported ONNX on this GPU and profile it."""
    from edgeprune.export.tensorrt import build_engine

    build = build_engine(exported.onnx.to_bytes(), exported.onnx.input_shapes, precision="fp16")
    engine = folder / "model_fp16.engine"
    write_atomic(engine, build.engine)
    return TensorRTProfiler(engine, exported.onnx.components)


def _board_estimate(
    model: nn.Module, inputs: tuple, board: BoardProfile, variant: str, notes: list[str]
) -> Measurement | None:
    """The board's cost-model latency as a Measurement labelled estimated (None, with a note, if it has none)."""
    try:
        est = estimate_latency(ops_from_module(model, inputs), board)
    except NoCostModelError as exc:
        if variant == "original":
            notes.append(f"{board.name}: {exc.problem}")
        return None
    ms = est.latency_ms
    total = ms or 1.0
    return Measurement(
        variant,
        f"estimate:{est.cost_model}",
        Provenance("estimated", board.name, est.label),
        latency=LatencyStats(1, 0, ms, ms, ms, ms, ms, 0.0),
        components={c: ComponentShare(latency_ms=v, share=v / total) for c, v in est.by_component().items()},
        notes=list(est.notes),
    )
