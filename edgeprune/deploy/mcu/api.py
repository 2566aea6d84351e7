"""The deploy workflow in three calls: ``prepare`` (export -> tagged C model), ``emulate`` (build + QEMU) and
``bench_export`` (handshake, bit-exact check, timing -> Measurement); for a real board ``build_platformio`` and,
after flashing, ``wait_ready``."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edgeprune.boards import load_board
from edgeprune.boards.cycle_model import cycle_model, total_mix
from edgeprune.boards.fit import FitVerdict
from edgeprune.boards.schema import BoardProfile
from edgeprune.deploy.mcu import emulator
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.deploy.mcu.bench import bench
from edgeprune.deploy.mcu.build import (
    Firmware,
    FirmwareBuildError,
    Kernels,
    build_firmware,
    firmware_fit,
    footprint,
    overflow_error,
)
from edgeprune.deploy.mcu.link import Link, LinkError
from edgeprune.deploy.mcu.model import prepare
from edgeprune.deploy.mcu.platformio import platformio_project
from edgeprune.deploy.mcu.ports import PortNotFoundError, find_port
from edgeprune.deploy.mcu.protocol import Dut
from edgeprune.deploy.mcu.trace import trace_inference
from edgeprune.measure.record import Measurement


def _board(board: BoardProfile | str) -> BoardProfile:
    return board if isinstance(board, BoardProfile) else load_board(board)


def build(
    export_dir: str | Path,
    board: BoardProfile | str,
    out_dir: str | Path,
    *,
    mlperf_model: str | None = None,
    model: GeneratedModel | None = None,
    kernels: Kernels | None = None,
) -> tuple[GeneratedModel, Firmware]:
    """Generate and cross-compile the firmware of an export for ``board`` into ``out_dir`` (``mlperf_model``: the
    ``m-model-[...]`` id the MLPerf Tiny runner selects its test script by, e.g. ``kws01``; ``model``: the export's
    generated model when the caller has it, so the export is not read again; ``kernels``: see
    :func:`~edgeprune.deploy.mcu.build.build_firmware`)."""
    model = model or prepare(export_dir)[0]
    return model, build_firmware(model, _board(board), Path(out_dir), mlperf_model=mlperf_model, kernels=kernels)


def fit_export(export_dir: str | Path, board: BoardProfile | str, *, kernels: Kernels | None = None) -> FitVerdict:
    """Does the export's firmware fit ``board``? Linked with room for anything and measured: the figures
    ``--emulate`` reports when a model does not fit (:func:`~edgeprune.deploy.mcu.build.firmware_fit`)."""
    profile = _board(board)
    model = prepare(export_dir)[0]
    with tempfile.TemporaryDirectory(prefix="edgeprune-fit-") as tmp:
        fw = build_firmware(model, profile, Path(tmp), kernels=kernels, sizing=True)
    return firmware_fit(profile, fw, model)


def build_platformio(
    export_dir: str | Path,
    board: BoardProfile | str,
    out_dir: str | Path,
    *,
    timeout: float = 1800,
    model: GeneratedModel | None = None,
) -> tuple[GeneratedModel, Firmware]:
    """The firmware a real board runs: the PlatformIO project for ``board`` with our int8 kernels
    (``platformio_project(..., runtime="aot")``: per-layer cycles, and the model ``bench_export`` checks) built with
    ``pio run``; ``out_dir/.pio/build/<board>/firmware.elf`` (and the ``.bin`` PlatformIO writes beside it)."""
    profile = _board(board)
    pio = shutil.which("pio") or shutil.which("platformio")
    if pio is None:
        raise FirmwareBuildError(
            "PlatformIO (pio) is not installed: it builds the firmware for a real board",
            fix="pip install platformio (it fetches the board's toolchain and core on the first build)",
        )
    model = model or prepare(export_dir)[0]
    out = Path(out_dir)
    platformio_project(export_dir, profile, out, runtime="aot", model=model)
    try:
        proc = subprocess.run([pio, "run", "-d", str(out), "-e", profile.name], capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        again = shlex.join([pio, "run", "-d", str(out)])
        raise FirmwareBuildError(f"pio run did not finish within {timeout:g} s", fix=f"run {again}") from None
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        raise overflow_error(log, profile, model) or FirmwareBuildError("pio run failed", fix=log[-3000:])
    elf = out / ".pio" / "build" / profile.name / "firmware.elf"
    return model, footprint(elf, profile.core, model.arena_bytes, 0)


def wait_ready(board: BoardProfile | str, port: str | None = None, *, timeout: float = 30.0) -> str:
    """After flashing: poll until the board's port is there (``port``, or found by USB VID:PID; a board with
    native USB re-enumerates) and the firmware answers ``name%``. Returns the port; :class:`LinkError` after
    ``timeout`` seconds, with the last problem seen."""
    profile = _board(board)
    deadline, problem = time.monotonic() + timeout, "nothing tried"
    while True:
        try:
            url = port or find_port(profile)
            link = Link.open(url, profile.serial.baud, timeout=1.0, retries=0)
            try:
                link.drain(0.1)
                Dut(link).name()
                return url
            finally:
                link.close()
        except (LinkError, PortNotFoundError) as exc:
            problem = exc.problem
        if time.monotonic() > deadline:
            raise LinkError(
                f"{profile.name} did not answer within {timeout:g} s after flashing: {problem}",
                expected="the benchmark firmware answering name% with m-name-... and m-ready at 115200 8N1",
                fix="check the port (--port), the cable, and that the flash tool reset the board",
            )
        time.sleep(0.25)


def emulate(
    board: BoardProfile | str,
    export_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    tcp: bool = False,
    mlperf_model: str | None = None,
    model: GeneratedModel | None = None,
    kernels: Kernels | None = None,
    estimate: bool = True,
) -> emulator.EmulatedBoard:
    """Build the firmware for ``board`` and start it in QEMU; ``.port`` is the UART: a pty, or with ``tcp`` a
    ``socket://127.0.0.1:N`` URL (context manager). ``mlperf_model``, ``model``, ``kernels``: as for :func:`build`.

    The firmware is :func:`build_traced` (latency estimated from the traced instruction mix); ``estimate=False``
    builds it with :func:`build` (instruction counts only: for checking outputs, a few seconds faster)."""
    profile = _board(board)
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix=f"edgeprune-{profile.name}-"))
    make = build_traced if estimate else build
    _, fw = make(export_dir, profile, out, mlperf_model=mlperf_model, model=model, kernels=kernels)
    emu = emulator.start(profile, fw.elf, tcp=tcp)
    emu.firmware = fw
    return emu


def build_traced(
    export_dir: str | Path,
    board: BoardProfile | str,
    out_dir: str | Path,
    *,
    mlperf_model: str | None = None,
    model: GeneratedModel | None = None,
    kernels: Kernels | None = None,
) -> tuple[GeneratedModel, Firmware]:
    """:func:`build` for the emulated board, with the latency estimate: on a core with a cycle model (M4, M7) one
    inference runs in a traced QEMU for its per-layer instruction mix (``firmware.layer_mixes``, what ``bench``
    turns into cycles) and the firmware is built again with the model's estimated cycles per instruction, so
    ``m-lap-us`` is in estimated microseconds of the board. Elsewhere it is :func:`build`."""
    profile = _board(board)
    model = model or prepare(export_dir)[0]
    _, fw = build(export_dir, profile, out_dir, mlperf_model=mlperf_model, model=model, kernels=kernels)
    cycles = cycle_model(profile.core)
    if cycles is None:
        return model, fw
    mixes = trace_inference(profile, fw.elf, sum(x.size for x in model.inputs), len(model.layers))
    total = total_mix(mixes)
    cpi = cycles.cycles(total, profile) / total.instructions
    fw = build_firmware(model, profile, Path(out_dir), mlperf_model=mlperf_model, kernels=kernels, cycles_per_insn=cpi)
    return model, dataclasses.replace(fw, layer_mixes=tuple(mixes))


def bench_export(
    export_dir: str | Path,
    board: BoardProfile | str,
    port: str | None = None,
    *,
    emulated: bool | None = None,
    runs: int = 5,
    warmup: int = 1,
    firmware: Firmware | None = None,
    prepared: tuple[GeneratedModel, bytes] | None = None,
) -> Measurement:
    """Benchmark an export on the board at ``port`` (default: found by the board's USB VID:PID). Whether it is
    the emulated board is read from the firmware unless ``emulated`` says so; ``firmware`` (e.g.
    ``EmulatedBoard.firmware``) adds its flash/RAM footprint to the measurement; ``prepared``: what
    :func:`~edgeprune.deploy.mcu.model.prepare` returned for this export, when the caller has it."""
    profile = _board(board)
    port = port or find_port(profile)
    model, data = prepared or prepare(export_dir)
    link = Link.open(port, profile.serial.baud)
    try:
        return bench(link, model, data, profile, emulated=emulated, runs=runs, warmup=warmup, firmware=firmware)
    finally:
        link.close()
