"""The analytic cost set derived from the emulated board (``cost_models/emulated.toml``): how an op finds its rate,
the TOML round trip, and the shipped set's agreement with the emulator on every bundled model (its check, written
by ``python -m edgeprune.deploy.mcu.op_costs``; the emulator side is re-measured by benchmarks/cycle_model.py)."""

from __future__ import annotations

import pytest
import torch

from edgeprune.boards import estimate_latency, load_board, load_cost_model, ops_from_module
from edgeprune.boards.cost_model import FitPoint
from edgeprune.boards.op_costs import DerivedCosts, OpRate, load_derived_costs, parse_derived, render_derived
from edgeprune.boards.ops import OpCost, OpKind
from edgeprune.models import list_models

RATES = {
    "fully_connected": OpRate("macs", 2.0, 100.0),
    "LayerNorm": OpRate("output_elements", 50.0, 5000.0),
    "Tanh": OpRate("output_elements", 10.0, 300.0),
    "activation": OpRate("output_elements", 10.0, 300.0),
    "other": OpRate("output_elements", 10.0, 300.0),
    "GRUCell": OpRate("weights", 3.0, 900.0),
}
SET = DerivedCosts("cortex-m4/test", "a test set", "made up", RATES,
                   (FitPoint("simple", "nucleo-l4r5zi", 120_000_000, 1.0, 1.1, "made up"),))  # fmt: skip


def test_an_op_is_costed_by_its_kind_for_macs_else_its_class_else_its_kind() -> None:
    fc = OpCost("fc", OpKind.FULLY_CONNECTED, macs=1000, output_elements=10, module="Linear")
    assert SET.op_cycles(fc) == 2.0 * 1000 + 100
    ln = OpCost("ln", OpKind.ELEMENTWISE, macs=0, output_elements=64, module="LayerNorm")
    assert SET.op_cycles(ln) == 50 * 64 + 5000
    elu = OpCost("elu", OpKind.ACTIVATION, macs=0, output_elements=64, module="ELU")  # no rate of its own: kind
    assert SET.op_cycles(elu) == 10 * 64 + 300
    gru = OpCost("gru", OpKind.OTHER, macs=0, output_elements=32, weights=6_000, module="GRUCell")
    assert SET.op_cycles(gru) == 3 * 6_000 + 900
    odd = OpCost("x", OpKind.DATA_MOVEMENT, macs=0, output_elements=8, module="Foo")  # nothing: "other"
    assert SET.op_cycles(odd) == 10 * 8 + 300


def test_toml_round_trip() -> None:
    text = render_derived({SET.name: SET}, "a header\nof two lines")
    assert text.startswith("# a header\n# of two lines\n")
    back = parse_derived(text)[SET.name]
    assert back.rates == SET.rates and back.description == SET.description
    assert [(p.model, p.measured_ms, p.predicted_ms) for p in back.check] == [("simple", 1.0, 1.1)]
    assert "+10.0 to +10.0 %" in back.fitted_to


def test_shipped_set_agrees_with_the_emulator_within_15_percent_on_every_bundled_model() -> None:
    costs = load_derived_costs()["cortex-m4/emulated"]
    assert {p.model for p in costs.check} == set(list_models())
    assert all(abs(p.error_pct) < 15 for p in costs.check), [(p.model, round(p.error_pct, 1)) for p in costs.check]
    assert all(r.cycles_per_unit >= 0 and r.fixed_cycles >= 0 for r in costs.rates.values())


def test_the_reference_board_estimates_with_the_derived_set() -> None:
    board = load_board("nucleo-l4r5zi")
    assert board.cost_model == "cortex-m4/emulated"
    ops = [OpCost("fc", OpKind.FULLY_CONNECTED, macs=4096, output_elements=64, module="Linear")]
    est = estimate_latency(ops, board)
    assert est.cycles == pytest.approx(load_cost_model("cortex-m4/emulated").op_cycles(ops[0]))
    assert "against the emulated nucleo-l4r5zi on 9 bundled models" in est.label


class _Pair(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair, self.norm, self.act = _Pair(), torch.nn.LayerNorm(8), torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.pair(x)))
        return torch.cat([y * 2.0, y], -1)


def test_functional_ops_between_modules_are_recorded_where_they_run() -> None:
    ops = ops_from_module(_Net(), (torch.randn(2, 4),))
    assert [(o.name, o.kind, o.module) for o in ops] == [
        ("pair.a", OpKind.FULLY_CONNECTED, "Linear"),
        ("pair.b", OpKind.FULLY_CONNECTED, "Linear"),
        ("pair.add", OpKind.ADD, "add"),  # x + y inside a non-leaf module, named after it
        ("norm", OpKind.ELEMENTWISE, "LayerNorm"),  # its own F.layer_norm etc. are not recorded
        ("act", OpKind.ACTIVATION, "ReLU"),
        ("mul", OpKind.MUL, "mul"),
        ("cat", OpKind.DATA_MOVEMENT, "cat"),
    ]
    assert ops[2].output_elements == 8 and ops[-1].output_elements == 16  # per example
