"""Table 1 of the paper on the bundled models: vanilla DepGraph groups vs component-aware groups.

Run: .venv/bin/python benchmarks/groups.py [--out benchmarks/results/groups.json]

For each model: the number of components, the in/out dims at component interfaces, group counts and
average group size (coupled operations per group) in both modes, cross-component groups, the component
mode's groups counted as the paper defines them — each cross-component group as its per-component
pieces (still cut together; parameter-free ops in no piece) — and what each mode actually cuts by default
(prunable groups and their average / largest size). Constraints are the ones each model declares.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeprune.io import write_atomic
from edgeprune.models import create_model, list_models
from edgeprune.prune import Components, build_groups, model_constraints


def measure(name: str) -> dict:
    model = create_model(name)
    inputs = model.example_inputs()
    comps = Components.from_children(model)
    constraints = model_constraints(model)
    row: dict = {"model": name, "components": len(comps.names)}
    for mode in ("vanilla", "component"):
        groups = build_groups(model, inputs, comps, mode=mode, constraints=constraints)
        row[mode] = groups.summary()
    graph = groups.graph
    row["interface_dims"] = sum(len(c.input_shapes) + len(c.output_shapes) for c in graph.components.values())
    row["flows"] = len(graph.flows)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/groups.json")
    args = parser.parse_args()
    rows = [measure(name) for name in list_models()]
    table = Table(title="Groups per mode (paper Table 1, on edgeprune's bundled models)")
    for col in (
        "model",
        "comp.",
        "groups V/C",
        "avg size V/C",
        "cross-comp.",
        "pieces C",
        "avg piece size C",
        "prunable V/C",
        "avg prunable V/C",
        "largest prunable V/C",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        v, c = r["vanilla"], r["component"]
        table.add_row(
            r["model"],
            str(r["components"]),
            f"{v['groups']} / {c['groups']}",
            f"{v['avg_group_size']} / {c['avg_group_size']}",
            str(c["cross_component_groups"]),
            str(c["pieces"]),
            str(c["avg_piece_size"]),
            f"{v['prunable_groups']} / {c['prunable_groups']}",
            f"{v['avg_prunable_size']} / {c['avg_prunable_size']}",
            f"{v['max_prunable_size']} / {c['max_prunable_size']}",
        )
    Console(width=140).print(table)
    write_atomic(Path(args.out), json.dumps(rows, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
