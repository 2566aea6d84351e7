"""``BoardProfile``: the validated description of one target board (one TOML file per board).

Every field is documented in ``docs/boards.md``; the field descriptions below are what loading errors
quote as "expected". Sizes are bytes, clocks are Hz. MCU boards (Cortex-M, Xtensa) must give on-chip
SRAM and the flash the firmware runs from; arm64 boards (Jetson, Raspberry Pi) give DRAM instead and may
describe their GPU.
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


class Core(str, Enum):
    """CPU core family; selects the QEMU machine and the cost-model coefficients."""

    CORTEX_M0PLUS = "cortex-m0plus"
    CORTEX_M4 = "cortex-m4"
    CORTEX_M7 = "cortex-m7"
    CORTEX_M33 = "cortex-m33"
    CORTEX_M55 = "cortex-m55"
    XTENSA_LX7 = "xtensa-lx7"
    ARM64 = "arm64"

    @property
    def is_mcu(self) -> bool:
        return self is not Core.ARM64


class Runtime(str, Enum):
    TFLM = "tflm"
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    LITERT = "litert"


class FlashMethod(str, Enum):
    """How firmware (MCU) or artifacts (arm64) get onto the board."""

    OPENOCD = "openocd"
    STLINK = "stlink"
    PYOCD = "pyocd"
    PICOTOOL = "picotool"
    UF2 = "uf2"
    ESPTOOL = "esptool"
    BOSSAC = "bossac"
    SSH = "ssh"


class QemuMachine(str, Enum):
    """``qemu-system-arm -M`` machines whose CPU runs the core's code (an385 is a Cortex-M3: a superset of M0+)."""

    MPS2_AN385 = "mps2-an385"
    MPS2_AN386 = "mps2-an386"
    MPS2_AN500 = "mps2-an500"
    MPS2_AN505 = "mps2-an505"
    MPS3_AN547 = "mps3-an547"


QEMU_MACHINE_FOR_CORE: MappingProxyType[Core, QemuMachine | None] = MappingProxyType(
    {
        Core.CORTEX_M0PLUS: QemuMachine.MPS2_AN385,
        Core.CORTEX_M4: QemuMachine.MPS2_AN386,
        Core.CORTEX_M7: QemuMachine.MPS2_AN500,
        Core.CORTEX_M33: QemuMachine.MPS2_AN505,
        Core.CORTEX_M55: QemuMachine.MPS3_AN547,
        Core.XTENSA_LX7: None,
        Core.ARM64: None,
    }
)
"""The only QEMU machine a profile may name for its core (``None``: no emulation here)."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
UsbId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$", to_lower=True)]
Bytes = Annotated[int, Field(gt=0, description="a size in bytes, > 0")]
CostModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+/[a-z0-9.-]+$")]


TflmLibraryName = Annotated[str, StringConstraints(pattern=r"^(arduino-tflite|chirale)$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Source(_Strict):
    """A citation for the profile's figures."""

    title: str = Field(description="document name and revision, e.g. 'STM32L4R5xx datasheet DS12023 Rev 6'")
    section: str | None = Field(None, description="section or table the figures come from")
    url: str | None = Field(None, description="plain-text URL of the document or product page")
    covers: list[str] = Field(default_factory=list, description="profile fields this source supports")


class SerialSettings(_Strict):
    """How the host finds and talks to the board's UART (USB CDC or a debugger's virtual COM port)."""

    baud: int = Field(115200, gt=0, description="UART baud rate, e.g. 115200")
    usb_ids: list[UsbId] = Field(
        default_factory=list,
        description="USB VID:PID (4 + 4 hex digits, e.g. '0483:374b') of the serial port, for auto-detection",
    )


class PlatformIOTarget(_Strict):
    """The board as PlatformIO knows it (its board manifest: docs.platformio.org/en/latest/boards/)."""

    platform: str = Field(description="PlatformIO platform, e.g. 'ststm32'")
    board: str = Field(description="PlatformIO board id, e.g. 'nucleo_l4r5zi'")
    upload_protocol: str | None = Field(None, description="upload_protocol (none: the board's default)")
    no_arduino: str | None = Field(
        None, description="why PlatformIO has no Arduino framework for this board (none: it has one)"
    )
    tflm_library: TflmLibraryName | None = Field(
        None, description="the TFLite Micro Arduino library for the board's core: arduino-tflite or chirale"
    )
    no_tflm: str | None = Field(None, description="why there is no TFLite Micro library (when tflm_library is not set)")

    @model_validator(mode="after")
    def _tflm_or_why(self) -> PlatformIOTarget:
        if (self.tflm_library is None) == (self.no_tflm is None):
            raise ValueError("give exactly one of tflm_library and no_tflm")
        return self


class FlashTargets(_Strict):
    """The chip as the debug-probe flash tools name it."""

    openocd: str | None = Field(None, description="OpenOCD target script, e.g. 'target/stm32l4x.cfg'")
    pyocd: str | None = Field(None, description="pyOCD target, e.g. 'stm32l4r5zitx'")


