"""The Pareto front per target of a sweep: points no other point beats on both latency and metric."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from edgeprune.io import write_atomic
from edgeprune.measure.record import LatencyStats
from edgeprune.pipeline.plots import error_bars


def front(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with a latency that no other record dominates (lower or equal latency and higher or equal metric,
    one of them strictly), by latency."""
    rows = [r for r in records if r["measurement"].get("latency")]

    def ms(r: dict[str, Any]) -> float:
        return r["measurement"]["latency"]["median_ms"]

    def beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return ms(a) <= ms(b) and a["metric"] >= b["metric"] and (ms(a) < ms(b) or a["metric"] > b["metric"])

    return sorted((r for r in rows if not any(beats(o, r) for o in rows)), key=ms)


def table(target: str, records: list[dict[str, Any]]) -> str:
    """Markdown: every point of ``target`` (model, budget, latency, metric, params, fits), front marked."""
    on_front = {r["id"] for r in front(records)}
    lines = [
        f"# {target}",
        "",
        "| model | budget | latency ms [p10, p90] | metric | params | fits | provenance | Pareto |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(records, key=lambda r: (r["model"], r["budget"])):
        m = r["measurement"]
        ms = LatencyStats(**m["latency"]).text() if m.get("latency") else "-"
        lines.append(
            f"| {r['model']} | {r['budget']:.0%} | {ms} | {r['metric']:.4g} | {r['params']:,} | "
            f"{m.get('fits')} | {m['provenance']['kind']} | {'*' if r['id'] in on_front else ''} |"
        )
    return "\n".join(lines) + "\n"


def write_pareto(run_dir: Path, records: dict[str, dict[str, Any]]) -> list[Path]:
    """``pareto-<target>.md`` (and ``.png`` when matplotlib is installed) per target in ``run_dir``."""
    by_target: dict[str, list[dict[str, Any]]] = {}
    for r in records.values():
        by_target.setdefault(r["target"], []).append(r)
    written = []
    for target, rows in sorted(by_target.items()):
        stem = run_dir / ("pareto-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", target))
        write_atomic(stem.with_suffix(".md"), table(target, rows))
        written.append(stem.with_suffix(".md"))
        if importlib.util.find_spec("matplotlib") is not None:
            write_atomic(stem.with_suffix(".png"), _plot(target, rows))
            written.append(stem.with_suffix(".png"))
    return written


def _plot(target: str, records: list[dict[str, Any]]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model in sorted({r["model"] for r in records}):
        rows = [r for r in records if r["model"] == model and r["measurement"].get("latency")]
        stats = [LatencyStats(**r["measurement"]["latency"]) for r in rows]
        xs, ys = [s.median_ms for s in stats], [r["metric"] for r in rows]
        err = error_bars(xs, [s.spread for s in stats])
        if err is not None:  # p10-p90 of each point's latency
            ax.errorbar(xs, ys, xerr=err, fmt="none", ecolor="#999999", elinewidth=1, capsize=2)
        ax.scatter(xs, ys, label=model, zorder=3)
        for r in rows:
            ax.annotate(f"{r['budget']:.0%}", (r["measurement"]["latency"]["median_ms"], r["metric"]), fontsize=7)
    pts = front(records)
    ax.plot(
        [r["measurement"]["latency"]["median_ms"] for r in pts],
        [r["metric"] for r in pts],
        "k--",
        lw=0.8,
        label="Pareto front",
    )
    ax.set_xlabel("latency (ms, median; bars p10-p90)")
    ax.set_ylabel("metric (higher is better)")
    ax.set_title(target)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
