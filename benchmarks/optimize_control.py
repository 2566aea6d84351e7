"""``optimize`` on the trained TD-MPC control model for an MCU board and for a Jetson: where does it land?

Run: PYTHONPATH=. .venv/bin/python benchmarks/optimize_control.py [--only mcu|jetson] [--jetson-host user@host]

- **mcu**: Arduino Nano 33 BLE Sense (nRF52840, Cortex-M4F at 64 MHz) on the emulated board (the benchmark
  firmware in QEMU; latency an estimate from instruction counts), latency goal ``--mcu-latency-ms``.
- **jetson**: the Jetson Orin Nano profile over SSH with ONNX Runtime when ``--jetson-host`` is given; without a
  Jetson, ONNX Runtime on this machine stands in (labelled so everywhere): latency goal 70 % and model-size goal
  60 % of the baseline.

Both: encoder protected, round_to 8, the latent planner's closed-loop return on ``--episodes`` seeded
Pendulum-v1 episodes as the metric, ``--max-drop`` of it allowed, ``--strategy`` (default knapsack). Each run's
report.md (with its plots), pareto.json and config.json go to ``--out/<run>/`` (firmware and exports are
temporary).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgeprune.boards import load_board
from edgeprune.control.pretrained import calibration_samples, planner_return, pretrained_tdmpc
from edgeprune.deploy.mcu.runners import EmulatedBoardRunner
from edgeprune.deploy.ssh.runner import SshBoardRunner
from edgeprune.io import write_atomic
from edgeprune.measure.runner import Subject
from edgeprune.pipeline import Goals, OptimizeOptions, allocation, optimize
from edgeprune.pipeline.outputs import points_table, write_outputs
from edgeprune.profiling.engines import HostRunner

KEEP = ("report.md", "pareto.json", "config.json")  # and the report's plots


def mcu_target(args: argparse.Namespace):
    return EmulatedBoardRunner(load_board(args.mcu_board), calibration_samples()), None


def jetson_target(args: argparse.Namespace):
    board = load_board("jetson-orin-nano-8gb")
    if args.jetson_host:
        from edgeprune.deploy.ssh.transport import SSHTarget

        return SshBoardRunner(SSHTarget(args.jetson_host, board=board)), None
    note = f"no Jetson here: ONNX Runtime on this machine stands in for {board.display_name}"
    return HostRunner("onnxruntime", runs=200, warmup=20), note


def run(name: str, args: argparse.Namespace, out: Path) -> None:
    target, stand_in = {"mcu": mcu_target, "jetson": jetson_target}[name](args)
    model = pretrained_tdmpc()
    inputs = model.example_inputs(1)
    with tempfile.TemporaryDirectory() as work:
        base = target.measure(Subject("probe", model, inputs, Path(work) / "probe"))
        if name == "mcu":
            goals = Goals(latency_ms=args.mcu_latency_ms, max_drop=args.max_drop)
        else:
            assert base.memory.flash_bytes is not None
            goals = Goals(latency_ms=0.7 * base.latency_ms, flash_bytes=int(0.6 * base.memory.flash_bytes),
                          max_drop=args.max_drop)  # fmt: skip
        start = time.perf_counter()
        options = OptimizeOptions(protect=("encoder",), round_to=8, strategy=allocation.strategy(args.strategy),
                                  step=0.25, max_iterations=8)  # fmt: skip
        result = optimize(model, inputs, target, planner_return(args.episodes), goals, Path(work) / "run", options,
                          progress=lambda m: print(m, flush=True))  # fmt: skip
        seconds = time.perf_counter() - start
        title = f"optimize the trained TD-MPC model: {target.name}" + (f" ({stand_in})" if stand_in else "")
        write_outputs(result, title=title)
        dest = out / name
        dest.mkdir(parents=True, exist_ok=True)
        for file in [*KEEP, *(p.name for p in result.run_dir.glob("*.png"))]:
            shutil.copyfile(result.run_dir / file, dest / file)
    command = " ".join(["PYTHONPATH=. python benchmarks/optimize_control.py", *map(shlex.quote, sys.argv[1:])])
    summary = [f"# {title}", "", f"`{command}`: {seconds:.0f} s, {len(result.points)} points measured", ""]
    summary += [f"- {stand_in}"] if stand_in else []
    summary += [f"- {result.explanation}; chosen point {result.chosen.iteration}", "", "See report.md."]
    write_atomic(dest / "README.md", "\n".join(summary) + "\n")
    from rich.console import Console

    Console(width=150).print(points_table(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("mcu", "jetson"))
    parser.add_argument("--mcu-board", default="arduino-nano-33-ble-sense")
    parser.add_argument("--mcu-latency-ms", type=float, default=12.0)
    parser.add_argument("--jetson-host", help="user@host of a Jetson (default: this machine stands in)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--max-drop", type=float, default=15.0)
    parser.add_argument("--strategy", default="knapsack")
    parser.add_argument("--out", default="benchmarks/results/optimize_control")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a 116k-parameter model: more threads only add contention on a shared machine
    for name in [args.only] if args.only else ["mcu", "jetson"]:
        run(name, args, Path(args.out))


if __name__ == "__main__":
    main()
