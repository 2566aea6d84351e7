"""Re-measure the emulator's calibration instruction counts and print the fit:
``python -m edgeprune.deploy.mcu.calibrate``. Exports the MLPerf Tiny models (seed 0, 32 random calibration
samples), runs each on the emulated M4 and M7 and prints the ``[emulator]`` tables to paste into
``edgeprune/boards/cost_models/calibration.toml``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgeprune.boards import load_board
from edgeprune.boards.insn_cost import CALIBRATION_STACK, fit_core
from edgeprune.boards.schema import Core
from edgeprune.deploy.mcu.api import bench_export, emulate
from edgeprune.deploy.mcu.build import Kernels

BOARDS = {Core.CORTEX_M4: "nucleo-l4r5zi", Core.CORTEX_M7: "nucleo-h743zi2"}
MODELS = ("kws_dscnn", "ad_autoencoder")


def _export(name: str, out: Path) -> Path:
    import torch

    from edgeprune.export import export
    from edgeprune.models import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    torch.manual_seed(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    export(model, model.example_inputs(1), out, targets=("onnx", "tflm"), calibration=calib, force=True)
    return out


def measure(work: Path, kernels: Kernels = "reference") -> dict[Core, dict[str, int]]:
    """Instructions per inference of each calibration model on each calibrated core (``kernels``: the reference
    loops the factors are fitted to, or the DSP-extension kernels)."""
    exports = {m: d if (d := work / m).is_dir() else _export(m, d) for m in MODELS}
    counts: dict[Core, dict[str, int]] = {}
    for core, board in BOARDS.items():
        counts[core] = {}
        for m, d in exports.items():
            with emulate(board, d, work / f"fw-{board}-{m}-{kernels}", kernels=kernels) as emu:
                meas = bench_export(d, load_board(board), emu.port, emulated=True, runs=2)
            assert meas.instructions is not None
            counts[core][m] = round(meas.instructions)
    return counts


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        counts = measure(Path(tmp))
    for core, row in counts.items():
        print(f'[emulator."{core.value}"]\nstack = "{CALIBRATION_STACK[core]}"')
        print("insns = { " + ", ".join(f"{m} = {n:_}" for m, n in row.items()) + " }\n")
    for core, row in counts.items():
        print(fit_core(core, row).label)


if __name__ == "__main__":
    main()
