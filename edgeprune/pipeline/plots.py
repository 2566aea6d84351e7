"""Plots as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from edgeprune.extras import require


def grouped_bars(
    names: Sequence[str],
    original: Sequence[float],
    pruned: Sequence[float],
    ylabel: str,
    *,
    title: str = "",
    log: bool = False,
    hatched: Sequence[bool] = (),
) -> bytes:
    """Original vs pruned bars per name; ``hatched`` marks estimates (never shown like measurements)."""
    require("matplotlib", "plot", "the comparison plots").use("Agg")
    plt = require("matplotlib.pyplot", "plot", "the comparison plots")

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names)), 3.8))
    xs = range(len(names))
    for offset, values, label, color in ((-0.2, original, "original", "#8899aa"), (0.2, pruned, "pruned", "#2b7bb9")):
        bars = ax.bar([x + offset for x in xs], values, width=0.4, label=label, color=color)
        for bar, hatch in zip(bars, hatched, strict=False):
            bar.set_hatch("//" if hatch else "")
    ax.set_xticks(list(xs), list(names), rotation=20, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
