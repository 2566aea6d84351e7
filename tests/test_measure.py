"""The ground floor: the record's JSON round trip, interleaved timing, and a subject exporting once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprune.measure.record import ComponentShare, LatencyStats, LayerFigure, Measurement, Memory, Provenance
from edgeprune.measure.runner import Profiler, Subject, measure_paired
from edgeprune.models import create_model


class Sleeper(Profiler):
    """A runtime whose inference logs its calls (the order of A and B is what is checked, not time)."""

    runtime = "sleep"

    def __init__(self, name: str, seconds: float, log: list[str]):
        self.name, self.seconds, self.log = name, seconds, log

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        self.log.append(self.name)
        time.sleep(self.seconds)
        return []

    def provenance(self) -> Provenance:
        return Provenance.host("time.sleep")


def test_paired_timing_alternates_in_abba_rounds_and_reports_a_ratio_per_round() -> None:
    log: list[str] = []
    paired = measure_paired(("a", Sleeper("A", 0.0, log), []), ("b", Sleeper("B", 0.0, log), []),
                            rounds=4, runs=8, warmup=1)  # fmt: skip
    runs = log[4:]  # after the warm-up of each (warmup + 1 untimed calls)
    blocks = ["".join(runs[i : i + 2]) for i in range(0, len(runs), 2)]
    assert blocks == ["AA", "BB", "BB", "AA", "AA", "BB", "BB", "AA"]  # ABBA: A first, then B first, ...
    assert len(paired.ratios) == 4 and all(r > 0 for r in paired.ratios)  # one ratio a / b per round
    assert paired.a.latency is not None and paired.a.latency.runs == 8 and paired.a.latency.iqr_ms >= 0
    assert "alternation" in paired.a.notes[-1]
    with pytest.raises(ValueError, match="rounds"):
        measure_paired(("a", Sleeper("A", 0, log), []), ("b", Sleeper("B", 0, log), []), rounds=1)


def test_the_record_round_trips_through_json() -> None:
    m = Measurement(
        "m", "edgeprune-aot-int8", Provenance("estimated", "emulated board", "QEMU x 0.6"),
        latency=LatencyStats.from_samples([1.0, 2.0, 3.0, 4.0], 1), memory=Memory(flash_bytes=10, arena_bytes=4),
        fits=True, instructions=1e6, components={"enc": ComponentShare(1.5, 0.6)},
        layers=[LayerFigure(0, "CONV_2D", "enc", 100.0, 160.0)],
    )  # fmt: skip
    back = Measurement.from_dict(m.to_dict())
    assert back == m and back.latency_ms == 2.5 and back.components_ms == {"enc": 1.5}
    assert Measurement("m", "r", m.provenance).components_ms == {}


def test_a_subject_exports_once_and_hands_the_export_on(tmp_path: Path) -> None:
    model = create_model("simple").eval()
    subject = Subject("s", model, model.example_inputs(1), tmp_path)
    first = subject.export("onnx")
    assert subject.export("onnx") is first  # the second runner gets the same export, not a new one
    assert (tmp_path / "model.onnx").is_file()
