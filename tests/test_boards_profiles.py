"""Board profiles: shipped files, schema errors, registry (names, aliases, user paths), renderings."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from edgeprune.boards import (
    BOARD_PATH_ENV,
    BoardFileError,
    BoardProfile,
    Core,
    UnknownBoardError,
    board_details,
    boards_table,
    iter_profiles,
    list_boards,
    load_board,
    load_profile_file,
)
from edgeprune.boards.registry import builtin_profile_dir, unreadable_profiles
from edgeprune.boards.schema import QEMU_MACHINE_FOR_CORE
from edgeprune.errors import EdgepruneError

SHIPPED = sorted(p.stem for p in builtin_profile_dir().glob("*.toml"))
REQUIRED = {
    "arduino-nano-33-ble-sense",
    "nucleo-l4r5zi",
    "nucleo-h7a3zi-q",
    "nucleo-h743zi2",
    "stm32f746g-disco",
    "raspberry-pi-pico",
    "esp32-s3-devkitc-1",
    "jetson-orin-nano-8gb",
    "jetson-agx-orin-64gb",
    "jetson-xavier-nx",
    "raspberry-pi-5",
}

VALID = """
name = "my-board"
display_name = "My Board"
aliases = ["mine"]
vendor = "Me"
chip = "STM32L4R5ZIT6"
core = "cortex-m4"
clock_hz = 80_000_000
sram_bytes = 131_072
flash_bytes = 524_288
runtimes = ["tflm"]
flash_method = "openocd"
qemu_machine = "mps2-an386"
cost_model = "cortex-m4/tflm-reference"

[serial]
baud = 115200
usb_ids = ["0483:374B"]

