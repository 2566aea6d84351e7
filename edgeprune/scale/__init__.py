"""Scaling out: sweeps of models × budgets × targets as Ray tasks, boards as Ray resources (docs/scale.md).
Ray is the optional ``scale`` extra; without it a sweep runs the same points serially."""

from edgeprune.scale.sweep import ModelEntry, SweepResult, SweepSpec, run_sweep
from edgeprune.scale.targets import Target

__all__ = ["ModelEntry", "SweepResult", "SweepSpec", "Target", "run_sweep"]
