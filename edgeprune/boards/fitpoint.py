"""One calibration or check point: a reference latency (published, or the emulator's) and what a model predicts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FitPoint:
    """One calibration point and how well the fitted set reproduces it."""

    model: str
    board: str
    clock_hz: int
    measured_ms: float
    predicted_ms: float
    source: str

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_ms - self.measured_ms) / self.measured_ms
