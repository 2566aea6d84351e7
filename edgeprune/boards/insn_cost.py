"""Instructions -> cycles on the emulated board: one cycles-per-instruction factor per core, fitted to the
MLPerf Tiny keyword-spotting and anomaly-detection results (``cost_models/calibration.toml``, ``[emulator]``).

QEMU counts instructions, not cycles. The factor turns the instruction count of *our* kernels into the
cycles the published stack needed for the same model, so it folds together the core's CPI and the
difference between our plain C kernels and that stack's kernels. It is an estimate and labelled as one. The
fit record is the cost model's :class:`~edgeprune.boards.cost_model.FitPoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from edgeprune.boards import _toml
from edgeprune.boards.calibration import calibration_path, load_calibration
from edgeprune.boards.cost_model import FitPoint
from edgeprune.boards.schema import Core
from edgeprune.errors import EdgepruneError

INSNS_PER_SECOND = 1_000_000_000  # QEMU -icount shift=0: 2**0 ns of virtual time per instruction


def _emulator_table() -> dict[str, dict]:
    return _toml.loads(calibration_path().read_text(encoding="utf-8")).get("emulator", {})


# Instructions per inference of the calibration models per core, and the published stack each core is fitted to.
CALIBRATION_INSNS = MappingProxyType({Core(c): dict(t["insns"]) for c, t in _emulator_table().items()})
CALIBRATION_STACK = MappingProxyType({Core(c): t["stack"] for c, t in _emulator_table().items()})


@dataclass(frozen=True)
class CoreCost:
    core: Core
    cycles_per_insn: float
    stack: str
    fit: tuple[FitPoint, ...]

    @property
    def label(self) -> str:
        errs = ", ".join(f"{p.model} {p.error_pct:+.1f} %" for p in self.fit)
        return (f"QEMU instruction count x {self.cycles_per_insn:.3f} cycles/insn "
                f"(fitted to MLPerf Tiny {self.stack}; fit error {errs})")  # fmt: skip


def fit_core(core: Core, insns: dict[str, int]) -> CoreCost:
    """Least squares on relative error: c = sum(I/C) / sum((I/C)^2) over the calibration models."""
    stack = load_calibration()[CALIBRATION_STACK[core]]
    points = {model: (board, clock_hz, ms) for model, board, clock_hz, ms in stack.points}
    cycles = {m: points[m][2] * 1e-3 * points[m][1] for m in insns}
    ratios = [insns[m] / cycles[m] for m in insns]
    c = sum(ratios) / sum(r * r for r in ratios)
    fit = tuple(FitPoint(m, points[m][0], points[m][1], points[m][2], 1e3 * c * insns[m] / points[m][1], stack.source)
                for m in insns)  # fmt: skip
    return CoreCost(core, c, stack.name, fit)


def core_cost(core: Core) -> CoreCost:
    if core not in CALIBRATION_INSNS or not all(CALIBRATION_INSNS[core].values()):
        raise EdgepruneError(
            f"no instruction-to-cycle factor for {core.value}",
            expected=f"one of {', '.join(c.value for c in CALIBRATION_INSNS)}",
            fix="the emulator still reports instruction counts; latency needs a calibrated core",
        )
    return fit_core(core, CALIBRATION_INSNS[core])
