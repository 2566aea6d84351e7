"""Every bundled model, original and pruned 50 %, on the emulated Cortex-M4 and M7 boards through the real path
(firmware build, QEMU, EEMBC protocol via ``bench_export``), outputs bit-identical to the TFLM host interpreter,
with the kernels real-board AOT builds use (DSP-extension kernels on the M4/M7). Only outputs and instruction counts
are checked here (no traced cycle estimate: the cycle model is tested in test_deploy_emulator.py and measured on every
bundled model by benchmarks/cycle_model.py).
Split over two test files (original, pruned) so ``pytest -n auto --dist loadfile`` runs them on two workers; the
exports are shared with the other deploy tests through the cache in ``deploy_exports``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_exports import exported

from edgeprune.boards import load_board
from edgeprune.deploy.mcu import bench_export, emulate
from edgeprune.models import list_models

needs_toolchain = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc (make setup)",
)
BOARDS = {"m4": "nucleo-l4r5zi", "m7": "nucleo-h743zi2"}
# the recurrent world model runs once (pruned, M4: test_deploy_models_pruned.py): its export alone costs ~30 CPU-s
MODELS = [name for name in list_models() if name != "rssm"]
CHECK_SETS = 3  # random int8 input sets bench() compares with the TFLM host interpreter (one QEMU session)


def check_bit_exact_on_emulated_board(name: str, pruned: bool, core: str, out: Path) -> None:
    """Build the firmware (default kernels: DSP extension on the M4/M7) of the export for the core's board, run it
    in QEMU and benchmark
    it; ``bench_export`` raises ``OutputMismatchError`` unless every output byte of every checked input set equals
    TFLM's. A model too large for the board fails here with ``FirmwareBuildError`` ("does not fit ...: overflows
    SRAM by ...")."""
    board = load_board(BOARDS[core])
    d = exported(name, pruned)
    with emulate(board, d, out, estimate=False) as emu:
        m = bench_export(d, board, emu.port, emulated=True, runs=1, warmup=0, firmware=emu.firmware)
        fw = emu.firmware
    assert m.notes[0] == f"outputs bit-identical to the TFLM host interpreter on {CHECK_SETS} random input sets"
    assert fw.flash_bytes <= board.flash_bytes and fw.ram_bytes <= board.sram_bytes
    assert m.instructions and m.instructions > 0  # no latency: estimate=False (no traced run)
    assert m.layers and all(lay.instructions is not None and lay.instructions > 0 for lay in m.layers)
    assert m.memory.arena_bytes == fw.arena and 0 < m.memory.stack_bytes < fw.stack
