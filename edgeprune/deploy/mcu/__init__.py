"""MCU boards: ahead-of-time int8 kernels, benchmark firmware, the emulated board (QEMU), the EEMBC benchmark
protocol over a serial link, flashing and PlatformIO projects. See docs/emulated-board.md, docs/real-boards.md."""

from edgeprune.deploy.mcu.api import (
    bench_export,
    build,
    build_platformio,
    build_traced,
    emulate,
    fit_export,
    wait_ready,
)
from edgeprune.deploy.mcu.bench import OutputMismatchError, bench
from edgeprune.deploy.mcu.build import Firmware, FirmwareBuildError, build_firmware
from edgeprune.deploy.mcu.emulator import EmulatedBoard, EmulatorError
from edgeprune.deploy.mcu.flash import FlashError, firmware_image, flash, flash_command
from edgeprune.deploy.mcu.link import Link, LinkError
from edgeprune.deploy.mcu.model import prepare
from edgeprune.deploy.mcu.platformio import platformio_project
from edgeprune.deploy.mcu.ports import PortNotFoundError, find_port
from edgeprune.deploy.mcu.protocol import Dut
from edgeprune.deploy.mcu.report import component_table, layer_table

__all__ = [
    "Dut",
    "EmulatedBoard",
    "EmulatorError",
    "Firmware",
    "FirmwareBuildError",
    "FlashError",
    "Link",
    "LinkError",
    "OutputMismatchError",
    "PortNotFoundError",
    "bench",
    "bench_export",
    "build",
    "build_firmware",
    "build_platformio",
    "build_traced",
    "component_table",
    "emulate",
    "find_port",
    "firmware_image",
    "fit_export",
    "flash",
    "flash_command",
    "layer_table",
    "platformio_project",
    "prepare",
    "wait_ready",
]
