"""Greedy vs knapsack allocation in ``optimize``: metric kept, target measurements and evaluations per goal.

Run: PYTHONPATH=. .venv/bin/python benchmarks/allocation.py [--target cost-model|emulated] [--goals 0.8,0.6,0.45]

The trained TD-MPC model (``edgeprune/control/pretrained``), encoder protected, round_to 8, step 0.25, the latent
planner's closed-loop return on 5 seeded Pendulum-v1 episodes as the metric (max_drop 15), and a latency goal at
each fraction of the baseline on NUCLEO-L4R5ZI: the board's cost model (an estimate; a measurement costs
nothing, so the count of measurements stands for what each would cost on a board) or the emulated board
(firmware in QEMU, ~30 s a measurement). Writes ``allocation_<target>.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from edgeprune.boards import load_board
from edgeprune.boards.runner import CostModelRunner
from edgeprune.control.pretrained import calibration_samples, planner_return, pretrained_tdmpc
from edgeprune.deploy.mcu.runners import EmulatedBoardRunner
from edgeprune.io import write_atomic
from edgeprune.measure.runner import Subject
from edgeprune.pipeline import Goals, OptimizeOptions, allocation, optimize

COLUMNS = ("goal", "strategy", "met", "latency ms", "return", "drop", "measurements", "evaluations", "seconds")


def run(strategy: str, goal_fraction: float, target, baseline_ms: float, episodes: int) -> dict:
    model = pretrained_tdmpc()
    inputs = model.example_inputs(1)
    metric = planner_return(episodes)
    evaluations = 0

    def evaluate(m: torch.nn.Module) -> float:
        nonlocal evaluations
        evaluations += 1
        return metric(m)

    goals = Goals(latency_ms=goal_fraction * baseline_ms, max_drop=15.0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        options = OptimizeOptions(protect=("encoder",), round_to=8, strategy=allocation.strategy(strategy), step=0.25,
                                  max_iterations=12)  # fmt: skip
        result = optimize(model, inputs, target, evaluate, goals, Path(work) / "run", options)
    seconds = time.perf_counter() - start
    chosen = result.chosen
    return {
        "goal": goal_fraction,
        "goal_ms": goals.latency_ms,
        "strategy": strategy,
        "met": result.met,
        "explanation": result.explanation,
        "latency_ms": chosen.result.latency_ms,
        "return": chosen.metric,
        "drop": result.points[0].metric - chosen.metric,
        "measurements": len(result.points),
        "evaluations": evaluations,
        "seconds": round(seconds, 1),
        "budgets": chosen.budgets,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("cost-model", "emulated"), default="cost-model")
    parser.add_argument("--goals", default="0.8,0.6,0.45", help="latency goals as fractions of the baseline")
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a 116k-parameter model: more threads only add contention on a shared machine
    board = load_board(args.board)
    emulated = args.target == "emulated"
    target = EmulatedBoardRunner(board, calibration_samples()) if emulated else CostModelRunner(board)
    model = pretrained_tdmpc()
    with tempfile.TemporaryDirectory() as work:
        baseline_ms = target.measure(Subject("baseline", model, model.example_inputs(1), Path(work))).latency_ms
    rows = []
    for goal in (float(g) for g in args.goals.split(",")):
        for strategy in ("greedy", "knapsack"):
            rows.append(run(strategy, goal, target, baseline_ms, args.episodes))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "budgets"}), flush=True)
    command = " ".join(["PYTHONPATH=. python benchmarks/allocation.py", *map(shlex.quote, argv or sys.argv[1:])])
    data = {"command": command, "target": target.name, "baseline_ms": baseline_ms, "runs": rows}
    out = Path(args.out)
    write_atomic(out / f"allocation_{args.target}.json", json.dumps(data, indent=2))
    table = Table(title=f"greedy vs knapsack on {target.name}; baseline {baseline_ms:.3f} ms (estimate)")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    lines = [f"# Greedy vs knapsack on {target.name}", "", f"`{command}`", "", "| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    for r in rows:
        cells = [f"{r['goal']:.0%} ({r['goal_ms']:.2f} ms)", r["strategy"], "yes" if r["met"] else "no",
                 f"{r['latency_ms']:.3f}", f"{r['return']:.1f}", f"{r['drop']:.1f}", str(r["measurements"]),
                 str(r["evaluations"]), f"{r['seconds']:.0f}"]  # fmt: skip
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    write_atomic(out / f"allocation_{args.target}.md", "\n".join(lines) + "\n")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
