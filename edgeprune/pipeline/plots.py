"""Plots as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from edgeprune.extras import require

Spread = tuple[float, float] | None  # (p10, p90) of a median, or None: no spread recorded


def component_order(declared: Sequence[str], *present: Iterable[str]) -> list[str]:
    """The components in ``present`` in the model's declared order (``Components.names``), then any others
    (such as "(unattributed)") in the order they came: every table and plot lists components this way."""
    seen = list(dict.fromkeys(name for names in present for name in names))
    return [n for n in declared if n in seen] + [n for n in seen if n not in declared]


def error_bars(values: Sequence[float], spreads: Sequence[Spread]) -> list[list[float]] | None:
    """Matplotlib's asymmetric ``yerr``/``xerr`` (median to p10, median to p90); None when nothing has a spread."""
    if not any(spreads):
        return None
    low = [v - s[0] if s else 0.0 for v, s in zip(values, spreads, strict=True)]
    high = [s[1] - v if s else 0.0 for v, s in zip(values, spreads, strict=True)]
    return [low, high]


def grouped_bars(
    names: Sequence[str],
    original: Sequence[float],
    pruned: Sequence[float],
    ylabel: str,
    *,
    title: str = "",
    log: bool = False,
    hatched: Sequence[bool] = (),
    spreads: tuple[Sequence[Spread], Sequence[Spread]] | None = None,
) -> bytes:
    """Original vs pruned bars per name; ``hatched`` marks estimates (never shown like measurements);
    ``spreads`` (original's, pruned's) draws p10–p90 error bars."""
    require("matplotlib", "plot", "the comparison plots").use("Agg")
    plt = require("matplotlib.pyplot", "plot", "the comparison plots")

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names)), 3.8))
    xs = range(len(names))
    series = ((-0.2, original, "original", "#8899aa"), (0.2, pruned, "pruned", "#2b7bb9"))
    for i, (offset, values, label, color) in enumerate(series):
        err = error_bars(values, spreads[i]) if spreads else None
        bars = ax.bar([x + offset for x in xs], values, width=0.4, label=label, color=color, yerr=err, capsize=3,
                      error_kw={"elinewidth": 1, "ecolor": "#333333"})  # fmt: skip
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
