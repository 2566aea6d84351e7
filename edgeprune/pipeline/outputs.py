"""What an optimize run leaves behind: the chosen plan, a Pareto table and plot, the budget history."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence

from rich.table import Table

from edgeprune.io import write_atomic
from edgeprune.pipeline.optimize import OptimizeResult
from edgeprune.pipeline.runlog import Point


def pareto(points: Sequence[Point]) -> list[Point]:
    """Accepted points no other accepted point beats on metric, latency and arena at once."""
    pool = [p for p in points if p.accepted]

    def key(p: Point) -> tuple[float, float, float]:
        return (-p.metric, p.result.latency_ms, float(p.result.arena_bytes or 0))

    return [p for p in pool if not any(_dominates(key(q), key(p)) for q in pool if q is not p)]


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def points_table(result: OptimizeResult) -> Table:
    front = {p.iteration for p in pareto(result.points)}
    t = Table(title=f"optimize: {len(result.points)} points tried", caption=result.explanation)
    for col in ("#", "changed", "budgets", "latency ms", "arena B", "flash B", "metric", "kept", "pareto"):
        t.add_column(col, justify="left" if col in ("changed", "budgets") else "right")
    for p in result.points:
        budgets = ", ".join(f"{c}={v:.0%}" for c, v in p.budgets.items() if v) or "-"
        t.add_row(
            str(p.iteration),
            p.changed or "baseline",
            budgets,
            f"{p.result.latency_ms:.3f}" + ("*" if p.result.provenance.kind == "estimated" else ""),
            f"{p.result.arena_bytes:,}" if p.result.arena_bytes is not None else "-",
            f"{p.result.flash_bytes:,}" if p.result.flash_bytes is not None else "-",
            f"{p.metric:.4g}",
            "yes" if p.accepted else f"no: {p.why}",
            "*" if p.iteration in front else "",
        )
    return t


def write_outputs(result: OptimizeResult) -> None:
    """chosen/ (plan + weights + artifacts), pareto.json/.md/.png and budgets.png in the run directory."""
    run = result.run_dir
    chosen = run / "chosen"
    source = run / "points" / f"{result.chosen.iteration:03d}"
    if chosen.exists():
        shutil.rmtree(chosen)
    shutil.copytree(source, chosen)
    front = pareto(result.points)
    summary = {
        "met": result.met,
        "explanation": result.explanation,
        "chosen": result.chosen.to_dict(),
        "pareto": [p.iteration for p in front],
        "points": [p.to_dict() for p in result.points],
    }
    write_atomic(run / "pareto.json", json.dumps(summary, indent=2))
    lines = [
        "| # | changed | budgets | latency ms | arena B | metric | kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in front:
        budgets = ", ".join(f"{c}={v:.0%}" for c, v in p.budgets.items() if v) or "-"
        lines.append(
            f"| {p.iteration} | {p.changed or 'baseline'} | {budgets} | {p.result.latency_ms:.3f} | "
            f"{p.result.arena_bytes} | {p.metric:.4g} | {'yes' if p.accepted else 'no'} |"
        )
    label = result.chosen.result.provenance.label
    write_atomic(
        run / "pareto.md", f"# Pareto front\n\n{result.explanation}\n\nLatency: {label}\n\n" + "\n".join(lines)
    )
    write_atomic(run / "pareto.png", _pareto_png(result.points, front))
    write_atomic(run / "budgets.png", _budgets_png(result.points))


def _pareto_png(points: Sequence[Point], front: Sequence[Point]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    arena = [p.result.arena_bytes or 0 for p in points]
    sc = ax.scatter([p.result.latency_ms for p in points], [p.metric for p in points], c=arena, cmap="viridis",
                    marker="o", edgecolors=["none" if p.accepted else "red" for p in points])  # fmt: skip
    ax.plot([p.result.latency_ms for p in front], [p.metric for p in front], "k--", lw=0.8, label="Pareto front")
    estimated = any(p.result.provenance.kind == "estimated" for p in points)
    ax.set_xlabel("latency (ms" + (", estimate)" if estimated else ")"))
    ax.set_ylabel("metric (higher is better)")
    fig.colorbar(sc, label="tensor arena (bytes)")
    ax.legend()
    ax.set_title("points tried (red edge = rejected)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _budgets_png(points: Sequence[Point]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
