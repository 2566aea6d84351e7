"""`compare`, `bench`, `emulate`, `flash`, `platformio`, `report`: measuring, and putting a model on a board."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from edgeprune.boards import load_board
from edgeprune.cli.common import (
    example,
    given,
    model_args,
    plan_args,
    ssh_args,
    ssh_target,
)
from edgeprune.cli.output import console, log, stage
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.models.spec import load_model
from edgeprune.prune import (
    PrunePlan,
    load_pruned,
)


def add(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands."""
    p = sub.add_parser(
        "compare",
        help="time original vs pruned in eager mode and every engine here, in one table",
        epilog=example(
            "edgeprune compare tdmpc --plan out/pruned/plan.json --pruned-weights out/pruned/pruned.pt "
            "--calib out/samples.npz --board nucleo-l4r5zi --out out/cmp"
        ),
    )
    model_args(p)
    plan_args(p, required=True)
    p.add_argument("--board", help="also the board's latency estimate (MCU boards with a fitted cost model)")
    p.add_argument("--calib", help="samples for int8 (.npy/.npz); without them int8 LiteRT and TFLM are skipped")
    p.add_argument("--runs", type=int, help="timed runs per engine (default: 50)")
    p.add_argument("--warmup", type=int, help="untimed warm-up runs (default: 10)")
    p.add_argument("--threads", type=int, help="CPU threads for eager/ONNX Runtime (default: 1)")
    p.add_argument("--out", required=True, help="output directory (exports, compare.json, compare.png)")
    p.add_argument("--force", action="store_true", help="overwrite an earlier comparison in --out")
    ssh_args(p)
    p.set_defaults(run=_cmd_compare)

    p = sub.add_parser(
        "bench",
        help="benchmark on a board: an MCU (serial port or --emulate) from an export, or a Linux board over SSH",
        epilog=example(
            "edgeprune bench --board nucleo-l4r5zi --export out/export --emulate",
            "edgeprune bench tdmpc --plan out/pruned/plan.json --board jetson-orin-nano --host nano@192.168.1.42 "
            "--out out/jetson",
        ),
    )
    model_args(p, required=False)
    plan_args(p)
    p.add_argument("--board", required=True, help="board name or alias")
    mcu = p.add_argument_group("MCU boards (TFLM bundle from `edgeprune export`)")
    mcu.add_argument("--export", help="export directory holding tflm/model.tflite")
    mcu.add_argument("--port", help="serial port or socket:// URL (default: found by the board's USB VID:PID)")
    mcu.add_argument("--emulate", action="store_true", help="run on the emulated board (QEMU) instead")
    ssh_args(p)
    p.add_argument("--runs", type=int, help="timed runs (default: 5 on an MCU, 50 over SSH)")
    p.add_argument("--warmup", type=int, help="untimed warm-up runs (default: 1 on an MCU, 10 over SSH)")
    p.add_argument("--out", help="Linux boards: local work directory (bundles, measurements JSON)")
    p.set_defaults(run=_cmd_bench)

    p = sub.add_parser(
        "emulate",
        help="start the emulated board (QEMU) running an export; prints its serial port",
        epilog=example("edgeprune emulate out/export --board nucleo-l4r5zi --tcp"),
    )
    p.add_argument("export", help="export directory holding tflm/model.tflite")
    p.add_argument("--board", required=True, help="an MCU board with a QEMU machine (M0+, M4, M7)")
    p.add_argument("--tcp", action="store_true", help="serve the UART on a local TCP port (socket:// URL)")
    p.add_argument("--mlperf-model", help="MLPerf Tiny model id the firmware reports (kws01, ad01, ic01, vww01)")
    p.set_defaults(run=_cmd_emulate)

    p = sub.add_parser(
        "flash",
        help="flash firmware to a real board with its flash method",
        epilog=example("edgeprune flash out/nucleo --board nucleo-l4r5zi --dry-run"),
    )
    p.add_argument("firmware", help="firmware image (.elf/.bin/.uf2), or a project from `edgeprune platformio` "
                                    "(uploaded with pio run -t upload)")  # fmt: skip
    p.add_argument("--board", required=True)
    p.add_argument("--port", help="serial port (esptool, bossac; PlatformIO's --upload-port)")
    p.add_argument("--dry-run", action="store_true", help="print the exact command instead of running it")
    p.set_defaults(run=_cmd_flash)

    p = sub.add_parser(
        "platformio",
        help="PlatformIO project (and Arduino sketch) of an export for a real board",
        epilog=example("edgeprune platformio out/export --board nucleo-l4r5zi --runtime aot --out out/nucleo"),
    )
    p.add_argument("export", help="export directory holding tflm/ (edgeprune export --to onnx,tflm)")
    p.add_argument("--board", required=True, help="board name or alias")
    p.add_argument(
        "--runtime",
        choices=("tflm", "aot"),
        default="tflm",
        help="tflm: TensorFlow Lite Micro from the board's Arduino library; aot: our int8 kernels",
    )
    p.add_argument("--out", required=True, help="project directory (platformio.ini, src/, README.md, arduino/)")
    p.add_argument("--force", action="store_true", help="overwrite an existing project in --out")
    p.set_defaults(run=_cmd_platformio)

    p = sub.add_parser(
        "report",
        help="Markdown + self-contained HTML from compare.json / measurements / report.json",
        epilog=example("edgeprune report out/cmp/compare.json out/pruned/report.json --out out/report"),
    )
    p.add_argument("inputs", nargs="+", help="JSON files written by edgeprune (compare, prune, measurements)")
    p.add_argument("--out", required=True, help="output directory (report.md, report.html, plot PNGs)")
    p.add_argument("--title", default="edgeprune report", help="the page's title")
    p.set_defaults(run=_cmd_report)


