"""Sensitivity of each component (and of the interfaces) to pruning, and a model-wide target split by it.

```python
report = sensitivity(model, calibration_inputs)           # data-free proxy: output fidelity on these inputs
report = sensitivity(model, inputs, metric=my_eval)        # or your metric, higher is better
report.plot("sensitivity.png"); print(report.suggest_protect())
result = prune(model, inputs, Budget(total=0.6, allocate="sensitivity"), sensitivity=report)
```

``sensitivity()`` (:mod:`edgeprune.prune.probe`) cuts each component alone at a few fractions of its
parameters (the interfaces, all together, at a few fractions of their channels) and records the drop.
:func:`split_target` then picks one measured cut per component so the parameters removed cover the
model-wide target at the least summed drop — the multiple-choice knapsack ``optimize`` uses
(:mod:`edgeprune.prune.knapsack`), measured drops as prices — and scales the chosen fractions down
until the whole model lands on the target.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.io import write_atomic
from edgeprune.prune.budget import Budget
from edgeprune.prune.components import Components
from edgeprune.prune.errors import PruneError
from edgeprune.prune.knapsack import cheapest_cover, max_levels

PROTECT_RATIO = 5.0  # suggest protecting an item whose drop per parameter is this many times the median


@dataclass
class Cut:
    """One measurement: ``fraction`` of the item cut, ``removed`` parameters gone, metric ``drop`` (>= 0 is worse)."""

    fraction: float
    removed: int
    drop: float


@dataclass
class Item:
    """A component, or the interfaces (``kind="interface"``, fractions of channels), and its measured cuts."""

    name: str
    kind: str
    params: int
    cuts: list[Cut] = field(default_factory=list)

    @property
    def cost_per_param(self) -> float:
        """Mean over the cuts that removed parameters of drop per parameter removed (inf when none did).

        Every cut counts, not only the first: on a noisy task metric (a closed-loop return) the small cuts
        often measure no drop at all, and one cut alone would make the ranking noise.
        """
        costs = [c.drop / c.removed for c in self.cuts if c.removed]
        return sum(costs) / len(costs) if costs else float("inf")


@dataclass
class SensitivityReport:
    """Per-item drops at each cut, the metric they were measured on, and the model's size."""

    metric: str
    base: float
    params: int
    items: list[Item]

    def item(self, name: str) -> Item:
        return next(i for i in self.items if i.name == name)

    def suggest_protect(self) -> list[str]:
        """Items whose drop per parameter (:attr:`Item.cost_per_param`) is ``PROTECT_RATIO``× the median or more."""
        costs = [i.cost_per_param for i in self.items if i.cost_per_param != float("inf")]
        if len(costs) < 2:
            return []
        median = statistics.median(costs)
        return [i.name for i in self.items if i.cost_per_param != float("inf") and i.cost_per_param > PROTECT_RATIO
                * max(median, 1e-12)]  # fmt: skip

    def predicted_drop(self, removed: Mapping[str, float]) -> float:
        """The drop this report predicts for removing ``removed[c]`` of each component ``c``'s parameters.

        What :func:`split_target` minimises: the sum of each component's measured curve (made non-decreasing
        by :func:`monotone`, linear between its cuts, 0 at no cut, flat past its deepest). Each cut was measured
        alone, so cuts that interact can drop more together than predicted; compare with the measured metric.
        """
        total = 0.0
        for name, fraction in removed.items():
            item = next((i for i in self.items if i.name == name and i.kind == "component"), None)
            if item is None:
                raise PruneError(
                    f"no sensitivity measured for component {name!r}",
                    expected=f"one of {[i.name for i in self.items if i.kind == 'component']}",
                )
            cuts = monotone(item.cuts) if item.params else []
            shares = [0.0] + [c.removed / item.params for c in cuts]
            total += float(np.interp(fraction, shares, [0.0] + [c.drop for c in cuts]))
        return total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "suggest_protect": self.suggest_protect()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensitivityReport:
        """The inverse of :meth:`to_dict` (derived keys such as ``suggest_protect`` are recomputed)."""
        try:
            items = [Item(i["name"], i["kind"], int(i["params"]), [Cut(**c) for c in i["cuts"]]) for i in data["items"]]
            return cls(str(data["metric"]), float(data["base"]), int(data["params"]), items)
        except (KeyError, TypeError, ValueError) as e:
            raise PruneError(
                f"not a sensitivity report ({type(e).__name__}: {e})",
                expected="the JSON written by SensitivityReport.save()",
                fix="measure it again with sensitivity(model, inputs) and save it",
            ) from None

    def save(self, path: str | Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> SensitivityReport:
        """A report written by :meth:`save`."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise PruneError(f"cannot read the sensitivity report {path}: {e}", fix="check the path") from None

    def __str__(self) -> str:
        fractions = sorted({c.fraction for i in self.items for c in i.cuts})
        lines = [f"sensitivity on {self.metric} (base {self.base:.4g}); drop at each cut:"]
        lines.append(f"{'item':<14}{'params':>9} " + " ".join(f"{f:>9.0%}" for f in fractions))
        for i in self.items:
            by = {c.fraction: c.drop for c in i.cuts}
            cells = " ".join(f"{by[f]:>9.3g}" if f in by else f"{'':>9}" for f in fractions)
            lines.append(f"{i.name:<14}{i.params:>9,} {cells}")
        lines.append(f"suggest protecting: {', '.join(self.suggest_protect()) or 'nothing'}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """Drop vs share of the model's parameters removed, one line per item (interfaces dashed)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        protect = set(self.suggest_protect())
        for i in self.items:
            x = [0.0] + [100 * c.removed / self.params for c in i.cuts]
            y = [0.0] + [c.drop for c in i.cuts]
            label = i.name + (" (suggest protect)" if i.name in protect else "")
            ax.plot(x, y, marker="o", ls="--" if i.kind == "interface" else "-", label=label)
        ax.set_xlabel("parameters of the whole model removed by this cut (%)")
        ax.set_ylabel(f"drop in {self.metric}")
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("Sensitivity per component (each cut alone)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


SHORTFALL = 0.02  # model-wide fraction a knapsack's pick may fall short of the target before it is asked again


def split_target(
    report: SensitivityReport,
    budget: Budget,
    components: Components,
    achieved: Callable[[dict[str, float]], float],
) -> dict[str, float]:
    """Per-component fractions that remove ``budget.total`` of the model at the least predicted drop.

    The knapsack picks at most one measured cut per unprotected component (predicted drop: the sum of
    their measured drops, each curve made non-decreasing by :func:`monotone`); the chosen fractions
    are then scaled by one factor, found by bisection on ``achieved(fractions)`` (the model-wide fraction a
    per-component budget removes), to land on the target. Cuts measured one at a time can remove less together
    (they shrink the same layers, e.g. a recurrent state read by several components): then the knapsack is asked
    again for proportionally more, a few times, before the scaling.
    """
    if budget.total is None:
        raise PruneError("sensitivity allocation splits a model-wide target", expected="Budget(total=f, ...)")
    names = [i.name for i in report.items if i.kind == "component"]
    unknown = sorted(set(names) - set(components.names))
    if unknown or not names:
        raise PruneError(
            f"the sensitivity report's components {names} do not match the model's {components.names}",
            fix="measure sensitivity() with the same components you prune with",
        )
    candidates = [n for n in names if n not in budget.protect and any(c.removed for c in report.item(n).cuts)]
    want = budget.total * report.params
    for _ in range(4):
        chosen = _knapsack_pick(report, candidates, want)
        got = achieved(chosen)
        if got >= budget.total - SHORTFALL:
            break
        want *= budget.total / max(got, 1e-3)

    @functools.cache  # each call prunes the model: the bisection's end points are asked for again
    def removed(scale: float) -> float:
        return achieved({c: round(scale * f, 6) for c, f in chosen.items()})

    lo, hi = 0.0, 1.0
    if got > budget.total:  # the knapsack over-covers (``got`` is removed(1.0)): shrink every cut by one factor
        for _ in range(10):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if removed(mid) <= budget.total else (lo, mid)
        hi = hi if abs(removed(hi) - budget.total) < abs(removed(lo) - budget.total) else lo
    return {c: round(hi * f, 6) for c, f in chosen.items()}


def monotone(cuts: Sequence[Cut]) -> list[Cut]:
    """``cuts`` by fraction, each drop raised to the largest drop of any smaller cut.

    Cutting more of a component is never better in expectation; a measured curve that dips (metric noise,
    or a metric already at its floor) would otherwise let the knapsack buy a deep cut for less than a
    shallow one.
    """
    out, worst = [], 0.0
    for cut in sorted(cuts, key=lambda c: c.fraction):
        worst = max(worst, cut.drop)
        out.append(Cut(cut.fraction, cut.removed, worst))
    return out


def _knapsack_pick(report: SensitivityReport, candidates: list[str], target: float) -> dict[str, float]:
    """One measured cut per candidate (or none) covering ``target`` parameters at the least summed drop."""
    if not candidates:
        raise PruneError("no component can be cut", fix="protect fewer components")
    menus = [[(c, cut) for cut in monotone(report.item(c).cuts) if cut.removed] for c in candidates]
    levels = max_levels(len(menus), max(len(m) for m in menus))
    chosen = cheapest_cover(
        [_spread(m, levels) for m in menus],
        {"params": target},
        cost=lambda o: o[1].drop,
        gains=lambda o: {"params": float(o[1].removed)},
    )
    assert chosen, "every candidate has a cut that removes parameters"
    return {c: cut.fraction for c, cut in chosen}


def _spread(menu: list[tuple[str, Cut]], levels: int) -> list[tuple[str, Cut]]:
    """``levels`` cuts of ``menu`` spread from its shallowest to its deepest: with many components the menus are
    cut short, and keeping only the shallow cuts would leave a target above them out of reach (8 components
    allow 2 of 5 cuts: 20 % and 40 %, never 60 %). The split's scaling then lands between the picked cuts."""
    if levels >= len(menu):
        return menu
    if levels == 1:
        return menu[-1:]
    return [menu[round(i * (len(menu) - 1) / (levels - 1))] for i in range(levels)]
