"""Is ``compare`` reproducible on a busy machine? Two back-to-back comparisons of the same original and pruned
TD-MPC model, and how far each engine's speedup moved between them.

Run: nice -n 10 .venv/bin/python benchmarks/compare_repeat.py [--runs 480] [--rounds 12] [--out benchmarks/results]

Each run exports both models afresh and times every engine available here, original and pruned in alternation
(ABBA rounds). Agreement per engine = |speedup_1 - speedup_2| / mean(speedup_1, speedup_2); the goal is at most
15 % on every engine. Writes compare_repeat_tdmpc.json (both comparisons in full, and the agreement table).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import psutil
import torch
from rich.console import Console
from rich.table import Table

from edgeprune.boards import load_board
from edgeprune.io import write_atomic
from edgeprune.models import create_model
from edgeprune.pipeline.compare import Comparison, compare
from edgeprune.prune import Budget, prune

GOAL = 0.15


def agreement(first: Comparison, second: Comparison) -> list[dict]:
    """Per engine: both speedups, each run's lowest/highest round ratio, and the relative difference."""
    rows = []
    for a in first.rows:
        b = second.row(a.engine)
        diff = abs(a.speedup - b.speedup) / ((a.speedup + b.speedup) / 2)
        rows.append({"engine": a.engine, "speedup_1": a.speedup, "speedup_2": b.speedup,
                     "rounds_1": a.spread, "rounds_2": b.spread, "relative_difference": diff,
                     "estimate": a.spread is None, "within_goal": diff <= GOAL})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--runs", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model("tdmpc").eval()
    inputs = model.example_inputs(1)
    pruned = prune(model, inputs, Budget(default=args.fraction, round_to=args.round_to)).model
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(256)]
    runs: list[Comparison] = []
    seconds: list[float] = []
    for i in (1, 2):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            runs.append(compare(model, pruned, inputs, work, calibration=calibration, board=load_board(args.board),
                                runs=args.runs, warmup=20, rounds=args.rounds, threads=1,
                                progress=lambda m, i=i: print(f"run {i}: {m}", flush=True)))  # fmt: skip
        seconds.append(time.perf_counter() - t0)
    rows = agreement(*runs)
    table = Table(title=f"compare run twice: tdmpc, {args.fraction:.0%} per component (goal: within {GOAL:.0%})")
    for col in ("engine", "speedup 1", "rounds 1", "speedup 2", "rounds 2", "difference", "within goal"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for r in rows:
        spread = ["-" if s is None else f"{s[0]:.2f}-{s[1]:.2f}" for s in (r["rounds_1"], r["rounds_2"])]
        table.add_row(r["engine"] + (" (estimate)" if r["estimate"] else ""), f"{r['speedup_1']:.3f}x", spread[0],
                      f"{r['speedup_2']:.3f}x", spread[1], f"{100 * r['relative_difference']:.1f} %",
                      "yes" if r["within_goal"] else "NO")  # fmt: skip
    Console(width=150).print(table)
    load = psutil.getloadavg()
    result = {
        "goal_relative_difference": GOAL,
        "all_within_goal": all(r["within_goal"] for r in rows),
        "engines": rows,
        "settings": {**vars(args), "warmup": 20, "threads": 1},
        "machine": {"node": platform.node(), "cpus": psutil.cpu_count(), "loadavg_at_end": load},
        "seconds_per_run": seconds,
        "comparisons": [c.to_dict() for c in runs],
    }
    out = Path(args.out) / "compare_repeat_tdmpc.json"
    write_atomic(out, json.dumps(result, indent=2))
    print(f"wrote {out}; load average at the end {load[0]:.1f} on {psutil.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
