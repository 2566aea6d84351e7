"""A robust line link to a board's UART (pyserial): a deadline on every read, bounded retries, resync after
garbage, and a clear :class:`LinkError` instead of a hang."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.extras import require

READY = "m-ready"
try:  # what a failing port raises: pyserial's SerialException (an OSError), termios errors from flush() on a
    # vanished pty, ValueError/TypeError from a port closed underneath
    from termios import error as _TermiosError
except ImportError:  # not POSIX
    _TermiosError = OSError
PORT_ERRORS = (OSError, ValueError, TypeError, _TermiosError)
MAX_REPLY_LINES = 10_000  # a reply longer than this is a runaway board or link, not an answer


class LinkError(EdgepruneError):
    """The board did not answer, or answered nonsense, within the deadline and retries."""


@dataclass
class Link:
    """``command("name")`` sends ``name%`` and returns the reply lines up to ``m-ready`` (excluded)."""

    port: Any  # a pyserial Serial (or anything with read/write/reset_input_buffer/close)
    timeout: float = 5.0  # seconds of silence allowed before and between reply lines (a slow board is fine)
    retries: int = 2
    garbage: list[str] = field(default_factory=list)  # lines skipped while resynchronising
    _buf: bytes = b""

    @classmethod
    def open(cls, url: str, baud: int = 115200, **kwargs: Any) -> Link:
        """Open a device path (``/dev/ttyACM0``, a pty) or a pyserial URL (``socket://host:port``)."""
        serial = require("serial", "deploy", "a serial link to a board")

        try:
            port = serial.serial_for_url(url, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=0.05)
        except (serial.SerialException, ValueError) as exc:
            raise LinkError(f"cannot open serial port {url}: {exc}", fix="check the port (or --port)") from exc
        return cls(port, **kwargs)

    def close(self) -> None:
        with contextlib.suppress(*PORT_ERRORS):  # the board is already gone: nothing left to close
            self.port.close()

    def _read(self) -> bytes:
        """Whatever the port has (at least one byte, or nothing after pyserial's read timeout); every failure
        of the port becomes a :class:`LinkError`."""
        try:
            return self.port.read(max(getattr(self.port, "in_waiting", 0), 1))
        except PORT_ERRORS as exc:
            raise LinkError(
                f"the serial link failed: {type(exc).__name__}: {exc}",
                expected="the board's serial port staying connected",
                fix="check the cable / that the board is up and no other program uses the port",
            ) from exc

    def _readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                return None
            self._buf += self._read()
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("ascii", errors="replace").strip("\r\x00 ")

    def _send(self, text: str) -> None:
        try:
            self.port.write(text.encode("ascii") + b"%")
            self.port.flush()
        except PORT_ERRORS as exc:
            raise LinkError(
                f"the serial link failed while sending {(text + '%')[:40]!r}: {type(exc).__name__}: {exc}",
                fix="check the cable / that the board is up and no other program uses the port",
            ) from exc

    def drain(self, quiet: float = 0.2) -> None:
        """Discard whatever arrives until the line has been quiet for ``quiet`` seconds (bounded to 2 s)."""
        end, last = time.monotonic() + 2.0, time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self._read():
                last = time.monotonic()
        self._buf = b""

    def resync(self) -> None:
        """Bring the board and the host back in step after a fault: a bare ``%`` ends any half-received command
        in the board's line buffer (it answers with an error and ``m-ready``), then every late or stray reply is
        drained. Without it the next command would be appended to that half line and fail, or be taken for
        something else (``db 0a0bdb load 640`` reads as hex bytes)."""
        self._send("")
        self.drain()

    def command(
        self, text: str, *, timeout: float | None = None, retry: bool = True, work_done: str | None = None
    ) -> list[str]:
        """Send ``text%``; collect ``m-``/``e-`` lines until ``m-ready``. The board must start answering within
        ``self.timeout`` seconds (a lost command is retried at once); from its first line on, ``timeout``
        seconds of work are allowed (default ``self.timeout``), and every further line extends the deadline to
        at least ``self.timeout`` from then, so a slow but steady board is never cut off. A line starting with
        ``work_done`` (``m-infer-done``) ends the work allowance: the rest of the reply comes at once, so a lost
        ``m-ready`` costs ``self.timeout``, not the work's deadline. Retries (when ``retry``) after a timeout or
        an ``e-[Unknown command`` that shows the command arrived corrupted."""
        attempts = 1 + (self.retries if retry else 0)
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                self.resync()
            self._send(text)
            deadline, lines, seen = time.monotonic() + self.timeout, [], 0
            while True:
                line = self._readline(deadline)
                seen += 1
                if line is None or seen > MAX_REPLY_LINES:
                    last_problem = (f"no reply within {self.timeout:g} s" if seen == 1 else
                                    f"no m-ready within {timeout or self.timeout:g} s of work")  # fmt: skip
                    break
                work = (timeout or self.timeout) if seen == 1 else self.timeout
                deadline = max(deadline, time.monotonic() + work)
                if work_done and line.startswith(work_done):
                    deadline = time.monotonic() + self.timeout
                if line == READY:
                    if any(x.startswith("e-[Unknown command") for x in lines) and retry:
                        last_problem = f"the board did not understand it: {lines[-1]}"
                        break
                    return lines
                if line.startswith(("m-", "e-")):
                    lines.append(line)
                elif line:
                    self.garbage.append(line)
        raise LinkError(
            f"command {text[:40]!r} failed after {attempts} attempt(s): {last_problem}",
            expected="an EEMBC-protocol board answering with m-... lines and m-ready",
            fix="check the port, baud rate (115200 8N1) and that the firmware is running",
        )
