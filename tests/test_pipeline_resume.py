"""``optimize --resume`` continues only the run it was started as (model, weights, inputs, metric, target,
calibration, options, code), and the same command line gives the same run (seeded bundled models and inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeprune.boards import load_board
from edgeprune.boards.runner import CostModelRunner
from edgeprune.errors import EdgepruneError
from edgeprune.measure.runner import Subject
from edgeprune.models import create_model
from edgeprune.models.spec import load_model
from edgeprune.pipeline import Goals, OptimizeOptions, optimize
from edgeprune.pipeline.fingerprint import digest
from edgeprune.prune import output_fidelity

BOARD = "nucleo-l4r5zi"


def _run(out: Path, *, evaluate=None, calib=None, weights=None, max_iterations: int = 2, resume: bool = False):
    model, inputs = load_model("simple", weights)
    base = CostModelRunner(load_board(BOARD)).measure(Subject("probe", model, inputs, out / "probe")).latency.mean_ms
    target = CostModelRunner(load_board(BOARD), calib)  # with calib: refused before anything is exported
    goals = Goals(latency_ms=0.5 * base, max_drop=10.0)
    evaluate = evaluate or output_fidelity(model, inputs)
    options = OptimizeOptions(step=0.2, max_iterations=max_iterations)
    return optimize(model, inputs, target, evaluate, goals, out / "run", options, resume=resume)


def _zero(model) -> float:
    return 0.0


def test_resume_refuses_a_different_metric_weights_calibration_or_option(tmp_path: Path) -> None:
    _run(tmp_path)
    with pytest.raises(EdgepruneError, match="evaluate differ") as err:
        _run(tmp_path, evaluate=_zero, resume=True)  # the case: a metric returning 0 would "meet" goals
    assert "start a new run directory" in str(err.value)
    other = create_model("simple")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    torch.save(other.state_dict(), tmp_path / "w.pt")
    with pytest.raises(EdgepruneError, match="model_sha256"):
        _run(tmp_path, weights=tmp_path / "w.pt", resume=True)
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32))
    with pytest.raises(EdgepruneError, match="target_settings"):
        _run(tmp_path, calib=str(calib), resume=True)
    with pytest.raises(EdgepruneError, match="max_iterations"):
        _run(tmp_path, max_iterations=5, resume=True)
    _run(tmp_path, resume=True)  # the same settings resume


def test_the_same_run_twice_gives_the_same_points(tmp_path: Path) -> None:
    one = _run(tmp_path / "a")
    two = _run(tmp_path / "b")
    assert [p.to_dict() for p in one.points[:2]] == [p.to_dict() for p in two.points[:2]]
    cfg = [json.loads((tmp_path / d / "run" / "config.json").read_text()) for d in ("a", "b")]
    assert cfg[0] == cfg[1] and cfg[0]["code"].startswith("edgeprune ")


def test_bundled_models_and_inputs_are_seeded_without_touching_the_global_rng() -> None:
    state = torch.random.get_rng_state()
    (m1, x1), (m2, x2) = load_model("tdmpc"), load_model("tdmpc")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert digest(m1) == digest(m2) and digest(create_model("tdmpc")) == digest(m1)
    assert all(torch.equal(a, b) for a, b in zip(x1, x2, strict=True))
    assert digest(x1) != digest((x1[0] + 1, x1[1]))
