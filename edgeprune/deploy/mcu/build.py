"""Cross-compile the benchmark firmware (protocol + generated model + kernels) for a board's core with
``arm-none-eabi-gcc``; the linker script carries the board's flash and SRAM, so a model that does not fit
fails to link, with the numbers in the error."""

from __future__ import annotations

import functools
import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

from edgeprune import cache
from edgeprune.boards.cycle_model import LayerMix
from edgeprune.boards.fit import FitVerdict, Part, ResourceFit
from edgeprune.boards.schema import BoardProfile, Core
from edgeprune.deploy.mcu.aot.codegen import GeneratedModel
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic

logger = logging.getLogger(__name__)

FIRMWARE = Path(__file__).resolve().parent / "firmware"
SOURCES = ("ep_main.c", "ep_board_mps2.c", "ep_kernels.c", "ep_kernels_dsp.c", "startup.c")
STACK_BYTES = 8192
SIZING_BYTES = 0x20000000  # flash and SRAM of a sizing link: room for any model (flash ends where SRAM starts)
FIT_BASIS = "edgeprune's AOT firmware as linked by arm-none-eabi-gcc (what the emulated board runs)"
MAX_LAYERS = 512
MLPERF_MODEL_ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")
Kernels = Literal["reference", "dsp"]
MPS2_TICK_HZ = 25_000_000  # SysTick on the MPS2 CPU clock as QEMU models it (ep_board_mps2.c EP_CPU_HZ)
INSNS_PER_SECOND = 1_000_000_000  # QEMU -icount shift=0: 2**0 ns of virtual time per instruction
# How the MLPerf Tiny reference firmwares read the runner's dataset bytes (th_load_tensor), by model id.
MLPERF_INPUT = {"ic01": "EP_INPUT_UINT8_MINUS_128", "vww01": "EP_INPUT_UINT8_MINUS_128",
                "ad01": "EP_INPUT_FLOAT32_AD_SCORE"}  # fmt: skip
CPU_FLAGS: dict[Core, tuple[str, ...]] = {
    Core.CORTEX_M0PLUS: ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    Core.CORTEX_M4: ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    Core.CORTEX_M7: ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
}


class FirmwareBuildError(EdgepruneError):
    """The firmware did not compile or does not fit the board."""


@dataclass(frozen=True)
class Firmware:
    """A linked image and its footprint (bytes, from ``arm-none-eabi-size``); on the emulated board, the instruction
    mix of each layer its cycle estimate comes from."""

    elf: Path
    core: Core
    text: int
    data: int
    bss: int
    arena: int
    stack: int
    layer_mixes: tuple[LayerMix, ...] = ()  # per layer, from a traced inference (emulated board: deploy.mcu.trace)

    @property
    def flash_bytes(self) -> int:
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        return self.data + self.bss  # includes the arena and the stack reservation


def toolchain(tool: str = "gcc") -> str:
    path = shutil.which(f"arm-none-eabi-{tool}")
    if path is None:
        raise FirmwareBuildError(
            f"arm-none-eabi-{tool} is not installed",
            expected="the GNU Arm Embedded toolchain on PATH",
            fix="make setup (or: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)",
        )
    return path


def overflow_error(log: str, board: BoardProfile, model: GeneratedModel) -> FirmwareBuildError | None:
    """The does-not-fit error when the PlatformIO linker's ``log`` says a memory region overflowed, else ``None``."""
    over = dict(re.findall(r"region `(\w+)' overflowed by (\d+) bytes", log))
    if not over:
        return None
    parts = []
    if "RAM" in over:
        parts.append(f"SRAM by {int(over['RAM']):,} B (board {board.sram_bytes:,} B; arena {model.arena_bytes:,} B "
                     f"+ stack {STACK_BYTES:,} B + buffers)")  # fmt: skip
    if "FLASH" in over:
        parts.append(f"flash by {int(over['FLASH']):,} B (board {board.flash_bytes:,} B; weights "
                     f"{model.weight_bytes:,} B + code)")  # fmt: skip
    return FirmwareBuildError(
        f"the model does not fit {board.name}: it overflows {' and '.join(parts)}",
        expected=f"firmware within {board.sram_bytes:,} B SRAM and {board.flash_bytes:,} B flash",
        fix="prune further (edgeprune prune --budget ...) or pick a board with more memory",
    )


def firmware_fit(board: BoardProfile, firmware: Firmware, model: GeneratedModel) -> FitVerdict:
    """The fit of a linked firmware on ``board``: flash = weights + code and constants, SRAM = arena + stack +
    the rest of .data/.bss, every figure measured (``arm-none-eabi-size``); the basis of ``--emulate`` and of
    ``edgeprune boards fit --export``."""
    code = firmware.flash_bytes - model.weight_bytes
    other = firmware.ram_bytes - firmware.arena - firmware.stack
    flash = ResourceFit("flash", board.flash_bytes or 0, (Part("weights", model.weight_bytes), Part("code", code)))
    sram = ResourceFit("sram", board.sram_bytes or 0, (Part("arena", firmware.arena), Part("stack", firmware.stack),
                                                       Part(".data/.bss", other)))  # fmt: skip
    return FitVerdict(board.name, (flash, sram), (f"basis: {FIT_BASIS}",))


