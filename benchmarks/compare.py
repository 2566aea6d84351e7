"""Original vs pruned TD-MPC-style world model in eager mode and every engine available here.

Run: .venv/bin/python benchmarks/compare.py [--fraction 0.5] [--round-to 8] [--runs 200] [--out benchmarks/results]

Prunes the bundled ``tdmpc`` model (component-aware, 50 % of each component, round_to 8), exports both
to ONNX / TFLite / TFLM, and times them in one run (ratios are what to read: this machine is shared).
Writes compare_tdmpc.json and compare_tdmpc.png; the NUCLEO-L4R5ZI row is a cost-model estimate.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from edgeprune.boards import load_board
from edgeprune.models import create_model
from edgeprune.pipeline.compare import compare
from edgeprune.prune import Budget, prune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model("tdmpc").eval()
    inputs = model.example_inputs(1)
    result = prune(model, inputs, Budget(default=args.fraction, round_to=args.round_to))
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(256)]
    with tempfile.TemporaryDirectory() as work:
        comparison = compare(
            model, result.model, inputs, work, calibration=calibration, board=load_board(args.board),
            runs=args.runs, warmup=20, threads=1, progress=print,
        )  # fmt: skip
    out = Path(args.out)
    comparison.save(out / "compare_tdmpc.json", out / "compare_tdmpc.png")
    console = Console(width=150)
    console.print(f"tdmpc pruned {result.report.achieved:.1%} of parameters (budget {args.fraction:.0%} per component)")
    console.print(comparison.table())
    for note in comparison.notes:
        console.print(f"note: {note}")
    print(f"wrote {out}/compare_tdmpc.json and .png")


if __name__ == "__main__":
    main()
