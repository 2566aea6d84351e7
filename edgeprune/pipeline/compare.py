"""Compare the original and the pruned model in eager mode and every engine available, in one run: per engine
the two are timed in alternation (ABBA rounds), so the speedup holds on a busy machine."""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape
from rich.table import Table
from torch import nn

from edgeprune.boards import BoardProfile, NoCostModelError
from edgeprune.boards.runner import CostModelRunner
from edgeprune.io import write_atomic
from edgeprune.measure.record import LatencyStats, Measurement
from edgeprune.measure.runner import Subject, measure_paired
from edgeprune.pipeline.plots import grouped_bars
from edgeprune.profiling.engines import ENGINES, finish, open_profiler
from edgeprune.prune import Components
from edgeprune.prune.counting import macs_per_component

logger = logging.getLogger(__name__)
VARIANTS = ("original", "pruned")


@dataclass
class EngineRow:
    """One engine's measurements of both variants."""

    engine: str
    original: Measurement
    pruned: Measurement
    ratios: list[float] = field(default_factory=list)  # original / pruned latency of each interleaved round

    @property
    def speedup(self) -> float:
        """Original latency / pruned latency on this engine: the median of the rounds' ratios when timed in
        alternation, else the ratio of medians (an estimate)."""
        if self.ratios:
            return float(statistics.median(self.ratios))
        return _median(self.original) / _median(self.pruned)

    @property
    def spread(self) -> tuple[float, float] | None:
        """Lowest and highest round ratio (None for an estimate)."""
        return (min(self.ratios), max(self.ratios)) if self.ratios else None


