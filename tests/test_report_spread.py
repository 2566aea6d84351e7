"""Tables show p10–p90 beside every median and plots draw it as error bars; components appear in the model's
declared order everywhere; the budget history hides no component and draws the last change as a step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgeprune.measure.record import ComponentShare, LatencyStats, Measurement, Provenance
from edgeprune.pipeline.compare import Comparison, EngineRow
from edgeprune.pipeline.outputs import budgets_figure
from edgeprune.pipeline.plots import component_order, error_bars
from edgeprune.pipeline.report import load_sections
from edgeprune.pipeline.runlog import Point

TDMPC = ["encoder", "dynamics", "reward", "policy", "qs"]  # the model's declared order


def _measured(samples: list[float], components: dict[str, float]) -> Measurement:
    m = Measurement("m", "pytorch-eager", Provenance.host("torch"), LatencyStats.from_samples(samples, warmup=1))
    m.components = {c: ComponentShare(latency_ms=v) for c, v in components.items()}
    return m


def test_the_median_is_shown_with_its_p10_p90_spread() -> None:
    stats = LatencyStats.from_samples([0.38] * 8 + [17.2, 17.2], warmup=0)  # the eager: a heavy tail
    assert stats.spread == pytest.approx((0.38, 17.2))
    assert stats.text() == "0.3800 [0.3800, 17.2000]"
    assert LatencyStats.single(11.8).spread is None and LatencyStats.single(11.8).text(3) == "11.800"  # estimate
    assert LatencyStats(5, 1, 1.0, 1.0, 1.0, 1.2, 1.3, 0.1).text() == "1.0000"  # an old record without p10
    assert error_bars([1.0, 2.0], [(0.5, 3.0), None]) == [[0.5, 0.0], [2.0, 0.0]]
    assert error_bars([1.0], [None]) is None


def test_compare_table_and_report_show_the_spread_in_declared_component_order(tmp_path: Path) -> None:
    # an engine that lists components in its own order (by time), as ONNX Runtime's profile does
    by_time = {"qs": 0.4, "(unattributed)": 0.05, "encoder": 0.3, "reward": 0.1, "dynamics": 0.2, "policy": 0.1}
    rows = [EngineRow(engine, _measured([1.0, 1.1, 1.2, 5.0], by_time), _measured([0.5, 0.6, 0.7, 3.0], by_time))
            for engine in ("pytorch-eager", "onnxruntime")]  # fmt: skip
    comparison = Comparison(rows, {"original": 100, "pruned": 50}, components=TDMPC)
    console = Console(width=200, record=True)
    console.print(comparison.table())
    text = console.export_text()
    assert "original ms [p10, p90]" in text  # the header's brackets are text, not rich markup
    assert "1.1500 [1.0300, 3.8600]" in text and "0.6500 [0.5300, 2.3100]" in text
    comparison.save(tmp_path / "compare.json")
    sections = load_sections([tmp_path / "compare.json"])
    assert [r[0] for r in sections[1].rows] == [*TDMPC, "(unattributed)"]
    assert json.loads((tmp_path / "compare.json").read_text())["components"] == TDMPC


def test_budget_history_gives_every_component_its_own_row_and_a_last_step() -> None:
    m = _measured([1.0, 2.0], {})
    budgets = [dict.fromkeys(TDMPC, 0.0), {**dict.fromkeys(TDMPC, 0.2), "encoder": 0.0},
               {**dict.fromkeys(TDMPC, 0.2), "encoder": 0.0, "qs": 0.3}]  # fmt: skip
    points = [Point(i, b, m, 0.0, True, 0.1, None) for i, b in enumerate(budgets)]
    points.append(Point(3, {**budgets[2], "reward": 0.5}, m, -1.0, False, 0.1, "reward", "too costly"))
    fig = budgets_figure(points)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == TDMPC  # reward and qs (equal budgets) never share an axis
    qs = axes[TDMPC.index("qs")].lines[0]  # the step line
    xs, ys = qs.get_data()
    assert ys[-1] == pytest.approx(0.3) and xs[-1] > 2  # the change at the last kept point is a step, not a tick
    assert max(axes[TDMPC.index("reward")].lines[0].get_data()[1]) == pytest.approx(0.2)  # rejected: not drawn


def test_component_order_is_the_declared_one_then_the_rest() -> None:
    assert component_order(TDMPC, {"qs": 1, "x": 2}, ["encoder", "qs"]) == ["encoder", "qs", "x"]
