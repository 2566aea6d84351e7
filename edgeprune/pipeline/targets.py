"""Where the loop measures: a Target turns a model into latency (per component) and memory on a board."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from edgeprune.boards import BoardProfile, check_fit, estimate_latency, ops_from_module
from edgeprune.profiling.measurement import Provenance


@dataclass
class TargetResult:
    """One model measured (or estimated) on a target."""

    latency_ms: float
    components_ms: dict[str, float]
    provenance: Provenance
    arena_bytes: int | None = None
    flash_bytes: int | None = None
    fits: bool | None = None  # the board's own fit check (flash + SRAM with reserves), when it has one
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetResult:
        return cls(**{**data, "provenance": Provenance(**data["provenance"])})


class Target(Protocol):
    """Anything that can measure a model: an MCU board's cost model + TFLM bundle, an emulated board, SSH."""

    name: str

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult: ...


class CostModelTarget:
    """An MCU board without hardware at hand: latency from the board's fitted cost model (an **estimate**,
    per component from the op records); tensor arena and flash **exact** from the int8 TFLite Micro bundle
    when ``calibration`` samples are given (without them, memory is not measured and the result says so).
    """

    def __init__(self, board: BoardProfile, calibration: Any = None):
        self.board = board
        self.calibration = calibration
        self.name = f"{board.name} (cost-model estimate)"

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult:
        est = estimate_latency(ops_from_module(model, inputs), self.board)
        result = TargetResult(
            latency_ms=est.latency_ms,
            components_ms=est.by_component(),
            provenance=Provenance("estimated", self.board.name, est.label),
        )
        if self.calibration is None:
            result.notes.append("no calibration samples: tensor arena and flash not measured")
            return result
        from edgeprune.export import export

        bundle = export(model, inputs, workdir, targets=("onnx", "tflm"), calibration=self.calibration, force=True)
        assert bundle.tflm is not None
        result.flash_bytes = len(bundle.tflm.files["model.tflite"])
        result.arena_bytes = bundle.tflm.arena.minimum
        verdict = check_fit(self.board, model_bytes=result.flash_bytes, arena_bytes=result.arena_bytes,
                            op_kinds=len(bundle.tflm.ops))  # fmt: skip
        result.fits = verdict.fits
        result.notes.append(verdict.verdict)
        return result


class EmulatedBoardTarget:
    """The board's benchmark firmware running the int8 model in QEMU (``edgeprune.deploy``).

    Latency is an **estimate** (QEMU instruction counts × the core's fitted cycles per instruction), per
    component from per-layer counts; arena, flash and RAM are the firmware's own. A model too large to
    link for the board is reported as not fitting, with the cost model's latency estimate instead.
    """

    def __init__(self, board: BoardProfile, calibration: Any):
        if calibration is None:
            from edgeprune.errors import EdgepruneError

            raise EdgepruneError(
                "the emulated board runs the int8 model, which needs calibration samples",
                fix="pass calibration samples (--calib samples.npz)",
            )
        self.board = board
        self.calibration = calibration
        self.name = f"{board.name} (emulated)"

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult:
        from edgeprune.deploy import FirmwareBuildError, bench_export, emulate
        from edgeprune.export import export

        export(model, inputs, workdir, targets=("onnx", "tflm"), calibration=self.calibration, force=True)
        try:
            with emulate(self.board, workdir, workdir / "firmware") as emu:
                m, _ = bench_export(workdir, self.board, emu.port, firmware=emu.firmware)
        except FirmwareBuildError as exc:
            result = CostModelTarget(self.board, self.calibration).measure(model, inputs, workdir)
            result.fits = False
            result.notes.append(f"does not fit {self.board.name}: {exc.problem}")
            return result
        assert m.latency is not None
        return TargetResult(
            latency_ms=m.latency.median_ms,
            components_ms={c: s.latency_ms or 0.0 for c, s in m.components.items()},
            provenance=m.provenance,
            arena_bytes=m.peak_memory.get("arena_bytes"),
            flash_bytes=m.peak_memory.get("flash_bytes"),
            fits=True,
            notes=[n for n in m.notes if not n.startswith("layer ")],
        )
