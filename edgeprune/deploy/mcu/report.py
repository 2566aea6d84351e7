"""Rich tables of a bench result for the CLI: per layer and per component, with the latency label."""

from __future__ import annotations

from rich.table import Table

from edgeprune.measure.record import Measurement


def layer_table(measurement: Measurement) -> Table:
    """One row per layer: op, component, instructions (emulator), cycles and share of the total."""
    layers = measurement.layers
    total = sum(lay.cycles for lay in layers) or sum(lay.instructions or 0 for lay in layers) or 1.0
    emulated = any(lay.instructions is not None for lay in layers)
    t = Table(title=f"{measurement.model}: per layer", caption=measurement.provenance.label, caption_justify="left")
    for col in ("#", "op", "component", *(["instructions"] if emulated else []), "cycles", "%"):
        t.add_column(col, justify="left" if col in ("op", "component") else "right")
    for lay in layers:
        part = lay.cycles or lay.instructions or 0.0
        insns = [f"{lay.instructions:,.0f}"] if emulated else []
        t.add_row(str(lay.index), lay.op, lay.component, *insns, f"{lay.cycles:,.0f}", f"{100 * part / total:.1f}")
    return t


def component_table(measurement: Measurement) -> Table:
    """One row per component: latency (ms) and share, then the whole-inference latency."""
    lat = measurement.latency
    per = "per inference" if measurement.batch == 1 else f"per inference of a batch of {measurement.batch}"
    title = f"{measurement.model}: " + (f"{lat.text(3)} ms {per}" if lat else "no latency estimate")
    t = Table(title=title, caption=measurement.provenance.label, caption_justify="left")
    for col in ("component", "ms", "%"):
        t.add_column(col, justify="left" if col == "component" else "right")
    for name, share in measurement.components.items():
        ms = "-" if share.latency_ms is None else f"{share.latency_ms:.3f}"
        t.add_row(name, ms, "-" if share.share is None else f"{100 * share.share:.1f}")
    return t
