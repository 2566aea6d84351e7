"""Derive the analytic model's per-op costs from the emulated board: ``python -m edgeprune.deploy.mcu.op_costs``.

Two microbenchmark models (:class:`VectorBench`, :class:`ImageBench`: one component per op class the bundled models
use, the functional add, mul and concatenation included; a standalone ReLU is always fused into the op before it
in these exports, so it costs nothing) are exported at three sizes and run on the emulated NUCLEO-L4R5ZI; each
component's estimated cycles (the cycle model, per layer, summed over the TFLite
layers it becomes) give, by least squares with non-negative coefficients, a cost per unit (MAC,
output element or weight), for FC and GRU cells one per output element too, and a fixed cost per call.
The rates are written to ``edgeprune/boards/cost_models/emulated.toml`` with ``--write``, together with the check
against the emulator on the bundled models when ``--check-json`` names the output of ``benchmarks/cycle_model.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgeprune.boards import load_board, ops_from_module
from edgeprune.boards.fitpoint import FitPoint
from edgeprune.boards.op_costs import DerivedCosts, OpRate, Unit, derived_path, render_derived, units
from edgeprune.boards.ops import OpCost
from edgeprune.deploy.mcu.api import bench_export, emulate
from edgeprune.errors import EdgepruneError
from edgeprune.io import write_atomic
from edgeprune.models.mlp import SimNorm

BOARD = "nucleo-l4r5zi"
NAME = "cortex-m4/emulated"
# c != hw: onnx2tf guesses the layout from the shape. Three sizes: a MAC kernel's three costs (per MAC, per output,
# per call) are determined; the other ops' two by least squares.
SIZES = ({"n": 64, "c": 8, "hw": 12}, {"n": 128, "c": 24, "hw": 10}, {"n": 256, "c": 16, "hw": 20})
# component -> (rate key, unit, whether a cost per output element is fitted besides the one per unit). Conv/FC are
# keyed by kind, the others by PyTorch class. Depthwise and pooling outputs are proportional to their MACs here.
RATES: dict[str, tuple[str, Unit, bool]] = {
    "fc": ("fully_connected", "macs", True),
    "layernorm": ("LayerNorm", "output_elements", False),
    "tanh": ("Tanh", "output_elements", False),
    "sigmoid": ("Sigmoid", "output_elements", False),
    "simnorm": ("SimNorm", "output_elements", False),
    "gru": ("GRUCell", "weights", True),
    "softmax": ("Softmax", "output_elements", False),
    "add": ("add", "output_elements", False),
    "mul": ("mul", "output_elements", False),
    "cat": ("cat", "output_elements", False),
    "conv": ("conv2d", "macs", False),  # a cost per output fits the microbenchmark's 3x3 convs, not 1x1 ones
    "dw": ("depthwise_conv2d", "macs", False),
    "pool": ("pooling", "macs", False),
    "mean": ("mean", "macs", False),
    "flatten": ("reshape", "none", False),
}
# Not measured, and free: int8 TFLite fuses a ReLU/ReLU6 into the op before it (the AOT kernels have no standalone
# RELU), also where the op records cannot fold it (after a LayerNorm, whose last ADD takes it).
FREE = ("ReLU", "ReLU6")
# Kinds without their own component take a measured class's rate (documented in docs/boards.md).
FALLBACKS = {"activation": "Tanh", "elementwise": "LayerNorm", "softmax": "Softmax", "other": "Tanh",
             "data_movement": "cat"}  # fmt: skip


class VectorBench(nn.Module):
    """One component per op class on a vector: FC, LayerNorm, Tanh, Sigmoid, SimNorm, GRU cell, softmax, and the
    functional add, mul and concatenation."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.fc = nn.Linear(n, n)
        self.layernorm = nn.LayerNorm(n)
        self.tanh = nn.Tanh()
        self.sigmoid = nn.Sigmoid()
        self.simnorm = SimNorm(8)
        self.gru = nn.GRUCell(n, n)
        self.softmax = nn.Softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.sigmoid(self.tanh(self.layernorm(self.fc(x))))
        v = self.softmax(self.gru(self.simnorm(v)))
        p = (v + x) * x  # functional ops: recorded as "add" and "mul"
        return torch.cat([p, p], -1)  # one scale on both sides: int8 TFLite refuses to concatenate two

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.n),)


