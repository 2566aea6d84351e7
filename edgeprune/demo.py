"""The demo: the trained TD-MPC-style model, optimized for a default MCU board on the emulated board, end to end.

The model is the one shipped in ``edgeprune/control/pretrained`` (trained on Pendulum-v1); the metric is its
latent planner's closed-loop return on seeded episodes (the task, not a proxy); the target is the benchmark
firmware in QEMU (latency an estimate from instruction counts); calibration uses real observations from its
replay buffer. The encoder is protected (the paper's finding: it is the most sensitive component).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from edgeprune.boards import load_board
from edgeprune.errors import EdgepruneError
from edgeprune.pipeline.runlog import holds_run


@dataclass(frozen=True)
class DemoSettings:
    """The demo's defaults: NUCLEO-L4R5ZI (Cortex-M4 at 120 MHz), emulated baseline ≈ 30 ms (estimate)."""

    board: str = "nucleo-l4r5zi"
    latency_ms: float = 23.0
    max_drop: float = 15.0  # return units; the baseline is ≈ −155 over 5 episodes
    episodes: int = 5
    strategy: str = "knapsack"
    step: float = 0.25
    round_to: int = 8
    protect: tuple[str, ...] = ("encoder",)
    max_iterations: int = 8
    torch_threads: int = 1  # a 116k-parameter model is dispatch-bound: more threads only add contention


def run_demo(out: str | Path, settings: DemoSettings | None = None, progress: Callable[[str], None] | None = None):
    """Optimize the trained TD-MPC model for ``settings.board`` on the emulated board; returns the
    :class:`~edgeprune.pipeline.OptimizeResult` (report in ``out/report.html``). ``out`` is replaced when it
    holds an earlier demo run."""
    s = settings or DemoSettings()
    missing = [tool for tool in ("qemu-system-arm", "arm-none-eabi-gcc") if shutil.which(tool) is None]
    if missing:
        raise EdgepruneError(
            f"the demo runs the firmware on an emulated board, and {', '.join(missing)} is not installed",
            fix="run `make setup` (installs the Debian packages in system-packages.txt), or install them yourself",
        )
    _clear(Path(out))
    threads = torch.get_num_threads()
    torch.set_num_threads(s.torch_threads)
    try:
        return _optimize(out, s, progress)
    finally:
        torch.set_num_threads(threads)


def _optimize(out: str | Path, s: DemoSettings, progress: Callable[[str], None] | None):
    from edgeprune.control.pretrained import calibration_samples, planner_return, pretrained_tdmpc
    from edgeprune.deploy.mcu.runners import EmulatedBoardRunner
    from edgeprune.pipeline import Goals, OptimizeOptions, optimize
    from edgeprune.pipeline.allocation import strategy
    from edgeprune.pipeline.outputs import write_outputs

    model = pretrained_tdmpc()
    inputs = model.example_inputs(1)
    target = EmulatedBoardRunner(load_board(s.board), calibration_samples())
    goals = Goals(latency_ms=s.latency_ms, max_drop=s.max_drop)
    result = optimize(
        model,
        inputs,
        target,
        planner_return(s.episodes),
        goals,
        out,
        OptimizeOptions(
            protect=s.protect,
            round_to=s.round_to,
            strategy=strategy(s.strategy),
            step=s.step,
            max_iterations=s.max_iterations,
        ),
        progress=progress,
    )
    write_outputs(result, title=f"edgeprune demo: trained TD-MPC (Pendulum-v1) on {target.name}")
    return result


def _clear(out: Path) -> None:
    """Remove an earlier demo run in ``out``; refuse to delete a folder that holds anything else."""
    if not out.exists():
        return
    if any(out.iterdir()) and not holds_run(out):
        raise EdgepruneError(f"{out} exists and does not hold a demo run", fix="pick another --out")
    shutil.rmtree(out)
