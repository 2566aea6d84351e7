"""``flash(board, firmware)``: put a firmware image on a real board with the board's flash method, or upload a
PlatformIO project (``edgeprune platformio``) with ``pio run -t upload``.

``flash_command`` builds the exact argument list (``--dry-run`` prints it); a missing tool is a clear error
with the install hint. Targets per chip family are data below (OpenOCD target scripts, pyOCD target names).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgeprune.boards.schema import BoardProfile, FlashMethod
from edgeprune.errors import EdgepruneError

# the tool a flash command runs -> how to install it
_INSTALL = {
    "openocd": "apt-get install openocd",
    "pyocd": "pip install pyocd",
    "st-flash": "apt-get install stlink-tools",
    "picotool": "apt-get install picotool (or build it from github.com/raspberrypi/picotool)",
    "esptool.py": "pip install esptool",
    "bossac": "apt-get install bossa-cli (or use the Arduino IDE's bossac)",
    "pio": "pip install platformio (it fetches the board's upload tool on the first upload)",
}


class FlashError(EdgepruneError):
    """The board cannot be flashed this way, the tool is missing, or flashing failed."""


def _target(board: BoardProfile, tool: str) -> str:
    """The chip's name for ``tool`` (``openocd`` or ``pyocd``), from the profile's ``[flash_target]`` table."""
    name = getattr(board.flash_target, tool, None) if board.flash_target else None
    if name is None:
        raise FlashError(
            f"no {tool} target for chip {board.chip} ({board.name})",
            expected=f"[flash_target] {tool} = ... in the board's profile",
            fix='add it to the profile (docs/boards.md), e.g. openocd = "target/stm32l4x.cfg"',
        )
    return name


# flash method -> the image it writes, when not the .elf (PlatformIO writes firmware.bin beside firmware.elf)
_IMAGE_SUFFIX = {FlashMethod.STLINK: ".bin", FlashMethod.ESPTOOL: ".bin", FlashMethod.BOSSAC: ".bin",
                 FlashMethod.UF2: ".uf2"}  # fmt: skip


def firmware_image(board: BoardProfile, elf: Path) -> Path:
    """The file ``board``'s flash method takes for a build whose ELF is ``elf`` (the ELF, or its .bin/.uf2)."""
    image = elf.with_suffix(_IMAGE_SUFFIX.get(board.flash_method, elf.suffix))
    if not image.is_file():
        raise FlashError(
            f"{board.flash_method.value} flashes {image.name}, which the build did not write",
            fix=f"convert {elf} (e.g. arm-none-eabi-objcopy -O binary), or build with PlatformIO",
        )
    return image


def _platformio_upload(board: BoardProfile, project: Path, port: str | None) -> list[str]:
    """``pio run -t upload`` of a PlatformIO project generated for ``board`` (its ``[env:<board>]``)."""
    ini = project / "platformio.ini"
    if not ini.is_file():
        raise FlashError(
            f"{project} is a directory but not a PlatformIO project (no platformio.ini)",
            expected="a firmware image (.elf/.bin/.uf2) or a project from `edgeprune platformio`",
        )
    envs = re.findall(r"^\[env:([^\]]+)\]", ini.read_text(), flags=re.MULTILINE)
    if board.name not in envs:
        raise FlashError(
            f"{ini} has no environment for {board.name} (it has: {', '.join(envs) or 'none'})",
            fix=f"generate the project for this board: edgeprune platformio EXPORT --board {board.name}",
        )
    return ["pio", "run", "-d", str(project), "-e", board.name, "-t", "upload",
            *(["--upload-port", port] if port else [])]  # fmt: skip


def flash_command(board: BoardProfile, firmware: Path, *, port: str | None = None, uf2_drive: Path | None = None
                  ) -> list[str]:  # fmt: skip
    """The argument list that flashes ``firmware`` (.elf; .bin for st-flash/esptool/bossac, .uf2 for UF2), or
    uploads it when it is a PlatformIO project directory (PlatformIO then picks the board's upload tool)."""
    method, fw = board.flash_method, str(firmware)
    if method is not FlashMethod.SSH and Path(firmware).is_dir():
        return _platformio_upload(board, Path(firmware), port)
    if method is FlashMethod.OPENOCD:
        cfg = _target(board, "openocd")
        return ["openocd", "-f", "interface/stlink.cfg", "-f", cfg, "-c", f"program {fw} verify reset exit"]
    if method is FlashMethod.PYOCD:
        return ["pyocd", "flash", "-t", _target(board, "pyocd"), fw]
    if method is FlashMethod.STLINK:
        return ["st-flash", "--reset", "write", fw, "0x08000000"]
    if method is FlashMethod.PICOTOOL:
        return ["picotool", "load", "-x", "-t", "elf", fw]
    if method is FlashMethod.UF2:
        if uf2_drive is None:
            raise FlashError("UF2 flashing needs the mounted BOOTSEL drive", fix="pass uf2_drive=/media/$USER/RPI-RP2")
        return ["cp", fw, str(uf2_drive)]
    if method is FlashMethod.ESPTOOL:
        chip = board.chip.split()[0].lower().replace("-", "")  # "ESP32-S3 (module)" -> esptool's "esp32s3"
        return ["esptool.py", "--chip", chip, *(["--port", port] if port else []), "write_flash", "0x0", fw]
    if method is FlashMethod.BOSSAC:
        if port is None:
            raise FlashError("bossac needs the board's serial port", fix="pass --port (e.g. /dev/ttyACM0)")
        return ["bossac", "-p", port, "-U", "-e", "-w", "-v", "-R", fw]
    raise FlashError(f"{board.name} is flashed by {method.value}, not a firmware image",
                     fix="copy the artifacts over SSH instead")  # fmt: skip


def flash(board: BoardProfile, firmware: Path, *, port: str | None = None, uf2_drive: Path | None = None,
          dry_run: bool = False, timeout: float = 300) -> list[str]:  # fmt: skip
    """Flash ``firmware``; with ``dry_run`` only return the command. Returns the command run."""
    cmd = flash_command(board, firmware, port=port, uf2_drive=uf2_drive)
    if dry_run:
        return cmd
    if not Path(firmware).exists():
        raise FlashError(f"firmware {firmware} does not exist", fix="build it first (edgeprune.deploy.mcu.build)")
    if shutil.which(cmd[0]) is None:
        how = "PlatformIO upload" if cmd[0] == "pio" else board.flash_method.value
        raise FlashError(f"{cmd[0]} is not installed (needed to flash {board.name} by {how})",
                         fix=_INSTALL.get(cmd[0], f"install {cmd[0]}"))  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FlashError(f"{cmd[0]} did not finish within {timeout:g} s", fix="check the board's connection") from None
    if proc.returncode != 0:
        raise FlashError(f"{cmd[0]} failed (exit {proc.returncode})", fix=(proc.stderr or proc.stdout)[-1500:])
    return cmd