class ImageBench(nn.Module):
    """One component per op class on an image: conv, depthwise conv, average pool, global mean, flatten."""

    def __init__(self, c: int, hw: int) -> None:
        super().__init__()
        self.c, self.hw = c, hw
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pool = nn.AvgPool2d(2)
        self.mean = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.mean(self.pool(self.dw(self.conv(img)))))

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, self.c, self.hw, self.hw),)


# The TFLite layers each component becomes (onnx2tf 1.x, int8), in order: per-layer cycles are summed by this, since
# weightless neighbours cannot be told apart by the export's component metadata. Checked on every run.
LAYERS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "VectorBench": [
        ("fc", ("FULLY_CONNECTED",)),
        ("layernorm", ("MEAN", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "MUL", "SUB", "ADD")),
        ("tanh", ("TANH",)),
        ("sigmoid", ("LOGISTIC",)),
        ("simnorm", ("RESHAPE", "SOFTMAX", "RESHAPE")),
        (
            "gru",
            (
                "FULLY_CONNECTED",
                "LOGISTIC",
                "MUL",
                "FULLY_CONNECTED",
                "LOGISTIC",
                "FULLY_CONNECTED",
                "ADD",
                "TANH",
                "SUB",
                "MUL",
                "ADD",
            ),
        ),
        ("softmax", ("SOFTMAX",)),
        ("add", ("ADD",)),
        ("mul", ("MUL",)),
        ("cat", ("CONCATENATION",)),
    ],
    "ImageBench": [
        ("conv", ("CONV_2D",)),
        ("dw", ("DEPTHWISE_CONV_2D",)),
        ("pool", ("AVERAGE_POOL_2D",)),
        ("mean", ("MEAN",)),
        ("flatten", ("RESHAPE",)),
    ],
}


def _bench(model: nn.Module, d: Path) -> tuple[dict[str, float], dict[str, OpCost]]:
    from edgeprune.export import export

    board = load_board(BOARD)
    inputs = model.example_inputs(1)
    calib = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    if not (d / "tflm" / "model.tflite").is_file():  # --work keeps the exports between runs
        export(model, inputs, d, targets=("onnx", "tflm"), calibration=calib, force=True)
    with emulate(board, d, d / "fw") as emu:
        m = bench_export(d, board, emu.port, emulated=True, runs=1, warmup=0, firmware=emu.firmware)
    plan = LAYERS[type(model).__name__]
    want = [op for _, ops in plan for op in ops]
    if [lay.op for lay in m.layers] != want:
        raise EdgepruneError(
            f"{type(model).__name__} exported to other TFLite layers than expected",
            expected=" ".join(want), fix=f"update LAYERS in {__name__} to: {' '.join(lay.op for lay in m.layers)}",
        )  # fmt: skip
    cycles, k = {}, 0
    for comp, ops in plan:
        cycles[comp] = sum(lay.cycles for lay in m.layers[k : k + len(ops)])
        k += len(ops)
    return cycles, {op.name: op for op in ops_from_module(model, inputs)}


def measure(work: Path) -> list[tuple[dict[str, float], dict[str, OpCost]]]:
    """Per size: estimated cycles per component on the emulated board, and the op record of each component."""
    out = []
    for k, size in enumerate(SIZES):
        torch.manual_seed(0)
        vec = _bench(VectorBench(size["n"]).eval(), work / f"vector-{k}")
        img = _bench(ImageBench(size["c"], size["hw"]).eval(), work / f"image-{k}")
        out.append(({**vec[0], **img[0]}, {**vec[1], **img[1]}))
    return out


