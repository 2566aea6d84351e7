"""`sweep`: models × budgets × targets, on Ray when installed (docs/scale.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeprune.cli.common import example, number
from edgeprune.cli.output import console, log, stage
from edgeprune.errors import EdgepruneError


def add(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands."""
    p = sub.add_parser(
        "sweep",
        help="measure models × budgets × targets (Ray tasks; boards as Ray resources)",
        epilog=example(
            "edgeprune sweep --model simple --model tdmpc --budget 0 --budget 0.3 --target engine:onnxruntime "
            "--target cost:nucleo-l4r5zi --serial --out out/sweep",
            "edgeprune sweep --out out/sweep",
        ),
    )
    p.add_argument("spec", nargs="?", help="sweep TOML (models, budgets, targets); the options below add to it")
    p.add_argument("--model", action="append", default=[], metavar="NAME|module:factory", help="a model (repeatable)")
    p.add_argument("--calib", help="calibration samples (.npy/.npz) for the --model models (MCU targets need them)")
    p.add_argument("--metric", help="'fidelity' (default; a data-free stand-in) or module:fn, fn(model) -> float")
    p.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="FRACTION",
        help="model-wide fraction of parameters to remove, 0 = as is (repeatable)",
    )
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="KIND:BOARD[:WHERE]",
        help="emulate:BOARD, serial:BOARD:PORT, ssh:BOARD:USER@HOST, cost:BOARD, engine:NAME",
    )
    p.add_argument("--retries", type=int, help="retries of a failing step before the point is reported (default: 1)")
    p.add_argument("--out", required=True, help="run directory (points/, pareto-*.md/png); rerun to resume")
    ray = p.add_mutually_exclusive_group()
    ray.add_argument("--address", help="an existing Ray cluster (default: RAY_ADDRESS, else Ray started here)")
    ray.add_argument("--serial", action="store_true", help="no Ray: one point after another in this process")
    p.add_argument("--cpus", type=int, help="CPUs of the Ray started here (default: all); also its emulator slots")
    p.set_defaults(run=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from edgeprune.scale import SweepSpec, run_sweep
    from edgeprune.scale.sweep import SPEC_NAME

    earlier = Path(args.out) / SPEC_NAME
    if args.spec:
        data = SweepSpec.load(args.spec).to_dict()
    elif not args.model and earlier.exists():  # `edgeprune sweep --out RUN`: resume that run as it was
        data = json.loads(earlier.read_text())
    else:
        data = {}
    extra = {"calib": args.calib, **({"metric": args.metric} if args.metric else {})}
    data["models"] = data.get("models", []) + [{"spec": m, **extra} for m in args.model]
    data["budgets"] = data.get("budgets", []) + [number(b, "--budget") for b in args.budget]
    data["targets"] = data.get("targets", []) + args.target
    if args.retries is not None:
        data["retries"] = args.retries
    if not data["models"]:
        raise EdgepruneError("no models to sweep", fix="pass a sweep TOML or --model NAME (or --out of an earlier run)")
    spec = SweepSpec.from_dict(data)
    points = len(spec.models) * len(spec.budgets) * len(spec.targets)
    log.info(
        "sweep: %d model(s) × %d budget(s) × %d target(s) = %d points -> %s",
        len(spec.models), len(spec.budgets), len(spec.targets), points, args.out,
    )  # fmt: skip
    with stage("sweep"):
        result = run_sweep(
            spec, args.out, address=args.address, use_ray=False if args.serial else None, num_cpus=args.cpus
        )
    console.print(
        f"{len(result.records)} point(s) recorded ({result.skipped} from before), "
        f"{len(result.failures)} failed, {result.seconds:.1f} s {result.executor}; "
        f"Pareto tables: {args.out}/pareto-*.md",
        highlight=False,
    )
    return 1 if result.failures else 0
