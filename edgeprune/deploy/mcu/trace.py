"""The instruction mix of one inference on the emulated board, per layer, from QEMU's execution trace.

QEMU (no TCG plugins here) logs with ``-d in_asm,exec,nochain`` every translation block's instructions when it is
translated (``IN:`` and one ``0xADDR:  HEX [HEX]  mnemonic operands`` line each) and one ``Trace`` line each time a
block executes (``nochain``: also when it follows another block directly). Reading the log in order gives every
executed instruction, and whether each block's closing branch was taken (the next block does not start right after
it). A layer is what runs from entering ``ep_run_layer`` to the next ``ep_ticks`` call (ep_main.c ``infer_once``).
The classes are those of the Cortex-M cycle tables (:mod:`edgeprune.boards.cycle_model`)."""

from __future__ import annotations

import functools
import json
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

from edgeprune import cache
from edgeprune.boards.cycle_model import LayerMix
from edgeprune.boards.schema import BoardProfile
from edgeprune.errors import EdgepruneError

_CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_HEX = frozenset("0123456789abcdef")
_PAIRS = ("load", "store")  # a load or store right after a load pipelines (Cortex-M4 TRM, Table 3-1 note)

# Instruction class -> mnemonics (without .w/.n, condition, or flag-setting s), as QEMU's disassembler prints them.
_MNEMONICS = {
    "mul": "mul mla mls smull umull smlal umlal smmul smmla smmls umaal",
    "mac": "smlad smladx smlsd smlsdx smuad smuadx smusd smusdx smlald smlsld smlabb smlabt smlatb smlatt smlawb "
    "smlawt smulbb smulbt smultb smultt smulwb smulwt smlalbb smlalbt smlaltb smlaltt",
    "simd": "sxtb16 sxtab16 uxtb16 uxtab16 qadd qsub qdadd qdsub qadd16 qsub16 qadd8 qsub8 sadd16 ssub16 sadd8 ssub8 "
    "uadd16 usub16 uadd8 usub8 shadd16 shsub16 ssat16 usat16 pkhbt pkhtb sel usad8 usada8 sasx ssax qasx qsax",
    "div": "sdiv udiv",
    "load": "ldr ldrb ldrh ldrsb ldrsh ldrex ldrexb ldrexh ldrt ldrbt",
    "store": "str strb strh strex strexb strexh strt strbt",
    "load_pair": "ldrd",
    "store_pair": "strd",
    "load_multi": "ldm ldmia ldmdb pop",
    "store_multi": "stm stmia stmdb push",
    "branch": "b bl bx blx cbz cbnz",
    "table_branch": "tbb tbh",
    "vfp_mac": "vmla vmls vnmla vnmls vfma vfms vfnma vfnms",
    "vfp_div": "vdiv vsqrt",
    "vfp_load": "vldr",
    "vfp_store": "vstr",
    "vfp_load_multi": "vldm vldmia vldmdb vpop",
    "vfp_store_multi": "vstm vstmia vstmdb vpush",
    "vfp": "vadd vsub vmul vnmul vneg vabs vcvt vcvtr vcmp vcmpe vmov vmrs vmsr vsel vmaxnm vminnm vrinta vrintm "
    "vrintn vrintp vrintr vrintx vrintz",
    "it": "it ite itt itee itet itte ittt iteee iteet itete itett ittee ittet ittte itttt",
    "alu": "mov mvn movw movt add adc adr addw sub sbc rsb subw cmp cmn tst teq and orr orn eor bic lsl lsr asr ror "
    "rrx neg clz rbit rev rev16 revsh sxtb sxth uxtb uxth sxtab sxtah uxtab uxtah bfc bfi sbfx ubfx ssat usat nop "
    "cpsid cpsie mrs msr dsb dmb isb wfi wfe sev svc bkpt yield",
}
_CLASSES: dict[str, str] = {m: cls for cls, names in _MNEMONICS.items() for m in names.split(" ")}


