"""Measurement: one model on one runtime on one machine or board, with the provenance of every number."""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Provenance:
    """Where a number comes from: ``measured`` on a machine/board, or ``estimated`` by a named model."""

    kind: Literal["measured", "estimated"]
    where: str  # machine or board
    how: str  # runtime and version, or the estimator and what it was fitted to

    @property
    def label(self) -> str:
        return f"{self.kind} on {self.where} ({self.how})" if self.kind == "measured" else f"estimate: {self.how}"

    @classmethod
    def host(cls, how: str) -> Provenance:
        """Measured on this machine."""
        return cls("measured", f"host {platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'})", how)


@dataclass(frozen=True)
class LatencyStats:
    """Latency over ``runs`` timed runs after ``warmup`` untimed ones, in milliseconds."""

    runs: int
    warmup: int
    min_ms: float
    median_ms: float
    mean_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float

    @classmethod
    def from_samples(cls, samples_ms: list[float], warmup: int) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=float)
        return cls(
            runs=len(a),
            warmup=warmup,
            min_ms=float(a.min()),
            median_ms=float(np.median(a)),
            mean_ms=float(a.mean()),
            p90_ms=float(np.percentile(a, 90)),
            p99_ms=float(np.percentile(a, 99)),
            std_ms=float(statistics.pstdev(a)) if len(a) > 1 else 0.0,
        )


@dataclass
class ComponentShare:
    """One component's part of a measurement."""

    latency_ms: float | None = None
    share: float | None = None  # fraction of the summed component latency
    macs: int | None = None
    params: int | None = None


@dataclass
class Measurement:
    """Latency, memory and size of one model on one runtime, per component where it can be had."""

    model: str
    runtime: str
    provenance: Provenance
    latency: LatencyStats | None = None
    peak_memory: dict[str, int] = field(default_factory=dict)  # e.g. rss_delta_bytes, arena_bytes
    params: int | None = None
    macs: int | None = None
    artifact_bytes: int | None = None
    components: dict[str, ComponentShare] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # runtime-specific, e.g. gpu_compute_median_ms
    environment: dict[str, str] = field(default_factory=dict)  # board facts: versions, power mode, clocks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        data["provenance"] = Provenance(**data["provenance"])
        if data.get("latency") is not None:
            data["latency"] = LatencyStats(**data["latency"])
        data["components"] = {k: ComponentShare(**v) for k, v in data.get("components", {}).items()}
        return cls(**data)
