"""The emulated board: the benchmark firmware for a board's core running in ``qemu-system-arm`` on the
matching MPS2 machine, with ``-icount shift=0`` (one instruction = 1 ns of virtual time, deterministic) and
its UART on a pseudo-terminal that pyserial (ours, or any EEMBC runner) opens like a real board's port."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from edgeprune.boards.schema import QEMU_MACHINE_FOR_CORE, BoardProfile
from edgeprune.deploy.mcu.build import Firmware
from edgeprune.errors import EdgepruneError

logger = logging.getLogger(__name__)

BANNER_SECONDS = 3.0  # at most this long for the boot lines (they come within milliseconds)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class EmulatorError(EdgepruneError):
    """QEMU is missing, refused the board, or did not come up."""


def qemu_command(board: BoardProfile, elf: Path, serial: str = "pty", trace: Path | None = None) -> list[str]:
    """The exact ``qemu-system-arm`` argument list for ``board`` running ``elf`` (UART on ``serial``). ``trace``: log
    every translation block's instructions when translated and each execution of a block, unchained, to this file
    (``-d in_asm,exec,nochain``; the input of :mod:`edgeprune.deploy.mcu.cycles`)."""
    machine = board.qemu_machine or QEMU_MACHINE_FOR_CORE.get(board.core)
    if machine is None:
        raise EmulatorError(
            f"{board.name} ({board.core.value}) cannot be emulated here",
            expected="a Cortex-M0+/M4/M7 board (QEMU mps2-an385/an386/an500)",
        )
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        raise EmulatorError("qemu-system-arm is not installed", fix="make setup (or: apt-get install qemu-system-arm)")
    return [qemu, "-M", machine.value, "-display", "none", "-monitor", "none", "-serial", serial,
            "-icount", "shift=0", "-kernel", str(elf),
            *(["-d", "in_asm,exec,nochain", "-D", str(trace)] if trace else [])]  # fmt: skip


@dataclass
class EmulatedBoard:
    """A running QEMU. ``port`` is the UART: a pseudo-terminal path, or ``socket://127.0.0.1:N`` when started
    with ``tcp=True`` (pyserial URL). Use as a context manager or call ``stop()``."""

    board: BoardProfile
    elf: Path
    process: subprocess.Popen[str]
    port: str
    firmware: Firmware | None = None  # set by edgeprune.deploy.emulate (footprint for bench)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate QEMU (kill if it does not exit within ``timeout`` seconds)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def wait(self) -> int:
        """Block until QEMU exits (e.g. ``edgeprune emulate`` staying up until Ctrl-C); its exit code."""
        return self.process.wait()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self) -> EmulatedBoard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_tcp(proc: subprocess.Popen[str], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _consume_banner(pty: str, deadline: float) -> None:
    """Read the firmware's boot lines (``m-init-done``, ``m-ready``) off the pty. The pty keeps them until someone
    reads, and a runner that does not drain first (the MLPerf Tiny runner: serial_device.py) would take them as the
    reply to its first command and stay one reply behind for the whole session. A real board's USB serial port
    drops what the board prints before the host opens it; this makes the emulated board behave the same."""
    fd = os.open(pty, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    seen = b""
    try:
        while b"m-ready" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]:
                seen += os.read(fd, 256)
    except OSError:  # QEMU gone (EIO): the first command on the port reports it as a LinkError
        pass
    finally:
        os.close(fd)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``), however
    the parent dies: SIGTERM with Python's default handler, SIGKILL, a crash. Nothing else ends QEMU then, since
    no ``finally`` runs. ``None`` off Linux (there only ``stop()``, the context manager and the CLI's signal path
    end it)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child after fork only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would kill us later
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def start(
    board: BoardProfile, elf: Path, *, tcp: bool = False, timeout: float = 10.0, trace: Path | None = None
) -> EmulatedBoard:
    """Start QEMU on ``elf`` for ``board``; return once the UART (pty, or a local TCP port) is reachable and, on a
    pty, the firmware's boot lines are consumed (the port is idle, as a booted board's is). ``trace``: see
    :func:`qemu_command`.

    On Linux QEMU dies with the process that started it, even when that process is killed without running any
    clean-up (SIGTERM to a library caller, SIGKILL); strictly with the *thread* that started it (the kernel's
    parent-death signal), so keep the board within the thread that started it."""
    tcp_port = _free_port() if tcp else None
    serial = f"tcp:127.0.0.1:{tcp_port},server=on,wait=off" if tcp_port else "pty"
    cmd = qemu_command(board, elf, serial, trace)
    logger.debug("running %s", shlex.join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, preexec_fn=_die_with_parent())  # fmt: skip
    try:
        return _connect(board, elf, proc, tcp_port, time.monotonic() + timeout)
    except BaseException:  # an error, or SIGTERM/Ctrl-C while QEMU comes up: never leave it running
        proc.kill()
        proc.wait(5)
        raise


def _connect(board: BoardProfile, elf: Path, proc: subprocess.Popen[str], tcp_port: int | None, deadline: float
             ) -> EmulatedBoard:  # fmt: skip
    seen: list[str] = []
    assert proc.stdout is not None
    if tcp_port is not None:
        if _wait_tcp(proc, tcp_port, deadline):
            return EmulatedBoard(board, elf, proc, f"socket://127.0.0.1:{tcp_port}")
        deadline = time.monotonic()  # fall through to the error below
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        line = proc.stdout.readline()  # QEMU prints the pty line at once, or exits with an error
        if not line:
            break
        seen.append(line.strip())
        m = re.search(r"char device redirected to (\S+)", line)
        if m:
            _consume_banner(m.group(1), min(deadline, time.monotonic() + BANNER_SECONDS))
            return EmulatedBoard(board, elf, proc, m.group(1))
    raise EmulatorError(
        f"QEMU did not expose the UART of {board.name}", expected="a pty ('char device redirected to ...') or TCP port",
        fix="QEMU said: " + (" | ".join(seen) or "nothing"),
    )  # fmt: skip
