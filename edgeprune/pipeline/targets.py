"""Where the loop measures: a Target turns a model into latency (per component) and memory on a board.

| target | latency | memory |
|---|---|---|
| ``CostModelTarget`` | estimated (board's fitted cost model) | arena, flash: exact from the TFLM bundle |
| ``EmulatedBoardTarget`` | estimated (QEMU instruction counts) | arena, flash: the firmware's |
| ``SerialBoardTarget`` | measured on the board (cycle counter) | arena, flash: the firmware's |
| ``SshBoardTarget`` | measured on the board over SSH | flash: the model file the runtime loads |
| ``LocalEngineTarget`` | measured on this machine | flash: the model file the runtime loads |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from edgeprune.boards import BoardProfile, FlashMethod, check_fit, estimate_latency, ops_from_module
from edgeprune.errors import EdgepruneError
from edgeprune.profiling.measurement import Measurement, Provenance

if TYPE_CHECKING:
    from edgeprune.deploy.aot.codegen import GeneratedModel
    from edgeprune.deploy.build import Firmware
    from edgeprune.deploy.ssh import SSHTarget

    FirmwareBuilder = Callable[[Path, BoardProfile, Path], tuple[GeneratedModel, Firmware]]

MEMORY_NOTE = "flash_bytes = size of the {what} the runtime loads; arena_bytes not measured (no tensor arena {where})"


@dataclass
class TargetResult:
    """One model measured (or estimated) on a target."""

    latency_ms: float
    components_ms: dict[str, float]
    provenance: Provenance
    arena_bytes: int | None = None
    # which tensor arena arena_bytes is: "TFLM" (the TFLite Micro interpreter's, minimum on the host) or
    # "firmware" (what the benchmark firmware reports: edgeprune's kernels' static arena, far smaller)
    arena: str = ""
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
        result.arena_bytes, result.arena = bundle.tflm.arena.minimum, "TFLM"
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
        _need_calibration(calibration, "the emulated board")
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
            return _not_fitting(self.board, self.calibration, model, inputs, workdir, exc)
        return _firmware_result(m)


class SerialBoardTarget:
    """A real MCU board on a serial port: each measurement exports the int8 model (ONNX + TFLM, with
    ``calibration``), builds the firmware (``build``: default the PlatformIO project, ``pio run``), flashes it
    with the board's flash method (``edgeprune.deploy.flash``, the code behind ``edgeprune flash``), waits for
    the firmware to answer on ``port`` (default: found by the board's USB VID:PID) and benches it there.

    Latency is **measured** on the board (DWT cycle counter, else ``micros()``), per component from per-layer
    ticks; arena and flash are the firmware's. Whether the other end is the emulated board is read from the
    firmware (it then says "estimated"). A model too large to link is reported as not fitting.
    """

    def __init__(
        self,
        board: BoardProfile,
        calibration: Any,
        port: str | None = None,
        *,
        build: FirmwareBuilder | None = None,
        uf2_drive: Path | None = None,
        ready_timeout: float = 30.0,
        runs: int = 5,
        warmup: int = 1,
    ):
        if not board.core.is_mcu or board.flash_method is FlashMethod.SSH:
            raise EdgepruneError(
                f"{board.name} is not an MCU board on a serial port",
                fix="use SshBoardTarget (edgeprune optimize --host) for Linux boards",
            )
        _need_calibration(calibration, f"{board.name}'s firmware")
        from edgeprune.deploy import build_platformio

        self.board = board
        self.calibration = calibration
        self.port = port
        self.build = build or build_platformio
        self.uf2_drive = uf2_drive
        self.ready_timeout = ready_timeout
        self.runs, self.warmup = runs, warmup
        self.name = f"{board.name} on {port or 'its USB serial port'}"

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult:
        from edgeprune.deploy import FirmwareBuildError, bench_export, find_port, firmware_image, flash, wait_ready
        from edgeprune.export import export

        export(model, inputs, workdir, targets=("onnx", "tflm"), calibration=self.calibration, force=True)
        try:
            _, firmware = self.build(workdir, self.board, workdir / "firmware")
        except FirmwareBuildError as exc:
            return _not_fitting(self.board, self.calibration, model, inputs, workdir, exc)
        needs_port = self.board.flash_method in (FlashMethod.ESPTOOL, FlashMethod.BOSSAC)  # flashed over the port
        port = self.port or (find_port(self.board) if needs_port else None)
        command = flash(self.board, firmware_image(self.board, firmware.elf), port=port, uf2_drive=self.uf2_drive)
        port = wait_ready(self.board, self.port, timeout=self.ready_timeout)
        m, _ = bench_export(workdir, self.board, port, firmware=firmware, runs=self.runs, warmup=self.warmup)
        result = _firmware_result(m)
        result.notes.append(f"flashed with: {' '.join(command)}; benched on {port}")
        return result


class SshBoardTarget:
    """A Linux board over SSH (Jetson, Raspberry Pi): each measurement bundles the model, copies what changed
    (sha256 sync) and times it on the board with one ``runtime`` (``onnxruntime``; ``tensorrt`` on a Jetson;
    ``pytorch-eager``) through the self-contained runner (``edgeprune.profiling.ssh_bench.bench_remote``).

    Latency is **measured** on the board (median of ``runs``); per component from ONNX Runtime's node profile
    (TensorRT's layer profile, eager hooks) mapped through the ONNX metadata. ``flash_bytes`` is the size of
    the model file the runtime loads; there is no tensor arena to measure (``arena_bytes`` stays ``None``).
    """

    LABEL = "candidate"  # one bundle on the board, replaced file by file as the loop moves on

    def __init__(
        self,
        ssh: SSHTarget,
        runtime: str = "onnxruntime",
        *,
        runs: int = 50,
        warmup: int = 10,
        threads: int | None = None,
        tensorrt_precision: str = "fp16",
        trtexec: str | None = None,
    ):
        from edgeprune.profiling.remote import RUNTIMES

        if runtime not in RUNTIMES:
            raise EdgepruneError(f"unknown runtime {runtime!r} for an SSH board", expected=f"one of {RUNTIMES}")
        self.ssh = ssh
        self.runtime = runtime
        self.options = dict(runs=runs, warmup=warmup, threads=threads, tensorrt_precision=tensorrt_precision,
                            trtexec=trtexec)  # fmt: skip
        self.name = f"{ssh.board.name if ssh.board else 'Linux board'} at {ssh.host} ({runtime})"

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult:
        from edgeprune.profiling.ssh_bench import bench_remote

        bench = bench_remote(self.ssh, {self.LABEL: (model, inputs)}, workdir, runtimes=(self.runtime,),
                             **self.options)  # fmt: skip
        (m,) = bench.measurements
        what = {"tensorrt": "TensorRT engine", "pytorch-eager": "torch.export program"}.get(self.runtime, "ONNX file")
        result = _latency_result(m, MEMORY_NOTE.format(what=what, where="on a Linux board"))
        result.notes.append(f"copied {bench.sync.bytes_copied:,} B to the board")
        return result


class LocalEngineTarget:
    """An inference engine on this machine: ``onnxruntime`` (per component from its node profile, through the
    ONNX metadata) or ``pytorch-eager`` (per top-level child from forward hooks). Latency is **measured** here
    (median of ``runs``); ``flash_bytes`` is the size of the ONNX file (eager: of the float32 parameters).
    """

    ENGINES = ("onnxruntime", "pytorch-eager")

    def __init__(self, engine: str = "onnxruntime", *, runs: int = 50, warmup: int = 10, threads: int | None = 1):
        if engine not in self.ENGINES:
            raise EdgepruneError(f"unknown engine {engine!r}", expected=f"one of {', '.join(self.ENGINES)}")
        self.engine = engine
        self.runs, self.warmup, self.threads = runs, warmup, threads
        self.name = f"this machine ({engine})"

    def measure(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], workdir: Path) -> TargetResult:
        if self.engine == "onnxruntime":
            from edgeprune.export import export
            from edgeprune.profiling.ort import OnnxRuntimeProfiler

            export(model, inputs, workdir, targets=("onnx",), force=True)
            profiler: Any = OnnxRuntimeProfiler(workdir / "model.onnx", threads=self.threads)
            what = "ONNX file"
        else:
            from edgeprune.profiling.eager import EagerProfiler
            from edgeprune.prune import Components

            profiler = EagerProfiler(model, Components.from_children(model), threads=self.threads)
            what = "float32 parameters"
        m = profiler.measure("candidate", [x.numpy() for x in inputs], runs=self.runs, warmup=self.warmup)
        if m.artifact_bytes is None:
            m.artifact_bytes = 4 * sum(p.numel() for p in model.parameters())
        return _latency_result(m, MEMORY_NOTE.format(what=what, where=f"in {self.engine}"))


def _need_calibration(calibration: Any, what: str) -> None:
    if calibration is None:
        raise EdgepruneError(
            f"{what} runs the int8 model, which needs calibration samples",
            fix="pass calibration samples (--calib samples.npz)",
        )


def _not_fitting(board: BoardProfile, calibration: Any, model: nn.Module, inputs: tuple[torch.Tensor, ...],
                 workdir: Path, exc: EdgepruneError) -> TargetResult:  # fmt: skip
    """A model whose firmware does not link for ``board``: the cost model's estimate, marked as not fitting."""
    result = CostModelTarget(board, calibration).measure(model, inputs, workdir)
    result.fits = False
    result.notes.append(f"does not fit {board.name}: {exc.problem}")
    return result


def _firmware_result(m: Measurement) -> TargetResult:
    """An MCU bench (``edgeprune.deploy.bench``): latency and per-component time, arena and flash of the firmware."""
    assert m.latency is not None
    return TargetResult(
        latency_ms=m.latency.median_ms,
        components_ms={c: s.latency_ms or 0.0 for c, s in m.components.items()},
        provenance=m.provenance,
        arena_bytes=m.peak_memory.get("arena_bytes"),
        arena="firmware",
        flash_bytes=m.peak_memory.get("flash_bytes"),
        fits=True,
        notes=[n for n in m.notes if not n.startswith("layer ")],
    )


def _latency_result(m: Measurement, memory_note: str) -> TargetResult:
    """A runtime measurement (board or host): median latency, per-component time, the model file's size."""
    if m.latency is None:
        raise EdgepruneError(f"{m.runtime} returned no latency", fix="its notes say: " + "; ".join(m.notes))
    missing = [] if m.components else [f"no per-component times from {m.runtime}: latency not attributed"]
    return TargetResult(
        latency_ms=m.latency.median_ms,
        components_ms={c: s.latency_ms or 0.0 for c, s in m.components.items()},
        provenance=m.provenance,
        flash_bytes=m.artifact_bytes,
        notes=[memory_note, *missing, *m.notes],
    )