def _cmd_compare(args: argparse.Namespace) -> int:
    from edgeprune.pipeline.compare import compare

    if args.host:  # on a Linux board: original and pruned timed there, in every runtime it has
        return _bench_ssh(args)
    out = Path(args.out)
    if (out / "compare.json").exists() and not args.force:
        raise EdgepruneError(f"{out} already holds compare.json", fix="pick another --out or pass --force")
    original, inputs = load_model(args.model, args.weights, args.input_shape)
    fresh, _ = load_model(args.model, args.weights, args.input_shape)
    pruned = load_pruned(fresh, PrunePlan.load(args.plan), inputs, args.pruned_weights)
    board = load_board(args.board) if args.board else None
    with stage("compare"):
        result = compare(
            original,
            pruned,
            inputs,
            out,
            calibration=args.calib,
            board=board,
            **given(runs=args.runs, warmup=args.warmup, threads=args.threads),
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

    from edgeprune.deploy.mcu import bench_export, component_table, emulate, layer_table

    if not args.export:
        raise EdgepruneError(
            f"{board.name} runs a TFLite Micro bundle", expected="--export DIR written by `edgeprune export --to tflm`"
        )
    timing = given(runs=args.runs, warmup=args.warmup)
    with stage(f"bench on {board.name}" + (" (emulated)" if args.emulate else "")):
        if args.emulate:
            log.info("building the firmware and starting the emulated %s", board.name)
            with emulate(board, args.export) as emu:
                measurement = bench_export(args.export, board, emu.port, firmware=emu.firmware, **timing)
        else:
            measurement = bench_export(args.export, board, args.port, **timing)
    console.print(component_table(measurement))
    console.print(layer_table(measurement))
    console.print(f"{measurement.provenance.label}", highlight=False)
    out = Path(args.export) / f"bench-{board.name}.json"
    write_atomic(out, json.dumps(measurement.to_dict(), indent=2))
    console.print(f"wrote {out}")
    return 0


def _bench_ssh(args: argparse.Namespace) -> int:
    import json

    from edgeprune.deploy.ssh.bench import bench_remote

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    models = {"original": (model, inputs)}
    if args.plan:
        fresh, _ = load_model(args.model, args.weights, args.input_shape)
        models["pruned"] = (load_pruned(fresh, PrunePlan.load(args.plan), inputs, args.pruned_weights), inputs)
    target = ssh_target(args, args.board)
    runtimes = [r.strip() for r in args.runtimes.split(",")] if args.runtimes else None
    with stage(f"bench on {args.host}"):
        bench = bench_remote(target, models, args.out, runtimes=runtimes, **given(runs=args.runs, warmup=args.warmup))
    console.print(bench.table())
    for runtime in bench.unavailable:
        console.print(f"note: {runtime} is not available on the board", highlight=False)
    out = Path(args.out)
    write_atomic(out / "measurements.json", json.dumps([m.to_dict() for m in bench.measurements], indent=2))
    console.print(f"copied {bench.sync.bytes_copied:,} bytes; wrote {out}/measurements.json")
    return 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    from edgeprune.deploy.mcu import emulate

    with stage(f"building the firmware for {args.board} and starting QEMU"):
        emu = emulate(args.board, args.export, tcp=args.tcp, mlperf_model=args.mlperf_model)
    with emu:
        console.print(f"emulated {emu.board.name} running; UART at [bold]{emu.port}[/] (Ctrl-C stops it)")
        try:
            emu.wait()
        except KeyboardInterrupt:
            log.info("stopping the emulated board")
    return 0


def _cmd_flash(args: argparse.Namespace) -> int:
    from edgeprune.deploy.mcu import flash

    command = flash(load_board(args.board), Path(args.firmware), port=args.port, dry_run=args.dry_run)
    console.print(("would run: " if args.dry_run else "ran: ") + shlex.join(command), highlight=False)
    return 0


def _cmd_platformio(args: argparse.Namespace) -> int:
    from edgeprune.deploy.mcu import platformio_project

    out = Path(args.out)
    if (out / "platformio.ini").exists() and not args.force:
        raise EdgepruneError(
            f"{out} already holds a PlatformIO project", fix="choose another --out, or pass --force to overwrite it"
        )
    board = load_board(args.board)
    files = platformio_project(args.export, board, out, runtime=args.runtime)
    console.print(f"wrote {len(files)} files to {out}/ ({args.runtime} runtime); see {out}/README.md", highlight=False)
    console.print(f"next: {shlex.join(['cd', str(out)])} && pio run -t upload", highlight=False)
    bench = shlex.join(["edgeprune", "bench", "--board", board.name, "--export", args.export])
    console.print(f"then: {bench} [--port PORT]", highlight=False)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from edgeprune.pipeline.report import load_sections, write_report

    write_report(load_sections(args.inputs), args.out, args.title)
    console.print(f"wrote report.md and report.html to {args.out}/")
    return 0