def _fit(rows: list[list[float]], cycles: list[float]) -> list[float]:
    """Least squares with every coefficient >= 0: a feature whose coefficient comes out negative is dropped."""
    keep = list(range(len(rows[0])))
    while True:
        coef = np.linalg.lstsq(np.asarray(rows)[:, keep], np.asarray(cycles), rcond=None)[0]
        if (coef >= 0).all() or len(keep) == 1:
            out = [0.0] * len(rows[0])
            for k, c in zip(keep, coef, strict=True):
                out[k] = max(float(c), 0.0)
            return out
        keep.pop(int(np.argmin(coef)))


def derive(measured: list[tuple[dict[str, float], dict[str, OpCost]]]) -> dict[str, OpRate]:
    """Per component, least squares over the sizes: cycles = a·units [+ b·outputs] + c, all >= 0."""
    rates: dict[str, OpRate] = {}
    for comp, (key, unit, per_output) in RATES.items():
        cycles = [m[0].get(comp, 0.0) for m in measured]
        if unit == "none":
            rates[key] = OpRate(unit, 0.0, max(sum(cycles) / len(cycles), 0.0))
            continue
        ops = [m[1][comp] for m in measured]
        rows = [[units(op, unit), *([op.output_elements] if per_output else []), 1.0] for op in ops]
        coef = _fit(rows, cycles)
        rates[key] = OpRate(unit, coef[0], coef[-1], coef[1] if per_output else 0.0)
    for cls in FREE:
        rates[cls] = OpRate("output_elements", 0.0, 0.0)
    for kind, cls in FALLBACKS.items():
        rates.setdefault(kind, rates[cls])
    return rates


def check_points(costs: DerivedCosts, rows: list[dict]) -> tuple[FitPoint, ...]:
    """The derived set's estimate of each original bundled model beside the emulator's (``benchmarks/cycle_model.py``
    JSON rows)."""
    from edgeprune.models import create_model

    board = load_board(BOARD)
    points = []
    for row in rows:
        if row["pruned"]:
            continue
        torch.manual_seed(0)
        model = create_model(row["model"]).eval()
        cycles = sum(costs.op_cycles(op) for op in ops_from_module(model, model.example_inputs(1)))
        points.append(FitPoint(row["model"], BOARD, board.clock_hz, row["emulator_ms"], 1e3 * cycles / board.clock_hz,
                               costs.source))  # fmt: skip
    return tuple(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {derived_path()}")
    parser.add_argument("--check-json", help="benchmarks/cycle_model.py output: record the check on bundled models")
    parser.add_argument("--work", help="keep the microbenchmark exports in this directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rates = derive(measure(Path(args.work or tmp)))
    source = "the emulated NUCLEO-L4R5ZI's cycle model on a three-size microbenchmark (edgeprune.deploy.mcu.op_costs)"
    costs = DerivedCosts(NAME, "edgeprune AOT int8 kernels (DSP extension) on the Cortex-M4", source, rates, ())
    if args.check_json:
        rows = json.loads(Path(args.check_json).read_text(encoding="utf-8"))
        costs = DerivedCosts(NAME, costs.description, source, rates, check_points(costs, rows))
    for key, r in rates.items():
        print(
            f"{key:18} {r.unit:15}{r.cycles_per_unit:9.3f}/unit {r.cycles_per_output:8.2f}/output {r.fixed_cycles:9.0f}"
        )
    for p in costs.check:
        print(
            f"{p.model:16} emulator {p.measured_ms:9.3f} ms  analytic {p.predicted_ms:9.3f} ms  {p.error_pct:+6.1f} %"
        )
    if args.write:
        header = (
            "GENERATED by `python -m edgeprune.deploy.mcu.op_costs --write --check-json "
            "benchmarks/results/cycle_model.json`: do not edit by hand.\n"
            "cycles(op) = cycles_per_unit * units + cycles_per_output * output elements + fixed_cycles\n"
            "(edgeprune/boards/op_costs.py); `check`: the estimate of each bundled model beside the emulated board's\n"
            "(the error the set is labelled with)."
        )
        write_atomic(derived_path(), render_derived({NAME: costs}, header))


if __name__ == "__main__":
    main()
