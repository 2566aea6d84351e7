"""Per-op cycle costs derived from the emulated board's cycle model: the analytic estimate that agrees with the
emulator (``cost_models/emulated.toml``, written by ``python -m edgeprune.deploy.mcu.op_costs``).

Each op costs ``cycles_per_unit * units + cycles_per_output * output elements + fixed_cycles``, per PyTorch class
where the cost differs by class (``LayerNorm`` is ten int8 kernels in TFLite, ``Tanh`` one; functional ``add``,
``mul``, ``cat`` too) and per kind for the MAC kernels. The rates are fitted to three sizes of microbenchmark
models run on the emulated board, one component per op (`edgeprune.deploy.mcu.op_costs`); the set records its
agreement with the emulator on every bundled model
(``check``), which is the error it is labelled with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from edgeprune.boards import _toml
from edgeprune.boards.fitpoint import FitPoint
from edgeprune.boards.ops import MAC_KINDS, OpCost, OpKind

Unit = Literal["macs", "output_elements", "weights", "none"]


@dataclass(frozen=True)
class OpRate:
    """Cycles of one op: ``cycles_per_unit`` × its ``unit`` + ``cycles_per_output`` × its output elements (the
    requantization of each output of a MAC kernel) + ``fixed_cycles`` (the per-call cost)."""

    unit: Unit
    cycles_per_unit: float
    fixed_cycles: float
    cycles_per_output: float = 0.0

    def cycles(self, op: OpCost) -> float:
        return (
            self.cycles_per_unit * units(op, self.unit)
            + self.cycles_per_output * op.output_elements
            + self.fixed_cycles
        )


def units(op: OpCost, unit: Unit) -> int:
    """``op``'s count of ``unit``."""
    return {"macs": op.macs, "output_elements": op.output_elements, "weights": op.weights, "none": 0}[unit]


@dataclass(frozen=True)
class DerivedCosts:
    """A cost set derived from the emulated ``board``: rates by key (an op kind for conv/depthwise/FC, else the
    PyTorch class, with kind-level fallbacks) and the check against the emulator on the bundled models."""

    name: str
    description: str
    source: str
    rates: Mapping[str, OpRate]
    check: tuple[FitPoint, ...]

    @property
    def core(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def fit(self) -> tuple[FitPoint, ...]:
        return self.check

    @property
    def fitted_to(self) -> str:
        errs = [p.error_pct for p in self.check]
        board = self.check[0].board if self.check else "?"
        return (f"{self.source}; against the emulated {board} on {len(errs)} bundled models: "
                f"{min(errs, default=0):+.1f} to {max(errs, default=0):+.1f} %")  # fmt: skip

    def rate(self, op: OpCost) -> OpRate:
        """The rate ``op`` is costed with: its kind for conv/depthwise/FC, else its class, else its kind, else
        ``other``."""
        keys = (op.kind.value,) if op.kind in MAC_KINDS else (op.module, op.kind.value)
        for key in keys:
            if key in self.rates:
                return self.rates[key]
        return self.rates[OpKind.OTHER.value]

    def op_cycles(self, op: OpCost) -> float:
        return self.rate(op).cycles(op)


def derived_path() -> Path:
    return Path(str(resources.files("edgeprune.boards") / "cost_models" / "emulated.toml"))


def parse_derived(text: str) -> dict[str, DerivedCosts]:
    data = _toml.loads(text)
    out = {}
    for name, s in data.get("sets", {}).items():
        rates = {
            k: OpRate(r["unit"], float(r["cycles_per_unit"]), float(r["fixed_cycles"]), float(r["cycles_per_output"]))
            for k, r in s["rates"].items()
        }
        check = tuple(FitPoint(p["model"], p["board"], p["clock_hz"], p["emulator_ms"], p["analytic_ms"], s["source"])
                      for p in s.get("check", []))  # fmt: skip
        out[name] = DerivedCosts(name, s["description"], s["source"], rates, check)
    return out


@cache
def load_derived_costs() -> dict[str, DerivedCosts]:
    """The derived sets shipped in ``cost_models/emulated.toml`` (none when the file is absent)."""
    path = derived_path()
    return parse_derived(path.read_text(encoding="utf-8")) if path.is_file() else {}


def render_derived(sets: Mapping[str, DerivedCosts], header: str) -> str:
    """TOML text of ``sets`` (what :func:`parse_derived` reads)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for s in sets.values():
        lines += ["", f'[sets."{s.name}"]', f'description = "{s.description}"', f'source = "{s.source}"', "",
                  f'[sets."{s.name}".rates]']  # fmt: skip
        lines += [
            f'{key} = {{ unit = "{r.unit}", cycles_per_unit = {r.cycles_per_unit:.6g}, '
            f"cycles_per_output = {r.cycles_per_output:.6g}, fixed_cycles = {r.fixed_cycles:.6g} }}"
            for key, r in s.rates.items()
        ]
        for p in s.check:
            lines += ["", f'[[sets."{s.name}".check]]', f'model = "{p.model}"', f'board = "{p.board}"',
                      f"clock_hz = {p.clock_hz}", f"emulator_ms = {p.measured_ms:.6g}",
                      f"analytic_ms = {p.predicted_ms:.6g}"]  # fmt: skip
    return "\n".join(lines) + "\n"
