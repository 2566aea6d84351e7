"""The one profiler contract: activate / infer / deactivate, and a timed measure() on top."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil

from edgeprune.measure.record import LatencyStats, Measurement, Provenance
from edgeprune.measure.timing import time_samples


class Profiler(abc.ABC):
    """Runs one model on one runtime. Use as a context manager; ``infer`` only between activate/deactivate."""

    runtime: str = "?"

    def __enter__(self) -> Profiler:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load the model / open the session (default: nothing to do)."""

    def deactivate(self) -> None:
        """Release what activate took (default: nothing to do)."""

    @abc.abstractmethod
    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Run one inference and return the outputs as numpy arrays (synchronised: the work is done)."""

    @abc.abstractmethod
    def provenance(self) -> Provenance:
        """Where this profiler's numbers come from."""

    def extras(self, measurement: Measurement, inputs: Sequence[Any]) -> None:
        """Add runtime-specific facts (per-component times, arena, ...) to a finished measurement."""

    def measure(self, model_name: str, inputs: Sequence[Any], runs: int = 50, warmup: int = 10) -> Measurement:
        """Time ``runs`` inferences after ``warmup`` untimed ones, and record memory where the runtime can tell."""
        rss_before = psutil.Process().memory_info().rss
        with self:
            stats = time_calls(lambda: self.infer(inputs), runs=runs, warmup=warmup)
            rss_delta = psutil.Process().memory_info().rss - rss_before
            measurement = Measurement(model_name, self.runtime, self.provenance(), latency=stats)
            measurement.peak_memory["rss_delta_bytes"] = max(0, rss_delta)
            self.extras(measurement, inputs)
        return measurement


def time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> LatencyStats:
    """Latency statistics of ``fn`` (wall clock, perf_counter; the same loop the board-side runner uses)."""
    return LatencyStats.from_samples(time_samples(fn, runs, warmup), warmup)
