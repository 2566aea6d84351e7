"""Port auto-detection by the board profile's USB VID:PID."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgeprune.boards import load_board
from edgeprune.deploy.mcu.ports import PortNotFoundError, find_port


def _ports(monkeypatch: pytest.MonkeyPatch, *ports: tuple[str, int | None, int | None]) -> None:
    from serial.tools import list_ports

    fake = [SimpleNamespace(device=d, vid=v, pid=p) for d, v, p in ports]
    monkeypatch.setattr(list_ports, "comports", lambda: fake)


def test_finds_the_st_link_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _ports(monkeypatch, ("/dev/ttyS0", None, None), ("/dev/ttyACM0", 0x0483, 0x374B), ("/dev/ttyUSB0", 0x1A86, 0x7523))
    assert find_port(load_board("nucleo-l4r5zi")) == "/dev/ttyACM0"


def test_no_board_says_what_was_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    _ports(monkeypatch, ("/dev/ttyUSB0", 0x1A86, 0x7523))
    with pytest.raises(PortNotFoundError, match="no serial port of nucleo-l4r5zi") as err:
        find_port(load_board("nucleo-l4r5zi"))
    assert "/dev/ttyUSB0 (1a86:7523)" in str(err.value) and "--port" in str(err.value)


def test_two_boards_are_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    _ports(monkeypatch, ("/dev/ttyACM0", 0x0483, 0x374B), ("/dev/ttyACM1", 0x0483, 0x3752))
    with pytest.raises(PortNotFoundError, match="2 ports match"):
        find_port(load_board("nucleo-l4r5zi"))