@dataclass
class Comparison:
    """Eager vs engines, original vs pruned, with the ideal speedup from the MAC reduction."""

    rows: list[EngineRow]
    macs: dict[str, int]
    board: str | None = None
    notes: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # the model's declared order: tables and plots follow it

    @property
    def ideal_speedup(self) -> float:
        return self.macs["original"] / self.macs["pruned"] if self.macs["pruned"] else float("inf")

    def row(self, engine: str) -> EngineRow:
        return next(r for r in self.rows if r.engine == engine)

    HEADER = ("engine", "original ms [p10, p90]", "pruned ms [p10, p90]", "pruned speedup", "round range",
              "vs eager (orig / pruned)", "source")  # fmt: skip

    def text_rows(self) -> list[list[str]]:
        """The comparison as text cells (``HEADER`` columns); estimates are marked and never compared to eager."""
        eager = self.row("pytorch-eager")
        rows = []
        for r in self.rows:
            estimated = r.original.provenance.kind == "estimated"
            vs_eager = "-" if estimated else f"{_ratio(eager.original, r.original)} / {_ratio(eager.pruned, r.pruned)}"
            source = r.original.provenance.how if estimated else f"measured: {r.original.provenance.how}"
            rows.append(
                [
                    r.engine + (" (estimate)" if estimated else ""),
                    _stats(r.original).text(),
                    _stats(r.pruned).text(),
                    f"{r.speedup:.2f}x",
                    "-" if r.spread is None else f"{r.spread[0]:.2f}-{r.spread[1]:.2f}x",
                    vs_eager,
                    source,
                ]
            )
        return rows

    @property
    def caption(self) -> str:
        return (
            f"ideal speedup from MACs: {self.ideal_speedup:.2f}x "
            f"({self.macs['original']:,} -> {self.macs['pruned']:,} MACs per example); "
            "estimates are not measurements"
        )

    def table(self) -> Table:
        t = Table(title=escape("Latency per engine: original vs pruned (median ms [p10, p90])"), caption=self.caption)
        for col in self.HEADER:  # "[p10, p90]" is text, not rich markup
            t.add_column(escape(col), justify="left" if col in ("engine", "source") else "right")
        for row in self.text_rows():
            source = row[-1]
            t.add_row(*row[:-1], source if len(source) < 70 else source[:67] + "...")
        return t

    def plot_png(self) -> bytes:
        """Grouped bars: median latency per engine with p10–p90 error bars, original vs pruned (log scale;
        estimates hatched)."""
        return grouped_bars(
            [r.engine for r in self.rows],
            [_median(r.original) for r in self.rows],
            [_median(r.pruned) for r in self.rows],
            "median latency (ms, log; bars p10-p90)",
            title=f"original vs pruned (ideal speedup from MACs {self.ideal_speedup:.2f}x)\nhatched = estimate",
            log=True,
            hatched=[r.original.provenance.kind == "estimated" for r in self.rows],
            spreads=([_stats(r.original).spread for r in self.rows], [_stats(r.pruned).spread for r in self.rows]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "macs": self.macs,
            "components": self.components,
            "ideal_speedup": self.ideal_speedup,
            "notes": self.notes,
            "engines": [
                {
                    "engine": r.engine,
                    "speedup": r.speedup,
                    "round_ratios": r.ratios,
                    "original": r.original.to_dict(),
                    "pruned": r.pruned.to_dict(),
                }
                for r in self.rows
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        rows = [
            EngineRow(
                e["engine"],
                Measurement.from_dict(e["original"]),
                Measurement.from_dict(e["pruned"]),
                list(e.get("round_ratios", [])),
            )
            for e in data["engines"]
        ]
        return cls(rows, dict(data["macs"]), data.get("board"), list(data.get("notes", [])),
                   list(data.get("components", [])))  # fmt: skip

    def save(self, json_path: str | os.PathLike, png_path: str | os.PathLike | None = None) -> None:
        write_atomic(json_path, json.dumps(self.to_dict(), indent=2))
        if png_path is not None:
            write_atomic(png_path, self.plot_png())


def _ratio(a: Measurement, b: Measurement) -> str:
    return f"{_median(a) / _median(b):.2f}x"


def _median(m: Measurement) -> float:
    return _stats(m).median_ms


def _stats(m: Measurement) -> LatencyStats:
    assert m.latency is not None
    return m.latency


def compare(
    original: nn.Module,
    pruned: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    workdir: str | os.PathLike,
    *,
    calibration: Any = None,
    board: BoardProfile | None = None,
    runs: int = 50,
    warmup: int = 10,
    rounds: int = 10,
    threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> Comparison:
    """Export both models into ``workdir`` once and time them on every engine available here.

    Engines: PyTorch eager, ONNX Runtime, LiteRT float32 and (with ``calibration``) int8, the TFLite
    Micro host interpreter (host time), TensorRT on a CUDA GPU, and for an MCU ``board`` its cost-model
    estimate (labelled). Per engine, original and pruned are timed in alternation (``rounds`` ABBA rounds of
    ``runs // rounds`` runs each), so a busy machine slows both alike; the speedup is the median of the
    per-round ratios, with their spread. Without calibration samples the int8 engines are skipped, with a
    note: int8 is never calibrated on noise.
    """
    say = progress or logger.info
    inputs = tuple(example_inputs)
    work = Path(workdir)
    notes: list[str] = []
    subjects = {v: Subject(v, m.eval(), inputs, work / v) for v, m in zip(VARIANTS, (original, pruned), strict=True)}
    macs = {v: sum(macs_per_component(s.model, inputs, Components.from_children(s.model)).values())
            for v, s in subjects.items()}  # fmt: skip
    if calibration is None:
        notes.append("int8 LiteRT and TFLite Micro skipped: no calibration samples (pass --calib)")
    engines = []
    for spec in ENGINES.values():
        why = spec.available()
        if why:
            notes.append(f"{spec.name} skipped: {why}")
        elif calibration is not None or not spec.int8:
            engines.append(spec)
    targets = tuple(sorted({t for spec in engines for t in spec.targets}))
    for variant, subject in subjects.items():
        say(f"{variant}: exporting")
        subject.export(*targets, calibration=calibration)
    rows = []
    feeds = [t.numpy() for t in inputs]
    for spec in engines:
        say(f"timing {spec.name}: original and pruned in alternation")
        profilers = {v: open_profiler(spec.name, s, threads, calibration) for v, s in subjects.items()}
        paired = measure_paired(("original", profilers["original"], feeds), ("pruned", profilers["pruned"], feeds),
                                rounds=rounds, runs=runs, warmup=warmup)  # fmt: skip
        rows.append(EngineRow(spec.name, finish(paired.a, subjects["original"], spec.name),
                              finish(paired.b, subjects["pruned"], spec.name), paired.ratios))  # fmt: skip
    if board is not None:
        estimates = _board_estimates(board, subjects, notes)
        if estimates is not None:
            rows.append(EngineRow(board.name, *estimates))
    return Comparison(rows, macs, board.name if board else None, notes, Components.from_children(original).names)


def _board_estimates(
    board: BoardProfile, subjects: dict[str, Subject], notes: list[str]
) -> tuple[Measurement, Measurement] | None:
    """The board's cost-model latency of both variants (None, with a note, if it has no cost model)."""
    runner = CostModelRunner(board)
    try:
        original, pruned = (runner.measure(subjects[v]) for v in VARIANTS)
    except NoCostModelError as exc:
        notes.append(f"{board.name}: {exc.problem}")
        return None
    for m in (original, pruned):  # compare never exported the int8 bundle for the board: latency only
        m.notes = [n for n in m.notes if not n.startswith("no calibration samples")]
    return original, pruned
