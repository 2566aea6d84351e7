"""What an optimize run leaves behind: the chosen plan, a Pareto table and plot, the budget history."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from edgeprune.extras import require
from edgeprune.io import write_atomic
from edgeprune.measure.record import Measurement
from edgeprune.pipeline.optimize import OptimizeResult
from edgeprune.pipeline.plots import component_order, error_bars, grouped_bars
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


POINT_COLUMNS = ("#", "changed", "budgets", "latency ms [p10, p90]", "arena B", "flash B", "metric", "kept")


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
    for col in (*_point_columns(result.points), "pareto"):  # "[p10, p90]" is text, not rich markup
        t.add_column(escape(col), justify="left" if col in ("changed", "budgets") else "right")
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
    pareto_png, budgets_png = _pareto_png(result.points, front, goals), _png(budgets_figure(result.points))
    write_report(report_sections(result, goals, pareto_png, budgets_png), run, title)


def report_sections(result: OptimizeResult, goals: dict, pareto_png: bytes, budgets_png: bytes) -> list[Section]:
    """The run as report sections: goals and verdict, every point, budgets, per-component latency, the pruning."""
    base, chosen = result.points[0], result.chosen
    label = chosen.result.provenance.label
    estimated = chosen.result.provenance.kind == "estimated"
    names = component_order(list(base.budgets), base.result.components_ms, chosen.result.components_ms)
    before = [base.result.components_ms.get(n, 0.0) for n in names]
    after = [chosen.result.components_ms.get(n, 0.0) for n in names]
    sections = [
        Section(
            "Goals: baseline vs chosen point",
            ["quantity", "goal", "baseline", f"chosen (#{chosen.iteration})", "met"],  # latency: median [p10, p90]
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
            caption=label
            + (" (hatched bars: estimates)" if estimated else "")
            + "; per-component figures have no spread of their own (the whole model's p10-p90 is in the tables above)",
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
        shown = [_scaled(v, scale) for v in (limit, b, a)]
        if name == "latency_ms":  # the median the goal is checked against, with its spread
            shown[1:] = [_latency_text(p.result) for p in (base, chosen)]
        rows.append([label, *shown, met])
    drop_ok = base.metric - chosen.metric <= goals["max_drop"]
    metric = ["metric (higher is better)", f"drop <= {goals['max_drop']:g}", f"{base.metric:.4g}"]
    return [*rows, [*metric, f"{chosen.metric:.4g}", "yes" if drop_ok else "no"]]


def _figure(m: Measurement, name: str) -> float | None:
    """A goal's figure of a measurement: latency, or a memory field."""
    return m.latency_ms if name == "latency_ms" else getattr(m.memory, name)


def _scaled(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value / scale:,.3f}"


def _latency_text(m: Measurement) -> str:
    """Median [p10, p90] in ms, ``*`` after an estimate ("-": the runner had no timer)."""
    if m.latency is None:
        return "-"
    return m.latency.text(3) + ("*" if m.provenance.kind == "estimated" else "")


def _point_row(p: Point) -> list[str]:
    r = p.result
    return [
        str(p.iteration),
        p.changed or "baseline",
        ", ".join(f"{c}={v:.0%}" for c, v in p.budgets.items() if v) or "-",
        _latency_text(r),
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
    xs = [p.result.latency_ms for p in points]
    err = error_bars(xs, [p.result.latency.spread if p.result.latency else None for p in points])
    if err is not None:  # p10-p90 of each point's latency
        ax.errorbar(xs, [p.metric for p in points], xerr=err, fmt="none", ecolor="#999999", elinewidth=1, capsize=2)
    sc = ax.scatter(xs, [p.metric for p in points], marker="o", zorder=3,
                    edgecolors=["none" if p.accepted else "red" for p in points], **colour)  # fmt: skip
    ax.plot([p.result.latency_ms for p in front], [p.metric for p in front], "k--", lw=0.8, label="Pareto front")
    for p in points:  # the point numbers of the tables
        ax.annotate(f"#{p.iteration}", (p.result.latency_ms, p.metric), xytext=(4, 4), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    if goals["latency_ms"] is not None:
        ax.axvline(goals["latency_ms"], color="tab:red", ls=":", lw=1, label="latency goal")
    ax.axhline(points[0].metric - goals["max_drop"], color="tab:orange", ls=":", lw=1, label="baseline − max_drop")
    estimated = any(p.result.provenance.kind == "estimated" for p in points)
    ax.set_xlabel("latency (ms" + (", estimate" if estimated else "") + (", bars p10-p90)" if err else ")"))
    ax.set_ylabel("metric (higher is better)")
    if any(arena):  # targets without a tensor arena (SSH boards, local engines) get no colour scale
        fig.colorbar(sc, label=f"{arena_name(points)} (bytes)")
    ax.legend()
    ax.set_title("points tried (red edge = rejected)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def budgets_figure(points: Sequence[Point]):
    """Each component's removed fraction over the iterations, one row per component in the model's order."""
    require("matplotlib", "plot", "the optimize report plots").use("Agg")
    plt = require("matplotlib.pyplot", "plot", "the optimize report plots")

    names = list(points[0].budgets)  # the model's declared component order
    kept = [p for p in points if p.accepted]
    # each kept budget holds until the next kept point; the last one until the end of the run (one step wide at
    # least), so a change at the last point is a step, not a tick
    xs = [p.iteration for p in kept] + [points[-1].iteration + 1]
    top = max(0.05, *(p.budgets[n] for p in kept for n in names))
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 0.3 + 0.75 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):  # one row each: no component hides another
        ys = [p.budgets[name] for p in kept]
        ax.fill_between(xs, [*ys, ys[-1]], step="post", alpha=0.3, color="#2b7bb9")
        ax.step(xs, [*ys, ys[-1]], where="post", color="#2b7bb9")
        ax.plot([p.iteration for p in kept], ys, "o", ms=3, color="#2b7bb9")
        ax.set_ylim(0, top * 1.15)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
        ax.tick_params(labelsize=7)
    axes[-1, 0].xaxis.get_major_locator().set_params(integer=True)
    axes[-1, 0].set_xlabel("iteration (kept points marked)")
    axes[0, 0].set_title("fraction of each component removed", fontsize=10)
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    plt = require("matplotlib.pyplot", "plot", "the optimize report plots")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
