"""TFLite Micro host interpreter: exact arena, op list, and host time (not board time)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.measure.record import Measurement, Memory, Provenance
from edgeprune.measure.runner import Profiler


class TFLMHostProfiler(Profiler):
    """Runs an int8 ``.tflite`` in the TFLM interpreter on this machine.

    Its arena is exact (found by bisection when not given); its latency is the **host's**: the
    interpreter on an x86/arm64 CPU, which says nothing about a Cortex-M board. Every call runs in a
    child process because the TFLM Python interpreter can crash on failed allocations.
    """

    runtime = "tflm-host"

    def __init__(self, tflite_path: str | os.PathLike, arena_bytes: int | None = None):
        self.path = Path(tflite_path)
        if not self.path.is_file():
            raise EdgepruneError(f"TFLite file {self.path} does not exist", fix="export with --to tflm first")
        self.data = self.path.read_bytes()
        self.arena_bytes = arena_bytes
        self._arena: int | None = None

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        raise EdgepruneError(
            "TFLMHostProfiler times invokes in a child process; use measure()",
            fix="compare outputs with edgeprune.export.tflm.run_tflm",
        )

    def samples(self, inputs: Sequence[Any], runs: int, warmup: int) -> list[float]:
        from edgeprune.export.tflm import MAX_ARENA, minimal_arena, time_tflm

        if self._arena is None:
            self._arena = self.arena_bytes or minimal_arena(self.data, len(inputs), MAX_ARENA)
        return time_tflm(self.data, self._arena, len(inputs), runs, warmup)

    def provenance(self) -> Provenance:
        return Provenance.host("TFLite Micro host interpreter: host CPU time, not board time")

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        measurement.memory = Memory(flash_bytes=len(self.data), arena_bytes=self._arena, arena="TFLM")
        measurement.notes.append(
            "host time of the TFLM reference kernels on this CPU; board time needs a board or the emulator"
        )
