"""Flash command construction and failure handling (real flashing only with a board attached)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from edgeprune.boards import load_board
from edgeprune.deploy.mcu.flash import FlashError, flash, flash_command


def test_openocd_for_the_nucleo() -> None:
    cmd = flash_command(load_board("nucleo-l4r5zi"), Path("fw.elf"))
    assert cmd == ["openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32l4x.cfg", "-c",
                   "program fw.elf verify reset exit"]  # fmt: skip


def test_each_method_builds_its_command() -> None:
    assert flash_command(load_board("nrf5340-dk"), Path("a.elf"))[:4] == ["pyocd", "flash", "-t", "nrf5340"]
    assert flash_command(load_board("raspberry-pi-pico"), Path("a.elf"))[0] == "picotool"
    esp = flash_command(load_board("esp32-s3-devkitc-1"), Path("a.bin"), port="/dev/ttyUSB0")
    assert esp[:4] == ["esptool.py", "--chip", "esp32s3", "--port"] and esp[-2:] == ["0x0", "a.bin"]
    nano = flash_command(load_board("arduino-nano-33-ble-sense"), Path("a.bin"), port="/dev/ttyACM0")
    assert nano[:3] == ["bossac", "-p", "/dev/ttyACM0"]


def test_bossac_without_port_and_ssh_boards_are_clear_errors() -> None:
    with pytest.raises(FlashError, match="needs the board's serial port"):
        flash_command(load_board("arduino-nano-33-ble-sense"), Path("a.bin"))
    with pytest.raises(FlashError, match="not a firmware image"):
        flash_command(load_board("jetson-orin-nano-8gb"), Path("a.bin"))


def test_dry_run_runs_nothing_and_a_missing_tool_names_the_install(tmp_path: Path, monkeypatch) -> None:
    fw = tmp_path / "fw.elf"
    fw.write_bytes(b"\x7fELF")
    board = load_board("nucleo-l4r5zi")
    assert flash(board, fw, dry_run=True)[0] == "openocd"
    monkeypatch.setenv("PATH", str(tmp_path))  # no openocd on PATH
    with pytest.raises(FlashError, match="openocd is not installed") as err:
        flash(board, fw)
    assert "apt-get install openocd" in str(err.value)


def test_a_failing_tool_reports_its_output(tmp_path: Path, monkeypatch) -> None:
    fw = tmp_path / "fw.elf"
    fw.write_bytes(b"\x7fELF")
    tool = tmp_path / "openocd"
    tool.write_text("#!/bin/sh\necho 'Error: open failed' >&2\nexit 1\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FlashError, match=r"openocd failed \(exit 1\)") as err:
        flash(load_board("nucleo-l4r5zi"), fw)
    assert "open failed" in str(err.value)


def test_a_users_board_is_flashed_and_built_from_its_profile_alone(tmp_path: Path, monkeypatch) -> None:
    """Hardware as data: a profile on EDGEPRUNE_BOARD_PATH brings its flash targets and PlatformIO target."""
    from edgeprune.boards import BOARD_PATH_ENV
    from edgeprune.boards.registry import builtin_profile_dir
    from edgeprune.deploy.mcu.platformio import pio_board, pio_boards

    text = (builtin_profile_dir() / "nucleo-l4r5zi.toml").read_text()
    text = re.sub(r"(?m)^aliases = .*$", "aliases = []", text.replace('name = "nucleo-l4r5zi"', 'name = "my-l4-board"'))
    text = text.replace('"target/stm32l4x.cfg"', '"target/my_chip.cfg"')
    text = text.replace('board = "nucleo_l4r5zi"', 'board = "my_pio_board"')
    (tmp_path / "my.toml").write_text(text)
    monkeypatch.setenv(BOARD_PATH_ENV, str(tmp_path))
    mine = load_board("my-l4-board")
    assert flash_command(mine, Path("fw.elf"))[4] == "target/my_chip.cfg"
    target = pio_board(mine)
    assert target is not None and target.board == "my_pio_board" and "my-l4-board" in pio_boards()
    blank = (tmp_path / "my.toml").read_text().replace('openocd = "target/my_chip.cfg"\n', "")
    (tmp_path / "my.toml").write_text(blank)
    with pytest.raises(FlashError, match=r"\[flash_target\] openocd"):
        flash_command(load_board("my-l4-board"), Path("fw.elf"))
