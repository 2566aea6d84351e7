"""Re-measure what the emulator's cycle model is fitted to and print the fit:
``python -m edgeprune.deploy.mcu.calibrate``. Exports the MLPerf Tiny models (seed 0, 32 random calibration
samples), runs each on the emulated M4 and M7 (DSP-extension kernels, traced) and prints the ``[emulator]`` tables
to paste into ``edgeprune/boards/cost_models/calibration.toml``: instructions per inference, cycles by the core's
table at zero wait states, and data loads (``edgeprune.boards.cycle_model``)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeprune.boards import load_board
from edgeprune.boards.cycle_model import fit_core, total_mix, trm_cycles
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu.api import bench_export, emulate
from edgeprune.deploy.mcu.build import Kernels

BOARDS = {Core.CORTEX_M4: "nucleo-l4r5zi", Core.CORTEX_M7: "nucleo-h743zi2"}
MODELS = ("kws_dscnn", "ad_autoencoder")
STACK = {Core.CORTEX_M4: "cortex-m4/tflm-reference"}  # the M4 is fitted to the L4R5ZI reference results only


@dataclass(frozen=True)
class Calibration:
    insns: int
    trm_cycles: int
    loads: int


def export_model(name: str, out: Path) -> Path:
    """Export the bundled model ``name`` (seed 0, 32 random calibration samples) to ``out`` (ONNX and TFLM)."""
    import torch

    from edgeprune.export import export
    from edgeprune.models import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    torch.manual_seed(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    export(model, model.example_inputs(1), out, targets=("onnx", "tflm"), calibration=calib, force=True)
    return out


def measure(
    work: Path, models: tuple[str, ...] = MODELS, kernels: Kernels | None = None
) -> dict[Core, dict[str, Calibration]]:
    """Per calibrated core and model: instructions per inference (bench), and the traced mix's zero-wait-state cycles
    and loads (``kernels``: the default, DSP-extension kernels, or ``"reference"``)."""
    exports = {m: d if (d := work / m).is_dir() else export_model(m, d) for m in models}
    out: dict[Core, dict[str, Calibration]] = {}
    for core, board in BOARDS.items():
        out[core] = {}
        for m, d in exports.items():
            with emulate(board, d, work / f"fw-{board}-{m}-{kernels or 'default'}", kernels=kernels) as emu:
                meas = bench_export(d, load_board(board), emu.port, emulated=True, runs=2, firmware=emu.firmware)
                total = total_mix(emu.firmware.layer_mixes if emu.firmware else ())
            assert meas.instructions is not None
            out[core][m] = Calibration(round(meas.instructions), round(trm_cycles(total, core)), total.loads)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counts = measure(Path(tmp))
    for core, row in counts.items():
        print(f'[emulator."{core.value}"]')
        if core in STACK:
            print(f'stack = "{STACK[core]}"')
        for key in ("insns", "trm_cycles", "loads"):
            print(f"{key} = {{ " + ", ".join(f"{m} = {getattr(c, key):_}" for m, c in row.items()) + " }")
        print()
    for core, row in counts.items():
        if core in STACK:
            table = {
                "stack": STACK[core],
                **{k: {m: getattr(c, k) for m, c in row.items()} for k in ("trm_cycles", "loads")},
            }
            print(fit_core(core, table).label)


if __name__ == "__main__":
    main()
