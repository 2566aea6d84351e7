"""Instructions -> cycles on the emulated board: one cycles-per-instruction factor per core, fitted to the
MLPerf Tiny keyword-spotting and anomaly-detection results (``boards/cost_models/calibration.toml``).

QEMU counts instructions, not cycles. The factor turns the instruction count of *our* kernels into the
cycles the published stack needed for the same model, so it folds together the core's CPI and the
difference between our plain C kernels and that stack's kernels. It is an estimate and labelled as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.boards import _toml
from edgeprune.boards.schema import Core
from edgeprune.errors import EdgepruneError

# Instructions per inference of the bundled MLPerf Tiny models (edgeprune.models.mlperf_tiny, seed 0, int8,
# 32 random calibration samples) in the emulated firmware, measured with -icount shift=0.
# tests/test_deploy_emulator.py re-measures them and fails if they drift by more than 1 %; regenerate them
# with `python -m edgeprune.deploy.mcu.calibrate` after changing the kernels or the firmware.
CALIBRATION_INSNS: dict[Core, dict[str, int]] = {
    Core.CORTEX_M4: {"kws_dscnn": 37_460_000, "ad_autoencoder": 1_701_500},
    Core.CORTEX_M7: {"kws_dscnn": 37_369_500, "ad_autoencoder": 1_703_500},
}
# Which published stack each core's factor is fitted to (cost_models/calibration.toml).
CALIBRATION_STACK = {Core.CORTEX_M4: "cortex-m4/tflm-reference", Core.CORTEX_M7: "cortex-m7/x-cube-ai"}


@dataclass(frozen=True)
class FitPoint:
    model: str
    insns: int
    measured_cycles: float
    predicted_cycles: float

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_cycles - self.measured_cycles) / self.measured_cycles


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


def _published_cycles(stack: str) -> dict[str, float]:
    from importlib import resources

    text = (resources.files("edgeprune.boards") / "cost_models" / "calibration.toml").read_text(encoding="utf-8")
    points = _toml.loads(text)["stacks"][stack]["points"]
    return {p["model"]: p["latency_ms"] * 1e-3 * p["clock_hz"] for p in points}


def fit_core(core: Core, insns: dict[str, int]) -> CoreCost:
    """Least squares on relative error: c = sum(I/C) / sum((I/C)^2) over the calibration models."""
    stack = CALIBRATION_STACK[core]
    cycles = _published_cycles(stack)
    ratios = [insns[m] / cycles[m] for m in insns]
    c = sum(ratios) / sum(r * r for r in ratios)
    fit = tuple(FitPoint(m, insns[m], cycles[m], c * insns[m]) for m in insns)
    return CoreCost(core, c, stack, fit)


def core_cost(core: Core) -> CoreCost:
    if core not in CALIBRATION_INSNS or not all(CALIBRATION_INSNS[core].values()):
        raise EdgepruneError(
            f"no instruction-to-cycle factor for {core.value}",
            expected=f"one of {', '.join(c.value for c in CALIBRATION_INSNS)}",
            fix="the emulator still reports instruction counts; latency needs a calibrated core",
        )
    return fit_core(core, CALIBRATION_INSNS[core])
