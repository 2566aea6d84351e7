"""Does ``optimize`` on the emulated board run faster with its candidates on Ray, for the same chosen point?

The allocation benchmark's setting (benchmarks/allocation.py): the trained TD-MPC model, encoder protected,
round_to 8, step 0.25, the latent planner's closed-loop return on 5 seeded Pendulum-v1 episodes as the metric
(max_drop 15), a latency goal at ``--goal`` of the baseline on NUCLEO-L4R5ZI measured by the emulated board
(firmware in QEMU). Each run is one ``optimize`` call: serially (candidates one after another in this process)
or with ``executor=`` an embedded local Ray of ``--cpus`` CPUs started and stopped inside the timed run (the
candidates of a round as tasks, the next round's while the emulated board measures). Runs alternate (serial,
Ray, serial, Ray, ...) so load on a shared machine falls on both; every pair is checked point by point (budgets,
metric, accepted, chosen point exactly; the emulated latency within the emulator's run-to-run jitter, 0.1 %).
Reports the geometric-mean speedup with its paired 95 % CI (Student-t on the log ratios); writes
optimize_parallel_<strategy>.json/.md under --out after every pair. Goal: >= 1.4x on 2 cores.

Run: .venv/bin/python benchmarks/optimize_parallel.py [--strategy greedy] [--pairs 2] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from stats import ratio_ci95

from edgeprune.boards import load_board
from edgeprune.control.pretrained import calibration_samples, planner_return, pretrained_tdmpc
from edgeprune.deploy.mcu.runners import EmulatedBoardRunner
from edgeprune.io import write_atomic
from edgeprune.measure.runner import Subject
from edgeprune.pipeline import Goals, OptimizeOptions, allocation, optimize
from edgeprune.scale.executor import ray_executor

GOAL = 1.4
EMULATOR_JITTER = 1e-3  # relative: the emulated instruction count of one export moves a little run to run


def run_once(mode: str, strategy: str, goal_ms: float, episodes: int, cpus: int, board: str) -> dict:
    model = pretrained_tdmpc()
    inputs = model.example_inputs(1)
    target = EmulatedBoardRunner(load_board(board), calibration_samples())
    goals = Goals(latency_ms=goal_ms, max_drop=15.0)
    options = OptimizeOptions(protect=("encoder",), round_to=8, strategy=allocation.strategy(strategy), step=0.25,
                              max_iterations=12)  # fmt: skip
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        if mode == "ray":
            with ray_executor(None, {}, retries=0, num_cpus=cpus) as ex:
                result = optimize(model, inputs, target, planner_return(episodes), goals, Path(work) / "run", options,
                                  executor=ex)  # fmt: skip
        else:
            result = optimize(model, inputs, target, planner_return(episodes), goals, Path(work) / "run", options)
    seconds = time.perf_counter() - start
    return {
        "mode": mode,
        "seconds": seconds,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "met": result.met,
        "chosen": result.chosen.iteration,
        "chosen_budgets": result.chosen.budgets,
        "points": [
            {"budgets": p.budgets, "metric": p.metric, "accepted": p.accepted, "latency_ms": p.result.latency_ms}
            for p in result.points
        ],
    }


def compare(a: dict, b: dict) -> tuple[bool, float]:
    """Whether two runs found the same points (latency within the emulator's jitter), and the largest relative
    latency difference."""
    worst = 0.0
    same = a["chosen"] == b["chosen"] and len(a["points"]) == len(b["points"])
    for p, q in zip(a["points"], b["points"], strict=False):
        same &= (p["budgets"], p["metric"], p["accepted"]) == (q["budgets"], q["metric"], q["accepted"])
        worst = max(worst, abs(p["latency_ms"] - q["latency_ms"]) / p["latency_ms"])
    return same and worst <= EMULATOR_JITTER, worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=list(allocation.STRATEGIES), default="greedy")
    parser.add_argument("--goal", type=float, default=0.763, help="latency goal as a fraction of the baseline")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--board", default="nucleo-l4r5zi")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    os.environ["EDGEPRUNE_CACHE_DIR"] = "off"  # every run converts and builds (Ray's workers inherit it)
    torch.set_num_threads(1)  # as in a Ray worker (one CPU each): a 116k-parameter model gains nothing from more
    model = pretrained_tdmpc()
    with tempfile.TemporaryDirectory() as work:
        target = EmulatedBoardRunner(load_board(args.board), calibration_samples())
        baseline_ms = target.measure(Subject("baseline", model, model.example_inputs(1), Path(work))).latency_ms
    goal_ms = args.goal * baseline_ms
    pairs = []
    for i in range(args.pairs):
        runs = {}
        for mode in ("serial", "ray"):
            runs[mode] = run_once(mode, args.strategy, goal_ms, args.episodes, args.cpus, args.board)
            print(json.dumps({k: v for k, v in runs[mode].items() if k != "points"}), flush=True)
        same, worst = compare(runs["serial"], runs["ray"])
        speedup = runs["serial"]["seconds"] / runs["ray"]["seconds"]
        pairs.append({"pair": i + 1, "speedup": speedup, "identical": same, "worst_latency_rel": worst, **runs})
        print(f"pair {i + 1}: {speedup:.2f}x, identical {same} (latency within {worst:.1e})", flush=True)
        write(args, argv, baseline_ms, goal_ms, pairs)  # after every pair: a long run killed keeps what it had


def write(args: argparse.Namespace, argv: list[str] | None, baseline_ms: float, goal_ms: float, pairs: list) -> None:
    speedups = [p["speedup"] for p in pairs]
    mean, low, high = ratio_ci95(speedups)
    command = shlex.join(["python", "benchmarks/optimize_parallel.py", *(argv or sys.argv[1:])])
    data = {
        "command": command,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "strategy": args.strategy,
        "baseline_ms": baseline_ms,
        "goal_ms": goal_ms,
        "goal_speedup": GOAL,
        "speedup_geomean": mean,
        "speedup_ci95": [low, high],
        "median_speedup": statistics.median(speedups),
        "identical": all(p["identical"] for p in pairs),
        "pairs": pairs,
    }
    out = Path(args.out)
    name = f"optimize_parallel_{args.strategy}"
    write_atomic(out / f"{name}.json", json.dumps(data, indent=2))
    lines = [f"# optimize on the emulated {args.board}: candidates serially vs on Ray ({args.strategy})", "",
             f"`{command}`", "", "| pair | serial s | Ray s | speedup | same points | chosen | load avg (serial "
             "before/after, Ray before/after) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in pairs:
        s, r = p["serial"], p["ray"]
        lines.append(f"| {p['pair']} | {s['seconds']:.1f} | {r['seconds']:.1f} | {p['speedup']:.2f}x | "
                     f"{p['identical']} | {s['chosen']} / {r['chosen']} | {s['load_before']:.1f} / "
                     f"{s['load_after']:.1f} / {r['load_before']:.1f} / {r['load_after']:.1f} |")  # fmt: skip
    lines += ["", f"speedup {mean:.2f}x (geometric mean of {len(pairs)} pairs, paired 95 % CI {low:.2f}-{high:.2f}x, "
              f"range {min(speedups):.2f}-{max(speedups):.2f}x), goal {GOAL}x; same points and chosen point: "
              f"{data['identical']}"]  # fmt: skip
    write_atomic(out / f"{name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
