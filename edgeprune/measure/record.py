"""The one record: one model measured (or estimated) by one runner, with the provenance of every number."""

from __future__ import annotations

import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from edgeprune.errors import EdgepruneError


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
    iqr_ms: float = 0.0  # interquartile range: the spread a busy machine widens
    p10_ms: float | None = None  # with p90_ms, the spread every table and plot shows (None: a record before 0.2)

    @classmethod
    def single(cls, ms: float) -> LatencyStats:
        """One figure (an estimate, or a board's cycle count): no spread."""
        return cls(1, 0, ms, ms, ms, ms, ms, 0.0, p10_ms=ms)

    @property
    def spread(self) -> tuple[float, float] | None:
        """(p10, p90) in ms: the spread shown beside the median; None when there is none (one figure, repeated)."""
        if self.p10_ms is None or self.p10_ms == self.p90_ms:
            return None
        return self.p10_ms, self.p90_ms

    def text(self, digits: int = 4) -> str:
        """The median with its p10–p90 spread, ``0.3800 [0.3510, 17.2000]`` (the median alone without spread)."""
        spread = self.spread
        median = f"{self.median_ms:.{digits}f}"
        return median if spread is None else f"{median} [{spread[0]:.{digits}f}, {spread[1]:.{digits}f}]"

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
            iqr_ms=float(np.percentile(a, 75) - np.percentile(a, 25)),
            p10_ms=float(np.percentile(a, 10)),
        )


@dataclass
class ComponentShare:
    """One component's part of a measurement."""

    latency_ms: float | None = None
    share: float | None = None  # fraction of the summed component latency (or instructions, without a timer)
    macs: int | None = None
    params: int | None = None


@dataclass(frozen=True)
class LayerFigure:
    """One layer of a model on a board, per inference: cycles (measured, or estimated from instructions)."""

    index: int
    op: str
    component: str
    cycles: float  # 0 on an emulated core without a cycles/instruction factor
    instructions: float | None = None  # the emulated board's count


@dataclass
class Memory:
    """Bytes a model needs where it runs; ``None``: the runner cannot tell."""

    flash_bytes: int | None = None  # what is stored: the firmware image, or the model file the runtime loads
    arena_bytes: int | None = None  # the tensor arena (TFLM, our firmware)
    # which arena: "TFLM" (TensorFlow Lite Micro's) or "firmware" (our kernels' static buffer, ~100x smaller)
    arena: str | None = None
    ram_bytes: int | None = None  # the firmware's static RAM
    stack_bytes: int | None = None  # stack used by an inference (firmware's watermark)
    rss_delta_bytes: int | None = None  # host: resident memory grown while the runtime ran
    gpu_bytes: int | None = None  # CUDA: max allocated


@dataclass
class Measurement:
    """The one record every runner returns: latency (with its spread), memory, whether the model fits, per
    component and per layer figures, and the provenance of the numbers. Structured; ``notes`` are caveats for
    people, never data to parse back."""

    model: str
    runtime: str
    provenance: Provenance
    latency: LatencyStats | None = None
    memory: Memory = field(default_factory=Memory)
    fits: bool | None = None  # the board's own fit check (flash + SRAM with reserves), when there is one
    params: int | None = None
    macs: int | None = None
    instructions: float | None = None  # per inference, counted by the emulated board
    batch: int = 1  # samples per inference: the batch the model was exported with (latency is per inference)
    components: dict[str, ComponentShare] = field(default_factory=dict)
    layers: list[LayerFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # runtime-specific, e.g. gpu_compute_median_ms
    environment: dict[str, str] = field(default_factory=dict)  # board facts: versions, power mode, clocks

    @property
    def latency_ms(self) -> float:
        """Median latency; an error when the runner had no timer (instruction counts only)."""
        if self.latency is None:
            raise EdgepruneError(
                f"{self.runtime} on {self.provenance.where} gave no latency",
                fix="its notes say: " + ("; ".join(self.notes) or "nothing"),
            )
        return self.latency.median_ms

    @property
    def components_ms(self) -> dict[str, float]:
        """Latency per component (0.0 where a component has no time of its own)."""
        return {c: s.latency_ms or 0.0 for c, s in self.components.items()}

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
        data["memory"] = Memory(**data.get("memory", {}))
        data["components"] = {k: ComponentShare(**v) for k, v in data.get("components", {}).items()}
        data["layers"] = [LayerFigure(**v) for v in data.get("layers", [])]
        return cls(**data)