[[sources]]
title = "My data sheet"
"""


def _render(renderable: object) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def _write(tmp_path: Path, text: str, name: str = "board.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- shipped profiles ------------------------------------------------------------------------------


def test_required_boards_are_shipped() -> None:
    assert set(SHIPPED) >= REQUIRED


@pytest.mark.parametrize("stem", SHIPPED)
def test_every_shipped_profile_loads(stem: str) -> None:
    profile = load_profile_file(builtin_profile_dir() / f"{stem}.toml")
    assert profile.name == stem, "file name and board name agree"
    assert profile.sources and all(s.title for s in profile.sources)
    if profile.core.is_mcu:
        assert profile.sram_bytes and profile.flash_bytes
        assert "tflm" in {r.value for r in profile.runtimes}
        assert profile.qemu_machine == QEMU_MACHINE_FOR_CORE[profile.core]
    else:
        assert profile.dram_bytes and profile.flash_method.value == "ssh"


def test_names_and_aliases_are_unique() -> None:
    seen: dict[str, str] = {}
    for profile in iter_profiles():
        for n in profile.names():
            assert n not in seen, f"{n} used by {seen.get(n)} and {profile.name}"
            seen[n] = profile.name


def test_datasheet_figures_of_key_boards() -> None:
    l4 = load_board("nucleo-l4r5zi")
    assert (l4.clock_hz, l4.sram_bytes, l4.flash_bytes) == (120_000_000, 640 * 1024, 2 * 1024 * 1024)
    nano = load_board("nano33ble")
    assert (nano.clock_hz, nano.sram_bytes, nano.flash_bytes) == (64_000_000, 256 * 1024, 1024 * 1024)
    pico = load_board("pico")
    assert pico.core is Core.CORTEX_M0PLUS and pico.sram_bytes == 264 * 1024 and pico.cost_model is None
    orin = load_board("orin-nano")
    assert orin.gpu is not None and orin.gpu.cuda_cores == 1024 and orin.gpu.compute_capability == "8.7"
    assert load_board("xavier-nx").gpu.compute_capability == "7.2"  # type: ignore[union-attr]
    assert load_board("rpi5").gpu is None
    assert load_board("esp32-s3").qemu_machine is None


# --- schema errors name the file, the field and what was expected ------------------------------------


def test_valid_user_profile(tmp_path: Path) -> None:
    profile = load_profile_file(_write(tmp_path, VALID))
    assert isinstance(profile, BoardProfile)
    assert profile.serial.usb_ids == ["0483:374b"], "VID:PID normalised to lowercase"


@pytest.mark.parametrize(
    ("edit", "field", "expect"),
    [
        (lambda t: t.replace('vendor = "Me"\n', ""), "vendor", "Field required"),
        (lambda t: t.replace("clock_hz = 80_000_000", 'clock_hz = "fast"'), "clock_hz", "valid integer"),
        (lambda t: t.replace('core = "cortex-m4"', 'core = "cortex-m3"'), "core", "cortex-m0plus"),
        (lambda t: t.replace("sram_bytes = 131_072", "sram_bytes = -5"), "sram_bytes", "greater than 0"),
        (lambda t: t.replace('["0483:374B"]', '["0483-374b"]'), "serial.usb_ids[0]", "pattern"),
        (lambda t: t.replace('["0483:374B"]', '["12345:1"]'), "serial.usb_ids[0]", "VID:PID"),
        (lambda t: t.replace('runtimes = ["tflm"]', 'runtimes = ["tvm"]'), "runtimes[0]", "tflm"),
        (lambda t: 'colour = "blue"\n' + t, "colour", "known fields"),
        (lambda t: t.replace('flash_method = "openocd"', 'flash_method = "jtag"'), "flash_method", "openocd"),
    ],
    ids=["missing", "wrong-type", "unknown-core", "negative-sram", "bad-vidpid", "bad-vidpid-len", "runtime",
         "unknown-key", "flash-method"],
)  # fmt: skip
def test_invalid_profile_errors(tmp_path: Path, edit, field: str, expect: str) -> None:
    path = _write(tmp_path, edit(VALID))
    with pytest.raises(BoardFileError) as info:
        load_profile_file(path)
    text = str(info.value)
    assert str(path) in text, "error names the file"
    assert f"field {field}:" in text, f"error names the field: {text}"
    assert expect.lower() in text.lower(), f"error says what was expected: {text}"


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda t: t.replace('"mps2-an386"', '"mps2-an500"'), "does not emulate cortex-m4"),
        (lambda t: t.replace("sram_bytes = 131_072\n", ""), "needs sram_bytes"),
        (lambda t: t.replace('"cortex-m4/tflm-reference"', '"cortex-m7/x-cube-ai"'), "not for core cortex-m4"),
        (lambda t: t.replace('core = "cortex-m4"', 'core = "arm64"').replace('qemu_machine = "mps2-an386"', ""),
         "arm64 board needs dram_bytes"),
    ],
    ids=["qemu-mismatch", "mcu-without-sram", "cost-model-core", "arm64-without-dram"],
)  # fmt: skip
def test_inconsistent_profile_errors(tmp_path: Path, edit, expect: str) -> None:
    path = _write(tmp_path, edit(VALID))
    with pytest.raises(BoardFileError, match=re.escape(expect)) as info:
        load_profile_file(path)
    assert str(path) in str(info.value)


def test_not_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = [unclosed\n")
    with pytest.raises(BoardFileError, match="not valid TOML") as info:
        load_profile_file(path)
    assert str(path) in str(info.value)


def test_errors_are_edgeprune_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgepruneError):
        load_profile_file(tmp_path / "missing.toml")
    with pytest.raises(EdgepruneError):
        load_board("no-such-board")


# --- registry ---------------------------------------------------------------------------------------


def test_aliases_and_case() -> None:
    assert load_board("L4R5ZI").name == "nucleo-l4r5zi"
    assert load_board("  Pico ").name == "raspberry-pi-pico"
    assert load_board("agx-orin").name == "jetson-agx-orin-64gb"


def test_list_boards_pattern() -> None:
    assert list_boards() == sorted(list_boards())
    assert list_boards("jetson-*") == ["jetson-agx-orin-64gb", "jetson-orin-nano-8gb", "jetson-xavier-nx"]
    assert list_boards("rp2040") == ["raspberry-pi-pico"], "patterns match aliases too"
    assert list_boards("nothing*") == []


def test_unknown_board_lists_known_boards() -> None:
    with pytest.raises(UnknownBoardError) as info:
        load_board("nucleo-l4r5zj")
    for name in REQUIRED:
        assert name in str(info.value)


def test_load_by_file_path(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    assert load_board(path).name == "my-board"
    assert load_board(str(path)).name == "my-board"
    with pytest.raises(BoardFileError, match="does not exist"):
        load_board(tmp_path / "nope.toml")


def test_user_board_path_read_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOARD_PATH_ENV, raising=False)
    _write(tmp_path, VALID, "my-board.toml")
    assert "my-board" not in list_boards()
    monkeypatch.setenv(BOARD_PATH_ENV, str(tmp_path))
    assert "my-board" in list_boards()
    assert load_board("mine").name == "my-board"
    assert "nucleo-l4r5zi" in list_boards(), "shipped boards stay available"


def test_user_board_shadows_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = VALID.replace('name = "my-board"', 'name = "nucleo-l4r5zi"').replace('["mine"]', "[]")
    _write(tmp_path, text, "nucleo-l4r5zi.toml")
    monkeypatch.setenv(BOARD_PATH_ENV, str(tmp_path))
    assert load_board("nucleo-l4r5zi").clock_hz == 80_000_000
    assert list_boards().count("nucleo-l4r5zi") == 1


def test_extra_search_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BOARD_PATH_ENV, raising=False)
    _write(tmp_path, VALID, "my-board.toml")
    assert load_board("my-board", extra=[tmp_path]).display_name == "My Board"


def test_invalid_user_profile_is_reported_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = _write(tmp_path, VALID.replace("clock_hz = 80_000_000", "clock_hz = 0"), "bad.toml")
    monkeypatch.setenv(BOARD_PATH_ENV, str(tmp_path))
    (tmp_path / "broken.toml").write_text("name = [broken")
    assert "nucleo-l4r5zi" in list_boards()  # a broken user file does not block the shipped boards
    assert load_board("nucleo-l4r5zi").name == "nucleo-l4r5zi"
    problems = unreadable_profiles()
    assert any(str(bad) in p and "field clock_hz" in p for p in problems), problems
    assert any("broken.toml" in p and "not valid TOML" in p for p in problems), problems
    with pytest.raises(UnknownBoardError, match=r"skipped unreadable profiles: .*bad\.toml"):
        load_board("my-board")


# --- renderings for the CLI -------------------------------------------------------------------------


def test_boards_table_lists_every_board() -> None:
    text = _render(boards_table())
    for name in REQUIRED:
        assert name in text
    assert "jetson" not in _render(boards_table("nucleo-*"))


@pytest.mark.parametrize("name", ["nucleo-l4r5zi", "jetson-orin-nano-8gb", "raspberry-pi-pico"])
def test_board_details_show_fields_and_sources(name: str) -> None:
    profile = load_board(name)
    text = _render(board_details(profile))
    assert profile.display_name in text and "Sources" in text
    assert profile.sources[0].title.split()[0] in text
    assert f"{profile.clock_hz / 1e6:g} MHz" in text
