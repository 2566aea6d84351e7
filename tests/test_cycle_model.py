"""The cycle model's parts without QEMU: the trace reader on a log in QEMU's ``-d in_asm,exec,nochain`` format, the
mnemonic classes, and the Cortex-M4 table (the end-to-end checks against the emulator are in
test_deploy_emulator.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from edgeprune.boards import load_board
from edgeprune.boards.cycle_model import LayerMix, core_table, cycle_model, trm_cycles
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu.trace import classify, layer_mixes

# ep_run_layer at 0x80 calls a kernel loop at 0x100 that runs twice (its bne taken once, then not), returns, and the
# caller enters ep_ticks at 0x200. Blocks before ep_run_layer are not part of any layer.
LOG = """\
----------------
IN: main
0x00000040:  2001       movs     r0, #1
0x00000042:  f000 f81d  bl       #0x80

Trace 0: 0x7f0000000100 [00800408/00000040/00000110/ff020200] main
----------------
IN: ep_run_layer
0x00000080:  b508       push     {r3, lr}
0x00000082:  f000 f83d  bl       #0x100

Trace 0: 0x7f0000000200 [00800408/00000080/00000110/ff020200] ep_run_layer
----------------
IN: kernel
0x00000100:  f853 1b04  ldr      r1, [r3], #4
0x00000104:  f852 4b04  ldr      r4, [r2], #4
0x00000108:  fb21 5504  smlad    r5, r1, r4, r5
0x0000010c:  3801       subs     r0, #1
0x0000010e:  d1f7       bne      #0x100

Trace 0: 0x7f0000000300 [00800408/00000100/00000110/ff020200] kernel
Trace 0: 0x7f0000000300 [00800408/00000100/00000110/ff020200] kernel
----------------
IN: kernel
0x00000110:  4770       bx       lr

Trace 0: 0x7f0000000400 [00800408/00000110/00000110/ff020200] kernel
----------------
IN: ep_run_layer
0x00000086:  bd08       pop      {r3, pc}

Trace 0: 0x7f0000000500 [00800408/00000086/00000110/ff020200] ep_run_layer
----------------
IN: ep_ticks
0x00000200:  4b01       ldr      r3, [pc, #4]

Trace 0: 0x7f0000000600 [00800408/00000200/00000110/ff020200] ep_ticks
"""


def test_trace_reader_counts_each_executed_instruction_per_layer(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    log.write_text(LOG)
    (mix,) = layer_mixes(log, 0x80, 0x200)
    want = Counter({"store_multi": 1, "branch": 4, "load": 4, "mac": 2, "alu": 2, "load_multi": 1})
    assert mix.counts == want and mix.instructions == 14
    # bl, bne (first pass), bx, pop {pc}: taken; the second bne falls through to 0x110
    assert mix.taken == 4
    assert mix.paired == 2  # the second ldr of each pass follows a load
    assert mix.regs == 4  # push {r3, lr} + pop {r3, pc}
    assert mix.loads == 5  # four ldr + one pop


def test_cortex_m4_cycles_follow_the_trm_table(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    log.write_text(LOG)
    (mix,) = layer_mixes(log, 0x80, 0x200)
    t = core_table(Core.CORTEX_M4)
    assert (t["load"], t["mac"], t["branch"], t["refill"], t["div"]) == (2, 1, 1, 2, 7)
    # push 1+2, pop 1+2; 4 branches + 4 refills of 2; 4 ldr at 2 minus 2 paired; 2 smlad; 2 subs
    assert trm_cycles(mix, Core.CORTEX_M4) == 3 + 3 + (4 + 8) + (8 - 2) + 2 + 2
    board = load_board("nucleo-l4r5zi")
    m4 = cycle_model(Core.CORTEX_M4)
    assert board.flash_wait_states == 5
    assert m4.cycles(mix, board) == pytest.approx(28 + m4.load_wait_fraction * 5 * 5)


def test_cpi_is_at_least_one_for_any_mix() -> None:
    for cls in core_table(Core.CORTEX_M4):
        if cls in ("paired", "per_register", "refill"):
            continue
        mix = LayerMix(Counter({cls: 10, "load": 10}), taken=0, paired=10)  # the best case: every load/store paired
        assert trm_cycles(mix, Core.CORTEX_M4) >= mix.instructions, cls


@pytest.mark.parametrize(
    ("mnemonic", "cls"),
    [("ldr.w", "load"), ("ldrsb", "load"), ("movne", "alu"), ("adds", "alu"), ("bls", "branch"),
     ("bne.w", "branch"), ("smlad", "mac"), ("sxtb16", "simd"), ("sxtab16", "simd"), ("sdiv", "div"), ("muls", "mul"),
     ("pop", "load_multi"), ("push", "store_multi"), ("ldrd", "load_pair"), ("iteet", "it"), ("vldr", "vfp_load"),
     ("vadd.f32", "vfp"), ("vdiv.f32", "vfp_div"), ("teq", "alu"), ("pld", "other")],
)  # fmt: skip
def test_mnemonic_classes(mnemonic: str, cls: str) -> None:
    assert classify(mnemonic) == cls
