"""Cycles from the instruction mix the emulated board executes: per instruction class from the core's technical
reference manual (``cost_models/cycles.toml``), plus the flash wait states of the board.

The manual's counts assume zero wait states. On the NUCLEO-L4R5ZI (5 wait states at 120 MHz) the ART accelerator
hides most of them on instruction fetch (prefetch and a 1 KB instruction cache: the kernels' loops run from it),
but the weights are read from flash as data. One constant is fitted: ``load_wait_fraction``, the wait states paid
per data load as a fraction of the board's ``flash_wait_states`` (some loads read weights from flash and miss, the
rest read activations from SRAM). It is fitted by least squares on relative error to the MLPerf Tiny KWS and AD
results of the NUCLEO-L4R5ZI only (``calibration.toml`` ``[emulator]``); nothing else is fitted. A second
constant, a penalty per taken branch, was tried and fits negative (the instruction cache hides fetch wait states),
so it is not in the model. Every instruction costs at least one cycle: the cycles per instruction are >= 1 by
construction. On the Cortex-M7 (no published timing, L1 caches) the M4 table is used without wait states.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from edgeprune.boards import _toml
from edgeprune.boards.calibration import calibration_path, load_calibration
from edgeprune.boards.fitpoint import FitPoint
from edgeprune.boards.schema import BoardProfile, Core

LOAD_CLASSES = ("load", "load_pair", "load_multi", "vfp_load", "vfp_load_multi")


@dataclass
class LayerMix:
    """The instructions one layer executed: ``counts`` per class (:func:`edgeprune.deploy.mcu.trace.classify`),
    ``taken`` branches (control went elsewhere than the next instruction), ``paired`` loads/stores directly after a
    load (their address phase pipelines: one cycle, not two), ``regs`` moved by load/store-multiple."""

    counts: Counter[str] = field(default_factory=Counter)
    taken: int = 0
    paired: int = 0
    regs: int = 0

    @property
    def instructions(self) -> int:
        return sum(self.counts.values())

    @property
    def loads(self) -> int:
        return sum(self.counts[c] for c in LOAD_CLASSES)

    def scaled(self, n: int) -> LayerMix:
        """This mix ``n`` times over."""
        return LayerMix(Counter({c: k * n for c, k in self.counts.items()}), self.taken * n, self.paired * n,
                        self.regs * n)  # fmt: skip

    def __iadd__(self, other: LayerMix) -> LayerMix:
        self.counts += other.counts
        self.taken += other.taken
        self.paired += other.paired
        self.regs += other.regs
        return self


def total_mix(mixes: Iterable[LayerMix]) -> LayerMix:
    """The sum of ``mixes`` (e.g. every layer of one inference)."""
    out = LayerMix()
    for mix in mixes:
        out += mix
    return out


def cycles_path() -> Path:
    return Path(str(resources.files("edgeprune.boards") / "cost_models" / "cycles.toml"))


@cache
def core_table(core: Core) -> MappingProxyType[str, float]:
    """Cycles per instruction class of ``core`` (zero wait states); empty when the core has no table."""
    cores = _toml.loads(cycles_path().read_text(encoding="utf-8"))["cores"]
    return MappingProxyType(dict(cores.get(core.value, {})))


def trm_cycles(mix: LayerMix, core: Core) -> float:
    """Cycles of ``mix`` at zero wait states by the core's table."""
    t = core_table(core)
    per_class = sum(n * t[c] for c, n in mix.counts.items())
    return per_class + mix.taken * t["refill"] + mix.paired * t["paired"] + mix.regs * t["per_register"]


def _emulator_table() -> dict[str, dict]:
    return _toml.loads(calibration_path().read_text(encoding="utf-8")).get("emulator", {})


@dataclass(frozen=True)
class CycleModel:
    """The cycle model of one core: its table, the fitted wait-state fraction and the fit record."""

    core: Core
    load_wait_fraction: float
    stack: str | None
    fit: tuple[FitPoint, ...]

    def cycles(self, mix: LayerMix, board: BoardProfile) -> float:
        """Estimated cycles of ``mix`` on ``board`` (its flash wait states; none when the profile gives none)."""
        return trm_cycles(mix, self.core) + self.load_wait_fraction * (board.flash_wait_states or 0) * mix.loads

    @property
    def label(self) -> str:
        what = "instruction mix x Cortex-M4 TRM cycles"
        if not self.fit:
            return f"{what} (no flash wait states; M7 dual issue not modelled: an upper bound, not validated)"
        errs = ", ".join(f"{p.model} {p.error_pct:+.1f} %" for p in self.fit)
        return (f"{what} + {self.load_wait_fraction:.3f} x flash wait states per load "
                f"(fitted to MLPerf Tiny {self.stack}; fit error {errs})")  # fmt: skip


def fit_core(core: Core, table: dict) -> CycleModel:
    """Least squares on relative error for ``f`` in ``trm + f * ws * loads`` over the calibration models."""
    from edgeprune.boards.registry import load_board

    stack = load_calibration()[table["stack"]]
    points = {model: (board, clock_hz, ms) for model, board, clock_hz, ms in stack.points}
    rows = []
    for m, trm in table["trm_cycles"].items():
        board, clock_hz, ms = points[m]
        ws = load_board(board).flash_wait_states or 0
        target = ms * 1e-3 * clock_hz
        rows.append((m, trm, ws * table["loads"][m], target))
    f = sum(x / c * (1 - t / c) for _, t, x, c in rows) / sum((x / c) ** 2 for _, _, x, c in rows)
    f = max(f, 0.0)
    fit = tuple(FitPoint(m, points[m][0], points[m][1], points[m][2], 1e3 * (t + f * x) / points[m][1], stack.source)
                for m, t, x, _ in rows)  # fmt: skip
    return CycleModel(core, f, stack.name, fit)


@cache
def cycle_model(core: Core) -> CycleModel | None:
    """The cycle model of ``core``, or ``None`` when the core has no cycle table (the M0+: instruction counts only)."""
    if not core_table(core):
        return None
    table = _emulator_table().get(core.value, {})
    if "trm_cycles" not in table:
        return CycleModel(core, 0.0, None, ())
    return fit_core(core, table)
