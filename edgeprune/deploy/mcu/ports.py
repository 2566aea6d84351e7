"""Find a board's serial port by the USB VID:PID its profile lists (pyserial ``list_ports``)."""

from __future__ import annotations

from edgeprune.boards.schema import BoardProfile
from edgeprune.errors import EdgepruneError
from edgeprune.extras import require


class PortNotFoundError(EdgepruneError):
    """No (or more than one) serial port matches the board's USB ids."""


def find_port(board: BoardProfile) -> str:
    """The device path of the one attached port whose VID:PID is in ``board.serial.usb_ids``."""
    list_ports = require("serial.tools.list_ports", "deploy", "finding a board's serial port")

    wanted = set(board.serial.usb_ids)
    ports = list(list_ports.comports())
    hits = [p.device for p in ports if p.vid is not None and f"{p.vid:04x}:{p.pid:04x}" in wanted]
    seen = ", ".join(f"{p.device} ({p.vid:04x}:{p.pid:04x})" for p in ports if p.vid is not None) or "none"
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise PortNotFoundError(
            f"no serial port of {board.name} found (USB ids {', '.join(sorted(wanted)) or 'none in its profile'})",
            expected=f"an attached board; USB serial ports seen: {seen}",
            fix="plug the board in, or pass --port (a device path or socket://host:port), or use the emulated board",
        )
    raise PortNotFoundError(f"{len(hits)} ports match {board.name}: {', '.join(hits)}", fix="pass --port to pick one")
