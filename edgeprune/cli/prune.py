"""`models`, `groups`, `prune`, `export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from edgeprune.cli.common import (
    budget_args,
    budget_of,
    components_of,
    example,
    model_args,
    plan_args,
)
from edgeprune.cli.output import console, log, stage
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.models import list_models
from edgeprune.models.spec import load_model
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


def add(sub: argparse._SubParsersAction) -> None:
    """Register this module's commands."""
    p = sub.add_parser("models", help="list the bundled models", epilog=example("edgeprune models"))
    p.set_defaults(run=_cmd_models)

    p = sub.add_parser(
        "groups",
        help="print a model's components, flows and pruning groups",
        epilog=example("edgeprune groups tdmpc --json out/groups.json --mermaid out/graph.mmd"),
    )
    model_args(p)
    p.add_argument("--json", metavar="FILE", help="also write components, flows and groups as JSON")
    p.add_argument("--mermaid", metavar="FILE", help="also write the component graph as a Mermaid diagram")
    p.set_defaults(run=_cmd_groups)

    p = sub.add_parser(
        "prune",
        help="prune a model; writes plan.json, pruned.pt and the report to --out",
        epilog=example(
            "edgeprune prune tdmpc --budget 0.5 --budget dynamics=0.3 --protect encoder --round-to 8 --out out/pruned"
        ),
    )
    model_args(p)
    budget_args(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    p.set_defaults(run=_cmd_prune)

    p = sub.add_parser(
        "export",
        help="export a (pruned) model: ONNX, TFLite int8, TFLM bundle, TensorRT",
        epilog=example(
            "edgeprune samples tdmpc --source example --out out/samples.npz",
            "edgeprune export tdmpc --plan out/pruned/plan.json --pruned-weights out/pruned/pruned.pt "
            "--calib out/samples.npz --to onnx,tflm --out out/export",
        ),
    )
    model_args(p)
    plan_args(p)
    p.add_argument(
        "--to",
        default="onnx,tflite,tflm",
        help="comma-separated export targets among onnx, tflite, tflm, tensorrt, tensorrt-check",
    )
    p.add_argument("--calib", help="representative samples for int8 (.npy, or .npz keyed by input name)")
    p.add_argument("--no-int8", action="store_true", help="TFLite float32 only (not with tflm)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT precision")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite an earlier export in --out")
    p.set_defaults(run=_cmd_export)


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


def _cmd_groups(args: argparse.Namespace) -> int:
    model, inputs = load_model(args.model, args.weights, args.input_shape)
    groups = build_groups(model, inputs, components_of(model, args), mode=args.mode)
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
    budget = budget_of(args)
    result = _run_prune(model, inputs, budget, components_of(model, args), args.mode, args.importance, args.seed)
    _write_outputs(result, out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from edgeprune.export import OnnxOptions, TensorRTOptions, export

    model, inputs = load_model(args.model, args.weights, args.input_shape)
    plan_hash = None
    if args.plan:
        plan = PrunePlan.load(args.plan)
        model = load_pruned(model, plan, inputs, args.pruned_weights)
        plan_hash = plan.digest
    with stage(f"export to {args.to}"):
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
        )
    console.print(result.table())
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if not result.passed:
        console.print("[bold red]parity check failed[/]: see the table above and manifest.json")
        return 1
    return 0


def _run_prune(model, inputs, budget: Budget, comps: Components, mode: str, importance: str, seed: int) -> PruneResult:
    with stage("pruning"):
        result = prune(
            model,
            inputs,
            budget,
            components=comps,
            importance=importance,
            mode=mode,
            seed=seed,
            on_step=lambda step: log.debug("pruning: %s", step),
        )
    console.print(result.report.component_table())
    return result


OUTPUT_FILES = ("plan.json", "pruned.pt", "report.json", "report.txt")


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
