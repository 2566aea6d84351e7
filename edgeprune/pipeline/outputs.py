"""What an optimize run leaves behind: the chosen plan, a Pareto table and plot, the budget history."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Sequence

from rich.table import Table

from edgeprune.extras import require
from edgeprune.io import write_atomic
from edgeprune.measure.record import Measurement
from edgeprune.pipeline.optimize import OptimizeResult
from edgeprune.pipeline.plots import grouped_bars
from edgeprune.pipeline.report import Section, load_sections, write_report
from edgeprune.pipeline.runlog import CONFIG_NAME, Point, point_dir


def pareto(points: Sequence[Point]) -> list[Point]:
    """Accepted points no other accepted point beats on metric, latency and arena at once."""
    pool = [p for p in points if p.accepted]

    def key(p: Point) -> tuple[float, float, float]:
        return (-p.metric, p.result.latency_ms, float(p.result.memory.arena_bytes or 0))

    return [p for p in pool if not any(_dominates(key(q), key(p)) for q in pool if q is not p)]


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


POINT_COLUMNS = ("#", "changed", "budgets", "latency ms", "arena B", "flash B", "metric", "kept")


def arena_name(points: Sequence[Point]) -> str:
    """'TFLM arena' or 'firmware arena': the two differ ~100x for one model, so a table never says just 'arena'."""
    kinds = {p.result.memory.arena for p in points if p.result.memory.arena_bytes is not None and p.result.memory.arena}
    return f"{kinds.pop()} arena" if len(kinds) == 1 else "tensor arena"


def _point_columns(points: Sequence[Point]) -> list[str]:
    return [f"{arena_name(points)} B" if c == "arena B" else c for c in POINT_COLUMNS]


def points_table(result: OptimizeResult) -> Table:
    """Every point tried as a rich table (``*`` after a latency: an estimate; last column: on the Pareto front)."""
    front = {p.iteration for p in pareto(result.points)}
    t = Table(title=f"optimize: {len(result.points)} points tried", caption=result.explanation)
    for col in (*_point_columns(result.points), "pareto"):
        t.add_column(col, justify="left" if col in ("changed", "budgets") else "right")
    for p in result.points:
        t.add_row(*_point_row(p), "*" if p.iteration in front else "")
    return t


def write_outputs(result: OptimizeResult, title: str = "edgeprune optimize") -> None:
    """chosen/ (plan, weights, report, artifacts), pareto.json/.png, budgets.png and report.md/.html (every
    table and plot; the HTML page is self-contained) in the run directory."""
    run = result.run_dir
    chosen = run / "chosen"
    source = point_dir(run, result.chosen.iteration)
    if chosen.exists():
        shutil.rmtree(chosen)
    if source.is_dir():  # a cost-model baseline without calibration writes no artifacts
        shutil.copytree(source, chosen)
    else:
        chosen.mkdir()
    front = pareto(result.points)
    summary = {
        "met": result.met,
        "explanation": result.explanation,
        "chosen": result.chosen.to_dict(),
        "pareto": [p.iteration for p in front],
        "points": [p.to_dict() for p in result.points],
    }
    write_atomic(run / "pareto.json", json.dumps(summary, indent=2))
    goals = json.loads((run / CONFIG_NAME).read_text())["goals"]
    pareto_png, budgets_png = _pareto_png(result.points, front, goals), _budgets_png(result.points)
    write_report(report_sections(result, goals, pareto_png, budgets_png), run, title)


def report_sections(result: OptimizeResult, goals: dict, pareto_png: bytes, budgets_png: bytes) -> list[Section]:
    """The run as report sections: goals and verdict, every point, budgets, per-component latency, the pruning."""
    base, chosen = result.points[0], result.chosen
    label = chosen.result.provenance.label
    estimated = chosen.result.provenance.kind == "estimated"
    names = list(base.result.components_ms)
    before = [base.result.components_ms[n] for n in names]
    after = [chosen.result.components_ms.get(n, 0.0) for n in names]
    sections = [
        Section(
            "Goals: baseline vs chosen point",
            ["quantity", "goal", "baseline", f"chosen (#{chosen.iteration})", "met"],
            _goal_rows(goals, base, chosen, arena_name(result.points)),
            caption=f"{result.explanation}. Latency: {label}.",
            notes=chosen.result.notes,
        ),
        Section(
            "Every point tried",
            _point_columns(result.points),
            [_point_row(p) for p in result.points],
            caption=f"Plot: latency vs metric, colour = {arena_name(result.points)} (where measured); "
            "red edge = rejected; dashed = Pareto front; dotted: the latency goal and the lowest metric allowed.",
            png=pareto_png,
            png_name="pareto.png",
        ),
        Section("Per-component budget history", [], [], png=budgets_png, png_name="budgets.png"),
        Section(
            "Per component: latency at the baseline and the chosen point",
            ["component", "baseline ms", "chosen ms"],
            [[n, f"{b:.4f}", f"{a:.4f}"] for n, b, a in zip(names, before, after, strict=True)],
            caption=label + (" (hatched bars: estimates)" if estimated else ""),
            png=grouped_bars(names, before, after, "ms per component", hatched=[estimated] * len(names)),
            png_name="components.png",
        ),
    ]
    report = result.run_dir / "chosen" / "report.json"
    if report.exists():  # the baseline has no pruning report
        sections += [dataclasses.replace(s, png_name="pruning.png") for s in load_sections([report])]
    return sections


def _goal_rows(goals: dict, base: Point, chosen: Point, arena: str) -> list[list[str]]:
    rows = []
    for name, label, scale in (("latency_ms", "latency (ms)", 1), ("arena_bytes", f"{arena} (KiB)", 1024),
                               ("flash_bytes", "flash (KiB)", 1024)):  # fmt: skip
        limit, b, a = goals[name], _figure(base.result, name), _figure(chosen.result, name)
        met = "-" if limit is None or a is None else ("yes" if a <= limit else "no")
        rows.append([label, *(_scaled(v, scale) for v in (limit, b, a)), met])
    drop_ok = base.metric - chosen.metric <= goals["max_drop"]
    metric = ["metric (higher is better)", f"drop <= {goals['max_drop']:g}", f"{base.metric:.4g}"]
    return [*rows, [*metric, f"{chosen.metric:.4g}", "yes" if drop_ok else "no"]]


def _figure(m: Measurement, name: str) -> float | None:
    """A goal's figure of a measurement: latency, or a memory field."""
    return m.latency_ms if name == "latency_ms" else getattr(m.memory, name)


