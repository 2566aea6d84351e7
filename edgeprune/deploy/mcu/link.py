"""A robust line link to a board's UART (pyserial): a deadline on every read, bounded retries, resync after
garbage, and a clear :class:`LinkError` instead of a hang."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.extras import require

READY = "m-ready"


class LinkError(EdgepruneError):
    """The board did not answer, or answered nonsense, within the deadline and retries."""


@dataclass
class Link:
    """``command("name")`` sends ``name%`` and returns the reply lines up to ``m-ready`` (excluded)."""

    port: Any  # a pyserial Serial (or anything with read/write/reset_input_buffer/close)
    timeout: float = 5.0  # seconds per command (longer ones pass their own)
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
        self.port.close()

    def _readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                return None
            try:
                chunk = self.port.read(max(getattr(self.port, "in_waiting", 0), 1))
            except OSError as exc:  # pyserial's SerialException is an OSError: board gone
                raise LinkError(f"the serial link failed: {exc}", fix="check the cable / that the board is up") from exc
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("ascii", errors="replace").strip("\r\x00 ")

    def _send(self, text: str) -> None:
        try:
            self.port.write(text.encode("ascii") + b"%")
            self.port.flush()
        except OSError as exc:
            raise LinkError(f"the serial link failed while sending {text!r}: {exc}") from exc

    def drain(self, quiet: float = 0.2) -> None:
        """Discard whatever arrives until the line has been quiet for ``quiet`` seconds (bounded to 2 s)."""
        end, last = time.monotonic() + 2.0, time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet:
            if self.port.read(max(getattr(self.port, "in_waiting", 0), 1)):
                last = time.monotonic()
        self._buf = b""

    def command(self, text: str, *, timeout: float | None = None, retry: bool = True) -> list[str]:
        """Send ``text%``; collect ``m-``/``e-`` lines until ``m-ready``. Retries (when ``retry``) after a
        timeout or an ``e-[Unknown command`` that shows the command arrived corrupted."""
        attempts = 1 + (self.retries if retry else 0)
        last_problem = ""
        for attempt in range(attempts):
            if attempt:
                self._send("")  # terminate any half-received command on the board
                self.drain()
            self._send(text)
            deadline, lines = time.monotonic() + (timeout or self.timeout), []
            while True:
                line = self._readline(deadline)
                if line is None:
                    last_problem = f"no m-ready within {timeout or self.timeout:g} s"
                    break
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
