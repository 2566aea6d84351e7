"""On-device deployment: ahead-of-time int8 kernels, benchmark firmware, the emulated board (QEMU), the
EEMBC benchmark protocol and ``bench`` (issue: devices). See docs/emulated-board.md."""

from edgeprune.deploy.api import bench_export, build, build_platformio, emulate, prepare, wait_ready
from edgeprune.deploy.bench import LayerCycles, OutputMismatchError, bench
from edgeprune.deploy.build import Firmware, FirmwareBuildError, build_firmware
from edgeprune.deploy.emulator import EmulatedBoard, EmulatorError
from edgeprune.deploy.flash import FlashError, firmware_image, flash, flash_command
from edgeprune.deploy.link import Link, LinkError
from edgeprune.deploy.platformio import platformio_project
from edgeprune.deploy.ports import PortNotFoundError, find_port
from edgeprune.deploy.protocol import Dut
from edgeprune.deploy.report import component_table, layer_table

__all__ = [
    "Dut",
    "EmulatedBoard",
    "EmulatorError",
    "Firmware",
    "FirmwareBuildError",
    "FlashError",
    "LayerCycles",
    "Link",
    "LinkError",
    "OutputMismatchError",
    "PortNotFoundError",
    "bench",
    "bench_export",
    "build",
    "build_firmware",
    "build_platformio",
    "component_table",
    "emulate",
    "find_port",
    "firmware_image",
    "flash",
    "flash_command",
    "layer_table",
    "platformio_project",
    "prepare",
    "wait_ready",
]