def _scaled(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value / scale:,.3f}"


def _point_row(p: Point) -> list[str]:
    r = p.result
    return [
        str(p.iteration),
        p.changed or "baseline",
        ", ".join(f"{c}={v:.0%}" for c, v in p.budgets.items() if v) or "-",
        f"{r.latency_ms:.3f}" + ("*" if r.provenance.kind == "estimated" else ""),
        "-" if r.memory.arena_bytes is None else f"{r.memory.arena_bytes:,}",
        "-" if r.memory.flash_bytes is None else f"{r.memory.flash_bytes:,}",
        f"{p.metric:.4g}",
        "yes" if p.accepted else f"no: {p.why}",
    ]


def _pareto_png(points: Sequence[Point], front: Sequence[Point], goals: dict) -> bytes:
    require("matplotlib", "plot", "the optimize report plots").use("Agg")
    plt = require("matplotlib.pyplot", "plot", "the optimize report plots")

    fig, ax = plt.subplots(figsize=(6, 4))
    arena = [p.result.memory.arena_bytes for p in points]
    colour = {"c": [a or 0 for a in arena], "cmap": "viridis"} if any(arena) else {"color": "tab:blue"}
    sc = ax.scatter([p.result.latency_ms for p in points], [p.metric for p in points], marker="o",
                    edgecolors=["none" if p.accepted else "red" for p in points], **colour)  # fmt: skip
    ax.plot([p.result.latency_ms for p in front], [p.metric for p in front], "k--", lw=0.8, label="Pareto front")
    for p in points:  # the point numbers of the tables
        ax.annotate(f"#{p.iteration}", (p.result.latency_ms, p.metric), xytext=(4, 4), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    if goals["latency_ms"] is not None:
        ax.axvline(goals["latency_ms"], color="tab:red", ls=":", lw=1, label="latency goal")
    ax.axhline(points[0].metric - goals["max_drop"], color="tab:orange", ls=":", lw=1, label="baseline − max_drop")
    estimated = any(p.result.provenance.kind == "estimated" for p in points)
    ax.set_xlabel("latency (ms" + (", estimate)" if estimated else ")"))
    ax.set_ylabel("metric (higher is better)")
    if any(arena):  # targets without a tensor arena (SSH boards, local engines) get no colour scale
        fig.colorbar(sc, label=f"{arena_name(points)} (bytes)")
    ax.legend()
    ax.set_title("points tried (red edge = rejected)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _budgets_png(points: Sequence[Point]) -> bytes:
    require("matplotlib", "plot", "the optimize report plots").use("Agg")
    plt = require("matplotlib.pyplot", "plot", "the optimize report plots")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    kept = [p for p in points if p.accepted]
    for name in points[0].budgets:
        ax.step([p.iteration for p in kept], [p.budgets[name] for p in kept], where="post", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("fraction of the component removed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _png(fig) -> bytes:
    plt = require("matplotlib.pyplot", "plot", "the optimize report plots")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
