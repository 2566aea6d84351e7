"""Turn edgeprune JSON (compare.json, measurements, prune reports) into Markdown and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.measure.record import LatencyStats
from edgeprune.pipeline.plots import component_order, grouped_bars


@dataclass
class Section:
    """A titled block: a table (header + rows), optional caption and optional PNG plot."""

    title: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    png: bytes | None = None
    notes: list[str] = field(default_factory=list)
    png_name: str | None = None  # file name of the plot beside report.md (default plot_<i>.png)


def load_sections(paths: Sequence[str | os.PathLike]) -> list[Section]:
    """Read each JSON file and turn it into report sections by what it holds."""
    sections: list[Section] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EdgepruneError(f"cannot read {path}: {exc}", expected="a JSON file written by edgeprune") from exc
        if isinstance(data, dict) and "engines" in data:
            sections += _compare_sections(data, Path(path).name)
        elif isinstance(data, dict) and "runtime" in data and "provenance" in data:
            sections.append(_measurement_section(data, Path(path).name))
        elif isinstance(data, dict) and "components" in data and "budget" in data:
            sections.append(_prune_section(data, Path(path).name))
        else:
            raise EdgepruneError(
                f"{path} is not a file this report understands",
                expected="compare.json (edgeprune compare), a Measurement JSON, or report.json (edgeprune prune)",
            )
    return sections


def write_report(sections: Sequence[Section], out_dir: str | os.PathLike, title: str = "edgeprune report") -> None:
    """Write ``report.md`` (plots as PNG files beside it) and a self-contained ``report.html``."""
    out = Path(out_dir)
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, s in enumerate(sections):
        md += [f"## {s.title}", ""]
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.header:  # a section may be a plot alone
            md += ["| " + " | ".join(s.header) + " |", "|" + "---|" * len(s.header)]
            md += ["| " + " | ".join(row) + " |" for row in s.rows]
            body.append(_html_table(s))
        md += ["", s.caption, ""] if s.caption else [""]
        if s.caption:
            body.append(f"<p class=caption>{html.escape(s.caption)}</p>")
        if s.png is not None:
            name = s.png_name or f"plot_{i}.png"
            write_atomic(out / name, s.png)
            md += [f"![{s.title}]({name})", ""]
            uri = "data:image/png;base64," + base64.b64encode(s.png).decode()
            body.append(f'<img alt="{html.escape(s.title)}" src="{uri}">')
        for note in s.notes:
            md.append(f"- {note}")
            body.append(f"<p class=note>{html.escape(note)}</p>")
        md.append("")
    write_atomic(out / "report.md", "\n".join(md))
    write_atomic(out / "report.html", _PAGE.format(title=html.escape(title), body="\n".join(body)))


def _html_table(s: Section) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in s.header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in s.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _compare_sections(data: dict[str, Any], source: str) -> list[Section]:
    from edgeprune.pipeline.compare import Comparison

    comparison = Comparison.from_dict(data)
    sections = [
        Section(
            "Engines: original vs pruned",
            list(Comparison.HEADER),
            comparison.text_rows(),
            f"{comparison.caption}. Source: {source}.",
            comparison.plot_png(),
            comparison.notes,
        )
    ]
    declared = comparison.components
    sections += [_component_section(e, declared) for e in data["engines"] if e["original"]["components"]]
    return sections


def _component_section(engine: dict[str, Any], declared: Sequence[str]) -> Section:
    o, p = engine["original"]["components"], engine["pruned"]["components"]
    names = component_order(declared, o, p)
    rows = [[n, _fmt(o.get(n, {}).get("latency_ms")), _fmt(p.get(n, {}).get("latency_ms"))] for n in names]
    label = engine["original"]["provenance"]["kind"]
    return Section(
        f"Per component: {engine['engine']} ({label})",
        ["component", "original ms", "pruned ms"],
        rows,
        caption="Per-component times come from the runtime's profile, which gives no spread per component "
        "(the whole model's p10-p90 is in the engine table).",
        png=grouped_bars(
            names,
            [o.get(n, {}).get("latency_ms") or 0 for n in names],
            [p.get(n, {}).get("latency_ms") or 0 for n in names],
            "ms per component",
            hatched=[label == "estimated"] * len(names),
        ),
    )


def _measurement_section(data: dict[str, Any], source: str) -> Section:
    lat = data.get("latency") or {}
    rows = [["latency ms: median [p10, p90]", LatencyStats(**lat).text()]] if lat else []
    rows += [[k, f"{v:.4f}" if isinstance(v, float) else str(v)] for k, v in lat.items()]
    rows += [[k, f"{v:,}"] for k, v in data.get("memory", {}).items() if v is not None]
    prov = data["provenance"]
    return Section(
        f"{data['model']} on {data['runtime']}",
        ["quantity", "value"],
        rows,
        caption=f"{prov['kind']} on {prov['where']} ({prov['how']}). Source: {source}.",
        notes=list(data.get("notes", [])),
    )


def _prune_section(data: dict[str, Any], source: str) -> Section:
    rows = [
        [
            c["name"],
            "-" if c["requested"] is None else f"{c['requested']:.0%}",
            f"{c['achieved']:.1%}",
            f"{c['params_before']:,} -> {c['params_after']:,}",
            f"{c['macs_before']:,} -> {c['macs_after']:,}",
            c.get("note") or "",
        ]
        for c in data["components"]
    ]
    names = [c["name"] for c in data["components"]]
    png = grouped_bars(
        names,
        [c["params_before"] for c in data["components"]],
        [c["params_after"] for c in data["components"]],
        "parameters",
    )
    return Section(
        f"Pruning ({data['mode']} mode, {data['importance']} importance)",
        ["component", "asked", "got", "params", "MACs/example", "note"],
        rows,
        caption=f"Source: {source}.",
        png=png,
    )


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child, td:last-child {{ text-align: left; }}
.caption, .note {{ color: #555; font-size: 0.9em; }}
img {{ max-width: 100%; }}
</style></head><body>
{body}
</body></html>
"""
