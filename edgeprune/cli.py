"""The ``edgeprune`` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgeprune.boards import board_details, boards_table, check_fit, fit_artifact, load_board
from edgeprune.demo import DemoSettings
from edgeprune.errors import EdgepruneError
from edgeprune.export.api import TARGETS
from edgeprune.interrupts import exit_status, interruptible
from edgeprune.io import write_atomic
from edgeprune.models import list_models
from edgeprune.models.spec import load_model
from edgeprune.pipeline.allocation import STRATEGIES
from edgeprune.prune import (
    Budget,
    Components,
    PrunePlan,
    PruneResult,
    build_groups,
    load_pruned,
    prune,
    save_weights,
)
from edgeprune.prune.groups import MODES
from edgeprune.prune.importance import IMPORTANCES

# wide enough for tables in logs; lines of text are never wrapped (commands and paths stay copyable)
console = Console(width=None if sys.stdout.isatty() else 120, soft_wrap=True, log_path=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with interruptible():
            return args.run(args)
    except EdgepruneError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: child processes ended and staging removed on the way here
        console.print("interrupted: child processes stopped, partial outputs removed", highlight=False)
        return exit_status(exc)


# ---------------------------------------------------------------- argument groups shared by subcommands


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "model",
        nargs=None if required else "?",
        help="bundled model name (see `edgeprune models`) or package.module:factory",
    )
    g.add_argument("--weights", help="state_dict file for the model (loaded with weights_only=True)")
    g.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="1x3x32x32",
        help="example input shape, once per forward argument (default: the model's example_inputs())",
    )
    g.add_argument("--depth", type=int, help="components = modules at this depth (default: top-level children)")
    g.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="NAME=PATTERN[,PATTERN]",
        help="explicit component: module paths or globs (repeatable)",
    )
    g.add_argument("--mode", choices=MODES, default="component", help="grouping mode (default: component)")


def _plan_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("pruned model")
    g.add_argument("--plan", required=required, help="plan.json written by `edgeprune prune`")
    g.add_argument(
        "--pruned-weights",
        help="pruned.pt written by `edgeprune prune` (or after fine-tuning); default: the plan applied to --weights",
    )


def _ssh_args(
    p: argparse.ArgumentParser,
    runtimes: str = "comma-separated among onnxruntime, pytorch-eager, tensorrt (default: all)",
) -> None:
    g = p.add_argument_group("Linux boards over SSH (Jetson, Raspberry Pi)")
    g.add_argument("--host", help="user@host or user@host:port")
    g.add_argument("--key", help="SSH private key (default: your ssh config and agent)")
    g.add_argument("--known-hosts", help="known_hosts file (host-key checking is always on)")
    g.add_argument("--python", default="python3", help="Python on the board (default python3)")
    g.add_argument("--remote-dir", default="edgeprune", help="work directory on the board (default ~/edgeprune)")
    g.add_argument("--runtimes", help=runtimes)


def _budget_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("budget")
    g.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="F|NAME=F",
        help="fraction of parameters to remove: a default (0.5) and/or per component (dynamics=0.3); repeatable",
    )
    g.add_argument("--total", type=float, help="remove this fraction of the whole model, ranked across components")
    g.add_argument("--protect", action="append", default=[], metavar="NAME[,NAME]", help="components to keep intact")
    g.add_argument("--interfaces", type=float, metavar="RATIO", help="also prune cross-component interfaces")
    g.add_argument("--round-to", type=int, default=1, help="keep channel counts multiples of this (default 1)")
    g.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="importance weight per component")
    g.add_argument("--importance", choices=[i for i in IMPORTANCES if i != "taylor"], default="l2")
    g.add_argument("--seed", type=int, default=0, help="seed for random importance")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeprune", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="command")

    p = sub.add_parser("models", help="list the bundled models")
    p.set_defaults(run=_cmd_models)

    p = sub.add_parser("groups", help="print a model's components, flows and pruning groups")
    _model_args(p)
    p.add_argument("--json", metavar="FILE", help="also write components, flows and groups as JSON")
    p.add_argument("--mermaid", metavar="FILE", help="also write the component graph as a Mermaid diagram")
    p.set_defaults(run=_cmd_groups)

    p = sub.add_parser("prune", help="prune a model; writes plan.json, pruned.pt and the report to --out")
    _model_args(p)
    _budget_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    p.set_defaults(run=_cmd_prune)

    p = sub.add_parser("export", help="export a (pruned) model: ONNX, TFLite int8, TFLM bundle, TensorRT")
    _model_args(p)
    _plan_args(p)
    p.add_argument(
        "--to",
        default="onnx,tflite,tflm",
        help=f"comma-separated targets among {', '.join(TARGETS)} (default onnx,tflite,tflm)",
    )
    p.add_argument("--calib", help="representative samples for int8 (.npy, or .npz keyed by input name)")
    p.add_argument("--no-int8", action="store_true", help="TFLite float32 only (not with tflm)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT precision")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite an earlier export in --out")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("compare", help="time original vs pruned in eager mode and every engine here, in one table")
    _model_args(p)
    _plan_args(p, required=True)
    p.add_argument("--board", help="also the board's latency estimate (MCU boards with a fitted cost model)")
    p.add_argument("--calib", help="samples for int8 (.npy/.npz); without them int8 LiteRT and TFLM are skipped")
    p.add_argument("--runs", type=int, default=50, help="timed runs per engine (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default 10)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for eager/ONNX Runtime (default 1)")
    p.add_argument("--out", required=True, help="output directory (exports, compare.json, compare.png)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier comparison in --out")
    _ssh_args(p)
    p.set_defaults(run=_cmd_compare)

    p = sub.add_parser(
        "bench",
        help="benchmark on a board: an MCU (serial port or --emulate) from an export, or a Linux board over SSH",
    )
    _model_args(p, required=False)
    _plan_args(p)
    p.add_argument("--board", required=True, help="board name or alias")
    mcu = p.add_argument_group("MCU boards (TFLM bundle from `edgeprune export`)")
    mcu.add_argument("--export", help="export directory holding tflm/model.tflite")
    mcu.add_argument("--port", help="serial port or socket:// URL (default: found by the board's USB VID:PID)")
    mcu.add_argument("--emulate", action="store_true", help="run on the emulated board (QEMU) instead")
    _ssh_args(p)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", help="Linux boards: local work directory (bundles, measurements JSON)")
    p.set_defaults(run=_cmd_bench)

    p = sub.add_parser("emulate", help="start the emulated board (QEMU) running an export; prints its serial port")
    p.add_argument("export", help="export directory holding tflm/model.tflite")
    p.add_argument("--board", required=True, help="an MCU board with a QEMU machine (M0+, M4, M7)")
    p.add_argument("--tcp", action="store_true", help="serve the UART on a local TCP port (socket:// URL)")
    p.add_argument("--mlperf-model", help="MLPerf Tiny model id the firmware reports (kws01, ad01, ic01, vww01)")
    p.set_defaults(run=_cmd_emulate)

    p = sub.add_parser("flash", help="flash firmware to a real board with its flash method")
    p.add_argument("firmware", help="firmware image (.elf/.bin/.uf2), or a project from `edgeprune platformio` "
                                    "(uploaded with pio run -t upload)")  # fmt: skip
    p.add_argument("--board", required=True)
    p.add_argument("--port", help="serial port (esptool, bossac; PlatformIO's --upload-port)")
    p.add_argument("--dry-run", action="store_true", help="print the exact command instead of running it")
    p.set_defaults(run=_cmd_flash)

    p = sub.add_parser("platformio", help="PlatformIO project (and Arduino sketch) of an export for a real board")
    p.add_argument("export", help="export directory holding tflm/ (edgeprune export --to onnx,tflm)")
    p.add_argument("--board", required=True, help="board name or alias")
    p.add_argument(
        "--runtime",
        choices=("tflm", "aot"),
        default="tflm",
        help="tflm: TensorFlow Lite Micro from the board's Arduino library (default); aot: our int8 kernels",
    )
    p.add_argument("--out", required=True, help="project directory (platformio.ini, src/, README.md, arduino/)")
    p.add_argument("--force", action="store_true", help="overwrite an existing project in --out")
    p.set_defaults(run=_cmd_platformio)

    p = sub.add_parser("optimize", help="prune component by component until the board's goals hold (the loop)")
    _model_args(p)
    p.add_argument("--board", help="board name or alias (MCU boards alone: cost-model latency estimate)")
    p.add_argument("--latency-ms", type=float, help="latency goal")
    p.add_argument("--arena-kb", type=float, help="tensor arena goal (KiB); default: the board's fit check")
    p.add_argument("--flash-kb", type=float, help="model flash goal (KiB); default: the board's fit check")
    p.add_argument("--max-drop", type=float, default=0.05, help="largest metric drop allowed (default 0.05)")
    p.add_argument(
        "--eval",
        required=True,
        metavar="module:fn|fidelity",
        help="evaluate(model) -> float, higher is better; 'fidelity' = minus output MSE vs the original (a stand-in)",
    )
    p.add_argument("--finetune", metavar="module:fn", help="finetune(model) -> None, run after each pruning step")
    p.add_argument("--calib", help="samples for the int8 TFLM bundle (exact arena and flash); without: latency only")
    p.add_argument("--protect", action="append", default=[], metavar="NAME[,NAME]", help="components to keep intact")
    p.add_argument("--round-to", type=int, default=1, help="keep channel counts multiples of this")
    p.add_argument(
        "--strategy", choices=STRATEGIES, default="knapsack", help="a combination of cuts per step, or one (greedy)"
    )
    p.add_argument("--step", type=float, default=0.1, help="budget step per iteration (default 0.1)")
    p.add_argument("--max-iterations", type=int, default=20)
    p.add_argument("--out", required=True, help="run directory (iterations.jsonl, points/, chosen/, pareto.*)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    where = p.add_argument_group("where to measure (one of; default: the MCU board's cost model)")
    where.add_argument("--emulate", action="store_true", help="the emulated board (QEMU; needs --calib)")
    where.add_argument("--port", help="a real MCU board: serial port, socket:// URL, or 'auto' (USB VID:PID); "
                       "builds with PlatformIO and flashes with the board's flash method (needs --calib)")  # fmt: skip
    where.add_argument(
        "--engine", choices=("onnxruntime", "pytorch-eager"), help="an engine on this machine (no --board)"
    )
    _ssh_args(p, runtimes="the one runtime to measure with on the board (default onnxruntime)")
    p.set_defaults(run=_cmd_optimize)

    p = sub.add_parser("report", help="Markdown + self-contained HTML from compare.json / measurements / report.json")
    p.add_argument("inputs", nargs="+", help="JSON files written by edgeprune (compare, prune, measurements)")
    p.add_argument("--out", required=True, help="output directory (report.md, report.html, plot PNGs)")
    p.add_argument("--title", default="edgeprune report")
    p.set_defaults(run=_cmd_report)

    boards = sub.add_parser("boards", help="board profiles: list, show, fit check").add_subparsers(
        required=True, metavar="action"
    )
    p = boards.add_parser("list", help="list known boards (shipped and on $EDGEPRUNE_BOARD_PATH)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern over board names")
    p.set_defaults(run=_cmd_boards_list)
    p = boards.add_parser("show", help="a board's profile with its data-sheet sources")
    p.add_argument("board", help="board name, alias or profile file")
    p.set_defaults(run=_cmd_boards_show)
    p = boards.add_parser("fit", help="does a model fit this board (flash and SRAM, with margins)?")
    p.add_argument("board", help="board name, alias or profile file")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--artifact", help="model file (e.g. model.tflite): its size is the flash for weights")
    size.add_argument("--model-bytes", type=int, help="flash taken by the model's weights")
    p.add_argument("--arena-bytes", type=int, required=True, help="tensor arena in bytes (TFLM bundle manifest)")
    p.add_argument("--code-bytes", type=int, help="measured code size (default: an estimate)")
    p.set_defaults(run=_cmd_boards_fit)

    p = sub.add_parser(
        "demo", help="optimize the trained TD-MPC model for an MCU on the emulated board, end to end, with a report"
    )
    p.add_argument("--out", default="out/demo", help="run directory (default out/demo; an earlier demo is replaced)")
    p.add_argument("--board", default=DemoSettings.board, help=f"MCU board (default {DemoSettings.board})")
    p.add_argument("--latency-ms", type=float, default=DemoSettings.latency_ms, help="latency goal (estimate)")
    p.add_argument("--max-drop", type=float, default=DemoSettings.max_drop, help="largest drop of the return")
    p.add_argument("--strategy", choices=STRATEGIES, default=DemoSettings.strategy)
    p.set_defaults(run=_cmd_demo)
    return parser


# ---------------------------------------------------------------- commands


def _cmd_models(_args: argparse.Namespace) -> int:
    from edgeprune.models import create_model

    table = Table(title="Bundled models")
    for col in ("name", "components", "params", "inputs"):
        table.add_column(col)
    for name in list_models():
        model = create_model(name)
        comps = Components.from_children(model)
        inputs = ", ".join("x".join(map(str, t.shape)) for t in model.example_inputs())
        table.add_row(name, ", ".join(comps.names), f"{sum(p.numel() for p in model.parameters()):,}", inputs)
    console.print(table)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edgeprune.export import OnnxOptions, TensorRTOptions, export

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    plan_hash = None
    if args.plan:
        plan = PrunePlan.load(args.plan)
        model = load_pruned(model, plan, inputs, args.pruned_weights)
        plan_hash = plan.digest
    with _status("exporting") as say:
        result = export(
            model,
            inputs,
            args.out,
            targets=[t.strip() for t in args.to.split(",") if t.strip()],
            calibration=args.calib,
            int8=not args.no_int8,
            force=args.force,
            onnx_options=OnnxOptions(plan_hash=plan_hash),
            tensorrt=TensorRTOptions(precision=args.precision),
            progress=say,
        )
    console.print(result.table())
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if not result.passed:
        console.print("[bold red]parity check failed[/]: see the table above and manifest.json")
        return 1
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from edgeprune.profiling.compare import compare

    if args.host:  # on a Linux board: original and pruned timed there, in every runtime it has
        return _bench_ssh(args)
    out = Path(args.out)
    if (out / "compare.json").exists() and not args.force:
        raise EdgepruneError(f"{out} already holds compare.json", fix="pick another --out or pass --force")
    original, inputs = load_model(args.model, args.weights, args.input_shape)
    fresh, _ = load_model(args.model, args.weights, args.input_shape)
    pruned = load_pruned(fresh, PrunePlan.load(args.plan), inputs, args.pruned_weights)
    board = load_board(args.board) if args.board else None
    with _status("comparing") as say:
        result = compare(
            original,
            pruned,
            inputs,
            out,
            calibration=args.calib,
            board=board,
            runs=args.runs,
            warmup=args.warmup,
            threads=args.threads,
            progress=say,
        )
    result.save(out / "compare.json", out / "compare.png")
    console.print(result.table())
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"wrote compare.json and compare.png to {out}/")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if board.core.is_mcu:
        return _bench_mcu(args, board)
    if not args.host or not args.model or not args.out:
        raise EdgepruneError(f"{board.name} is reached over SSH", expected="MODEL, --host user@host and --out DIR")
    return _bench_ssh(args)


def _bench_mcu(args: argparse.Namespace, board) -> int:
    import json

    from edgeprune.deploy import bench_export, component_table, emulate, layer_table

    if not args.export:
        raise EdgepruneError(
            f"{board.name} runs a TFLite Micro bundle", expected="--export DIR written by `edgeprune export --to tflm`"
        )
    with _status(f"benchmarking on {board.name}") as say:
        if args.emulate:
            say(f"building the firmware and starting the emulated {board.name}")
            with emulate(board, args.export) as emu:
                measurement, layers = bench_export(args.export, board, emu.port, firmware=emu.firmware)
        else:
            measurement, layers = bench_export(args.export, board, args.port)
    console.print(component_table(measurement))
    console.print(layer_table(measurement, layers))
    console.print(f"{measurement.provenance.label}", highlight=False)
    out = Path(args.export) / f"bench-{board.name}.json"
    write_atomic(out, json.dumps(measurement.to_dict(), indent=2))
    console.print(f"wrote {out}")
    return 0


def _bench_ssh(args: argparse.Namespace) -> int:
    import json

    from edgeprune.deploy.ssh import SSHTarget
    from edgeprune.profiling.ssh_bench import bench_remote

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    models = {"original": (model, inputs)}
    if args.plan:
        fresh, _ = load_model(args.model, args.weights, args.input_shape)
        models["pruned"] = (load_pruned(fresh, PrunePlan.load(args.plan), inputs, args.pruned_weights), inputs)
    target = SSHTarget.for_board(args.board, args.host, key=args.key, known_hosts=args.known_hosts, python=args.python)
    runtimes = [r.strip() for r in args.runtimes.split(",")] if args.runtimes else None
    with _status(f"benchmarking on {args.host}"):
        bench = bench_remote(target, models, args.out, runtimes=runtimes, runs=args.runs, warmup=args.warmup)
    console.print(bench.table())
    for runtime in bench.unavailable:
        console.print(f"note: {runtime} is not available on the board", highlight=False)
    out = Path(args.out)
    write_atomic(out / "measurements.json", json.dumps([m.to_dict() for m in bench.measurements], indent=2))
    console.print(f"copied {bench.sync.bytes_copied:,} bytes; wrote {out}/measurements.json")
    return 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    from edgeprune.deploy import emulate

    with _status(f"building the firmware for {args.board}"):
        emu = emulate(args.board, args.export, tcp=args.tcp, mlperf_model=args.mlperf_model)
    with emu:
        console.print(f"emulated {emu.board.name} running; UART at [bold]{emu.port}[/] (Ctrl-C stops it)")
        try:
            emu.wait()
        except KeyboardInterrupt:
            console.print("stopping")
    return 0


def _cmd_flash(args: argparse.Namespace) -> int:
    from edgeprune.deploy import flash

    command = flash(load_board(args.board), Path(args.firmware), port=args.port, dry_run=args.dry_run)
    console.print(("would run: " if args.dry_run else "ran: ") + " ".join(command), highlight=False)
    return 0


def _cmd_platformio(args: argparse.Namespace) -> int:
    from edgeprune.deploy import platformio_project

    out = Path(args.out)
    if (out / "platformio.ini").exists() and not args.force:
        raise EdgepruneError(
            f"{out} already holds a PlatformIO project", fix="choose another --out, or pass --force to overwrite it"
        )
    board = load_board(args.board)
    files = platformio_project(args.export, board, out, runtime=args.runtime)
    console.print(f"wrote {len(files)} files to {out}/ ({args.runtime} runtime); see {out}/README.md", highlight=False)
    console.print(f"next: cd {out} && pio run -t upload", highlight=False)
    console.print(f"then: edgeprune bench --board {board.name} --export {args.export} [--port PORT]", highlight=False)
    return 0


def _cmd_optimize(args: argparse.Namespace) -> int:
    from edgeprune.pipeline import Goals, fidelity_metric, optimize
    from edgeprune.pipeline.outputs import points_table, write_outputs

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    evaluate = fidelity_metric(model, inputs) if args.eval == "fidelity" else _callable(args.eval, "--eval")
    finetune = _callable(args.finetune, "--finetune") if args.finetune else None
    goals = Goals(
        latency_ms=args.latency_ms,
        arena_bytes=None if args.arena_kb is None else int(args.arena_kb * 1024),
        flash_bytes=None if args.flash_kb is None else int(args.flash_kb * 1024),
        max_drop=args.max_drop,
    )
    target = _optimize_target(args)
    with _status("optimizing") as say:
        result = optimize(
            model,
            inputs,
            target,
            evaluate,
            goals,
            args.out,
            components=_components(model, args),
            protect=[n for arg in args.protect for n in arg.split(",") if n],
            round_to=args.round_to,
            strategy=args.strategy,
            step=args.step,
            max_iterations=args.max_iterations,
            finetune=finetune,
            resume=args.resume,
            progress=say,
        )
    write_outputs(result)
    console.print(points_table(result))
    verdict = "[green]goals met[/]" if result.met else "[bold red]goals not met[/]"
    console.print(f"{verdict}: {result.explanation}; chosen point {result.chosen.iteration} in {args.out}/chosen/")
    return 0 if result.met else 1


def _optimize_target(args: argparse.Namespace):
    """The target ``optimize`` measures on: one of --host, --port, --emulate, --engine, else the cost model."""
    from edgeprune.pipeline import (
        CostModelTarget,
        EmulatedBoardTarget,
        LocalEngineTarget,
        SerialBoardTarget,
        SshBoardTarget,
    )

    chosen = [flag for flag, on in (("--host", args.host), ("--port", args.port), ("--emulate", args.emulate),
                                    ("--engine", args.engine)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise EdgepruneError(f"{' and '.join(chosen)} name different targets", expected="at most one of them",
                             fix="--host: a Linux board over SSH; --port: a real MCU board; --emulate: the emulated "
                             "MCU board; --engine: this machine; none: the MCU board's cost model")  # fmt: skip
    if args.engine:
        if args.board:
            raise EdgepruneError("--engine measures on this machine, not on --board", fix="drop --board or --engine")
        return LocalEngineTarget(args.engine)
    if not args.board:
        raise EdgepruneError("no target given", expected="--board NAME (with --host, --port or --emulate), or --engine")
    board = load_board(args.board)
    if args.host:
        from edgeprune.deploy.ssh import SSHTarget

        runtimes = [r.strip() for r in (args.runtimes or "onnxruntime").split(",") if r.strip()]
        if len(runtimes) != 1:
            raise EdgepruneError(
                f"--runtimes {args.runtimes}: optimize measures with one runtime",
                expected="one of onnxruntime, pytorch-eager, tensorrt (default onnxruntime)",
            )
        ssh = SSHTarget.for_board(board, args.host, key=args.key, known_hosts=args.known_hosts, python=args.python,
                                  remote_dir=args.remote_dir)  # fmt: skip
        return SshBoardTarget(ssh, runtimes[0])
    if not board.core.is_mcu:
        raise EdgepruneError(f"{board.name} is a Linux board", fix="pass --host user@host to measure on it over SSH")
    if args.port:
        return SerialBoardTarget(board, args.calib, None if args.port == "auto" else args.port)
    return EmulatedBoardTarget(board, args.calib) if args.emulate else CostModelTarget(board, args.calib)


def _callable(spec: str, flag: str) -> Callable:
    import importlib

    module, sep, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name) if sep else None
    except (ImportError, AttributeError) as exc:
        raise EdgepruneError(f"{flag} {spec}: {exc}", expected="package.module:function importable here") from exc
    if not callable(fn):
        raise EdgepruneError(f"{flag} {spec} is not a function", expected="package.module:function")
    return fn


def _cmd_report(args: argparse.Namespace) -> int:
    from edgeprune.profiling.report import load_sections, write_report

    write_report(load_sections(args.inputs), args.out, args.title)
    console.print(f"wrote report.md and report.html to {args.out}/")
    return 0


def _cmd_boards_list(args: argparse.Namespace) -> int:
    console.print(boards_table(args.pattern))
    return 0


def _cmd_boards_show(args: argparse.Namespace) -> int:
    console.print(board_details(load_board(args.board)))
    return 0


def _cmd_boards_fit(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.artifact:
        verdict = fit_artifact(board, args.artifact, arena_bytes=args.arena_bytes, code_bytes=args.code_bytes)
    else:
        verdict = check_fit(
            board, model_bytes=args.model_bytes, arena_bytes=args.arena_bytes, code_bytes=args.code_bytes
        )
    console.print(verdict.table())
    return 0 if verdict.fits else 1


def _cmd_groups(args: argparse.Namespace) -> int:
    model, inputs = load_model(args.model, args.weights, args.input_shape)
    groups = build_groups(model, inputs, _components(model, args), mode=args.mode)
    console.print(str(groups.graph), highlight=False)
    console.print(groups.table())
    console.print(groups.summary())
    if args.json:
        import json

        write_atomic(args.json, json.dumps(groups.to_dict(), indent=2))
    if args.mermaid:
        write_atomic(args.mermaid, groups.graph.to_mermaid())
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out_dir(out, args.force)
    model, inputs = load_model(args.model, args.weights, args.input_shape)
    budget = _budget(args)
    result = _run_prune(model, inputs, budget, _components(model, args), args.mode, args.importance, args.seed)
    _write_outputs(result, out)
    return 0


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
    with _status("starting") as say:
        result = run_demo(args.out, settings, progress=lambda m: (say(m), console.log(m, highlight=False)))
    console.print(points_table(result))
    verdict = "[green]goals met[/]" if result.met else "[bold red]goals not met[/]"
    console.print(f"{verdict}: {result.explanation}", highlight=False)
    console.print(f"report: {Path(args.out) / 'report.html'}", highlight=False)
    return 0 if result.met else 1


# ---------------------------------------------------------------- helpers


def _run_prune(model, inputs, budget: Budget, comps: Components, mode: str, importance: str, seed: int) -> PruneResult:
    with _status("pruning") as say:
        result = prune(
            model,
            inputs,
            budget,
            components=comps,
            importance=importance,
            mode=mode,
            seed=seed,
            on_step=lambda step: say(f"pruning: {step}"),
        )
    console.print(result.report.component_table())
    return result


OUTPUT_FILES = ("plan.json", "pruned.pt", "report.json", "report.txt")


@contextlib.contextmanager
def _status(start: str) -> Iterator[Callable[[str], None]]:
    """A spinner with elapsed time for long work; yields the function that updates its message."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(start)
        yield lambda message: progress.update(task, description=message)


