"""Eager profiler and the Measurement record, on the bundled models (real timing, no assertions on speed)."""

from __future__ import annotations

import json

import pytest
import torch

from edgeprune.measure.record import Measurement
from edgeprune.measure.runner import time_calls
from edgeprune.models import create_model
from edgeprune.profiling.eager import EagerProfiler
from edgeprune.prune import Budget, Components, prune


@pytest.mark.parametrize("name", ["tdmpc", "recursive", "complex_cnn"])
def test_eager_measurement_is_complete_and_attributed(name: str) -> None:
    model = create_model(name)
    comps = Components.from_children(model)
    m = EagerProfiler(model, comps, threads=1, component_runs=5).measure(name, model.example_inputs(1), runs=5)
    assert m.latency.runs == 5 and m.latency.warmup == 10
    assert 0 < m.latency.min_ms <= m.latency.median_ms <= m.latency.p99_ms
    assert m.provenance.kind == "measured" and "eager" in m.provenance.how
    assert set(m.components) == set(comps.names)
    assert sum(c.share for c in m.components.values()) == pytest.approx(1.0)
    assert m.params == sum(p.numel() for p in model.parameters())
    assert m.macs == sum(c.macs for c in m.components.values()) > 0


def test_recurrent_component_time_sums_all_calls() -> None:
    model = create_model("recursive")
    comps = Components.from_children(model)
    times = EagerProfiler(model, comps, component_runs=3).component_latency(model.example_inputs(1))
    assert set(times) == set(comps.names) and all(t > 0 for t in times.values())


def test_pruned_model_has_fewer_macs_in_its_measurement() -> None:
    model = create_model("tdmpc")
    comps = Components.from_children(model)
    inputs = model.example_inputs(1)
    pruned = prune(model, inputs, Budget(default=0.5), components=comps).model
    before = EagerProfiler(model, comps, component_runs=2).measure("o", inputs, runs=2, warmup=1)
    after = EagerProfiler(pruned, comps, component_runs=2).measure("p", inputs, runs=2, warmup=1)
    assert after.macs < 0.6 * before.macs
    assert after.params < 0.6 * before.params


def test_threads_are_restored_after_profiling() -> None:
    before = torch.get_num_threads()
    model = create_model("simple")
    EagerProfiler(model, threads=1).measure("simple", model.example_inputs(1), runs=2, warmup=0)
    assert torch.get_num_threads() == before


def test_measurement_json_round_trip() -> None:
    model = create_model("simple")
    comps = Components.from_children(model)
    m = EagerProfiler(model, comps, component_runs=2).measure("simple", model.example_inputs(1), runs=3, warmup=1)
    again = Measurement.from_dict(json.loads(m.to_json()))
    assert again == m


def test_time_calls_rejects_zero_runs() -> None:
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_calls(lambda: None, runs=0, warmup=0)