def classify(mnemonic: str) -> str:
    """The instruction class of a Thumb mnemonic as QEMU's disassembler prints it (``ldr.w``, ``movne``, ``adds``);
    ``other`` when it is none of the known ones (costed as one cycle and counted, so it shows in the mix)."""
    m = mnemonic.lower().split(".")[0]
    for cand in (m, m[:-2] if m[-2:] in _CONDITIONS else None, m[:-1] if m.endswith("s") else None):
        if cand is None:
            continue
        if cand in _CLASSES:
            return _CLASSES[cand]
    if m.startswith("it") and set(m[2:]) <= {"t", "e"}:
        return "it"
    return "other"


@dataclass(frozen=True)
class Insn:
    """One instruction of a translation block: its class, and for load/store-multiple the registers moved."""

    cls: str
    regs: int = 0
    writes_pc: bool = False


@dataclass(frozen=True)
class Block:
    """A translation block: its instructions and the address after its last one (where it falls through to)."""

    insns: tuple[Insn, ...]
    fallthrough: int

    @property
    def ends_in_branch(self) -> bool:
        last = self.insns[-1]
        return last.cls in ("branch", "table_branch") or last.writes_pc

    @cached_property
    def mix(self) -> LayerMix:
        """The block's own mix (pairs within it; a first load/store after a load ends the block before is counted by
        :func:`layer_mixes`)."""
        mix = LayerMix(Counter(i.cls for i in self.insns), regs=sum(i.regs for i in self.insns))
        mix.paired = sum(b.cls in _PAIRS and a.cls == "load" for a, b in zip(self.insns, self.insns[1:], strict=False))
        return mix


def _register_count(operands: str) -> int:
    if "{" not in operands:
        return 1
    regs = 0
    for part in operands[operands.index("{") + 1 : operands.rindex("}")].split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            regs += int(hi.strip()[1:]) - int(lo.strip()[1:]) + 1
        elif part:
            regs += 1
    return regs


def _insn(mnemonic: str, operands: str) -> Insn:
    cls = classify(mnemonic)
    ops = operands.replace(" ", "")
    if cls.endswith("_multi"):
        return Insn(cls, _register_count(operands), writes_pc=cls == "load_multi" and "pc" in ops.split("{", 1)[-1])
    writes_pc = ops.startswith("pc,") and cls in ("alu", "load")
    return Insn(cls, 0, writes_pc)


def _parse_block(lines: list[str]) -> Block:
    insns, end = [], 0
    for line in lines:
        tok = line.split(None, 4)
        addr = int(tok[0].rstrip(":"), 16)
        wide = len(tok) > 2 and len(tok[2]) == 4 and set(tok[2]) <= _HEX
        rest = line.split(None, 3 if wide else 2)[-1].split(None, 1)
        insns.append(_insn(rest[0], rest[1] if len(rest) > 1 else ""))
        end = addr + (4 if wide else 2)
    return Block(tuple(insns), end)


def _events(lines: Iterable[str]) -> Iterator[tuple[int, Block | None]]:
    """(pc, block translated just now or None) per executed block, in order."""
    pending: dict[int, Block] = {}
    body: list[str] = []
    in_block = False
    for line in lines:
        if line.startswith("Trace "):
            pc = int(line[line.index("[") + 1 :].split("/", 2)[1], 16)
            yield pc, pending.pop(pc, None)
        elif line.startswith("IN:"):
            in_block, body = True, []
        elif in_block:
            if line.startswith("0x"):
                body.append(line)
            elif body:
                block = _parse_block(body)
                pending[int(body[0].split(":", 1)[0], 16)] = block
                in_block, body = False, []


def layer_mixes(log: Path, run_layer_pc: int, ticks_pc: int) -> list[LayerMix]:
    """Per-layer instruction mixes of every layer run the log holds, in order (``run_layer_pc``/``ticks_pc``: the
    addresses of ``ep_run_layer`` and ``ep_ticks`` in the firmware, :func:`symbol_addresses`)."""
    blocks: dict[int, Block] = {}
    layers: list[tuple[LayerMix, dict[int, list]]] = []  # per layer: taken/paired, and executions per block
    current: tuple[LayerMix, dict[int, list]] | None = None
    prev: Block | None = None
    with log.open(encoding="utf-8", errors="replace") as fh:
        for pc, new in _events(fh):
            if new is not None:
                blocks[pc] = new
            block = blocks.get(pc)
            if current is not None and prev is not None:
                if prev.ends_in_branch and pc != prev.fallthrough:
                    current[0].taken += 1
                if block is not None and block.insns[0].cls in _PAIRS and prev.insns[-1].cls == "load":
                    current[0].paired += 1
            if pc == run_layer_pc:
                current = (LayerMix(), {})
                layers.append(current)
            elif pc == ticks_pc:
                current = None
            if block is not None and current is not None:
                current[1].setdefault(id(block), [block, 0])[1] += 1
            prev = block
    out = []
    for mix, runs in layers:
        for block, n in runs.values():
            mix += block.mix.scaled(n)
        out.append(mix)
    return out