class GpuInfo(_Strict):
    """An integrated GPU usable for inference (arm64 boards only)."""

    name: str = Field(description="architecture and product name, e.g. 'NVIDIA Ampere (Orin)'")
    cuda_cores: int | None = Field(None, gt=0, description="CUDA cores (None: not a CUDA GPU)")
    tensor_cores: int | None = Field(None, ge=0, description="tensor cores")
    compute_capability: str | None = Field(
        None, pattern=r"^\d+\.\d+$", description="CUDA compute capability 'major.minor', e.g. '8.7'"
    )
    max_clock_hz: int | None = Field(None, gt=0, description="maximum GPU clock in Hz")
    shared_memory_with_cpu: bool = Field(True, description="whether the GPU uses the CPU's DRAM (unified memory)")


class BoardProfile(_Strict):
    """One board. ``name`` is the id users type; ``aliases`` are other accepted names (case-insensitive)."""

    name: Slug = Field(description="lowercase id: letters, digits, '.', '_' or '-', e.g. 'nucleo-l4r5zi'")
    display_name: str = Field(description="human-readable board name")
    aliases: list[Slug] = Field(default_factory=list, description="other lowercase names for the board")
    vendor: str = Field(description="board vendor")
    chip: str = Field(description="MCU or SoC part number, e.g. 'STM32L4R5ZIT6'")
    core: Core = Field(description="one of " + ", ".join(c.value for c in Core))
    cpu: str | None = Field(None, description="free-text CPU description, e.g. '6x Arm Cortex-A78AE'")
    cpu_cores: int = Field(1, gt=0, description="number of CPU cores")
    clock_hz: int = Field(gt=0, description="maximum CPU clock in Hz (what the cost model divides by)")
    sram_bytes: Bytes | None = Field(None, description="on-chip SRAM (incl. TCM) in bytes; required for MCUs")
    sram_contiguous_bytes: Bytes | None = Field(
        None, description="largest contiguous SRAM block in bytes (the tensor arena must fit one block)"
    )
    flash_bytes: Bytes | None = Field(
        None, description="program flash the firmware runs from (on-chip, or on-board XIP flash); required for MCUs"
    )
    flash_wait_states: int | None = Field(
        None, ge=0, description="flash wait states at clock_hz (the emulated board's cycle model charges them on loads)"
    )
    external_ram_bytes: Bytes | None = Field(None, description="external PSRAM/SDRAM on the board, in bytes")
    external_flash_bytes: Bytes | None = Field(None, description="additional on-board flash (e.g. QSPI), in bytes")
    dram_bytes: Bytes | None = Field(None, description="DRAM in bytes; required for arm64 boards")
    storage: str | None = Field(None, description="free-text storage description for arm64 boards")
    gpu: GpuInfo | None = Field(None, description="integrated GPU (arm64 boards only)")
    runtimes: list[Runtime] = Field(
        min_length=1, description="supported runtimes: " + ", ".join(r.value for r in Runtime)
    )
    serial: SerialSettings = Field(default_factory=SerialSettings, description="[serial] table: baud, usb_ids")
    flash_method: FlashMethod = Field(description="one of " + ", ".join(m.value for m in FlashMethod))
    platformio: PlatformIOTarget | None = Field(
        None, description="[platformio] table: platform, board, upload_protocol, TFLM library (MCUs built with pio)"
    )
    flash_target: FlashTargets | None = Field(None, description="[flash_target] table: openocd, pyocd target names")
    qemu_machine: QemuMachine | None = Field(
        None, description="QEMU machine emulating the core (must match the core; none for Xtensa and arm64)"
    )
    cost_model: CostModelName | None = Field(
        None, description="default fitted cost-model coefficient set 'core/stack', e.g. 'cortex-m4/tflm-reference'"
    )
    sources: list[Source] = Field(min_length=1, description="[[sources]] citations for the figures (at least one)")
    notes: str | None = Field(None, description="free-text caveats")

    @model_validator(mode="after")
    def _consistent(self) -> BoardProfile:
        if self.core.is_mcu:
            missing = [f for f in ("sram_bytes", "flash_bytes") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"an MCU board ({self.core.value}) needs {' and '.join(missing)}")
            if self.gpu is not None:
                raise ValueError("gpu is only allowed for arm64 boards")
        elif self.dram_bytes is None:
            raise ValueError("an arm64 board needs dram_bytes")
        expected = QEMU_MACHINE_FOR_CORE[self.core]
        if self.qemu_machine is not None and self.qemu_machine is not expected:
            want = expected.value if expected else "no qemu_machine"
            raise ValueError(f"qemu_machine {self.qemu_machine.value!r} does not emulate {self.core.value} ({want})")
        if self.sram_contiguous_bytes and self.sram_bytes and self.sram_contiguous_bytes > self.sram_bytes:
            raise ValueError("sram_contiguous_bytes is larger than sram_bytes")
        if self.cost_model is not None and not self.cost_model.startswith(self.core.value + "/"):
            raise ValueError(f"cost_model {self.cost_model!r} is not for core {self.core.value}")
        return self

    def names(self) -> tuple[str, ...]:
        """The name and aliases, lowercase."""
        return (self.name, *self.aliases)
