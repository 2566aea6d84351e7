"""MCU boards as runners: the emulated board (QEMU) and a real board on a serial port.

Each measurement exports the int8 model once (the subject's export), generates the C model once
(:func:`~edgeprune.deploy.mcu.model.prepare`) and hands both to the firmware build and to ``bench``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprune.boards import BoardProfile, FlashMethod
from edgeprune.boards.runner import CostModelRunner
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.api import bench_export, build_platformio, emulate, wait_ready
from edgeprune.deploy.mcu.build import Firmware, FirmwareBuildError
from edgeprune.deploy.mcu.flash import firmware_image, flash
from edgeprune.deploy.mcu.model import prepare
from edgeprune.deploy.mcu.ports import find_port
from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement
from edgeprune.measure.runner import Runner, Subject, need_calibration

# (export dir, board, out dir, model=generated) -> (model, firmware): build_platformio, or a stand-in in tests
FirmwareBuilder = Callable[..., tuple[GeneratedModel, Firmware]]


class EmulatedBoardRunner(Runner):
    """The board's benchmark firmware running the int8 model in QEMU.

    Latency is an **estimate** (QEMU instruction counts × the core's fitted cycles per instruction), per
    component and per layer from per-layer counts; arena, flash and RAM are the firmware's own. A model too
    large to link for the board is reported as not fitting, with the cost model's latency estimate instead.
    """

    def __init__(self, board: BoardProfile, calibration: Any):
        need_calibration(calibration, "the emulated board")
        self.board = board
        self.calibration = calibration
        self.name = f"{board.name} (emulated)"

    def measure(self, subject: Subject) -> Measurement:
        workdir = subject.export("onnx", "tflm", calibration=self.calibration).out_dir
        prepared = prepare(workdir)
        try:
            with emulate(self.board, workdir, workdir / "firmware", model=prepared[0]) as emu:
                return bench_export(workdir, self.board, emu.port, firmware=emu.firmware, prepared=prepared)
        except FirmwareBuildError as exc:
            return not_fitting(self.board, self.calibration, subject, exc)


class SerialBoardRunner(Runner):
    """A real MCU board on a serial port: each measurement exports the int8 model (ONNX + TFLM, with
    ``calibration``), builds the firmware (``build``: default the PlatformIO project, ``pio run``), flashes it
    with the board's flash method (``edgeprune.deploy.mcu.flash``, the code behind ``edgeprune flash``), waits for
    the firmware to answer on ``port`` (default: found by the board's USB VID:PID) and benches it there.

    Latency is **measured** on the board (DWT cycle counter, else ``micros()``), per component and per layer
    from per-layer ticks; arena and flash are the firmware's. Whether the other end is the emulated board is read
    from the firmware (it then says "estimated"). A model too large to link is reported as not fitting.
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
                fix="use SshBoardRunner (edgeprune optimize --host) for Linux boards",
            )
        need_calibration(calibration, f"{board.name}'s firmware")
        self.board = board
        self.calibration = calibration
        self.port = port
        self.build = build or build_platformio
        self.uf2_drive = uf2_drive
        self.ready_timeout = ready_timeout
        self.runs, self.warmup = runs, warmup
        self.name = f"{board.name} on {port or 'its USB serial port'}"

    def measure(self, subject: Subject) -> Measurement:
        workdir = subject.export("onnx", "tflm", calibration=self.calibration).out_dir
        prepared = prepare(workdir)
        try:
            _, firmware = self.build(workdir, self.board, workdir / "firmware", model=prepared[0])
        except FirmwareBuildError as exc:
            return not_fitting(self.board, self.calibration, subject, exc)
        needs_port = self.board.flash_method in (FlashMethod.ESPTOOL, FlashMethod.BOSSAC)  # flashed over the port
        port = self.port or (find_port(self.board) if needs_port else None)
        command = flash(self.board, firmware_image(self.board, firmware.elf), port=port, uf2_drive=self.uf2_drive)
        port = wait_ready(self.board, self.port, timeout=self.ready_timeout)
        m = bench_export(workdir, self.board, port, firmware=firmware, runs=self.runs, warmup=self.warmup,
                         prepared=prepared)  # fmt: skip
        m.notes.append(f"flashed with: {shlex.join(command)}; benched on {port}")
        return m


def not_fitting(board: BoardProfile, calibration: Any, subject: Subject, exc: EdgepruneError) -> Measurement:
    """A model whose firmware does not link for ``board``: the cost model's estimate, marked as not fitting."""
    m = CostModelRunner(board, calibration).measure(subject)
    m.fits = False
    m.notes.append(f"does not fit {board.name}: {exc.problem}")
    return m
