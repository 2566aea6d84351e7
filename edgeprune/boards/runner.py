"""The board's cost model as a runner: an MCU board without hardware at hand."""

from __future__ import annotations

from typing import Any

from edgeprune.boards.cost_model import estimate_latency
from edgeprune.boards.fit import check_fit
from edgeprune.boards.ops import ops_from_module
from edgeprune.boards.schema import BoardProfile
from edgeprune.measure.record import ComponentShare, LatencyStats, LayerFigure, Measurement, Provenance
from edgeprune.measure.runner import Runner, Subject


class CostModelRunner(Runner):
    """Latency from the board's fitted cost model (an **estimate**, per component and per op from the op
    records); tensor arena and flash **exact** from the int8 TFLite Micro bundle when ``calibration`` samples
    are given (without them, memory is not measured and the record says so), with the board's fit check."""

    def __init__(self, board: BoardProfile, calibration: Any = None):
        self.board = board
        self.calibration = calibration
        self.name = f"{board.name} (cost-model estimate)"

    def measure(self, subject: Subject) -> Measurement:
        est = estimate_latency(ops_from_module(subject.model, subject.inputs), self.board)
        per_component = est.by_component()
        total = est.latency_ms or 1.0
        m = Measurement(
            subject.label,
            f"estimate:{est.cost_model}",
            Provenance("estimated", self.board.name, est.label),
            latency=LatencyStats.single(est.latency_ms),
            components={c: ComponentShare(latency_ms=v, share=v / total) for c, v in per_component.items()},
            layers=[LayerFigure(i, op.kind.value, _component(op.name), op.cycles) for i, op in enumerate(est.per_op)],
            notes=list(est.notes),
        )
        if self.calibration is None:
            m.notes.append("no calibration samples: tensor arena and flash not measured")
            return m
        bundle = subject.export("onnx", "tflm", calibration=self.calibration).tflm
        assert bundle is not None
        m.memory.flash_bytes = len(bundle.files["model.tflite"])
        m.memory.arena_bytes, m.memory.arena = bundle.arena.minimum, "TFLM"
        verdict = check_fit(self.board, model_bytes=m.memory.flash_bytes, arena_bytes=m.memory.arena_bytes,
                            op_kinds=len(bundle.ops))  # fmt: skip
        m.fits = verdict.fits
        m.notes.append(verdict.verdict)
        return m


def _component(op_name: str) -> str:
    """The top-level component of an op record (``encoder.0#2`` → ``encoder``), as ``by_component`` sums it."""
    return op_name.split("#")[0].split(".")[0]
