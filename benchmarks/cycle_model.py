"""The emulated board's cycle model against the published MLPerf Tiny NUCLEO-L4R5ZI results, and against the
analytic cost model, on every bundled model (original and pruned 50 %).

Run: nice -n 10 .venv/bin/python benchmarks/cycle_model.py [--out benchmarks/results/cycle_model.json]
     [--reuse benchmarks/results/cycle_model.json]  (analytic columns only; the emulator figures from the file)

Per model: the emulator's estimate (DSP-extension kernels, one traced inference for the instruction mix, QEMU's
instruction count per layer; edgeprune.boards.cycle_model), the analytic estimate of the set derived from the emulator
(the board's default, "cortex-m4/emulated": python -m edgeprune.deploy.mcu.op_costs) and of the set fitted to the
published points on conv/FC MACs only ("cortex-m4/tflm-reference", what the board used before), their ratios to the
emulator, the published latency where one exists (KWS and AD: the two calibration points of the cycle model; no
image-classification or visual-wake-words model is bundled, so there is no out-of-sample published check here) and
the pruned/original speedup beside the MAC ratio. QEMU -icount counts vary by ~1e-4 between runs, so one run per
cell; the figures
are estimates, not timings of this machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from edgeprune.boards import estimate_latency, load_board, ops_from_module, total_macs
from edgeprune.boards.calibration import load_calibration
from edgeprune.boards.errors import NoCostModelError
from edgeprune.deploy.mcu import bench_export, emulate
from edgeprune.export import export
from edgeprune.io import write_atomic
from edgeprune.models import create_model, list_models
from edgeprune.prune import Budget, prune

BOARD = "nucleo-l4r5zi"
EMULATED_SET = "cortex-m4/emulated"
PUBLISHED_SET = "cortex-m4/tflm-reference"  # conv/FC MACs only, fitted to the published KWS/AD results


def _model(name: str, pruned: bool) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.example_inputs(1)
    if pruned:
        model = prune(model, inputs, Budget(default=0.5)).model.eval()
    return model, inputs


def _emulated(name: str, pruned: bool, work: Path) -> dict[str, float]:
    model, inputs = _model(name, pruned)
    torch.manual_seed(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    d = work / f"{name}-{'pruned' if pruned else 'orig'}"
    export(model, inputs, d, targets=("onnx", "tflm"), calibration=calib, force=True)
    board = load_board(BOARD)
    with emulate(board, d, d / "fw") as emu:
        m = bench_export(d, board, emu.port, emulated=True, runs=1, warmup=0, firmware=emu.firmware)
    assert m.latency is not None and m.instructions is not None
    return {"emulator_ms": m.latency.mean_ms, "instructions": m.instructions,
            "cycles_per_insn": m.latency.mean_ms * 1e-3 * board.clock_hz / m.instructions}  # fmt: skip


def _analytic(name: str, pruned: bool) -> dict[str, float | None]:
    model, inputs = _model(name, pruned)
    ops = ops_from_module(model, inputs)
    board = load_board(BOARD)
    out: dict[str, float | None] = {"macs": float(total_macs(ops))}
    out["analytic_board_set_ms"] = estimate_latency(ops, board, cost_model=PUBLISHED_SET).latency_ms
    try:
        out["analytic_emulated_set_ms"] = estimate_latency(ops, board, cost_model=EMULATED_SET).latency_ms
    except NoCostModelError:  # the set is fitted from this benchmark's first run
        out["analytic_emulated_set_ms"] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/cycle_model.json")
    parser.add_argument("--reuse", help="take the emulator figures from this JSON (analytic columns only)")
    args = parser.parse_args()
    published = {m: ms for m, _, _, ms in load_calibration()["cortex-m4/tflm-reference"].points}
    reused = {(r["model"], r["pruned"]): r for r in json.loads(Path(args.reuse).read_text())} if args.reuse else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in list_models():
            for pruned in (False, True):
                emu = reused.get((name, pruned)) or _emulated(name, pruned, Path(tmp))
                row = {"model": name, "pruned": pruned, "emulator_ms": emu["emulator_ms"],
                       "instructions": emu["instructions"], "cycles_per_insn": emu["cycles_per_insn"],
                       **_analytic(name, pruned), "published_ms": None if pruned else published.get(name)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    by = {(r["model"], r["pruned"]): r for r in rows}
    for r in rows:
        ana = r["analytic_emulated_set_ms"]
        r["analytic_over_emulator"] = ana / r["emulator_ms"] if ana else None
        r["board_set_over_emulator"] = r["analytic_board_set_ms"] / r["emulator_ms"]
        r["published_error_pct"] = 100 * (r["emulator_ms"] / r["published_ms"] - 1) if r["published_ms"] else None
        if r["pruned"]:
            orig = by[(r["model"], False)]
            r["emulated_speedup"] = orig["emulator_ms"] / r["emulator_ms"]
            r["mac_ratio"] = orig["macs"] / r["macs"]
    table = Table(title=f"{BOARD}: emulator (cycle model) vs analytic cost model vs published, ms per inference")
    cols = ("model", "emulator", "CPI", f"analytic ({EMULATED_SET})", "ratio", f"analytic ({PUBLISHED_SET})",
            "ratio", "published", "error", "speedup emu / MACs")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        ana = r["analytic_emulated_set_ms"]
        table.add_row(
            r["model"] + (" (pruned 50 %)" if r["pruned"] else ""),
            f"{r['emulator_ms']:.3f}",
            f"{r['cycles_per_insn']:.3f}",
            f"{ana:.3f}" if ana else "-",
            f"{r['analytic_over_emulator']:.2f}" if ana else "-",
            f"{r['analytic_board_set_ms']:.3f}",
            f"{r['board_set_over_emulator']:.2f}",
            f"{r['published_ms']:.1f}" if r["published_ms"] else "-",
            f"{r['published_error_pct']:+.1f} %" if r["published_ms"] else "-",
            f"{r['emulated_speedup']:.2f}x / {r['mac_ratio']:.2f}x" if r["pruned"] else "",
        )
    Console(width=200).print(table)
    write_atomic(Path(args.out), json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