def _does_not_fit(board: BoardProfile, verdict: FitVerdict) -> FirmwareBuildError:
    return FirmwareBuildError(
        f"the model does not fit {board.name}: {verdict.verdict.removeprefix('does not fit: ')} ("
        + "; ".join(
            f"{r.resource}: {', '.join(f'{p.label} {p.bytes:,} B' for p in r.parts)}" for r in verdict.resources
        )
        + f"; {FIT_BASIS})",
        expected=f"firmware within {board.sram_bytes:,} B SRAM and {board.flash_bytes:,} B flash",
        fix="prune further (edgeprune prune --budget ...) or pick a board with more memory; "
        f"`edgeprune boards fit {board.name} --export DIR` shows the same figures",
    )


def default_kernels(core: Core) -> Kernels:
    """The DSP-extension kernels on the Cortex-M4/M7 (what the measured boards run: CMSIS-NN-style SMLAD loops), the
    reference loops on the M0+ (no DSP extension)."""
    return "reference" if core == Core.CORTEX_M0PLUS else "dsp"


def lap_defines(board: BoardProfile, cycles_per_insn: float | None = None) -> list[str]:
    """``m-lap-us`` of the emulated board as estimated microseconds of ``board``: SysTick ticks -> QEMU instructions
    (-icount shift=0) -> cycles (``cycles_per_insn``: the model's estimated cycles over its instructions, from its
    traced inference) -> microseconds at the board's clock, so a runner's throughput is the estimate. Without it:
    QEMU virtual microseconds."""
    if not cycles_per_insn:
        return ['-DEP_LAP_US_NOTE="QEMU virtual time (1 instruction = 1 ns), no cycle estimate"']
    per_tick = Fraction(INSNS_PER_SECOND, MPS2_TICK_HZ) * Fraction(cycles_per_insn) * 1_000_000 / board.clock_hz
    per_tick = per_tick.limit_denominator(1_000_000)
    mhz = f"{board.clock_hz / 1e6:g} MHz"
    note = f"estimated, QEMU instructions x {cycles_per_insn:.3f} cycles/insn (cycle model) at {mhz}"
    return [f"-DEP_LAP_US_NUM={per_tick.numerator}u", f"-DEP_LAP_US_DEN={per_tick.denominator}u",
            f'-DEP_LAP_US_NOTE="{note}"']  # fmt: skip


def mlperf_defines(model: GeneratedModel, mlperf_model: str | None) -> list[str]:
    """The MLPerf Tiny id and the reference firmware's input format for it; ad01 needs one input and one output of
    the same size (the autoencoder's reconstruction is scored against its input)."""
    if mlperf_model is None:
        return []
    fmt = MLPERF_INPUT.get(mlperf_model)
    if fmt == "EP_INPUT_FLOAT32_AD_SCORE" and not (
        len(model.inputs) == len(model.outputs) == 1 and model.inputs[0].size == model.outputs[0].size
    ):
        raise FirmwareBuildError(
            f"ad01 scores an autoencoder's reconstruction, but this model maps "
            f"{[x.size for x in model.inputs]} input to {[x.size for x in model.outputs]} output elements",
            expected="one input and one output with the same number of elements (MLPerf Tiny's AD autoencoder)",
            fix="build the anomaly-detection autoencoder as ad01, or another model without --mlperf-model",
        )
    return [f'-DEP_MLPERF_MODEL="{mlperf_model}"', *([f"-D{fmt}"] if fmt else [])]


