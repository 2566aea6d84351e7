"""optimize() measuring where the model will run: a Linux board over SSH (the loopback OpenSSH "board"), an engine
on this machine, and a real MCU board on a serial port (QEMU standing in for the hardware only)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from loopback_sshd import Loopback, free_port

from edgeprune.boards import load_board
from edgeprune.deploy.mcu import (
    FirmwareBuildError,
    LinkError,
    build_platformio,
    build_traced,
    firmware_image,
    flash_command,
    wait_ready,
)
from edgeprune.deploy.mcu.emulator import qemu_command
from edgeprune.deploy.mcu.flash import FlashError
from edgeprune.deploy.mcu.runners import SerialBoardRunner
from edgeprune.deploy.ssh.runner import SshBoardRunner
from edgeprune.deploy.ssh.transport import SSHTarget
from edgeprune.errors import EdgepruneError
from edgeprune.measure.runner import Subject
from edgeprune.models import create_model
from edgeprune.pipeline import Goals, OptimizeOptions, optimize
from edgeprune.profiling.engines import HostRunner
from edgeprune.prune import output_fidelity

needs_qemu = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)


def _setup(name: str):
    torch.manual_seed(0)
    model = create_model(name).eval()
    return model, model.example_inputs(1), output_fidelity(model, model.example_inputs(16))


def _loopback_board(lo: Loopback, tmp: Path) -> SSHTarget:
    return SSHTarget(lo.host, board=load_board("raspberry-pi-5"), port=lo.port, key=lo.user_key,
                     known_hosts=lo.known_hosts, python=sys.executable, remote_dir=str(tmp / "board-home"),
                     connect_timeout=5)  # fmt: skip


def test_optimize_over_ssh_meets_latency_and_size_goals(loopback_sshd: Loopback, tmp_path: Path, capsys) -> None:
    """Every point is bundled, synced and timed with ONNX Runtime on the loopback board. Latency on a shared
    machine is noisy, so the latency goal is generous (3x the baseline) and the loop is driven by the model file's
    size (deterministic); the measured numbers must come from the board and be split per component."""
    model, inputs, evaluate = _setup("complex_cnn")
    target = SshBoardRunner(_loopback_board(loopback_sshd, tmp_path), runs=30, warmup=5, threads=1)
    base = target.measure(Subject("m", model, inputs, tmp_path / "probe"))
    goals = Goals(latency_ms=3 * base.latency_ms, flash_bytes=int(0.85 * base.memory.flash_bytes), max_drop=10.0)
    protect = ["stem", "dsconv", "pool", "classifier", "aux_head"]  # fewer candidates to rank: a shorter test
    result = optimize(
        model,
        inputs,
        target,
        evaluate,
        goals,
        tmp_path / "run",
        OptimizeOptions(protect=protect, step=0.3, max_iterations=3),
    )
    assert result.met, result.explanation
    chosen = result.chosen.result
    assert chosen.latency_ms <= goals.latency_ms and chosen.memory.flash_bytes <= goals.flash_bytes
    names = {n for n, _ in model.named_children()}
    for point in result.points:
        r = point.result
        assert r.provenance.kind == "measured" and f"{loopback_sshd.host} (" in r.provenance.where
        assert "ONNX Runtime" in r.provenance.how and r.memory.arena_bytes is None
        assert set(r.components_ms) - {"(unattributed)"} <= names  # ORT node profile -> components
        assert sum(r.components_ms.get(c, 0.0) for c in names) >= 0.8 * sum(r.components_ms.values())
        assert any(n.startswith("flash_bytes = size of the ONNX file") for n in r.notes)
    assert len(result.points) >= 2 and chosen.memory.flash_bytes < result.points[0].result.memory.flash_bytes
    assert (tmp_path / "board-home" / "deploy" / "bundles" / "candidate" / "model.onnx").is_file()
    with capsys.disabled():
        for p in (result.points[0], result.chosen):
            per = ", ".join(f"{c} {ms:.4f}" for c, ms in sorted(p.result.components_ms.items()))
            print(f"\n[ssh optimize] point {p.iteration}: median {p.result.latency_ms:.4f} ms, "
                  f"{p.result.memory.flash_bytes:,} B ONNX; per component ms: {per}")  # fmt: skip


def test_optimize_on_the_local_engine(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup("simple")
    target = HostRunner(runs=20, warmup=5)
    base = target.measure(Subject("m", model, inputs, tmp_path / "probe"))
    assert base.provenance.kind == "measured" and base.provenance.where.startswith("host ")
    assert set(base.components_ms) >= {"encoder", "core", "head"}
    goals = Goals(latency_ms=10 * base.latency_ms, flash_bytes=int(0.7 * base.memory.flash_bytes), max_drop=10.0)
    result = optimize(
        model, inputs, target, evaluate, goals, tmp_path / "run", OptimizeOptions(step=0.3, max_iterations=4)
    )
    assert result.met, result.explanation
    assert result.chosen.result.memory.flash_bytes <= goals.flash_bytes
    eager = HostRunner("pytorch-eager", runs=5, warmup=1).measure(Subject("m", model, inputs, tmp_path / "eager"))
    assert "eager" in eager.provenance.how and set(eager.components_ms) == {"encoder", "core", "head"}
    with pytest.raises(EdgepruneError, match="unknown engine"):
        HostRunner("tflm")


FAKE_OPENOCD = '''#!{python}
"""The hardware double: stands in for openocd + ST-Link + the board. 'Flashing' (re)starts QEMU on the ELF with
its UART on a fixed TCP port, as a real board keeps its serial port across flashing."""
import json, os, signal, subprocess, sys, time
argv = sys.argv[1:]
with open({calls!r}, "a") as f:
    f.write(json.dumps(argv) + "\\n")
elf = argv[argv.index("-c") + 1].split()[1]  # "program <elf> verify reset exit"
if os.path.exists({pid_file!r}):
    try:
        os.kill(int(open({pid_file!r}).read()), signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(0.2)
qemu = subprocess.Popen({qemu!r} + [elf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, start_new_session=True)
with open({pid_file!r}, "w") as f:
    f.write(str(qemu.pid))
print("** Programming Finished **")
'''


@pytest.fixture
def qemu_nucleo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A NUCLEO-L4R5ZI whose only stand-in is the hardware: an ``openocd`` on PATH that loads the ELF into QEMU
    and a UART at a fixed ``socket://`` URL. Yields (board, port, file of the flash commands run)."""
    board = load_board("nucleo-l4r5zi")
    port = free_port()
    qemu = qemu_command(board, Path("ELF"), f"tcp:127.0.0.1:{port},server=on,wait=off")[:-1]
    tools, calls, pid_file = tmp_path / "tools", tmp_path / "flash-calls.jsonl", tmp_path / "qemu.pid"
    tools.mkdir()
    script = FAKE_OPENOCD.format(python=sys.executable, calls=str(calls), pid_file=str(pid_file), qemu=qemu)
    (tools / "openocd").write_text(script)
    (tools / "openocd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    try:
        yield board, f"socket://127.0.0.1:{port}", calls
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@needs_qemu
@pytest.mark.slow
def test_serial_board_target_flashes_waits_and_benches_each_point(qemu_nucleo, tmp_path: Path) -> None:
    """SerialBoardRunner end to end with a test double only for the hardware: the export, the firmware build,
    flash() with the board's openocd command, waiting for the firmware, the serial protocol and bench are the
    real code. The "board" is QEMU's MPS2-AN386 (a Cortex-M4 like the NUCLEO's), so the firmware is built for it
    (``edgeprune.deploy.mcu.build_traced``; a real board gets the PlatformIO build) and reports itself as
    emulated, which makes bench label the latency an estimate: on real silicon it is measured (the ``board``
    test)."""
    board, port, calls = qemu_nucleo
    model, inputs, evaluate = _setup("simple")
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    # the firmware for QEMU, traced for the latency estimate (as emulate() builds it): the stand-in is emulated
    target = SerialBoardRunner(board, calibration, port, build=build_traced, ready_timeout=20)
    base = target.measure(Subject("m", model, inputs, tmp_path / "probe"))
    assert base.fits and base.memory.arena_bytes > 0 and base.memory.flash_bytes > 0
    assert base.provenance.kind == "estimated" and base.provenance.where.startswith("emulated nucleo-l4r5zi")
    assert set(base.components_ms) >= {"encoder", "core", "head"}
    elf = tmp_path / "probe" / "firmware" / "firmware.elf"
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [flash_command(board, elf)[1:]]
    assert any(n.startswith("flashed with: openocd -f interface/stlink.cfg") for n in base.notes)
    goals = Goals(latency_ms=0.75 * base.latency_ms, max_drop=1.0)
    result = optimize(
        model, inputs, target, evaluate, goals, tmp_path / "run", OptimizeOptions(step=0.4, max_iterations=2)
    )
    assert result.met, result.explanation
    assert len(calls.read_text().splitlines()) == 1 + len(result.points)  # flashed once per measured point


def test_waiting_for_a_board_that_never_answers_times_out(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(LinkError, match=r"did not answer within 1 s after flashing"):
        wait_ready("nucleo-l4r5zi", f"socket://127.0.0.1:{free_port()}", timeout=1)
    assert time.monotonic() - t0 < 5


def test_real_board_build_needs_platformio_and_images_per_flash_method(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pio
    with pytest.raises(FirmwareBuildError, match="PlatformIO") as err:
        build_platformio(tmp_path, "nucleo-l4r5zi", tmp_path / "fw")
    assert "pip install platformio" in str(err.value)
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    assert firmware_image(load_board("nucleo-l4r5zi"), elf) == elf  # openocd takes the ELF
    with pytest.raises(FlashError, match=r"esptool flashes firmware.bin"):
        firmware_image(load_board("esp32-s3-devkitc-1"), elf)
    (tmp_path / "firmware.bin").write_bytes(b"bin")
    assert firmware_image(load_board("esp32-s3-devkitc-1"), elf).name == "firmware.bin"
    with pytest.raises(EdgepruneError, match="not an MCU board"):
        SerialBoardRunner(load_board("raspberry-pi-5"), [], "/dev/ttyACM0")
    with pytest.raises(EdgepruneError, match="calibration samples"):
        SerialBoardRunner(load_board("nucleo-l4r5zi"), None)


@pytest.mark.board
def test_serial_board_target_on_a_real_board(tmp_path: Path) -> None:
    """A real board: EDGEPRUNE_TEST_BOARD=name:port (port a device path, socket:// URL, or 'auto'); needs
    PlatformIO and the board's flash tool."""
    spec = os.environ.get("EDGEPRUNE_TEST_BOARD")
    if not spec:
        pytest.skip("no board attached: set EDGEPRUNE_TEST_BOARD=name:port (e.g. nucleo-l4r5zi:/dev/ttyACM0)")
    name, _, port = spec.partition(":")
    model, inputs, _ = _setup("simple")
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    target = SerialBoardRunner(load_board(name), calibration, None if port in ("", "auto") else port)
    r = target.measure(Subject("m", model, inputs, tmp_path))
    assert r.provenance.kind == "measured" and r.latency_ms > 0 and r.fits
    assert set(r.components_ms) >= {"encoder", "core", "head"} and r.memory.arena_bytes > 0 and r.memory.flash_bytes > 0


def test_cli_optimize_over_ssh_and_on_the_local_engine(loopback_sshd: Loopback, tmp_path: Path) -> None:
    from edgeprune.cli import main

    common = ["optimize", "simple", "--eval", "fidelity", "--max-drop", "10", "--step", "0.3", "--latency-ms", "1000",
              "--flash-kb", "30"]  # fmt: skip
    ssh = ["--board", "raspberry-pi-5", "--host", f"{loopback_sshd.host}:{loopback_sshd.port}",
           "--key", str(loopback_sshd.user_key), "--known-hosts", str(loopback_sshd.known_hosts),
           "--python", sys.executable, "--remote-dir", str(tmp_path / "board-home")]  # fmt: skip
    assert main([*common, *ssh, "--out", str(tmp_path / "ssh")]) == 0
    points = [json.loads(line) for line in (tmp_path / "ssh" / "iterations.jsonl").read_text().splitlines()]
    assert all(p["result"]["provenance"]["kind"] == "measured" for p in points)
    assert all(p["result"]["provenance"]["where"].startswith(loopback_sshd.host) for p in points)
    assert (tmp_path / "board-home" / "deploy" / "runner.py").is_file()  # --remote-dir is where it ran
    assert main([*common, "--engine", "onnxruntime", "--out", str(tmp_path / "local")]) == 0
    config = json.loads((tmp_path / "local" / "config.json").read_text())
    assert config["target"] == "this machine (onnxruntime)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--board", "nucleo-l4r5zi", "--port", "auto", "--emulate"], "--port and --emulate name different targets"),
        (["--board", "raspberry-pi-5", "--host", "pi@pi", "--engine", "onnxruntime"], "--host and --engine"),
        (["--board", "nucleo-l4r5zi", "--engine", "onnxruntime"], "drop --board or --engine"),
        ([], "no target given"),
        (["--board", "raspberry-pi-5"], "is a Linux board"),
        (["--board", "nucleo-l4r5zi", "--host", "me@host"], "not reached over SSH"),
        (["--board", "rpi5", "--host", "pi@pi", "--runtimes", "onnxruntime,tensorrt"], "one runtime"),
        (["--board", "nucleo-l4r5zi", "--port", "/dev/ttyACM0"], "calibration samples"),
    ],
)
def test_cli_optimize_target_arguments_are_checked(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    from edgeprune.cli import main

    argv = ["optimize", "simple", "--eval", "fidelity", "--latency-ms", "1", *args, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
