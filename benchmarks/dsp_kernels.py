"""Instructions per inference of the MLPerf Tiny calibration models with the reference int8 kernels and with the
Cortex-M4/M7 DSP-extension kernels, on the emulated boards (the calibration path: edgeprune.deploy.mcu.calibrate).

Run: .venv/bin/python benchmarks/dsp_kernels.py [--out benchmarks/results/dsp_kernels.json]

QEMU with -icount shift=0 counts instructions deterministically (the same firmware and inputs give the same count on
every run and machine), so one run per cell is the measurement; there is no spread to report. Both kernel sets are
checked bit for bit against the TFLM host interpreter on 3 random inputs in every run (bench_export). Instruction
counts are not cycles: benchmarks/cycle_model.py has the cycle model's estimates (docs/emulated-board.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeprune.deploy.mcu.calibrate import BOARDS, measure
from edgeprune.io import write_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/dsp_kernels.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        counts = {k: measure(Path(tmp), kernels=k) for k in ("reference", "dsp")}
    rows = []
    for core, per_model in counts["reference"].items():
        for model, ref in per_model.items():
            dsp = counts["dsp"][core][model].insns
            rows.append({"core": core.value, "board": BOARDS[core], "model": model, "reference_insns": ref.insns,
                         "dsp_insns": dsp, "ratio": ref.insns / dsp})  # fmt: skip
    table = Table(title="Instructions per inference on the emulated board (QEMU -icount shift=0)")
    for col in ("core", "model", "reference kernels", "DSP kernels", "reference / DSP"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["core"], r["model"], f"{r['reference_insns']:,}", f"{r['dsp_insns']:,}", f"{r['ratio']:.2f}x")
    Console().print(table)
    write_atomic(Path(args.out), json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