def build_firmware(
    model: GeneratedModel,
    board: BoardProfile,
    out_dir: Path,
    *,
    mlperf_model: str | None = None,
    kernels: Kernels | None = None,
    cycles_per_insn: float | None = None,
    timeout: float = 300,
    sizing: bool = False,
) -> Firmware:
    """Write ``model.c`` and the linker script to ``out_dir`` and link ``firmware.elf`` for ``board``.
    ``mlperf_model`` (``kws01``, ``ad01``, ...) is what ``profile%`` reports as ``m-model-[...]``: the MLPerf Tiny
    runner picks its test script by it (default: the model's name), and it sets the input format of that task's
    reference firmware (:data:`MLPERF_INPUT`). ``m-lap-us`` is in estimated microseconds when ``cycles_per_insn``
    is given (:func:`lap_defines`). ``kernels``: ``"dsp"`` (the Cortex-M4/M7 DSP-extension kernels, what real-board
    AOT builds use) or ``"reference"`` (TFLM's reference loops); default :func:`default_kernels`.
    A model that overflows the board's memory is linked again with room for anything (``sizing``) to measure it,
    and the error gives the figures of :func:`firmware_fit`."""
    if mlperf_model is not None and not MLPERF_MODEL_ID.fullmatch(mlperf_model):
        raise FirmwareBuildError(
            f"MLPerf Tiny model id {mlperf_model!r} cannot be reported as m-model-[...]",
            expected="letters, digits, '_', '.', '-' (e.g. kws01, ad01, ic01, vww01)",
        )
    if board.core not in CPU_FLAGS:
        raise FirmwareBuildError(
            f"{board.name} has a {board.core.value} core: no firmware build for it here",
            expected=f"one of {', '.join(c.value for c in CPU_FLAGS)}",
        )
    kernels = kernels or default_kernels(board.core)
    if kernels == "dsp" and board.core == Core.CORTEX_M0PLUS:
        raise FirmwareBuildError(
            f"{board.name} has a Cortex-M0+: it has no DSP extension", expected='kernels="reference" for this board'
        )
    if len(model.layers) > MAX_LAYERS:
        raise FirmwareBuildError(f"the model has {len(model.layers)} layers", expected=f"at most {MAX_LAYERS}")
    gcc = toolchain()
    float_in = MLPERF_INPUT.get(mlperf_model or "") == "EP_INPUT_FLOAT32_AD_SCORE"
    db_bytes = (4 if float_in else 1) * sum(x.size for x in model.inputs)  # ad01: float32 per input element
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "model.c", model.source)
    script = (FIRMWARE / "mps2.ld.in").read_text()
    flash, ram = (SIZING_BYTES, SIZING_BYTES) if sizing else (board.flash_bytes, board.sram_bytes)
    for key, val in (("@FLASH@", flash), ("@RAM@", ram), ("@STACK@", STACK_BYTES)):
        script = script.replace(key, str(val))
    write_atomic(out_dir / "link.ld", script)
    elf = out_dir / "firmware.elf"
    cmd = [gcc, *CPU_FLAGS[board.core], "-O2", "-ffp-contract=off", "-ffunction-sections", "-fdata-sections",
           "-Wall", "-std=gnu11", "-I", str(FIRMWARE), "--specs=nano.specs", "--specs=nosys.specs",
           "-nostartfiles", "-Wl,--gc-sections", "-T", str(out_dir / "link.ld"), "-o", str(elf),
           f"-DEP_DB_MAX={max(db_bytes, 64)}",
           *mlperf_defines(model, mlperf_model), *lap_defines(board, cycles_per_insn),
           *(["-DEP_REFERENCE_KERNELS"] if kernels == "reference" else []), str(out_dir / "model.c"),
           *(str(FIRMWARE / s) for s in SOURCES), "-lm"]  # fmt: skip
    key = _build_key(cmd, out_dir, model.source, script)
    cached = cache.load("firmware", key)
    if cached is not None:
        write_atomic(elf, cached["firmware.elf"])
        return footprint(elf, board.core, model.arena_bytes, STACK_BYTES)
    logger.debug("running %s", shlex.join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 and not sizing and "overflowed by" in proc.stderr:
        with tempfile.TemporaryDirectory(prefix="sizing-", dir=out_dir) as tmp:
            fw = build_firmware(model, board, Path(tmp), mlperf_model=mlperf_model, kernels=kernels,
                                timeout=timeout, sizing=True)  # fmt: skip
        raise _does_not_fit(board, firmware_fit(board, fw, model))
    if proc.returncode != 0:
        raise FirmwareBuildError("the firmware did not compile", fix=proc.stderr[-3000:])
    cache.store("firmware", key, {"firmware.elf": elf.read_bytes()})
    return footprint(elf, board.core, model.arena_bytes, STACK_BYTES)


def _build_key(cmd: list[str], out_dir: Path, source: str, script: str) -> str:
    """The cache key of a firmware link: the command (paths made relative), the generated model, the linker
    script, every firmware source and header, and the toolchain's version."""
    args = [a.replace(str(out_dir), "<out>").replace(str(FIRMWARE), "<firmware>") for a in cmd[1:]]
    sources = sorted(p for p in FIRMWARE.iterdir() if p.suffix in (".c", ".h", ".in"))
    return cache.content_key("firmware", _toolchain_version(cmd[0]), *args, source, script,
                             *(part for p in sources for part in (p.name, p.read_bytes())))  # fmt: skip


@functools.cache
def _toolchain_version(gcc: str) -> str:
    """``arm-none-eabi-gcc --version`` (and where it is): part of every firmware cache key."""
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    return f"{Path(gcc).resolve()}\n{out}"


def footprint(elf: Path, core: Core, arena: int, stack: int) -> Firmware:
    """A linked image's text/data/bss (``arm-none-eabi-size``, Berkeley format: read-only, initialised and
    zeroed allocated sections, whatever the linker script names them)."""
    out = subprocess.run([toolchain("size"), "-B", "-d", str(elf)], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s", out, re.M)
    if m is None:
        raise FirmwareBuildError(f"cannot read the size of {elf}", fix=f"arm-none-eabi-size said: {out[-500:]}")
    text, data, bss = (int(g) for g in m.groups())
    return Firmware(elf, core, text, data, bss, arena, stack)
