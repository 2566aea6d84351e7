"""The one runner contract: a :class:`Runner` measures a :class:`Subject` and returns a :class:`Measurement`.

Host runtimes, MCU boards (emulated or on a serial port), Linux boards over SSH and the cost model are all
runners (Polygraphy-style: one object per way of running, constructed with its options, asked to measure).
A :class:`Subject` carries the model and what has been made from it (the export), so the runners measuring
one model share one export instead of re-making or re-reading it. :class:`Profiler` is the timing half of a
host runtime runner: activate / infer / deactivate on one artifact, and a timed ``measure`` on top.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psutil

from edgeprune.measure.record import LatencyStats, Measurement, Provenance
from edgeprune.measure.timing import time_samples

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeprune.export.api import ExportResult


@dataclass
class Subject:
    """One model to measure: the module, its example inputs and a work directory. ``export`` makes the artifacts
    once and hands them to every runner measuring this subject."""

    label: str
    model: nn.Module
    inputs: tuple[torch.Tensor, ...]
    workdir: Path
    _export: ExportResult | None = field(default=None, repr=False)
    _made: tuple[frozenset[str], Any] = field(default=(frozenset(), None), repr=False)

    def export(self, *targets: str, calibration: Any = None) -> ExportResult:
        """The export holding at least ``targets`` (``onnx``, ``tflite``, ``tflm``), int8 from ``calibration``
        when given: made on the first call, and again only for a target or calibration not made yet."""
        made, made_calibration = self._made
        if self._export is None or not set(targets) <= made or calibration is not made_calibration:
            from edgeprune.export import export

            union = tuple(sorted(set(targets) | (made if calibration is made_calibration else set())))
            self._export = export(self.model, self.inputs, self.workdir, targets=union, calibration=calibration,
                                  int8=calibration is not None, force=True)  # fmt: skip
            self._made = (frozenset(union), calibration)
        return self._export


class Runner(abc.ABC):
    """One way of measuring a model (a runtime here, a board, an estimator). ``name`` says which, for people;
    ``times_here``: it times on this machine's CPU, so nothing else should run here while it measures."""

    name: str = "?"
    times_here: bool = False

    @abc.abstractmethod
    def measure(self, subject: Subject) -> Measurement:
        """Measure (or estimate) ``subject``; the record says which through its provenance."""


def need_calibration(calibration: Any, what: str) -> None:
    """Refuse to build an int8 model without calibration samples (int8 is never calibrated on noise)."""
    if calibration is None:
        from edgeprune.errors import EdgepruneError

        raise EdgepruneError(
            f"{what} runs the int8 model, which needs calibration samples",
            fix="pass calibration samples (--calib samples.npz)",
        )


class Profiler(abc.ABC):
    """Runs one artifact on one runtime. Use as a context manager; ``infer`` only between activate/deactivate."""

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

    def samples(self, inputs: Sequence[Any], runs: int, warmup: int) -> list[float]:
        """Wall-clock ms of ``runs`` inferences after ``warmup`` untimed ones (between activate and deactivate)."""
        return time_samples(lambda: self.infer(inputs), runs, warmup)

    def record(self, model_name: str, samples_ms: list[float], warmup: int, inputs: Sequence[Any]) -> Measurement:
        """The measurement of timed samples, with the runtime's extras (still active)."""
        measurement = Measurement(model_name, self.runtime, self.provenance(),
                                  latency=LatencyStats.from_samples(samples_ms, warmup))  # fmt: skip
        self.extras(measurement, inputs)
        return measurement

    def measure(self, model_name: str, inputs: Sequence[Any], runs: int = 50, warmup: int = 10) -> Measurement:
        """Time ``runs`` inferences after ``warmup`` untimed ones, and record memory where the runtime can tell."""
        rss_before = psutil.Process().memory_info().rss
        with self:
            samples = self.samples(inputs, runs, warmup)
            rss_delta = psutil.Process().memory_info().rss - rss_before
            measurement = self.record(model_name, samples, warmup, inputs)
        measurement.memory.rss_delta_bytes = max(0, rss_delta)
        return measurement


@dataclass
class Paired:
    """Two artifacts timed in alternation: their measurements and the latency ratio a / b of every round."""

    a: Measurement
    b: Measurement
    ratios: list[float]


def measure_paired(
    a: tuple[str, Profiler, Sequence[Any]],
    b: tuple[str, Profiler, Sequence[Any]],
    *,
    rounds: int = 6,
    runs: int = 50,
    warmup: int = 10,
) -> Paired:
    """Time two (label, profiler, inputs) in alternation: both active, both warmed up, then ``rounds`` rounds of
    ``runs // rounds`` runs each, in ABBA order, so load on a busy machine falls on both alike. Each round gives
    one ratio of medians (a / b); the measurements pool every round's samples."""
    if rounds < 2:
        raise ValueError(f"rounds must be >= 2 to interleave, got {rounds}")
    per_round = max(1, runs // rounds)
    pooled: dict[int, list[float]] = {0: [], 1: []}
    ratios: list[float] = []
    with a[1], b[1]:
        for _, profiler, inputs in (a, b):
            profiler.samples(inputs, 1, warmup)
        for r in range(rounds):
            got: dict[int, list[float]] = {}
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                _, profiler, inputs = (a, b)[i]
                got[i] = profiler.samples(inputs, per_round, 0)
                pooled[i] += got[i]
            ratios.append(float(np.median(got[0]) / np.median(got[1])))
        ma, mb = (p.record(label, pooled[i], warmup, inputs) for i, (label, p, inputs) in enumerate((a, b)))
    note = f"timed in alternation with its counterpart: {rounds} ABBA rounds of {per_round} runs"
    ma.notes.append(note)
    mb.notes.append(note)
    return Paired(ma, mb, ratios)


def time_calls(fn: Callable[[], Any], runs: int, warmup: int) -> LatencyStats:
    """Latency statistics of ``fn`` (wall clock, perf_counter; the same loop the board-side runner uses)."""
    return LatencyStats.from_samples(time_samples(fn, runs, warmup), warmup)


def loads_note(what: str, where: str) -> str:
    """The caveat of a runner that knows only the size of what its runtime loads."""
    return f"flash_bytes = size of the {what} the runtime loads; arena_bytes not measured (no tensor arena {where})"
