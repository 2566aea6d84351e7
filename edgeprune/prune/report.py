"""PruneReport: what the pruner did, per component and per group, as a table and as JSON."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

TOLERANCE = 0.05  # achieved fractions within 5 percentage points of the request count as met


@dataclass
class ComponentReport:
    name: str
    requested: float | None  # None when the target is model-wide (total / vanilla)
    achieved: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channels_removed: int
    protected: bool
    note: str | None = None


@dataclass
class GroupReport:
    id: int
    kind: str
    components: list[str]
    roots: list[str]
    channels: int
    removed: int
    reason: str | None  # why nothing was removed


@dataclass
class PruneReport:
    mode: str
    importance: str
    budget: dict[str, Any]
    target: float | None  # model-wide fraction, when the budget is model-wide
    components: list[ComponentReport]
    groups: list[GroupReport]
    plan_digest: str
    # with Budget(allocate="sensitivity"): the drop the sensitivity report predicts for this split, and its metric
    predicted_drop: float | None = None
    predicted_metric: str | None = None

    @property
    def params_before(self) -> int:
        return sum(c.params_before for c in self.components)

    @property
    def params_after(self) -> int:
        return sum(c.params_after for c in self.components)

    @property
    def macs_before(self) -> int:
        return sum(c.macs_before for c in self.components)

    @property
    def macs_after(self) -> int:
        return sum(c.macs_after for c in self.components)

    @property
    def achieved(self) -> float:
        return 1 - self.params_after / self.params_before if self.params_before else 0.0

    def component(self, name: str) -> ComponentReport:
        return next(c for c in self.components if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["totals"] = {
            "params_before": self.params_before,
            "params_after": self.params_after,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "achieved": round(self.achieved, 4),
        }
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def tables(self) -> list[Table]:
        """Rich tables: components, then groups."""
        return [self.component_table(), self.group_table()]

    def component_table(self) -> Table:
        target = f", model-wide target {self.target:.0%}" if self.target is not None else ""
        comp = Table(title=f"Pruning report ({self.mode} mode, {self.importance} importance{target})")
        if self.predicted_drop is not None:
            comp.caption = (
                f"predicted drop in {self.predicted_metric}: {self.predicted_drop:.4g} (sum of each component's cut "
                "measured alone; cuts that interact can drop more)"
            )
        for col in ("component", "asked", "got", "params", "MACs/example", "cut", "note"):
            comp.add_column(col, justify="left" if col in ("component", "note") else "right")
        for c in self.components:
            comp.add_row(
                c.name,
                "-" if c.requested is None else f"{c.requested:.0%}",
                f"{c.achieved:.1%}",
                f"{_short(c.params_before)} → {_short(c.params_after)}",
                f"{_short(c.macs_before)} → {_short(c.macs_after)}",
                str(c.channels_removed),
                c.note or "",
            )
        comp.add_row(
            "total",
            "-" if self.target is None else f"{self.target:.0%}",
            f"{self.achieved:.1%}",
            f"{_short(self.params_before)} → {_short(self.params_after)}",
            f"{_short(self.macs_before)} → {_short(self.macs_after)}",
            str(sum(c.channels_removed for c in self.components)),
            "",
            style="bold",
        )
        return comp

    def group_table(self) -> Table:
        grp = Table(title="Groups")
        for col in ("id", "kind", "components", "roots", "width", "cut", "why not"):
            grp.add_column(col)
        for g in self.groups:
            grp.add_row(
                str(g.id),
                g.kind,
                ",".join(g.components),
                ",".join(g.roots),
                str(g.channels),
                str(g.removed),
                g.reason or "",
            )
        return grp

    def __str__(self) -> str:
        buf = io.StringIO()
        console = Console(file=buf, width=160, no_color=True)
        for t in self.tables():
            console.print(t)
        return buf.getvalue()


def _short(n: int) -> str:
    """12,345 -> 12.3k; 4,200,000 -> 4.20M (tables stay narrow; JSON keeps exact counts)."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return f"{n:,}"
