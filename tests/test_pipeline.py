"""optimize(): the measure → budget → prune → measure loop on a board's cost model and real TFLM bundles."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from headless_browser import assert_self_contained_and_rendered

from edgeprune.boards import load_board
from edgeprune.boards.runner import CostModelRunner
from edgeprune.errors import EdgepruneError
from edgeprune.measure.runner import Subject
from edgeprune.models import create_model
from edgeprune.pipeline import Goals, OptimizeOptions, allocation, optimize
from edgeprune.pipeline.allocation import greedy, knapsack
from edgeprune.pipeline.outputs import pareto, points_table, write_outputs
from edgeprune.prune import output_fidelity


def _setup(name: str = "simple"):
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.example_inputs(1)
    return model, inputs, output_fidelity(model, model.example_inputs(16))


def _baseline_ms(model, inputs, board: str = "nucleo-l4r5zi") -> float:
    return CostModelRunner(load_board(board)).measure(Subject("m", model, inputs, Path("/nonexistent"))).latency_ms


def test_meets_a_latency_goal_and_arena_goal_with_real_bundles(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup()
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(64)]
    target = CostModelRunner(load_board("nucleo-l4r5zi"), calibration)
    base = target.measure(Subject("m", model, inputs, tmp_path / "probe"))
    goals = Goals(latency_ms=0.7 * base.latency_ms, arena_bytes=base.memory.arena_bytes - 1, max_drop=1.0)
    result = optimize(
        model, inputs, target, evaluate, goals, tmp_path / "run", OptimizeOptions(step=0.2, max_iterations=6)
    )
    assert result.met, result.explanation
    chosen = result.chosen.result
    assert chosen.latency_ms <= goals.latency_ms and chosen.memory.arena_bytes <= goals.arena_bytes
    assert chosen.provenance.kind == "estimated"  # cost-model latency is an estimate, and says so
    assert chosen.memory.arena == "TFLM" and "TFLM arena B" in points_table(result).columns[4].header
    assert (tmp_path / "run" / "points" / f"{result.chosen.iteration:03d}" / "tflm" / "model.tflite").exists()
    write_outputs(result)
    summary = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert summary["met"] and result.chosen.iteration in [p["iteration"] for p in summary["points"]]
    plots = ("pareto.png", "budgets.png", "components.png", "pruning.png")  # beside report.md, which links them
    outputs = (*plots, "report.md", "report.html", "chosen/plan.json", "chosen/pruned.pt", "chosen/report.json")
    for name in outputs:
        assert (tmp_path / "run" / name).exists(), name
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert all(f"]({name})" in markdown for name in plots)
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Goals: baseline vs chosen point" in page and page.count("data:image/png;base64,") >= 4
    assert "cost-model" in page or "estimate" in page  # the latency's provenance is on the page
    assert_self_contained_and_rendered(tmp_path / "run" / "report.html", min_images=len(plots))  # in chromium


def test_budgets_grow_where_latency_is_and_protected_components_stay(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup("tdmpc")
    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.8 * _baseline_ms(model, inputs), max_drop=10.0)
    result = optimize(model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(protect=["encoder"], step=0.2))
    assert result.met
    assert all(p.budgets["encoder"] == 0 for p in result.points)
    history = [p for p in result.points if p.accepted]
    assert all(a.result.latency_ms > b.result.latency_ms for a, b in itertools.pairwise(history))
    assert points_table(result).row_count == len(result.points)
    assert pareto(result.points)


def test_finetune_runs_on_every_candidate_and_its_weights_are_what_is_measured_and_kept(tmp_path: Path) -> None:
    """``finetune(model)`` (the user's N steps; here distillation towards the unpruned outputs) runs on each
    pruned candidate before it is evaluated and measured; the saved weights are the fine-tuned ones."""
    from edgeprune.prune import PrunePlan, load_pruned

    model, inputs, _ = _setup()
    batch = model.example_inputs(16)
    evaluate = output_fidelity(model, batch)
    with torch.no_grad():
        reference = model(*batch)
    calls = []

    def distill(pruned: torch.nn.Module) -> None:
        calls.append(sum(p.numel() for p in pruned.parameters()))
        opt = torch.optim.Adam(pruned.parameters(), lr=1e-4)
        for _ in range(50):
            opt.zero_grad()
            torch.nn.functional.mse_loss(pruned.eval()(*batch), reference).backward()
            opt.step()

    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.7 * _baseline_ms(model, inputs), max_drop=1.0)
    kw = {"strategy": greedy, "step": 0.2, "max_iterations": 3}
    tuned = optimize(model, inputs, target, evaluate, goals, tmp_path / "ft", OptimizeOptions(finetune=distill, **kw))
    plain = optimize(model, inputs, target, evaluate, goals, tmp_path / "plain", OptimizeOptions(**kw))
    assert len(calls) == len(tuned.points) - 1  # once per candidate, never on the baseline
    assert tuned.points[1].budgets == plain.points[1].budgets  # the same first cut ...
    assert tuned.points[1].metric > plain.points[1].metric  # ... recovers fidelity when fine-tuned
    point = tuned.points[1].iteration
    folder = tmp_path / "ft" / "points" / f"{point:03d}"
    torch.manual_seed(0)
    kept = load_pruned(create_model("simple"), PrunePlan.load(folder / "plan.json"), inputs, folder / "pruned.pt")
    assert evaluate(kept) == pytest.approx(tuned.points[1].metric, rel=1e-6)  # the fine-tuned weights were saved


@pytest.mark.parametrize("strategy", ["greedy", "knapsack"])
def test_a_step_below_one_round_to_quantum_is_extended_not_measured_again(tmp_path: Path, strategy: str) -> None:
    """round_to=16 with 5 % steps: most single steps remove no channel; each measured point must still be a new
    (smaller) model, and the loop must get there."""
    model, inputs, evaluate = _setup()
    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.5 * _baseline_ms(model, inputs), max_drop=10.0)
    result = optimize(
        model,
        inputs,
        target,
        evaluate,
        goals,
        tmp_path,
        OptimizeOptions(strategy=allocation.strategy(strategy), round_to=16, step=0.05),
    )
    assert result.met, result.explanation
    latencies = [p.result.latency_ms for p in result.points]
    assert all(a > b for a, b in itertools.pairwise(latencies)), latencies  # cost model: fewer MACs, less latency


def test_unreachable_goal_is_explained_with_the_closest_point(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup()
    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.01 * _baseline_ms(model, inputs), max_drop=10.0)
    result = optimize(model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(step=0.3, max_fraction=0.6))
    assert not result.met
    assert "max_fraction=0.6" in result.explanation and "latency_ms" in result.explanation
    assert result.chosen.result.latency_ms == min(p.result.latency_ms for p in result.points if p.accepted)


def test_max_drop_stops_the_loop_and_says_why(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup()
    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.2 * _baseline_ms(model, inputs), max_drop=1e-12)
    result = optimize(model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(step=0.2, min_step=0.1))
    assert not result.met and "max_drop" in result.explanation
    assert result.chosen.iteration == 0  # nothing cheap enough: the baseline stays the answer


class _CrashesAfter(CostModelRunner):
    """The cost-model target, crashing (like a killed process) after ``_left`` measurements; the private
    counter is not part of the run's settings, so the same target object resumes the run."""

    def __init__(self, board, left: int) -> None:
        super().__init__(board)
        self._left = left

    def measure(self, subject):
        self._left -= 1
        if self._left < 0:
            raise KeyboardInterrupt
        return super().measure(subject)


def test_resume_continues_where_it_stopped_and_refuses_other_settings(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup()
    target = _CrashesAfter(load_board("nucleo-l4r5zi"), 2)
    goals = Goals(latency_ms=0.6 * _baseline_ms(model, inputs), max_drop=10.0)
    with pytest.raises(KeyboardInterrupt):
        optimize(model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(strategy=greedy, step=0.1))
    first = (tmp_path / "iterations.jsonl").read_text().splitlines()
    assert len(first) == 2
    with pytest.raises(EdgepruneError, match="already holds a run"):
        optimize(model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(strategy=greedy, step=0.1))
    with pytest.raises(EdgepruneError, match="different settings"):
        optimize(
            model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(strategy=greedy, step=0.2), resume=True
        )
    target._left = 100
    resumed = optimize(
        model, inputs, target, evaluate, goals, tmp_path, OptimizeOptions(strategy=greedy, step=0.1), resume=True
    )
    assert resumed.met
    assert [json.dumps(p.to_dict()) for p in resumed.points[:2]] == first


def test_a_run_that_failed_before_its_first_point_is_still_recognised_as_a_run(tmp_path: Path) -> None:
    """So that `edgeprune demo` replaces it next time instead of refusing a folder it wrote itself."""
    from edgeprune.pipeline.runlog import holds_run

    class Unplugged:
        name = "a board that is not there"

        def measure(self, subject):
            raise EdgepruneError("no board")

    model, inputs, evaluate = _setup()
    with pytest.raises(EdgepruneError, match="no board"):
        optimize(model, inputs, Unplugged(), evaluate, Goals(latency_ms=1.0), tmp_path / "run")
    assert holds_run(tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")
    assert not holds_run(tmp_path / "mine") and not holds_run(tmp_path / "nothing")


def test_cli_optimize_with_a_user_metric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeprune.cli import main

    (tmp_path / "usermetric.py").write_text(
        "def evaluate(model):\n    return -sum(p.numel() for p in model.parameters()) * 1e-9  # tiny, monotone\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model, inputs, _ = _setup()
    goal = 0.8 * _baseline_ms(model, inputs)
    args = ["optimize", "simple", "--board", "l4r5zi", "--latency-ms", str(goal), "--eval", "usermetric:evaluate",
            "--step", "0.2", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    assert (tmp_path / "run" / "pareto.png").exists()
    assert main([*args[:-2], "--eval", "usermetric:nosuch", "--out", str(tmp_path / "run2")]) == 2


@pytest.mark.slow
def test_meets_latency_and_arena_goals_on_the_emulated_board(tmp_path: Path) -> None:
    """The loop's target is the firmware in QEMU: latency from instruction counts (an estimate), arena real."""
    from edgeprune.deploy.mcu.runners import EmulatedBoardRunner

    model, inputs, evaluate = _setup()
    calibration = [tuple(t.numpy() for t in model.example_inputs(1)) for _ in range(32)]
    target = EmulatedBoardRunner(load_board("nucleo-l4r5zi"), calibration)
    base = target.measure(Subject("m", model, inputs, tmp_path / "probe"))
    assert base.fits and base.provenance.kind == "estimated" and base.memory.arena_bytes > 0
    assert base.memory.arena == "firmware"  # our kernels' arena, never mistaken for TFLM's
    assert set(base.components_ms) >= {"encoder", "core", "head"}
    goals = Goals(latency_ms=0.75 * base.latency_ms, arena_bytes=base.memory.arena_bytes - 1, max_drop=1.0)
    result = optimize(
        model, inputs, target, evaluate, goals, tmp_path / "run", OptimizeOptions(step=0.25, max_iterations=4)
    )
    assert result.met, result.explanation
    assert result.chosen.result.latency_ms <= goals.latency_ms
    assert result.chosen.result.memory.arena_bytes <= goals.arena_bytes


def test_knapsack_changes_several_components_per_measurement_and_meets_the_goal(tmp_path: Path) -> None:
    model, inputs, evaluate = _setup("tdmpc")
    target = CostModelRunner(load_board("nucleo-l4r5zi"))
    goals = Goals(latency_ms=0.6 * _baseline_ms(model, inputs), max_drop=10.0)
    kw = {"protect": ["encoder"], "step": 0.2}
    knap = optimize(model, inputs, target, evaluate, goals, tmp_path / "k", OptimizeOptions(strategy=knapsack, **kw))
    one_by_one = optimize(
        model, inputs, target, evaluate, goals, tmp_path / "g", OptimizeOptions(strategy=greedy, **kw)
    )
    assert knap.met and one_by_one.met
    assert any("," in (p.changed or "") for p in knap.points)  # one measurement, several components cut
    assert len(knap.points) < len(one_by_one.points)  # fewer target measurements for the same goal
    assert knap.chosen.budgets["encoder"] == 0
    with pytest.raises(EdgepruneError, match="unknown strategy"):
        optimize(
            model,
            inputs,
            target,
            evaluate,
            goals,
            tmp_path / "x",
            OptimizeOptions(strategy=allocation.strategy("annealing")),
        )


def test_resume_after_the_run_is_killed(tmp_path: Path) -> None:
    """SIGKILL mid-run (no clean-up possible), then --resume: the recorded points stay and the run completes."""
    (tmp_path / "slowmetric.py").write_text(
        "import time\n\ndef evaluate(model):\n    time.sleep(0.3)  # slow enough to be killed mid-run\n"
        "    return -sum(p.numel() for p in model.parameters()) * 1e-9\n"
    )
    model, inputs, _ = _setup()
    goal = 0.6 * _baseline_ms(model, inputs)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "edgeprune.cli", "optimize", "simple", "--board", "l4r5zi", "--latency-ms",
            str(goal), "--eval", "slowmetric:evaluate", "--step", "0.2", "--out", str(run)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = run / "iterations.jsonl"
    deadline = time.monotonic() + 300
    while (not log.exists() or len(log.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = log.read_text().splitlines()
    assert len(before) >= 2 and all(json.loads(line) for line in before)  # whole lines only
    assert subprocess.run(args, env=env, capture_output=True, timeout=300).returncode == 2  # refuses without --resume
    resumed = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    after = log.read_text().splitlines()
    assert after[: len(before)] == before and len(after) > len(before)
    assert json.loads((run / "pareto.json").read_text())["met"]
