"""The generated PlatformIO project is complete and its sources compile on the host (with a stub Arduino.h)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_exports import exported

from edgeprune.boards import load_board
from edgeprune.deploy import prepare
from edgeprune.deploy.platformio import platformio_project
from edgeprune.errors import EdgepruneError

ARDUINO_STUB = """#pragma once
#include <stdint.h>
struct SerialStub { void begin(long) {} operator bool() { return true; } int available() { return 0; }
                    int read() { return -1; } void write(char) {} };
static SerialStub Serial;
static inline uint32_t micros() { return 0; }
"""


def test_project_for_the_nucleo_builds_on_the_host(tmp_path: Path) -> None:
    model, _ = prepare(exported("ad_autoencoder"))
    files = platformio_project(model, load_board("nucleo-l4r5zi"), tmp_path / "pio")
    ini = (tmp_path / "pio/platformio.ini").read_text()
    assert "board = nucleo_l4r5zi" in ini and "framework = arduino" in ini and "-DEP_NO_MAIN" in ini
    assert {f.name for f in files} >= {"model.c", "ep_main.c", "ep_kernels.c", "ep_board_arduino.cpp"}
    cc, cxx = shutil.which("gcc"), shutil.which("g++")
    if not (cc and cxx):
        pytest.skip("no host gcc/g++")
    (tmp_path / "Arduino.h").write_text(ARDUINO_STUB)
    src = tmp_path / "pio/src"
    for c in ("model.c", "ep_main.c", "ep_kernels.c"):
        subprocess.run([cc, "-Wall", "-Werror", "-DEP_NO_MAIN", "-c", str(src / c), "-o", str(tmp_path / f"{c}.o")],
                       check=True, timeout=120)  # fmt: skip
    subprocess.run([cxx, "-Wall", "-I", str(tmp_path), "-fsyntax-only",
                    str(src / "ep_board_arduino.cpp")], check=True, timeout=120)  # fmt: skip


def test_unknown_board_is_a_clear_error(tmp_path: Path) -> None:
    model, _ = prepare(exported("ad_autoencoder"))
    with pytest.raises(EdgepruneError, match="no PlatformIO target for nrf5340-dk"):
        platformio_project(model, load_board("nrf5340-dk"), tmp_path)