def symbol_addresses(elf: Path, names: Iterable[str]) -> dict[str, int]:
    """Addresses of the functions ``names`` in ``elf`` (``arm-none-eabi-nm``; the Thumb bit cleared)."""
    from edgeprune.deploy.mcu.build import toolchain

    out = subprocess.run([toolchain("nm"), str(elf)], capture_output=True, text=True, timeout=60, check=True).stdout
    found = {p[2]: int(p[0], 16) & ~1 for line in out.splitlines() if len(p := line.split()) == 3}
    missing = [n for n in names if n not in found]
    if missing:
        raise EdgepruneError(f"{elf} has no symbol {', '.join(missing)}", expected="the edgeprune benchmark firmware")
    return {n: found[n] for n in names}


def trace_inference(
    board: BoardProfile, elf: Path, input_bytes: int, n_layers: int, *, seed: int = 0
) -> list[LayerMix]:
    """Run one inference of the firmware ``elf`` (``n_layers`` layers) in a traced QEMU (random int8 input of
    ``input_bytes``) and return each layer's instruction mix. The log (about 6 bytes per executed instruction) lives
    in a temporary directory only while it is read."""
    import numpy as np

    from edgeprune.deploy.mcu import emulator
    from edgeprune.deploy.mcu.link import Link
    from edgeprune.deploy.mcu.protocol import Dut

    qemu = emulator.qemu_command(board, Path("firmware.elf"), "pty", Path("exec.log"))[1:]
    names = ",".join(f.name for f in fields(LayerMix))
    key = cache.content_key("trace", _qemu_version(), shlex.join(qemu), elf.read_bytes(), Path(__file__).read_bytes(),
                            names, f"{input_bytes} {n_layers} {seed}")  # fmt: skip
    cached = cache.load("trace", key)
    if cached is not None:
        return [_mix_from_json(m) for m in json.loads(cached["mixes.json"])]
    syms = symbol_addresses(elf, ("ep_run_layer", "ep_ticks"))
    data = np.random.default_rng(seed).integers(-128, 128, input_bytes).astype(np.int8).tobytes()
    with tempfile.TemporaryDirectory(prefix="edgeprune-trace-") as tmp:
        log = Path(tmp) / "exec.log"
        with emulator.start(board, elf, trace=log) as emu:
            link = Link.open(emu.port, board.serial.baud)
            try:
                dut = Dut(link)
                dut.load(data)
                dut.infer(1, 0)
                dut.info()  # QEMU buffers its log: more blocks after the inference push its end to the file
            finally:
                link.close()
        layers = layer_mixes(log, syms["ep_run_layer"], syms["ep_ticks"])
    if len(layers) != n_layers:
        raise EdgepruneError(
            f"the traced inference of {elf} shows {len(layers)} layers, the model has {n_layers}",
            expected="one instruction mix per layer from QEMU's execution log",
            fix="report a bug (the log may have been cut short); emulate(..., estimate=False) runs without it",
        )
    cache.store("trace", key, {"mixes.json": json.dumps([_mix_to_json(m) for m in layers]).encode()})
    return layers


def _mix_to_json(mix: LayerMix) -> dict:
    return {"counts": dict(mix.counts), "taken": mix.taken, "paired": mix.paired, "regs": mix.regs}


def _mix_from_json(d: dict) -> LayerMix:
    return LayerMix(Counter(d["counts"]), d["taken"], d["paired"], d["regs"])


@functools.cache
def _qemu_version() -> str:
    """``qemu-system-arm --version``: part of every trace cache key (the log format and the emulation are QEMU's)."""
    qemu = shutil.which("qemu-system-arm") or "qemu-system-arm"
    return subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