def _check_out_dir(out: Path, force: bool) -> None:
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not force:
        raise EdgepruneError(
            f"{out} already holds {', '.join(existing)}", fix="pick another --out or pass --force to overwrite"
        )


def _write_outputs(result: PruneResult, out: Path) -> None:
    try:
        result.plan.save(out / "plan.json")
        save_weights(result.model, out / "pruned.pt")
        write_atomic(out / "report.json", result.report.to_json())
        write_atomic(out / "report.txt", str(result.report))
    except BaseException:  # e.g. a full disk: no partial set, so that the same command can simply be rerun
        for name in OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
        raise
    console.print(f"wrote {', '.join(OUTPUT_FILES)} to {out}/")


def _components(model, args: argparse.Namespace) -> Components:
    if args.component and args.depth:
        raise EdgepruneError("--component and --depth exclude each other", fix="use one way to name components")
    if args.component:
        mapping = {}
        for item in args.component:
            name, sep, patterns = item.partition("=")
            if not sep or not name or not patterns:
                raise EdgepruneError(f"bad --component {item!r}", expected="NAME=PATTERN[,PATTERN], e.g. enc=encoder.*")
            mapping[name] = patterns.split(",")
        return Components(model, mapping)
    if args.depth:
        return Components.from_depth(model, args.depth)
    return Components.from_children(model)


def _budget(args: argparse.Namespace) -> Budget:
    default = 0.0
    per_component: dict[str, float] = {}
    for item in (part for arg in args.budget for part in arg.split(",")):
        name, sep, value = item.rpartition("=")
        fraction = _number(value, f"--budget {item}")
        if sep:
            per_component[name] = fraction
        else:
            default = fraction
    weights = {}
    for item in args.weight:
        name, sep, value = item.partition("=")
        if not sep:
            raise EdgepruneError(f"bad --weight {item!r}", expected="NAME=W, e.g. encoder=2")
        weights[name] = _number(value, f"--weight {item}")
    if not args.budget and args.total is None:
        raise EdgepruneError("no budget given", fix="pass --budget 0.5 (and/or NAME=F) or --total 0.4")
    return Budget(
        default=default,
        per_component=per_component,
        total=args.total,
        protect=frozenset(n for arg in args.protect for n in arg.split(",") if n),
        interfaces=args.interfaces is not None,
        interface_ratio=args.interfaces or 0.0,
        round_to=args.round_to,
        weights=weights,
    )


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise EdgepruneError(f"{what}: {text!r} is not a number", expected="a fraction such as 0.3") from None


if __name__ == "__main__":
    sys.exit(main())
