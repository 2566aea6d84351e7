"""`optimize` (the loop) and `demo`."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from edgeprune.boards import load_board
from edgeprune.cli.common import (
    components_of,
    example,
    given,
    load_callable,
    model_args,
    ssh_args,
    ssh_target,
)
from edgeprune.cli.output import console, log, stage
from edgeprune.demo import DemoSettings
from edgeprune.errors import EdgepruneError
from edgeprune.models.spec import load_model
from edgeprune.pipeline.allocation import STRATEGIES, strategy


def add(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands."""
    p = sub.add_parser(
        "optimize",
        help="prune component by component until the board's goals hold (the loop)",
        epilog=example(
            "edgeprune optimize tdmpc --board nucleo-l4r5zi --latency-ms 9 --protect encoder --eval fidelity "
            "--calib out/samples.npz --emulate --out out/opt",
            "edgeprune optimize tdmpc --board nucleo-l4r5zi --latency-ms 9 --protect encoder --eval fidelity "
            "--calib out/samples.npz --emulate --resume --out out/opt",
        ),
    )
    model_args(p)
    p.add_argument("--board", help="board name or alias (MCU boards alone: cost-model latency estimate)")
    p.add_argument("--latency-ms", type=float, help="latency goal")
    p.add_argument("--arena-kb", type=float, help="tensor arena goal (KiB); default: the board's fit check")
    p.add_argument("--flash-kb", type=float, help="model flash goal (KiB); default: the board's fit check")
    p.add_argument("--max-drop", type=float, help="largest metric drop allowed (default: 0.05)")
    p.add_argument(
        "--eval",
        required=True,
        metavar="module:fn|fidelity",
        help="evaluate(model) -> float, higher is better; 'fidelity' = minus the normalised output MSE vs the original "
        "(edgeprune.prune.output_fidelity, a stand-in)",
    )
    p.add_argument("--finetune", metavar="module:fn", help="finetune(model) -> None, run after each pruning step")
    p.add_argument("--calib", help="samples for the int8 TFLM bundle (exact arena and flash); without: latency only")
    p.add_argument("--protect", action="append", default=[], metavar="NAME[,NAME]", help="components to keep intact")
    p.add_argument("--round-to", type=int, help="keep channel counts multiples of this (default: 1)")
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        help="knapsack: a combination of cuts per step (default); greedy: one",
    )
    p.add_argument("--step", type=float, help="budget step per iteration (default: 0.1)")
    p.add_argument("--max-iterations", type=int, help="stop after this many points (default: 20)")
    p.add_argument("--out", required=True, help="run directory (iterations.jsonl, points/, chosen/, pareto.*)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    where = p.add_argument_group("where to measure (one of; default: the MCU board's cost model)")
    where.add_argument("--emulate", action="store_true", help="the emulated board (QEMU; needs --calib)")
    where.add_argument("--port", help="a real MCU board: serial port, socket:// URL, or 'auto' (USB VID:PID); "
                       "builds with PlatformIO and flashes with the board's flash method (needs --calib)")  # fmt: skip
    where.add_argument(
        "--engine", choices=("onnxruntime", "pytorch-eager"), help="an engine on this machine (no --board)"
    )
    ssh_args(p, runtimes="the one runtime to measure with on the board (default: onnxruntime)")
    ray = p.add_argument_group("candidates in parallel (the scale extra: Ray; default: one after another here)")
    ray.add_argument(
        "--parallel",
        action="store_true",
        help="evaluate each round's candidate cuts as Ray tasks (Ray started here), the next round's while the "
        "target measures; the same points as without",
    )
    ray.add_argument("--address", help="with --parallel: a running Ray cluster (HOST:6379, ray://HOST:10001)")
    p.set_defaults(run=_cmd_optimize)

    p = sub.add_parser(
        "demo",
        help="optimize the trained TD-MPC model for an MCU on the emulated board, end to end, with a report",
        epilog=example("edgeprune demo --out out/demo"),
    )
    p.add_argument("--out", default="out/demo", help="run directory (an earlier demo there is replaced)")
    p.add_argument("--board", default=DemoSettings.board, help="MCU board")
    p.add_argument("--latency-ms", type=float, default=DemoSettings.latency_ms, help="latency goal (estimate)")
    p.add_argument("--max-drop", type=float, default=DemoSettings.max_drop, help="largest drop of the return")
    p.add_argument("--strategy", choices=list(STRATEGIES), default=DemoSettings.strategy, help="how cuts are chosen")
    p.set_defaults(run=_cmd_demo)


def _cmd_optimize(args: argparse.Namespace) -> int:
    from edgeprune.pipeline import Goals, OptimizeOptions, optimize
    from edgeprune.pipeline.outputs import points_table, write_outputs
    from edgeprune.prune import output_fidelity

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    evaluate = output_fidelity(model, inputs) if args.eval == "fidelity" else load_callable(args.eval, "--eval")
    finetune = load_callable(args.finetune, "--finetune") if args.finetune else None
    goals = Goals(
        latency_ms=args.latency_ms,
        arena_bytes=None if args.arena_kb is None else int(args.arena_kb * 1024),
        flash_bytes=None if args.flash_kb is None else int(args.flash_kb * 1024),
        **given(max_drop=args.max_drop),
    )
    options = OptimizeOptions(
        components=components_of(model, args),
        protect=tuple(n for arg in args.protect for n in arg.split(",") if n),
        finetune=finetune,
        **given(
            round_to=args.round_to,
            step=args.step,
            max_iterations=args.max_iterations,
            strategy=strategy(args.strategy) if args.strategy else None,
        ),
    )
    target = _optimize_target(args)
    with contextlib.ExitStack() as stack:
        executor = _candidates_executor(args, stack)
        stack.enter_context(stage("optimize"))
        result = optimize(
            model,
            inputs,
            target,
            evaluate,
            goals,
            args.out,
            options,
            resume=args.resume,
            executor=executor,
        )
    write_outputs(result)
    console.print(points_table(result))
    verdict = "[green]goals met[/]" if result.met else "[bold red]goals not met[/]"
    console.print(f"{verdict}: {result.explanation}; chosen point {result.chosen.iteration} in {args.out}/chosen/")
    return 0 if result.met else 1


def _candidates_executor(args: argparse.Namespace, stack: contextlib.ExitStack):
    """Ray (started here, or the cluster at --address) for --parallel, held open by ``stack``; else None."""
    if args.address and not args.parallel:
        raise EdgepruneError("--address is where --parallel runs the candidates", fix="add --parallel")
    if not args.parallel:
        return None
    from edgeprune.extras import MissingExtraError
    from edgeprune.scale.executor import ray_executor

    try:
        return stack.enter_context(ray_executor(args.address, {}, retries=0))
    except MissingExtraError as exc:
        log.warning("Ray is not installed (%s): candidates are evaluated one after another", exc.fix)
        return None


def _optimize_target(args: argparse.Namespace):
    """The runner ``optimize`` measures with: one of --host, --port, --emulate, --engine, else the cost model."""

    chosen = [flag for flag, on in (("--host", args.host), ("--port", args.port), ("--emulate", args.emulate),
                                    ("--engine", args.engine)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise EdgepruneError(f"{' and '.join(chosen)} name different targets", expected="at most one of them",
                             fix="--host: a Linux board over SSH; --port: a real MCU board; --emulate: the emulated "
                             "MCU board; --engine: this machine; none: the MCU board's cost model")  # fmt: skip
    if args.engine:
        if args.board:
            raise EdgepruneError("--engine measures on this machine, not on --board", fix="drop --board or --engine")
        from edgeprune.profiling.engines import HostRunner

        return HostRunner(args.engine)
    if not args.board:
        raise EdgepruneError("no target given", expected="--board NAME (with --host, --port or --emulate), or --engine")
    board = load_board(args.board)
    if args.host:
        from edgeprune.deploy.ssh.runner import SshBoardRunner

        runtimes = [r.strip() for r in (args.runtimes or "onnxruntime").split(",") if r.strip()]
        if len(runtimes) != 1:
            raise EdgepruneError(
                f"--runtimes {args.runtimes}: optimize measures with one runtime",
                expected="one of onnxruntime, pytorch-eager, tensorrt (default onnxruntime)",
            )
        return SshBoardRunner(ssh_target(args, board), runtimes[0])
    if not board.core.is_mcu:
        raise EdgepruneError(f"{board.name} is a Linux board", fix="pass --host user@host to measure on it over SSH")
    if args.port or args.emulate:
        from edgeprune.deploy.mcu.runners import EmulatedBoardRunner, SerialBoardRunner

        if args.port:
            return SerialBoardRunner(board, args.calib, None if args.port == "auto" else args.port)
        return EmulatedBoardRunner(board, args.calib)
    from edgeprune.boards.runner import CostModelRunner

    return CostModelRunner(board, args.calib)


def _cmd_demo(args: argparse.Namespace) -> int:
    from edgeprune.demo import run_demo
    from edgeprune.pipeline.outputs import points_table

    settings = DemoSettings(args.board, args.latency_ms, args.max_drop, strategy=args.strategy)
    console.rule(f"edgeprune demo: trained TD-MPC (Pendulum-v1) -> {settings.board} (emulated)")
    console.print(
        f"goal: latency <= {settings.latency_ms} ms (estimate) with the planner's return dropping <= "
        f"{settings.max_drop} ({settings.episodes} episodes); encoder protected; strategy {settings.strategy}",
        highlight=False,
    )
    with stage("demo"):
        result = run_demo(args.out, settings)
    console.print(points_table(result))
    verdict = "[green]goals met[/]" if result.met else "[bold red]goals not met[/]"
    console.print(f"{verdict}: {result.explanation}", highlight=False)
    console.print(f"report: {Path(args.out) / 'report.html'}", highlight=False)
    return 0 if result.met else 1
