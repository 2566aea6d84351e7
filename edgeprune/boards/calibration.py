"""Fit the cost-model coefficient sets to published measurements (least squares) and write them as data.

``python -m edgeprune.boards.calibration`` refits every set in ``cost_models/calibration.toml`` on the op
lists of the bundled MLPerf Tiny models and rewrites ``cost_models/coefficients.toml``; ``--check`` only
verifies that the shipped file matches a fresh fit (tests do the same).

Free parameters per set: ``k_conv`` and ``k_fc`` (cycles per MAC), plus the per-op overhead only when the set
has at least three points (then by least squares on relative error, so small models weigh as much as large
ones). With the published two points per stack (KWS, AD), the two-parameter system is
exactly determined, so the fit reproduces both points to rounding; the fit record still stores and reports
each point's error. A single cycles-per-MAC rate plus a per-op overhead (also two parameters) was rejected:
on the TFLM reference points it needs a negative overhead (KWS runs 8.2 cycles/MAC, AD 4.6).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from edgeprune.boards import _toml
from edgeprune.boards.cost_model import CostCoefficients, features, load_cost_models
from edgeprune.boards.errors import BoardError
from edgeprune.boards.fitpoint import FitPoint
from edgeprune.boards.ops import OpCost, ops_from_module
from edgeprune.io import write_atomic


@dataclass(frozen=True)
class StackCalibration:
    """The published points of one set ``core/stack``."""

    name: str
    description: str
    source: str
    per_op_overhead_prior_cycles: float
    points: tuple[tuple[str, str, int, float], ...]  # (model, board, clock_hz, latency_ms)


def calibration_path() -> Path:
    return Path(str(resources.files("edgeprune.boards") / "cost_models" / "calibration.toml"))


def coefficients_path() -> Path:
    return Path(str(resources.files("edgeprune.boards") / "cost_models" / "coefficients.toml"))


def load_calibration(text: str | None = None) -> dict[str, StackCalibration]:
    """The calibration points per set (from the shipped ``calibration.toml`` unless ``text`` is given)."""
    data = _toml.loads(calibration_path().read_text(encoding="utf-8") if text is None else text)
    return {
        name: StackCalibration(
            name=name,
            description=s["description"],
            source=s["source"],
            per_op_overhead_prior_cycles=float(s["per_op_overhead_prior_cycles"]),
            points=tuple((p["model"], p["board"], int(p["clock_hz"]), float(p["latency_ms"])) for p in s["points"]),
        )
        for name, s in data["stacks"].items()
    }


def calibration_ops(models: Sequence[str]) -> dict[str, list[OpCost]]:
    """Op lists (batch 1) of bundled models, from their PyTorch modules."""
    from edgeprune.models import create_model

    out = {}
    for name in models:
        torch.manual_seed(0)
        model = create_model(name).eval()
        out[name] = ops_from_module(model, model.example_inputs(1))
    return out


def fit_set(cal: StackCalibration, ops_by_model: Mapping[str, Sequence[OpCost]]) -> CostCoefficients:
    """Least-squares fit of one set; raises if the system is rank-deficient or a coefficient is not positive."""
    fit_overhead = len(cal.points) >= 3
    rows, cycles = [], []
    for model, _board, clock_hz, latency_ms in cal.points:
        ops = ops_by_model[model]
        conv = sum(features(op)[0] for op in ops)
        fc = sum(features(op)[1] for op in ops)
        measured = latency_ms * 1e-3 * clock_hz
        if fit_overhead:
            rows.append([conv, fc, len(ops)])
            cycles.append(measured)
        else:
            rows.append([conv, fc])
            cycles.append(measured - cal.per_op_overhead_prior_cycles * len(ops))
    x, y = np.asarray(rows, dtype=float), np.asarray(cycles, dtype=float)
    if fit_overhead:  # relative error: models from 1e4 to 1e8 cycles count alike
        x, y = x / y[:, None], np.ones_like(y)
    scale = np.abs(x).max(axis=0)  # columns span 1e1..1e6: scale for a well-conditioned solve
    coef, _res, rank, _sv = np.linalg.lstsq(x / scale, y, rcond=None)
    coef = coef / scale
    if rank < x.shape[1]:
        raise BoardError(
            f"cost model {cal.name}: calibration points do not determine {x.shape[1]} coefficients (rank {rank})",
            fix="add points on models with a different conv/FC mix",
        )
    if not all(c > 0 for c in coef[:2]) or (fit_overhead and coef[2] < 0):
        raise BoardError(f"cost model {cal.name}: fitted coefficients {coef.tolist()} are not physical (≤ 0)")
    k_conv, k_fc = float(coef[0]), float(coef[1])
    overhead = float(coef[2]) if fit_overhead else cal.per_op_overhead_prior_cycles
    fit = []
    for model, board, clock_hz, latency_ms in cal.points:
        ops = ops_by_model[model]
        conv = sum(features(op)[0] for op in ops)
        fc = sum(features(op)[1] for op in ops)
        predicted = (k_conv * conv + k_fc * fc + overhead * len(ops)) / clock_hz * 1e3
        fit.append(FitPoint(model, board, clock_hz, latency_ms, predicted, cal.source))
    return CostCoefficients(
        name=cal.name,
        description=cal.description,
        cycles_per_mac_conv=k_conv,
        cycles_per_mac_fc=k_fc,
        per_op_overhead_cycles=overhead,
        overhead_fitted=fit_overhead,
        fit=tuple(fit),
        source=cal.source,
    )


def fit_all(calibration: Mapping[str, StackCalibration] | None = None) -> dict[str, CostCoefficients]:
    """Fit every set of ``calibration`` (default: the shipped points)."""
    calibration = load_calibration() if calibration is None else calibration
    models = sorted({p[0] for cal in calibration.values() for p in cal.points})
    ops = calibration_ops(models)
    return {name: fit_set(cal, ops) for name, cal in calibration.items()}


def rounding_sensitivity(
    cal: StackCalibration, ops_by_model: Mapping[str, Sequence[OpCost]], half_step_ms: float = 0.05
) -> dict[str, float]:
    """Largest relative change (%) of each coefficient when every published latency moves by ±``half_step_ms``.

    The published latencies are rounded to 0.1 ms, so this is how precisely the data pin the coefficients.
    """
    base = fit_set(cal, ops_by_model)
    worst = {"cycles_per_mac_conv": 0.0, "cycles_per_mac_fc": 0.0}
    for signs in itertools.product((-1.0, 1.0), repeat=len(cal.points)):
        points = tuple((m, b, c, ms + sg * half_step_ms) for (m, b, c, ms), sg in zip(cal.points, signs, strict=True))
        moved = fit_set(dataclasses.replace(cal, points=points), ops_by_model)
        for key in worst:
            rel = abs(getattr(moved, key) / getattr(base, key) - 1.0) * 100.0
            worst[key] = max(worst[key], rel)
    return worst


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_coefficients(sets: Mapping[str, CostCoefficients]) -> str:
    """TOML text of fitted sets (what ``load_cost_models`` reads)."""
    lines = [
        "# GENERATED by `python -m edgeprune.boards.calibration` from calibration.toml: do not edit by hand.",
        "# cycles(op) = k_conv * conv_units + k_fc * fc_units + per_op_overhead (see edgeprune/boards/cost_model.py)",
        "",
    ]
    for name, c in sets.items():
        lines += [
            f"[sets.{_q(name)}]",
            f"description = {_q(c.description)}",
            f"source = {_q(c.source)}",
            f"cycles_per_mac_conv = {c.cycles_per_mac_conv!r}",
            f"cycles_per_mac_fc = {c.cycles_per_mac_fc!r}",
            f"per_op_overhead_cycles = {c.per_op_overhead_cycles!r}",
            f"overhead_fitted = {'true' if c.overhead_fitted else 'false'}",
            "fit = [",
        ]
        for p in c.fit:
            lines.append(
                f"  {{ model = {_q(p.model)}, board = {_q(p.board)}, clock_hz = {p.clock_hz}, "
                f"measured_ms = {p.measured_ms!r}, predicted_ms = {p.predicted_ms!r}, "
                f"error_pct = {p.error_pct:.6f}, source = {_q(p.source)} }},"
            )
        lines += ["]", ""]
    return "\n".join(lines)


def fit_report(sets: Mapping[str, CostCoefficients]) -> str:
    """Plain-text table: coefficients and the error on every calibration point."""
    out = [f"{'set':26} {'k_conv':>8} {'k_fc':>8} {'ovh':>6}  {'model':15} {'measured':>9} {'fit':>9} {'error':>8}"]
    for name, c in sets.items():
        for i, p in enumerate(c.fit):
            head = (
                f"{name:26} {c.cycles_per_mac_conv:8.3f} {c.cycles_per_mac_fc:8.3f} {c.per_op_overhead_cycles:6.0f}"
                if i == 0
                else " " * 52
            )
            out.append(f"{head}  {p.model:15} {p.measured_ms:7.2f}ms {p.predicted_ms:7.2f}ms {p.error_pct:+7.3f}%")
    return "\n".join(out)


def stored_matches_fit(rel_tol: float = 1e-9) -> bool:
    """Whether the shipped ``coefficients.toml`` equals a fresh fit of the shipped calibration points."""
    stored, fresh = load_cost_models(), fit_all()
    if stored.keys() != fresh.keys():
        return False
    return all(
        math.isclose(getattr(stored[n], f), getattr(fresh[n], f), rel_tol=rel_tol, abs_tol=1e-12)
        for n in fresh
        for f in ("cycles_per_mac_conv", "cycles_per_mac_fc", "per_op_overhead_cycles")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeprune.boards.calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that coefficients.toml matches a fresh fit")
    args = parser.parse_args(argv)
    sets = fit_all()
    print(fit_report(sets))
    if args.check:
        ok = stored_matches_fit()
        print("coefficients.toml matches the fit" if ok else "coefficients.toml is STALE: rerun without --check")
        return 0 if ok else 1
    write_atomic(coefficients_path(), render_coefficients(sets))
    print(f"wrote {coefficients_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
